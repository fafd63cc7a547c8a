/**
 * HTTP metrics sink: batches metric records and POSTs them to the admin API
 * (`{adminUrl}/api/llm-backends/metrics`) without ever slowing or failing a request.
 *
 * Shape follows the OpenTelemetry BatchSpanProcessor and posthog-node (see shared/notes/anchors.md a.5):
 * bounded queue that drops the oldest, lazy unref'd interval timer, one flush in flight at a time,
 * retries with jittered exponential backoff, 413 halves the batch, and an idempotent `close()` with a deadline.
 */
import type { Dispatcher } from 'undici'
import { request } from 'undici'
import { ErrorCode, RouterError } from '../errors.js'
import { type Clock, sleep, systemClock } from '../internal/clock.js'
import type { MetricRecord, MetricsSink } from '../types.js'

export interface HttpSinkOptions {
  /** Absolute http(s) URL the records are POSTed to. The router passes `{adminUrl}/api/llm-backends/metrics`. */
  url: string
  /**
   * `batch`: one JSON array of records per POST. `single`: one JSON object per POST, for admin APIs that
   * take one record at a time, with at most `concurrency` POSTs in flight.
   * @default 'batch'
   */
  mode?: 'batch' | 'single'
  /** Records per POST (batch mode); a full batch is sent at once, without waiting for the interval. @default 100 */
  batchSize?: number
  /** Queued records are sent at the latest this long after the first of them was written. @default 5000 */
  flushIntervalMs?: number
  /** Records waiting to be sent; when full the oldest is dropped and counted. @default 1000 */
  maxQueueSize?: number
  /** Per-POST timeout (connect, headers and body). @default 10000 */
  timeoutMs?: number
  /** Retries after the first attempt, on network errors, timeouts, 408, 429 and 5xx. Other 4xx are not retried. @default 3 */
  maxRetries?: number
  /** First backoff delay; doubles per retry, with equal jitter (50-100 %). @default 500 */
  retryBaseMs?: number
  /** Cap on one backoff delay. @default 30000 */
  retryMaxDelayMs?: number
  /** Cap on a server's `Retry-After` (429/503); longer values are clamped to it. @default 60000 */
  maxRetryAfterMs?: number
  /** `single` mode: POSTs in flight at once. @default 4 */
  concurrency?: number
  /** `close()` resolves at the latest this long after it was called; what is not sent by then is dropped. @default 10000 */
  closeTimeoutMs?: number
  /** Extra request headers (e.g. authorization). Never copied into errors or events. */
  headers?: Record<string, string>
  /** undici dispatcher (the router's Agent). Default: undici's global dispatcher. */
  dispatcher?: Dispatcher
  /** Time source for the interval, timeouts, backoff and the close deadline. @default systemClock (timers unref'd) */
  clock?: Clock
  /**
   * Records were dropped: queue overflow, a failed POST, abandoned at close, or written after close.
   * Called asynchronously and coalesced (at most once per microtask burst), never inside `write()`.
   */
  onDropped?: (dropped: number, totalDropped: number) => void
  /** A POST failed for good (after retries); its records are dropped (and reported through `onDropped` too). */
  onFlushFailed?: (error: RouterError, records: readonly MetricRecord[]) => void
}

export interface HttpSinkStats {
  /** Records waiting in the queue (not yet taken by a POST). */
  queued: number
  /** Records in POSTs that have not settled yet. */
  inFlight: number
  /** Records the endpoint accepted (2xx). */
  sent: number
  /** Records that will never be delivered (overflow, failed POSTs, abandoned at close, written after close). */
  dropped: number
  /** POSTs that failed for good (after retries). */
  failedPosts: number
  /** POSTs the endpoint accepted. */
  posts: number
}

export interface HttpMetricsSink extends MetricsSink {
  stats(): HttpSinkStats
}

/** Defaults of `createHttpSink()`. Chosen from posthog-node, OTel BSP and LaunchDarkly (anchors.md a.5). */
export const HTTP_SINK_DEFAULTS: {
  readonly mode: 'batch'
  readonly batchSize: 100
  readonly flushIntervalMs: 5000
  readonly maxQueueSize: 1000
  readonly timeoutMs: 10_000
  readonly maxRetries: 3
  readonly retryBaseMs: 500
  readonly retryMaxDelayMs: 30_000
  readonly maxRetryAfterMs: 60_000
  readonly concurrency: 4
  readonly closeTimeoutMs: 10_000
} = Object.freeze({
  mode: 'batch',
  batchSize: 100,
  flushIntervalMs: 5000,
  maxQueueSize: 1000,
  timeoutMs: 10_000,
  maxRetries: 3,
  retryBaseMs: 500,
  retryMaxDelayMs: 30_000,
  maxRetryAfterMs: 60_000,
  concurrency: 4,
  closeTimeoutMs: 10_000,
})

