/**
 * One HTTP attempt against one target: send, collect or stream the body under the size cap, and
 * turn every outcome into either the adapter's output or a classified RouterError.
 */
import type { Dispatcher } from 'undici'
import type { ProtocolAdapter, StreamDecoder } from '../backends/types.js'
import { decryptKey } from '../config/encrypted-key.js'
import { ErrorCode, isRouterError, RouterError } from '../errors.js'
import { parseRetryAfter } from '../http/retry-after.js'
import type { Clock } from '../internal/clock.js'
import { type Env, readEnv } from '../internal/env.js'
import type { Exchange, ResponseHandler, Transport } from '../transport/http.js'
import { networkError, statusError } from './classify.js'
import type { Target } from './routes.js'

/** Error bodies are only read for their message; cap them much lower than successful bodies. */
const ERROR_BODY_CAP = 64 * 1024

/** Per-request state shared by its attempts: the current exchange, the deadline, the caller's signal. */
export class RequestControl {
  current: Exchange | null = null
  /** Set once: the reason this request stops (TIMEOUT or ABORTED). */
  stopped: RouterError | null = null
  private timer: unknown = null
  private sleepTimer: unknown = null
  private sleepReject: ((error: RouterError) => void) | null = null
  private waitReject: ((error: RouterError) => void) | null = null
  private readonly signal: AbortSignal | undefined

  /** Epoch ms of the overall deadline. */
  deadline: number
  /** The overall deadline's length, for messages. */
  timeoutMs: number

  constructor(
    private readonly clock: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.signal = signal
    this.timeoutMs = timeoutMs
    this.deadline = clock.now() + timeoutMs
    this.arm(timeoutMs)
    if (signal) {
      if (signal.aborted) this.onAbort()
      else signal.addEventListener('abort', this.onAbort, { once: true })
    }
  }

  private arm(ms: number): void {
    this.timer = this.clock.setTimeout(this.onTimeout, ms)
    // A request in flight keeps the process alive, like any pending fetch: the clock unrefs its
    // timers (right for background work), and under msw there is no real socket to hold the loop.
    ;(this.timer as { ref?: () => void } | null)?.ref?.()
  }

  /** Moves the overall deadline to `timeoutMs` after the start, if that is later (never earlier). */
  extendTo(timeoutMs: number): void {
    if (timeoutMs <= this.timeoutMs || this.stopped || this.timer === null) return
    this.clock.clearTimeout(this.timer)
    this.deadline += timeoutMs - this.timeoutMs
    this.timeoutMs = timeoutMs
    this.arm(Math.max(0, this.deadline - this.clock.now()))
  }

  /** Waits for `promise`, but rejects as soon as the request stops (deadline, abort, close). */
  wait<T>(promise: Promise<T>): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopped)
    return new Promise<T>((resolve, reject) => {
      this.waitReject = reject
      promise.then(
        (value) => {
          this.waitReject = null
          resolve(value)
        },
        (error: unknown) => {
          this.waitReject = null
          reject(error)
        },
      )
    })
  }

  private readonly onTimeout = (): void => {
    this.timer = null
    // The dispatcher rewrites this with the request's model and last target (policy.ts).
    this.stop(
      new RouterError(
        ErrorCode.TIMEOUT,
        `The request exceeded its ${this.timeoutMs} ms deadline; raise timeoutMs or defaultTimeoutMs`,
      ),
    )
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
    if (this.waitReject) {
      const reject = this.waitReject
      this.waitReject = null
      reject(reason)
    }
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
  clock: Pick<Clock, 'now' | 'setTimeout' | 'clearTimeout'>
  /** How exchanges are sent: undici's dispatch() with a handler (default) or plain undici.request(). */
  transport: Transport
}

/**
 * Per-attempt limits in ms; null = none. Each one, when it fires, fails this attempt with TIMEOUT and
 * lets the policy fall over to the next candidate. The request's overall deadline is separate.
 */
export interface AttemptLimits {
  /** The whole attempt (the record's `timeout_seconds`, or `attemptTimeoutMs`). */
  attemptMs: number | null
  /** Non-streams: until the response headers. */
  headersMs: number | null
  /** Streams: until the first text. */
  firstTokenMs: number | null
  /** Streams: longest silence between body bytes once the headers came. */
  idleMs: number | null
}

