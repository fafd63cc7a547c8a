/**
 * HTTP metrics sink: queues metric records and POSTs them to the admin API
 * (`{adminUrl}/api/llm-backends/metrics`) without ever slowing or failing a request.
 *
 * Shape follows the OpenTelemetry BatchSpanProcessor and posthog-node (see shared/notes/anchors.md a.5):
 * bounded queue that drops the oldest, lazy unref'd interval timer, one flush pass in flight at a time,
 * retries with jittered exponential backoff, 413 halves the batch, and an idempotent `close()` with a
 * deadline. Records are dropped only by the queue bound, a 4xx rejection, or the close deadline: a
 * transient failure that outlives its retries puts the records back at the front of the queue.
 *
 * The wire format is learned by default (`mode: 'auto'`): seed 004's FastAPI admin takes ONE record per
 * POST and answers an array with 422, while batching admins take arrays. See {@link HttpSinkOptions.mode}.
 */
import { backoffDelay } from '../dispatch/backoff.js'
import { ErrorCode, RouterError } from '../errors.js'
import { createAdminAgent } from '../http/agent.js'
import { redactUrl } from '../http/url.js'
import { sleep, systemClock } from '../internal/clock.js'
import { invalidOptions } from '../internal/options-error.js'
import type { MetricRecord, MetricsSink } from '../types.js'
import { HTTP_SINK_DEFAULTS, type HttpSinkOptions, httpSinkOptionsSchema } from './options.js'
import { type PostContext, type PostResult, postMetrics } from './post.js'

export type { HttpSinkOptions } from './options.js'
export { HTTP_SINK_DEFAULTS } from './options.js'

export interface HttpSinkStats {
  /** Records waiting in the queue (not yet taken by a POST, or put back after a failed pass). */
  queued: number
  /** Records taken by the flush pass under way (in POSTs not settled yet, or next in line in single mode). */
  inFlight: number
  /** Records the endpoint accepted (2xx). */
  sent: number
  /** Records that will never be delivered (overflow, rejected with a 4xx, abandoned at close, written after close). */
  dropped: number
  /** POSTs that failed after their retries (their records were requeued or dropped). */
  failedPosts: number
  /** POSTs the endpoint accepted. */
  posts: number
  /** Wire format in use: `batch`, `single`, or `auto` while not yet learned from the admin's first answer. */
  mode: 'auto' | 'batch' | 'single'
}

export interface HttpMetricsSink extends MetricsSink {
  stats(): HttpSinkStats
}

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

  /**
   * Puts `values` back in front, in order. They are older than everything queued, so when they do not
   * all fit the oldest of them are the ones left out (drop-oldest). Returns how many were left out.
   */
  unshift(values: readonly T[]): number {
    const room = this.cap - this.size
    const keep = Math.min(room, values.length)
    // Lay the buffer out flat first, so prepending is index arithmetic on a fully grown array.
    if (keep > 0 && this.buf.length < this.cap) {
      const items = this.take(this.size)
      this.buf.length = this.cap
      this.head = 0
      for (let i = 0; i < items.length; i++) this.buf[i] = items[i]
      this.size = items.length
    }
    for (let i = values.length - 1; i >= values.length - keep; i--) {
      this.head = (this.head - 1 + this.cap) % this.cap
      this.buf[this.head] = values[i]
      this.size++
    }
    return values.length - keep
  }

  take(n: number): T[] {
    const k = Math.min(n, this.size)
    const out = new Array<T>(k)
    for (let i = 0; i < k; i++) {
      const idx = (this.head + i) % this.cap
      out[i] = this.buf[idx] as T
      this.buf[idx] = undefined
    }
    this.head = this.size === k ? 0 : (this.head + k) % this.cap
    this.size -= k
    return out
  }

  clear(): number {
    const n = this.size
    this.take(n)
    return n
  }
}

type Resolved = Required<
  Omit<HttpSinkOptions, 'dispatcher' | 'clock' | 'onDropped' | 'onFlushFailed' | 'headers'>
>

