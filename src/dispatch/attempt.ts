/**
 * One HTTP attempt against one target: send, collect or stream the body under the size cap, and
 * turn every outcome into either a BackendOutput or a classified RouterError.
 */
import type { Dispatcher } from 'undici'
import type { BackendOutput, StreamDecoder } from '../backends/types.js'
import { ErrorCode, isRouterError, RouterError } from '../errors.js'
import { type Env, readEnv } from '../internal/env.js'
import { type HttpExchange, type ResponseHandler, startExchange } from '../transport/http.js'
import { networkError, parseRetryAfter, statusError } from './classify.js'
import type { Target } from './routes.js'

/** Error bodies are only read for their message; cap them much lower than successful bodies. */
const ERROR_BODY_CAP = 64 * 1024

/** Per-request state shared by its attempts: the current exchange, the deadline, the caller's signal. */
export class RequestControl {
  current: HttpExchange | null = null
  /** Set once: the reason this request stops (TIMEOUT or ABORTED). */
  stopped: RouterError | null = null
  private timer: unknown = null
  private sleepTimer: unknown = null
  private sleepReject: ((error: RouterError) => void) | null = null
  private readonly signal: AbortSignal | undefined

  constructor(
    private readonly clock: {
      setTimeout(fn: () => void, ms: number): unknown
      clearTimeout(h: unknown): void
    },
    readonly deadline: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.signal = signal
    this.timer = clock.setTimeout(this.onTimeout, timeoutMs)
    // A request in flight keeps the process alive, like any pending fetch: the clock unrefs its
    // timers (right for background work), and under msw there is no real socket to hold the loop.
    ;(this.timer as { ref?: () => void } | null)?.ref?.()
    if (signal) signal.addEventListener('abort', this.onAbort, { once: true })
  }

  private readonly onTimeout = (): void => {
    this.timer = null
    this.stop(new RouterError(ErrorCode.TIMEOUT, 'deadline', {}))
  }

  private readonly onAbort = (): void => {
    this.stop(
      new RouterError(ErrorCode.ABORTED, 'The request was aborted by its AbortSignal', {
        cause: this.signal?.reason,
      }),
    )
  }

  stop(reason: RouterError): void {
    if (this.stopped) return
    this.stopped = reason
    this.current?.abort(reason)
    if (this.sleepReject) {
      this.clock.clearTimeout(this.sleepTimer)
      const reject = this.sleepReject
      this.sleepReject = null
      reject(reason)
    }
  }

  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped)
    return new Promise((resolve, reject) => {
      this.sleepReject = reject
      this.sleepTimer = this.clock.setTimeout(() => {
        this.sleepReject = null
        resolve()
      }, ms)
      // Likewise while waiting out a backoff: no socket is open, this timer is what holds the process.
      ;(this.sleepTimer as { ref?: () => void } | null)?.ref?.()
    })
  }

  dispose(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer)
    this.timer = null
    if (this.signal) this.signal.removeEventListener('abort', this.onAbort)
  }
}

export interface AttemptContext {
  dispatcher: Dispatcher
  env: Env
  maxResponseBytes: number
  now: () => number
}

/** Headers of one request, and the credential value in them (to keep it out of error messages). */
function requestHeaders(target: Target, env: Env): { headers: Record<string, string>; secret?: string } {
  const auth = target.auth
  if (auth === undefined) return { headers: target.headers }
  if ('bearer_env' in auth) {
    const value = readEnv(env, auth.bearer_env)
    if (value === undefined) throw missingCredential(target, auth.bearer_env)
    return { headers: { ...target.headers, authorization: `Bearer ${value}` }, secret: value }
  }
  const value = readEnv(env, auth.value_env)
  if (value === undefined) throw missingCredential(target, auth.value_env)
  return { headers: { ...target.headers, [auth.header.toLowerCase()]: value }, secret: value }
}

const REDACTED = '[redacted]'

function mentions(value: unknown, secret: string): boolean {
  if (value === undefined || value === null) return false
  if (typeof value === 'string') return value.includes(secret)
  if (value instanceof Error) {
    return (
      value.message.includes(secret) || (value.stack ?? '').includes(secret) || mentions(value.cause, secret)
    )
  }
  try {
    return (JSON.stringify(value) ?? '').includes(secret)
  } catch {
    return true
  }
}

/**
 * Backends and proxies may echo the credential they were sent (a 401 body, an error line in a
 * stream). Their text reaches error messages, so the value is replaced there, and a cause that
 * carries it is dropped.
 */
function redact(error: RouterError, secret: string | undefined): RouterError {
  if (secret === undefined || secret === '') return error
  const inMessage = error.message.includes(secret)
  const inCause = mentions(error.cause, secret)
  if (!inMessage && !inCause) return error
  return new RouterError(error.code, error.message.replaceAll(secret, REDACTED), {
    ...(inCause || error.cause === undefined ? {} : { cause: error.cause }),
    ...(error.status === undefined ? {} : { status: error.status }),
    ...(error.backend === undefined ? {} : { backend: error.backend }),
    ...(error.endpoint === undefined ? {} : { endpoint: error.endpoint }),
    ...(error.model === undefined ? {} : { model: error.model }),
    ...(error.delivered === undefined ? {} : { delivered: error.delivered }),
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
  })
}