/** Fixed-capacity FIFO that overwrites nothing: `push` reports when the caller must drop the oldest. */
class RingQueue<T> {
  // Grows lazily up to `cap`, so a large maxQueueSize costs nothing until it is used.
  private readonly buf: (T | undefined)[] = []
  private head = 0
  size = 0

  constructor(private readonly cap: number) {}

  /** Appends; when full, evicts the oldest first. Returns true when one was evicted. */
  push(value: T): boolean {
    let evicted = false
    if (this.size === this.cap) {
      this.buf[this.head] = undefined
      this.head = (this.head + 1) % this.cap
      this.size--
      evicted = true
    }
    const tail = (this.head + this.size) % this.cap
    if (tail === this.buf.length) this.buf.push(value)
    else this.buf[tail] = value
    this.size++
    return evicted
  }

  take(n: number): T[] {
    const k = Math.min(n, this.size)
    const out = new Array<T>(k)
    for (let i = 0; i < k; i++) {
      const idx = (this.head + i) % this.cap
      out[i] = this.buf[idx] as T
      this.buf[idx] = undefined
    }
    this.head = (this.head + k) % this.cap
    this.size -= k
    return out
  }

  clear(): number {
    const n = this.size
    this.take(n)
    return n
  }
}

type PostResult =
  | { ok: true }
  | { ok: false; error: RouterError; status: number | undefined; retryable: boolean; abandoned: boolean }

interface Resolved {
  url: string
  mode: 'batch' | 'single'
  batchSize: number
  flushIntervalMs: number
  maxQueueSize: number
  timeoutMs: number
  maxRetries: number
  retryBaseMs: number
  retryMaxDelayMs: number
  maxRetryAfterMs: number
  concurrency: number
  closeTimeoutMs: number
}