function resolveOptions(options: HttpSinkOptions): Resolved {
  const parsed = httpSinkOptionsSchema.safeParse(options)
  if (!parsed.success) {
    throw invalidOptions('HTTP metrics sink', parsed.error)
  }
  const o = parsed.data
  const resolved: Resolved = {
    url: new URL(o.url).href,
    mode: o.mode ?? HTTP_SINK_DEFAULTS.mode,
    batchSize: o.batchSize ?? HTTP_SINK_DEFAULTS.batchSize,
    flushIntervalMs: o.flushIntervalMs ?? HTTP_SINK_DEFAULTS.flushIntervalMs,
    maxQueueSize: o.maxQueueSize ?? HTTP_SINK_DEFAULTS.maxQueueSize,
    timeoutMs: o.timeoutMs ?? HTTP_SINK_DEFAULTS.timeoutMs,
    maxRetries: o.maxRetries ?? HTTP_SINK_DEFAULTS.maxRetries,
    retryBaseMs: o.retryBaseMs ?? HTTP_SINK_DEFAULTS.retryBaseMs,
    retryMaxDelayMs: o.retryMaxDelayMs ?? HTTP_SINK_DEFAULTS.retryMaxDelayMs,
    maxRetryAfterMs: o.maxRetryAfterMs ?? HTTP_SINK_DEFAULTS.maxRetryAfterMs,
    concurrency: o.concurrency ?? HTTP_SINK_DEFAULTS.concurrency,
    closeTimeoutMs: o.closeTimeoutMs ?? HTTP_SINK_DEFAULTS.closeTimeoutMs,
  }
  // A batch larger than the queue could never fill, so full batches would only leave on the timer (OTel clamps too).
  if (resolved.batchSize > resolved.maxQueueSize) resolved.batchSize = resolved.maxQueueSize
  return resolved
}

/** How a send ended: records to put back at the front of the queue (a transient failure), or none. */
type SendOutcome = { requeue: MetricRecord[] }
const DONE: SendOutcome = Object.freeze({ requeue: [] }) as SendOutcome

/**
 * Creates the HTTP sink. `write()` is O(1), never throws, never awaits and does no I/O in its own
 * call stack. Throws `INVALID_OPTIONS` (synchronously, at creation) when an option is out of range.
 *
 * After `close()`, `write()` does nothing except count the record as dropped.
 */
