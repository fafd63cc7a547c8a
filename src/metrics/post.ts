/**
 * One metrics POST, and the only place the HTTP sink touches the network (so it can move onto a shared
 * admin client later without the sink changing).
 *
 * The request is raced against its timeout and the sink's close signal instead of trusting the abort
 * to settle it: undici does not settle a request whose TCP connect is still pending when its signal
 * fires (it waits for the connect to finish or time out), so an endpoint that never completes the
 * handshake would otherwise hold `close()` for the whole connect timeout. The loser of the race is
 * aborted and left to settle on its own; {@link createSinkAgent}'s `destroy()` ends a pending connect.
 */
import type { Socket } from 'node:net'
import { Agent, buildConnector, type Dispatcher, request } from 'undici'
import { codeForStatus, parseRetryAfter } from '../dispatch/classify.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'

export interface PostContext {
  url: string
  /** The URL without credentials or query, for messages. */
  target: string
  headers: Record<string, string>
  dispatcher: Dispatcher
  timeoutMs: number
  clock: Clock
  /** Aborted at the close deadline: the POST is abandoned at once. */
  closeSignal: AbortSignal
  /** The error to report for an abandoned POST. */
  abandoned: (cause?: unknown) => RouterError
}

export type PostResult =
  | { ok: true }
  | { ok: false; error: RouterError; status: number | undefined; retryable: boolean; abandoned: boolean }

const noop = (): void => {}

/** POSTs `body` (JSON) once. Never rejects: every outcome is a {@link PostResult}. */
export async function postMetrics(body: string, ctx: PostContext): Promise<PostResult> {
  const { closeSignal, clock, target } = ctx
  if (closeSignal.aborted)
    return { ok: false, error: ctx.abandoned(), status: undefined, retryable: false, abandoned: true }
  const ac = new AbortController()
  let settle!: (r: PostResult) => void
  const stopped = new Promise<PostResult>((resolve) => {
    settle = resolve
  })
  const onClose = (): void => {
    ac.abort(closeSignal.reason)
    settle({ ok: false, error: ctx.abandoned(), status: undefined, retryable: false, abandoned: true })
  }
  closeSignal.addEventListener('abort', onClose, { once: true })
  const timer = clock.setTimeout(() => {
    const error = new RouterError(
      ErrorCode.TIMEOUT,
      `Metrics POST to ${target} timed out after ${ctx.timeoutMs} ms (timeoutMs).`,
      { endpoint: target },
    )
    ac.abort(error)
    settle({ ok: false, error, status: undefined, retryable: true, abandoned: false })
  }, ctx.timeoutMs)

  const exchange = (async (): Promise<PostResult> => {
    try {
      const res = await request(ctx.url, {
        method: 'POST',
        headers: ctx.headers,
        body,
        signal: ac.signal,
        dispatcher: ctx.dispatcher,
      })
      const status = res.statusCode
      // Drain so the keep-alive socket is reusable; the admin's answer carries nothing we need.
      await res.body.dump()
      if (status >= 200 && status < 300) return { ok: true }
      const retryable = status >= 500 || status === 429 || status === 408
      const retryAfterMs =
        status === 429 || status === 503
          ? parseRetryAfter(res.headers['retry-after'], clock.now())
          : undefined
      // A 404 here is a wrong metrics path, not a missing model.
      const code = status === 404 ? ErrorCode.BAD_REQUEST : codeForStatus(status)
      const error = new RouterError(
        code,
        `Metrics POST to ${target} answered HTTP ${status}.${retryable ? '' : ' Not retried: check the admin API accepts this record format (metrics.mode) and the sink headers.'}`,
        { status, endpoint: target, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      )
      return { ok: false, error, status, retryable, abandoned: false }
    } catch (err) {
      const error = new RouterError(
        ErrorCode.BACKEND_UNREACHABLE,
        `Metrics POST to ${target} failed: ${err instanceof Error ? err.message : String(err)}. Is the admin API up?`,
        { endpoint: target, cause: err },
      )
      return { ok: false, error, status: undefined, retryable: true, abandoned: false }
    }
  })()
  exchange.then(settle, noop)
  try {
    return await stopped
  } finally {
    clock.clearTimeout(timer)
    closeSignal.removeEventListener('abort', onClose)
  }
}

/** The sink's own connection pool: keep-alive sockets reused across POSTs, and connects it can cut. */
export interface SinkAgent {
  readonly dispatcher: Dispatcher
  /** Destroys the pool and every socket still connecting (undici itself waits for those to finish). */
  destroy(): Promise<void>
}

export function createSinkAgent(connectTimeoutMs: number): SinkAgent {
  const connecting = new Set<Socket>()
  const connector = buildConnector({ timeout: connectTimeoutMs })
  const agent = new Agent({
    keepAliveTimeout: 4000,
    connect: (options, callback) => {
      const socket = connector(options, (err, connected) => {
        connecting.delete(socket as Socket)
        if (err === null) callback(null, connected as Socket)
        else callback(err, null)
      }) as unknown as Socket
      connecting.add(socket)
      return socket
    },
  })
  return {
    dispatcher: agent,
    async destroy() {
      for (const socket of connecting) socket.destroy()
      connecting.clear()
      await agent.destroy().catch(noop)
    },
  }
}