function resolveOptions(options: HttpSinkOptions): Resolved {
  const issues: { path: string; message: string }[] = []
  let url = ''
  try {
    const u = new URL(options.url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)')
    url = u.href
  } catch {
    issues.push({ path: 'url', message: 'must be an absolute http(s) URL' })
  }
  const num = (name: keyof typeof HTTP_SINK_DEFAULTS, min: number): number => {
    const value = (options as unknown as Record<string, unknown>)[name]
    if (value === undefined) return HTTP_SINK_DEFAULTS[name] as number
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      issues.push({ path: name, message: `must be an integer >= ${min}` })
      return HTTP_SINK_DEFAULTS[name] as number
    }
    return value
  }
  const mode = options.mode ?? HTTP_SINK_DEFAULTS.mode
  if (mode !== 'batch' && mode !== 'single')
    issues.push({ path: 'mode', message: "must be 'batch' or 'single'" })
  const resolved: Resolved = {
    url,
    mode,
    batchSize: num('batchSize', 1),
    flushIntervalMs: num('flushIntervalMs', 1),
    maxQueueSize: num('maxQueueSize', 1),
    timeoutMs: num('timeoutMs', 1),
    maxRetries: num('maxRetries', 0),
    retryBaseMs: num('retryBaseMs', 0),
    retryMaxDelayMs: num('retryMaxDelayMs', 0),
    maxRetryAfterMs: num('maxRetryAfterMs', 0),
    concurrency: num('concurrency', 1),
    closeTimeoutMs: num('closeTimeoutMs', 0),
  }
  if (issues.length > 0) {
    throw new RouterError(
      ErrorCode.INVALID_OPTIONS,
      `Invalid HTTP metrics sink options: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      { issues },
    )
  }
  // A batch larger than the queue could never fill, so full batches would only leave on the timer (OTel clamps too).
  if (resolved.batchSize > resolved.maxQueueSize) resolved.batchSize = resolved.maxQueueSize
  return resolved
}

/** URL without credentials or query, safe to put in error messages. */
function safeUrl(url: string): string {
  const u = new URL(url)
  return `${u.origin}${u.pathname}`
}

function codeForStatus(status: number): ErrorCode {
  if (status === 429) return ErrorCode.RATE_LIMITED
  if (status === 503) return ErrorCode.BACKEND_BUSY
  if (status === 401 || status === 403) return ErrorCode.UNAUTHORIZED
  if (status === 408) return ErrorCode.TIMEOUT
  if (status >= 500) return ErrorCode.BACKEND_ERROR
  return ErrorCode.BAD_REQUEST
}

/** Retry-After as delta-seconds or HTTP-date (RFC 9110 §10.2.3), in ms from now; undefined when absent or unparsable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (text === '') return undefined
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowMs)
}

/**
 * Creates the batching HTTP sink. `write()` is O(1), never throws, never awaits and does no I/O in its own
 * call stack. Throws `INVALID_OPTIONS` (synchronously, at creation) when an option is out of range.
 *
 * After `close()`, `write()` does nothing except count the record as dropped.
 */
export function createHttpSink(options: HttpSinkOptions): HttpMetricsSink {
  const o = resolveOptions(options)
  const clock = options.clock ?? systemClock
  const dispatcher = options.dispatcher
  const onDropped = options.onDropped
  const onFlushFailed = options.onFlushFailed
  const target = safeUrl(o.url)
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers }

  const queue = new RingQueue<MetricRecord>(o.maxQueueSize)
  // The 413 path shrinks this; the full-batch trigger stays at the configured size.
  let sendBatchSize = o.batchSize
  let timer: unknown
  let timerArmed = false
  let fullFlushScheduled = false

  let sent = 0
  let posts = 0
  let failedPosts = 0
  let inFlight = 0
  let totalDropped = 0
  let unreportedDrops = 0
  let dropReportScheduled = false

  let closed = false
  let closePromise: Promise<void> | undefined
  const closeController = new AbortController()
  const closeSignal = closeController.signal

  // Flush passes run one after another on this chain, so POSTs of different passes never overlap.
  let chain: Promise<void> = Promise.resolve()
  let pendingPass: Promise<void> | undefined
  let pendingForce = false

  const reportDrops = (): void => {
    dropReportScheduled = false
    const n = unreportedDrops
    unreportedDrops = 0
    if (n === 0 || onDropped === undefined) return
    try {
      onDropped(n, totalDropped)
    } catch {
      // A listener's failure must not break the sink.
    }
  }

  const noteDropped = (n: number): void => {
    totalDropped += n
    unreportedDrops += n
    if (!dropReportScheduled) {
      dropReportScheduled = true
      queueMicrotask(reportDrops)
    }
  }

  const fail = (records: readonly MetricRecord[], error: RouterError): void => {
    noteDropped(records.length)
    if (onFlushFailed === undefined) return
    try {
      onFlushFailed(error, records)
    } catch {
      // Same as above.
    }
  }

  const onTimer = (): void => {
    timerArmed = false
    void schedulePass(true)
  }

  const armTimer = (): void => {
    if (timerArmed || closed) return
    timerArmed = true
    timer = clock.setTimeout(onTimer, o.flushIntervalMs)
  }

  const disarmTimer = (): void => {
    if (!timerArmed) return
    timerArmed = false
    clock.clearTimeout(timer)
  }

  const runFullFlush = (): void => {
    fullFlushScheduled = false
    void schedulePass(false)
  }

  const abandonedError = (cause?: unknown): RouterError =>
    new RouterError(
      ErrorCode.TIMEOUT,
      `Metrics POST to ${target} abandoned: close() deadline (closeTimeoutMs=${o.closeTimeoutMs}) passed. Raise closeTimeoutMs or check the admin API.`,
      { endpoint: target, cause },
    )

  const postOnce = async (body: string): Promise<PostResult> => {
    if (closeSignal.aborted)
      return { ok: false, error: abandonedError(), status: undefined, retryable: false, abandoned: true }
    const ac = new AbortController()
    let timedOut = false
    const onClose = (): void => ac.abort(closeSignal.reason)
    closeSignal.addEventListener('abort', onClose, { once: true })
    const t = clock.setTimeout(() => {
      timedOut = true
      ac.abort()
    }, o.timeoutMs)
    try {
      const res = await request(o.url, {
        method: 'POST',
        headers,
        body,
        signal: ac.signal,
        ...(dispatcher === undefined ? {} : { dispatcher }),
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
      const error = new RouterError(
        codeForStatus(status),
        `Metrics POST to ${target} answered HTTP ${status}.${retryable ? '' : ' Not retried: check the admin API accepts this record format and the sink headers.'}`,
        { status, endpoint: target, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      )
      return { ok: false, error, status, retryable, abandoned: false }
    } catch (err) {
      if (closeSignal.aborted) {
        return { ok: false, error: abandonedError(err), status: undefined, retryable: false, abandoned: true }
      }
      if (timedOut) {
        const error = new RouterError(
          ErrorCode.TIMEOUT,
          `Metrics POST to ${target} timed out after ${o.timeoutMs} ms (timeoutMs).`,
          { endpoint: target, cause: err },
        )
        return { ok: false, error, status: undefined, retryable: true, abandoned: false }
      }
      const error = new RouterError(
        ErrorCode.BACKEND_UNREACHABLE,
        `Metrics POST to ${target} failed: ${err instanceof Error ? err.message : String(err)}. Is the admin API up?`,
        { endpoint: target, cause: err },
      )
      return { ok: false, error, status: undefined, retryable: true, abandoned: false }
    } finally {
      clock.clearTimeout(t)
      closeSignal.removeEventListener('abort', onClose)
    }
  }

  const backoffMs = (retry: number): number => {
    const d = Math.min(o.retryMaxDelayMs, o.retryBaseMs * 2 ** retry)
    return Math.round(d * (0.5 + clock.random() * 0.5))
  }

  const postWithRetry = async (body: string): Promise<PostResult> => {
    for (let retry = 0; ; retry++) {
      const r = await postOnce(body)
      if (r.ok || !r.retryable || retry >= o.maxRetries) return r
      const retryAfter = r.error.retryAfterMs
      const delay = retryAfter === undefined ? backoffMs(retry) : Math.min(retryAfter, o.maxRetryAfterMs)
      try {
        await sleep(clock, delay, closeSignal)
      } catch {
        return {
          ok: false,
          error: abandonedError(r.error),
          status: undefined,
          retryable: false,
          abandoned: true,
        }
      }
    }
  }

  const sendBatch = async (records: MetricRecord[]): Promise<void> => {
    const r = await postWithRetry(JSON.stringify(records))
    if (r.ok) {
      sent += records.length
      posts++
      return
    }
    if (r.status === 413 && records.length > 1) {
      // posthog-node: the admin's body limit is below our batch; halve and keep the smaller size from now on.
      const half = Math.ceil(records.length / 2)
      sendBatchSize = Math.max(1, Math.min(sendBatchSize, half))
      await sendBatch(records.slice(0, half))
      await sendBatch(records.slice(half))
      return
    }
    failedPosts++
    fail(records, r.error)
  }

  const sendSingles = async (records: MetricRecord[]): Promise<void> => {
    let next = 0
    let passError: RouterError | undefined
    let lastError: RouterError | undefined
    const failed: MetricRecord[] = []
    const worker = async (): Promise<void> => {
      while (next < records.length) {
        const record = records[next++] as MetricRecord
        // A transient failure that outlived its retries means the endpoint is down: skip the rest of the pass.
        if (passError !== undefined) {
          failed.push(record)
          continue
        }
        const r = await postWithRetry(JSON.stringify(record))
        if (r.ok) {
          sent++
          posts++
        } else {
          failedPosts++
          failed.push(record)
          lastError = r.error
          if (r.retryable || r.abandoned) passError = r.error
        }
      }
    }
    const workers: Promise<void>[] = []
    for (let i = 0; i < Math.min(o.concurrency, records.length); i++) workers.push(worker())
    await Promise.all(workers)
    const error = passError ?? lastError
    if (failed.length > 0 && error !== undefined) fail(failed, error)
  }

  /** Sends full batches; when forced, also everything queued when the pass started. Never rejects. */
  const runPass = async (force: boolean): Promise<void> => {
    let budget = force ? queue.size : 0
    try {
      while (queue.size > 0 && !closeSignal.aborted) {
        if (queue.size < o.batchSize && budget <= 0) break
        const records = queue.take(o.mode === 'batch' ? sendBatchSize : o.batchSize)
        budget -= records.length
        inFlight += records.length
        try {
          if (o.mode === 'batch') await sendBatch(records)
          else await sendSingles(records)
        } finally {
          inFlight -= records.length
        }
      }
    } catch {
      // Unreachable by design (every step catches); kept so the chain can never reject.
    }
    if (queue.size === 0) disarmTimer()
    else armTimer()
  }

  const schedulePass = (force: boolean): Promise<void> => {
    if (pendingPass !== undefined) {
      if (force) pendingForce = true
      return pendingPass
    }
    pendingForce = force
    const pass = chain.then(() => {
      pendingPass = undefined
      return runPass(pendingForce)
    })
    pendingPass = pass
    chain = pass
    return pass
  }

  return {
    write(record: MetricRecord): void {
      if (closed) {
        noteDropped(1)
        return
      }
      if (queue.push(record)) noteDropped(1)
      if (!timerArmed) armTimer()
      if (queue.size >= o.batchSize && !fullFlushScheduled) {
        fullFlushScheduled = true
        // Off the caller's stack: the POST starts after the current synchronous work (e.g. the request) is done.
        queueMicrotask(runFullFlush)
      }
    },

    flush(): Promise<void> {
      if (closePromise !== undefined) return closePromise
      return schedulePass(true)
    },

    close(): Promise<void> {
      if (closePromise !== undefined) return closePromise
      closed = true
      disarmTimer()
      const deadline = clock.setTimeout(() => closeController.abort(abandonedError()), o.closeTimeoutMs)
      closePromise = schedulePass(true).then(() => {
        clock.clearTimeout(deadline)
        const rest = queue.clear()
        if (rest > 0) noteDropped(rest)
      })
      return closePromise
    },

    stats(): HttpSinkStats {
      return { queued: queue.size, inFlight, sent, dropped: totalDropped, failedPosts, posts }
    },
  }
}