export function createHttpSink(options: HttpSinkOptions): HttpMetricsSink {
  const o = resolveOptions(options)
  const clock = options.clock ?? systemClock
  // Unless given a dispatcher, the sink keeps its own pool, so close() can end a connect that never completes.
  const ownAgent = options.dispatcher === undefined ? createAdminAgent(o.timeoutMs) : null
  const onDropped = options.onDropped
  const onFlushFailed = options.onFlushFailed
  const target = redactUrl(o.url)

  const queue = new RingQueue<MetricRecord>(o.maxQueueSize)
  // `auto` sends arrays until the admin's first answer says which shape it takes.
  let shape: 'auto' | 'batch' | 'single' = o.mode
  // The 413 path shrinks this; the full-batch trigger stays at the configured size.
  let sendBatchSize = o.batchSize
  let timer: unknown
  let timerArmed = false
  let fullFlushScheduled = false
  // After a pass that ended on a transient failure, only the interval timer (or flush/close) starts the next one.
  let pausedUntilTimer = false

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
    if (n <= 0) return
    totalDropped += n
    unreportedDrops += n
    if (!dropReportScheduled) {
      dropReportScheduled = true
      queueMicrotask(reportDrops)
    }
  }

  const reportFailure = (records: readonly MetricRecord[], error: RouterError, requeued: boolean): void => {
    failedPosts++
    if (!requeued) noteDropped(records.length)
    if (onFlushFailed === undefined) return
    try {
      onFlushFailed(error, records, requeued)
    } catch {
      // Same as above.
    }
  }

  const onTimer = (): void => {
    timerArmed = false
    pausedUntilTimer = false
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
    if (!pausedUntilTimer) void schedulePass(false)
  }

  const abandonedError = (cause?: unknown): RouterError =>
    new RouterError(
      ErrorCode.TIMEOUT,
      `Metrics POST to ${target} abandoned: close() deadline (closeTimeoutMs=${o.closeTimeoutMs}) passed. Raise closeTimeoutMs or check the admin API.`,
      { endpoint: target, cause },
    )

  const postContext: PostContext = {
    url: o.url,
    target,
    headers: options.headers ?? {},
    dispatcher: options.dispatcher ?? (ownAgent as NonNullable<typeof ownAgent>).dispatcher,
    timeoutMs: o.timeoutMs,
    clock,
    closeSignal,
    abandoned: abandonedError,
  }

  const postWithRetry = async (body: string): Promise<PostResult> => {
    for (let retry = 0; ; retry++) {
      const r = await postMetrics(body, postContext)
      if (r.ok || !r.retryable || retry >= o.maxRetries) return r
      const retryAfter = r.error.retryAfterMs
      const delay =
        retryAfter === undefined
          ? backoffDelay(retry + 1, o.retryBaseMs, o.retryMaxDelayMs, () => clock.random())
          : Math.min(retryAfter, o.maxRetryAfterMs)
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

  /** A POST that failed for good: abandoned and 4xx records are dropped, transient ones go back to the queue. */
  const failed = (records: MetricRecord[], r: Extract<PostResult, { ok: false }>): SendOutcome => {
    const requeue = r.retryable && !r.abandoned
    reportFailure(records, r.error, requeue)
    return requeue ? { requeue: records } : DONE
  }

  const sendBatch = async (records: MetricRecord[]): Promise<SendOutcome> => {
    const r = await postWithRetry(JSON.stringify(records))
    if (r.ok) {
      if (shape === 'auto') shape = 'batch'
      sent += records.length
      posts++
      return DONE
    }
    if (shape === 'auto' && (r.status === 422 || r.status === 400)) {
      // The admin takes one record per body (FastAPI answers an array with 422 "value is not a valid
      // dict"): learn that for good and resend these records one by one, so none is lost.
      shape = 'single'
      return sendSingles(records)
    }
    if (r.status === 413 && records.length > 1) {
      // posthog-node: the admin's body limit is below our batch; halve and keep the smaller size from now on.
      const half = Math.ceil(records.length / 2)
      sendBatchSize = Math.max(1, Math.min(sendBatchSize, half))
      const first = await sendBatch(records.slice(0, half))
      if (first.requeue.length > 0) return { requeue: [...first.requeue, ...records.slice(half)] }
      return sendBatch(records.slice(half))
    }
    return failed(records, r)
  }

  /**
   * One POST per record, `concurrency` at a time, in order. A record whose transient failure outlives its
   * retries means the endpoint is down: no further record is started, and that record and every one not
   * yet tried go back to the queue (in order) for the next pass. A 4xx drops only its own record.
   */
  const sendSingles = async (records: MetricRecord[]): Promise<SendOutcome> => {
    let next = 0
    let stop = false
    const back: { at: number; record: MetricRecord }[] = []
    const worker = async (): Promise<void> => {
      while (!stop && next < records.length) {
        const at = next++
        const record = records[at] as MetricRecord
        const r = await postWithRetry(JSON.stringify(record))
        if (r.ok) {
          sent++
          posts++
          continue
        }
        if (failed([record], r).requeue.length > 0) {
          back.push({ at, record })
          stop = true
        } else if (r.abandoned) stop = true
      }
    }
    const workers: Promise<void>[] = []
    for (let i = 0; i < Math.min(o.concurrency, records.length); i++) workers.push(worker())
    await Promise.all(workers)
    const untried = records.slice(next)
    if (closeSignal.aborted) {
      // Close deadline: what was never tried is abandoned with the rest.
      noteDropped(untried.length + back.length)
      return DONE
    }
    if (back.length === 0 && untried.length === 0) return DONE
    back.sort((a, b) => a.at - b.at)
    return { requeue: [...back.map((b) => b.record), ...untried] }
  }

  /** Sends full batches; when forced, also everything queued when the pass started. Never rejects. */
  const runPass = async (force: boolean): Promise<void> => {
    let budget = force ? queue.size : 0
    try {
      while (queue.size > 0 && !closeSignal.aborted) {
        if (queue.size < o.batchSize && budget <= 0) break
        const records = queue.take(shape === 'single' ? o.batchSize : sendBatchSize)
        budget -= records.length
        inFlight += records.length
        let outcome: SendOutcome
        try {
          outcome = shape === 'single' ? await sendSingles(records) : await sendBatch(records)
        } finally {
          inFlight -= records.length
        }
        if (outcome.requeue.length > 0) {
          noteDropped(queue.unshift(outcome.requeue))
          // The endpoint is failing: wait for the interval before the next pass.
          pausedUntilTimer = true
          break
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
      if (queue.size >= o.batchSize && !fullFlushScheduled && !pausedUntilTimer) {
        fullFlushScheduled = true
        // Off the caller's stack: the POST starts after the current synchronous work (e.g. the request) is done.
        queueMicrotask(runFullFlush)
      }
    },

    flush(): Promise<void> {
      if (closePromise !== undefined) return closePromise
      pausedUntilTimer = false
      return schedulePass(true)
    },

    close(): Promise<void> {
      if (closePromise !== undefined) return closePromise
      closed = true
      pausedUntilTimer = false
      disarmTimer()
      // The sink's timers are unref'd; this one is not, so `await close()` is never cut short by the
      // process exiting (exit code 13 for a top-level await) while retries or the deadline are pending.
      const hold = setInterval(() => {}, 1 << 30)
      const deadline = clock.setTimeout(() => closeController.abort(abandonedError()), o.closeTimeoutMs)
      closePromise = schedulePass(true)
        .then(async () => {
          clock.clearTimeout(deadline)
          noteDropped(queue.clear())
          // Ends sockets still connecting for POSTs abandoned at the deadline (see src/http/agent.ts).
          if (ownAgent !== null) await ownAgent.destroy()
        })
        .finally(() => clearInterval(hold))
      return closePromise
    },

    stats(): HttpSinkStats {
      return { queued: queue.size, inFlight, sent, dropped: totalDropped, failedPosts, posts, mode: shape }
    },
  }
}
