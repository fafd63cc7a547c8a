/**
 * The one refresh scheduler both lookup modes use: single flight per key, exponential backoff
 * after failures (the dispatcher's jittered backoff), a Retry-After floor from a busy admin, and
 * at most one retry timer. It knows nothing about HTTP or records.
 */
import { backoffDelay } from '../dispatch/backoff.js'
import type { Clock } from '../internal/clock.js'

export interface SchedulerOptions {
  clock: Clock
  retryBaseMs: number
  retryMaxMs: number
}

export class RefreshScheduler {
  readonly #opts: SchedulerOptions
  readonly #inflight = new Map<string, Promise<unknown>>()
  #failures = 0
  #nextRetryAt = 0
  #timer: unknown = null
  #closed = false

  constructor(options: SchedulerOptions) {
    this.#opts = options
  }

  /** Runs `task` for `key` unless one is running, in which case its promise is shared. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key)
    if (running !== undefined) return running as Promise<T>
    const promise = task().finally(() => {
      if (this.#inflight.get(key) === promise) this.#inflight.delete(key)
    })
    this.#inflight.set(key, promise)
    return promise
  }

  running(key: string): boolean {
    return this.#inflight.has(key)
  }

  /** True while a backoff is in force: background refreshes wait. */
  get backingOff(): boolean {
    return this.#opts.clock.now() < this.#nextRetryAt
  }

  get consecutiveFailures(): number {
    return this.#failures
  }

  /** A fetch succeeded: the backoff and any pending retry end. */
  succeeded(): void {
    this.#failures = 0
    this.#nextRetryAt = 0
    this.#clearTimer()
  }

  /**
   * A fetch failed: returns how long to wait before the next one, at least what the admin asked
   * for in Retry-After (capped at retryMaxMs).
   */
  failed(retryAfterMs: number | undefined): number {
    const { clock, retryBaseMs, retryMaxMs } = this.#opts
    this.#failures++
    const asked = Math.min(retryAfterMs ?? 0, retryMaxMs)
    const delay = Math.max(
      1,
      backoffDelay(this.#failures, retryBaseMs, retryMaxMs, () => clock.random()),
      asked,
    )
    this.#nextRetryAt = clock.now() + delay
    return delay
  }

  /** Calls `fn` after `delay` ms (replacing an earlier pending call). */
  retryIn(delay: number, fn: () => void): void {
    this.#clearTimer()
    if (this.#closed) return
    this.#timer = this.#opts.clock.setTimeout(() => {
      this.#timer = null
      if (!this.#closed) fn()
    }, delay)
  }

  close(): void {
    this.#closed = true
    this.#clearTimer()
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      this.#opts.clock.clearTimeout(this.#timer)
      this.#timer = null
    }
  }
}
