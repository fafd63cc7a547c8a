/**
 * One metrics POST: the shared admin client's outcome (src/http/client.ts) turned into what the HTTP
 * sink needs, ok or a RouterError that says whether a retry can help. The client races the request
 * against its timeout and the sink's close signal, so neither waits for a TCP connect that never
 * completes; the sink's own pool (`createAdminAgent` in src/http/agent.ts) then destroys such a socket at close.
 */
import type { Dispatcher } from 'undici'
import { codeForStatus } from '../dispatch/classify.js'
import { ErrorCode, RouterError } from '../errors.js'
import { ERROR_BODY_LIMIT, postJson } from '../http/client.js'
import type { Clock } from '../internal/clock.js'

export interface PostContext {
  url: string
  /** The URL without credentials or query, for messages. */
  target: string
  /** The sink's extra headers (the client sets content-type and accept). */
  headers: Readonly<Record<string, string>>
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

function statusFailure(status: number, target: string, retryAfterMs: number | undefined): PostResult {
  const retryable = status >= 500 || status === 429 || status === 408
  // A 404 here is a wrong metrics path, not a missing model.
  const code = status === 404 ? ErrorCode.BAD_REQUEST : codeForStatus(status)
  const error = new RouterError(
    code,
    `Metrics POST to ${target} answered HTTP ${status}.${retryable ? '' : ' Not retried: check the admin API accepts this record format (metrics.mode) and the sink headers.'}`,
    { status, endpoint: target, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
  )
  return { ok: false, error, status, retryable, abandoned: false }
}

function unreachable(target: string, description: string, cause: unknown): PostResult {
  const error = new RouterError(
    ErrorCode.BACKEND_UNREACHABLE,
    `Metrics POST to ${target} failed: ${description}. Is the admin API up?`,
    { endpoint: target, cause },
  )
  return { ok: false, error, status: undefined, retryable: true, abandoned: false }
}

/** POSTs `body` (JSON) once. Never rejects: every outcome is a {@link PostResult}. */
export async function postMetrics(body: string, ctx: PostContext): Promise<PostResult> {
  const { target } = ctx
  const outcome = await postJson({
    url: ctx.url,
    body,
    headers: ctx.headers,
    dispatcher: ctx.dispatcher,
    clock: ctx.clock,
    timeoutMs: ctx.timeoutMs,
    // The admin's answer to a stored record carries nothing the sink needs; it is read (so the
    // keep-alive socket is reused) up to this cap and otherwise ignored.
    maxBodyBytes: ERROR_BODY_LIMIT,
    signal: ctx.closeSignal,
  })
  switch (outcome.kind) {
    case 'json':
    case 'not-json':
    case 'too-large':
      return { ok: true }
    case 'status':
      return statusFailure(outcome.status, target, outcome.retryAfterMs)
    case 'not-modified':
      // Nothing was stored; as for any other non-2xx answer that is not a server failure.
      return statusFailure(304, target, undefined)
    case 'network':
      return unreachable(target, outcome.description, outcome.error)
    case 'broken-body':
      return unreachable(target, `the answer broke off (${outcome.description})`, outcome.error)
    case 'timeout': {
      const error = new RouterError(
        ErrorCode.TIMEOUT,
        `Metrics POST to ${target} timed out after ${outcome.timeoutMs} ms (timeoutMs).`,
        { endpoint: target },
      )
      return { ok: false, error, status: undefined, retryable: true, abandoned: false }
    }
    case 'aborted':
      return { ok: false, error: ctx.abandoned(), status: undefined, retryable: false, abandoned: true }
  }
}
