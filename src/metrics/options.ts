/**
 * Options of the HTTP metrics sink: ONE zod schema, used by `createHttpSink()` and (extended with
 * `path` and an optional `url`) by `createLLMRouter({ metrics: {...} })`, so the two can never disagree.
 */
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import type { RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { MetricRecord } from '../types.js'

export interface HttpSinkOptions {
  /** Absolute http(s) URL the records are POSTed to. The router passes `{adminUrl}/api/llm-backends/metrics`. */
  url: string
  /**
   * `auto`: learn the admin's shape from its first answer: arrays are sent until the admin answers one;
   * a 2xx keeps batching for good, a 400 or 422 (FastAPI's answer to an array where it expects one
   * record) switches to `single` for good and resends those records one per POST. `batch`: one JSON
   * array of records per POST. `single`: one JSON object per POST, at most `concurrency` in flight.
   * @default 'auto'
   */
  mode?: 'auto' | 'batch' | 'single'
  /** Records per POST (batch) or per flush pass (single); a full batch is sent at once, without waiting for the interval. @default 100 */
  batchSize?: number
  /** Queued records are sent at the latest this long after the first of them was written; also the pause after a failed pass. @default 5000 */
  flushIntervalMs?: number
  /** Records waiting to be sent; when full the oldest is dropped and counted. @default 1000 */
  maxQueueSize?: number
  /** Per-POST timeout, covering connect, headers and body. @default 10000 */
  timeoutMs?: number
  /**
   * Retries within one flush pass, on network errors, timeouts, 408, 429 and 5xx. When they run out the
   * records go back to the front of the queue for the next pass (nothing is dropped). Other 4xx are
   * not retried and drop the record(s). @default 3
   */
  maxRetries?: number
  /** First backoff delay; doubles per retry, jittered (75-100 %). @default 500 */
  retryBaseMs?: number
  /** Cap on one backoff delay. @default 30000 */
  retryMaxDelayMs?: number
  /** Cap on a server's `Retry-After` (429/503); longer values are clamped to it. @default 60000 */
  maxRetryAfterMs?: number
  /** `single` mode: POSTs in flight at once. @default 4 */
  concurrency?: number
  /**
   * `close()` resolves at the latest this long after it was called, whatever the endpoint does
   * (refuses, hangs, never completes the TCP connect, answers 5xx); what is not sent by then is dropped
   * and counted. The process is kept alive until it resolves. @default 10000
   */
  closeTimeoutMs?: number
  /** Extra request headers (e.g. authorization). Never copied into errors or events. */
  headers?: Record<string, string>
  /** undici dispatcher (the router passes its Agent). Default: an Agent of the sink's own, destroyed by `close()`. */
  dispatcher?: Dispatcher
  /** Time source for the interval, timeouts, backoff and the close deadline. @default systemClock (timers unref'd) */
  clock?: Clock
  /**
   * Records were dropped: queue overflow, a POST the admin rejected (4xx), abandoned at close, or written
   * after close. Called asynchronously and coalesced (at most once per microtask burst), never inside `write()`.
   */
  onDropped?: (dropped: number, totalDropped: number) => void
  /**
   * A POST failed after its retries. `requeued`: the failure was transient and the records went back to
   * the queue for the next pass; otherwise they were dropped (and reported through `onDropped` too).
   */
  onFlushFailed?: (error: RouterError, records: readonly MetricRecord[], requeued: boolean) => void
}

/** Defaults of `createHttpSink()`. Batching numbers from posthog-node, OTel BSP and LaunchDarkly (anchors.md a.5). */
export const HTTP_SINK_DEFAULTS: {
  readonly mode: 'auto'
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
  mode: 'auto',
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

const posInt = z.number().int().positive()
const nonNegInt = z.number().int().nonnegative()
const isFunction = (v: unknown): boolean => typeof v === 'function'

/** The sink's options. `url` is required here; the router's variant makes it optional and adds `path`. */
export const httpSinkOptionsSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' }),
    mode: z.enum(['auto', 'batch', 'single']).optional(),
    batchSize: posInt.optional(),
    flushIntervalMs: posInt.optional(),
    maxQueueSize: posInt.optional(),
    timeoutMs: posInt.optional(),
    maxRetries: nonNegInt.optional(),
    retryBaseMs: nonNegInt.optional(),
    retryMaxDelayMs: nonNegInt.optional(),
    maxRetryAfterMs: nonNegInt.optional(),
    concurrency: posInt.optional(),
    closeTimeoutMs: nonNegInt.optional(),
    headers: z.record(z.string(), z.string()).optional(),
    dispatcher: z
      .custom<Dispatcher>(
        (v) => typeof v === 'object' && v !== null && isFunction((v as Dispatcher).dispatch),
        'must be an undici Dispatcher',
      )
      .optional(),
    clock: z
      .custom<Clock>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          isFunction((v as Clock).now) &&
          isFunction((v as Clock).setTimeout) &&
          isFunction((v as Clock).clearTimeout) &&
          isFunction((v as Clock).random),
        'must be a clock with now(), setTimeout(), clearTimeout() and random()',
      )
      .optional(),
    onDropped: z
      .custom<NonNullable<HttpSinkOptions['onDropped']>>(isFunction, 'must be a function')
      .optional(),
    onFlushFailed: z
      .custom<NonNullable<HttpSinkOptions['onFlushFailed']>>(isFunction, 'must be a function')
      .optional(),
  })
  .strict()