function missingCredential(target: Target, variable: string): RouterError {
  return new RouterError(
    ErrorCode.MISSING_CREDENTIAL,
    `The record for ${target.endpoint} reads its credential from the environment variable ${variable}, which is not set`,
    { backend: target.kind, endpoint: target.endpoint },
  )
}

/**
 * Drives one exchange. Used both for whole bodies (decoder null) and streams (decoder set, text
 * deltas passed to `onText` as they arrive).
 */
class Attempt implements ResponseHandler {
  status = 0
  private headers: Record<string, string | string[] | undefined> | null = null
  private readonly chunks: Buffer[] = []
  private size = 0
  exchange: HttpExchange | null = null

  constructor(
    private readonly ctx: AttemptContext,
    private readonly target: Target,
    private readonly model: string,
    private readonly control: RequestControl,
    private readonly decoder: StreamDecoder | null,
    private readonly onText: ((text: string) => void) | null,
    private readonly resolve: (out: BackendOutput) => void,
    private readonly reject: (error: RouterError) => void,
    private readonly secret: string | undefined,
  ) {}

  onStart(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = status
    this.headers = headers
  }

  onData(chunk: Buffer): void {
    this.size += chunk.length
    const ok = this.status >= 200 && this.status < 300
    if (ok && this.decoder !== null) {
      if (this.size > this.ctx.maxResponseBytes) throw this.tooLarge()
      this.decoder.push(chunk, this.onText!)
      return
    }
    if (this.size > (ok ? this.ctx.maxResponseBytes : ERROR_BODY_CAP)) {
      if (ok) throw this.tooLarge()
      return // keep what we have of an error body; the message is in the first bytes
    }
    this.chunks.push(chunk)
  }

  onEnd(): void {
    this.control.current = null
    const status = this.status
    if (status >= 200 && status < 300) {
      try {
        this.resolve(
          this.decoder !== null
            ? this.decoder.end(this.onText!)
            : this.target.adapter.decode(
                this.chunks.length === 1 ? this.chunks[0]!.toString() : Buffer.concat(this.chunks).toString(),
              ),
        )
      } catch (error) {
        this.reject(this.annotate(error))
      }
      return
    }
    const body = Buffer.concat(this.chunks).toString()
    const retryAfter = parseRetryAfter(this.headers?.['retry-after'], this.ctx.now())
    this.reject(
      redact(
        statusError(
          status,
          this.target.adapter.errorMessage(status, body),
          { backend: this.target.kind, endpoint: this.target.endpoint, model: this.model },
          retryAfter,
        ),
        this.secret,
      ),
    )
  }

  onError(error: Error, responseStarted: boolean): void {
    this.control.current = null
    if (this.control.stopped) {
      this.reject(this.control.stopped)
      return
    }
    if (isRouterError(error)) {
      this.reject(this.annotate(error))
      return
    }
    this.reject(
      networkError(error, responseStarted, {
        backend: this.target.kind,
        endpoint: this.target.endpoint,
        model: this.model,
      }),
    )
  }

  private tooLarge(): RouterError {
    return new RouterError(
      ErrorCode.RESPONSE_TOO_LARGE,
      `${this.target.kind} at ${this.target.endpoint} sent more than maxResponseBytes (${this.ctx.maxResponseBytes}); raise the option if this is expected`,
      { backend: this.target.kind, endpoint: this.target.endpoint, model: this.model, status: this.status },
    )
  }

  /** Adds where-it-happened to errors raised by the pure adapters (whose text comes from the backend). */
  private annotate(error: unknown): RouterError {
    return redact(this.locate(error), this.secret)
  }

  private locate(error: unknown): RouterError {
    if (!isRouterError(error)) {
      return new RouterError(
        ErrorCode.MALFORMED_RESPONSE,
        `${this.target.kind} at ${this.target.endpoint} sent a body that could not be parsed`,
        {
          cause: error,
          backend: this.target.kind,
          endpoint: this.target.endpoint,
          model: this.model,
          status: this.status,
        },
      )
    }
    if (error.endpoint !== undefined) return error
    return new RouterError(error.code, `${this.target.kind} at ${this.target.endpoint}: ${error.message}`, {
      cause: error.cause ?? error,
      backend: this.target.kind,
      endpoint: this.target.endpoint,
      model: this.model,
      status: this.status,
      ...(error.delivered === undefined ? {} : { delivered: error.delivered }),
    })
  }
}

/** Sends one request; resolves with the parsed output or rejects with a classified RouterError. */
export function sendAttempt(
  ctx: AttemptContext,
  target: Target,
  model: string,
  body: string,
  control: RequestControl,
  decoder: StreamDecoder | null,
  onText: ((text: string) => void) | null,
): Promise<BackendOutput> {
  return new Promise<BackendOutput>((resolve, reject) => {
    if (control.stopped) {
      reject(control.stopped)
      return
    }
    let prepared: ReturnType<typeof requestHeaders>
    try {
      prepared = requestHeaders(target, ctx.env)
    } catch (error) {
      reject(error as RouterError)
      return
    }
    const { headers, secret } = prepared
    const attempt = new Attempt(ctx, target, model, control, decoder, onText, resolve, reject, secret)
    const exchange = startExchange(
      ctx.dispatcher,
      { origin: target.origin, path: target.path, method: 'POST', headers, body },
      attempt,
    )
    attempt.exchange = exchange
    control.current = exchange
  })
}