/** Headers of one request, and the credential value in them (to keep it out of error messages). */
export function requestHeaders(
  target: Target,
  env: Env,
): { headers: Record<string, string>; secret?: string } {
  if (target.envProblem !== undefined) {
    throw new RouterError(ErrorCode.MISSING_CREDENTIAL, target.envProblem, {
      backend: target.kind,
      endpoint: target.endpoint,
    })
  }
  const auth = target.auth
  if (auth === undefined) return { headers: target.headers }
  if ('bearer_env' in auth) {
    const value = readEnv(env, auth.bearer_env)
    if (value === undefined) throw missingCredential(target, auth.bearer_env)
    return { headers: { ...target.headers, authorization: `Bearer ${value}` }, secret: value }
  }
  if ('bearer_encrypted' in auth) {
    const result = decryptKey(auth.bearer_encrypted, readEnv(env, auth.key_env), auth.key_env)
    if (!result.ok) {
      throw new RouterError(
        ErrorCode.MISSING_CREDENTIAL,
        `The record for ${target.endpoint}: ${result.reason}`,
        { backend: target.kind, endpoint: target.endpoint, cause: result.cause },
      )
    }
    return { headers: { ...target.headers, authorization: `Bearer ${result.key}` }, secret: result.key }
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
  return error.withDetails({
    message: error.message.replaceAll(secret, REDACTED),
    ...(inCause ? { cause: undefined } : {}),
  })
}

function missingCredential(target: Target, variable: string): RouterError {
  return new RouterError(
    ErrorCode.MISSING_CREDENTIAL,
    `The record for ${target.endpoint} reads its credential from the environment variable ${variable}, which is not set`,
    { backend: target.kind, endpoint: target.endpoint },
  )
}

type LimitName = 'attempt' | 'headers' | 'first-token' | 'idle'

const LIMIT_TEXT: Record<LimitName, [string, string]> = {
  attempt: ['did not finish within', "the record's timeout_seconds / attemptTimeoutMs"],
  headers: ['sent no response headers within', 'headersTimeoutMs'],
  'first-token': ['sent no text within', 'firstTokenTimeoutMs'],
  idle: ['stalled: sent nothing for', 'idleTimeoutMs'],
}

/**
 * Drives one exchange. Used both for whole bodies (decoder null) and streams (decoder set, text
 * deltas passed to `onText` as they arrive). Owns the attempt's own limits.
 */
class Attempt<Out, Delta> implements ResponseHandler {
  status = 0
  private headers: Record<string, string | string[] | undefined> | null = null
  private readonly chunks: Buffer[] = []
  private size = 0
  exchange: Exchange | null = null
  /**
   * One watchdog timer for all of the attempt's limits: it fires at the earliest limit that could
   * have passed, checks them, and re-arms itself when none has. Progress (headers, text, bytes) then
   * only updates a field: no clearTimeout/setTimeout pair per stream event.
   */
  private watchdog: unknown = null
  /** Clock time when the whole attempt expires, or null. */
  private attemptAt: number | null = null
  /** Clock time when the headers (non-streams) or the first text (streams) are overdue; null once seen. */
  private firstAt: number | null = null
  /**
   * Idle limit, once it runs (after 2xx stream headers): the clock time by which body bytes were last
   * seen, and the body size at that check. Chunks only grow `size`; the watchdog notices the growth
   * (no clock read per chunk), so a stall is caught within idleMs to 1.25 × idleMs.
   */
  private lastDataAt: number | null = null
  private sizeAtCheck = 0
  private done = false
  private readonly emit: ((delta: Delta) => void) | null

  constructor(
    private readonly ctx: AttemptContext,
    private readonly target: Target,
    private readonly adapter: ProtocolAdapter<Out, Delta>,
    private readonly model: string,
    private readonly control: RequestControl,
    private readonly decoder: StreamDecoder<Out, Delta> | null,
    onText: ((delta: Delta) => void) | null,
    private readonly limits: AttemptLimits,
    private readonly resolve: (out: Out) => void,
    private readonly reject: (error: RouterError) => void,
    private readonly secret: string | undefined,
  ) {
    // Only a first-token limit needs to see the first text; otherwise deltas go straight through.
    this.emit =
      onText !== null && decoder !== null && limits.firstTokenMs !== null
        ? (delta) => {
            this.firstAt = null
            onText(delta)
          }
        : onText
  }

  /** Starts the watchdog; called once the exchange exists. */
  armLimits(): void {
    if (this.done) return // the transport failed synchronously
    const now = this.ctx.clock.now()
    const { attemptMs, headersMs, firstTokenMs } = this.limits
    if (attemptMs !== null) this.attemptAt = now + attemptMs
    const firstMs = this.decoder === null ? headersMs : firstTokenMs
    if (firstMs !== null) this.firstAt = now + firstMs
    this.rearm(now)
  }

  /** Schedules the watchdog for the earliest limit still pending; with an idle limit, at least every idleMs / 4. */
  private rearm(now: number): void {
    let due = Number.POSITIVE_INFINITY
    if (this.attemptAt !== null) due = this.attemptAt
    if (this.firstAt !== null && this.firstAt < due) due = this.firstAt
    const idleMs = this.decoder === null ? null : this.limits.idleMs
    if (idleMs !== null) {
      const quietUntil = this.lastDataAt === null ? Number.POSITIVE_INFINITY : this.lastDataAt + idleMs
      const idleAt = Math.min(quietUntil, now + idleMs / 4)
      if (idleAt < due) due = idleAt
    }
    if (due !== Number.POSITIVE_INFINITY) this.watchdog = this.ctx.clock.setTimeout(this.check, due - now)
  }

  private readonly check = (): void => {
    this.watchdog = null
    if (this.done) return
    const now = this.ctx.clock.now()
    const { attemptMs, headersMs, firstTokenMs, idleMs } = this.limits
    if (this.attemptAt !== null && now >= this.attemptAt) this.expire('attempt', attemptMs!)
    else if (this.firstAt !== null && now >= this.firstAt) {
      if (this.decoder === null) this.expire('headers', headersMs!)
      else this.expire('first-token', firstTokenMs!)
    } else if (this.lastDataAt !== null && idleMs !== null && this.quietFor(now) >= idleMs) {
      this.expire('idle', idleMs)
    } else {
      this.rearm(now)
    }
  }

  /** How long the body has been silent, as far as the checks can tell. */
  private quietFor(now: number): number {
    // Bytes since the last check, or a socket paused for a slow consumer (not a stall): active now.
    if (this.size !== this.sizeAtCheck || this.exchange?.paused) {
      this.sizeAtCheck = this.size
      this.lastDataAt = now
    }
    return now - (this.lastDataAt as number)
  }

  private clearLimits(): void {
    if (this.watchdog !== null) this.ctx.clock.clearTimeout(this.watchdog)
    this.watchdog = null
  }

  private expire(name: LimitName, ms: number): void {
    const [what, option] = LIMIT_TEXT[name]
    const error = new RouterError(
      ErrorCode.TIMEOUT,
      `${this.target.kind} at ${this.target.endpoint} ${what} ${ms} ms (${option}) for model "${this.model}"`,
      { backend: this.target.kind, endpoint: this.target.endpoint, model: this.model },
    )
    // Settles now (the exchange reports the abort at once), whatever undici is still waiting for.
    this.exchange?.abort(error)
  }

  onStart(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = status
    this.headers = headers
    if (this.decoder === null) this.firstAt = null
    else if (this.limits.idleMs !== null && this.watchdog !== null && status >= 200 && status < 300) {
      this.lastDataAt = this.ctx.clock.now()
      this.sizeAtCheck = this.size
    }
  }

  onData(chunk: Buffer): void {
    this.size += chunk.length
    const ok = this.status >= 200 && this.status < 300
    if (ok && this.decoder !== null) {
      if (this.size > this.ctx.maxResponseBytes) throw this.tooLarge()
      this.decoder.push(chunk, this.emit!)
      return
    }
    if (this.size > (ok ? this.ctx.maxResponseBytes : ERROR_BODY_CAP)) {
      if (ok) throw this.tooLarge()
      return // keep what we have of an error body; the message is in the first bytes
    }
    this.chunks.push(chunk)
  }

  onEnd(): void {
    this.done = true
    this.control.current = null
    this.clearLimits()
    const status = this.status
    if (status >= 200 && status < 300) {
      try {
        this.resolve(
          this.decoder !== null
            ? this.decoder.end(this.emit!)
            : this.adapter.decode(
                this.chunks.length === 1 ? this.chunks[0]!.toString() : Buffer.concat(this.chunks).toString(),
              ),
        )
      } catch (error) {
        this.reject(this.annotate(error))
      }
      return
    }
    const body = Buffer.concat(this.chunks).toString()
    const retryAfter = parseRetryAfter(this.headers?.['retry-after'], this.ctx.clock.now())
    this.reject(
      redact(
        statusError(
          status,
          this.adapter.errorMessage(status, body),
          { backend: this.target.kind, endpoint: this.target.endpoint, model: this.model },
          retryAfter,
          this.adapter.statusCode?.(status, body),
        ),
        this.secret,
      ),
    )
  }

  onError(error: Error, responseStarted: boolean): void {
    this.done = true
    this.control.current = null
    this.clearLimits()
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
    const where = { backend: this.target.kind, endpoint: this.target.endpoint, model: this.model }
    if (!isRouterError(error)) {
      return new RouterError(
        ErrorCode.MALFORMED_RESPONSE,
        `${this.target.kind} at ${this.target.endpoint} sent a body that could not be parsed`,
        { cause: error, ...where, status: this.status },
      )
    }
    if (error.endpoint !== undefined) return error
    return error.withDetails({
      message: `${this.target.kind} at ${this.target.endpoint}: ${error.message}`,
      cause: error.cause ?? error,
      ...where,
      status: this.status,
    })
  }
}

/**
 * Sends one request to `path` on the target's origin (its base path plus the operation adapter's path);
 * resolves with the adapter's parsed output or rejects with a classified RouterError.
 */
export function sendAttempt<Out, Delta>(
  ctx: AttemptContext,
  target: Target,
  adapter: ProtocolAdapter<Out, Delta>,
  path: string,
  model: string,
  body: string,
  control: RequestControl,
  decoder: StreamDecoder<Out, Delta> | null,
  onText: ((delta: Delta) => void) | null,
  limits: AttemptLimits,
): Promise<Out> {
  return new Promise<Out>((resolve, reject) => {
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
    const attempt = new Attempt(
      ctx,
      target,
      adapter,
      model,
      control,
      decoder,
      onText,
      limits,
      resolve,
      reject,
      secret,
    )
    const exchange = ctx.transport(
      ctx.dispatcher,
      { origin: target.origin, path, method: 'POST', headers, body },
      attempt,
    )
    attempt.exchange = exchange
    control.current = exchange
    attempt.armLimits()
  })
}

/** Limit values a request and its record may set; the options hold the defaults. */
export interface LimitSources {
  attemptTimeoutMs: number | null
  headersTimeoutMs: number | null
  firstTokenTimeoutMs: number | null
  idleTimeoutMs: number | null
}

/**
 * The limits of one attempt: the request's value, else the record's (`timeout_seconds`, attempt only),
 * else the option's. Streams get first-token and idle limits, non-streams the headers limit.
 */
export function attemptLimits(
  defaults: LimitSources,
  req: Partial<Record<keyof LimitSources, number>>,
  recordTimeoutSeconds: number | undefined,
  streamed: boolean,
): AttemptLimits {
  const fromRecord = recordTimeoutSeconds === undefined ? undefined : recordTimeoutSeconds * 1000
  return {
    attemptMs: req.attemptTimeoutMs ?? fromRecord ?? defaults.attemptTimeoutMs,
    headersMs: streamed ? null : (req.headersTimeoutMs ?? defaults.headersTimeoutMs),
    firstTokenMs: streamed ? (req.firstTokenTimeoutMs ?? defaults.firstTokenTimeoutMs) : null,
    idleMs: streamed ? (req.idleTimeoutMs ?? defaults.idleTimeoutMs) : null,
  }
}
