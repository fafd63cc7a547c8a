/**
 * A Clock that only moves when a test says so. Timers fire in due order during `advance()`,
 * including timers that callbacks schedule within the advanced window.
 */
import type { Clock } from '../../src/internal/clock.js'

interface Timer {
  at: number
  seq: number
  /** The delay asked for, so a test can wait for "the 2000 ms timer". */
  ms: number
  fn: () => void
}

export class ManualClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers = new Map<number, Timer>()
  /** What `random()` returns; tests set it to pin jitter. */
  randomValue = 0.5
  /** Every delay asked for, in order (fired, cleared or pending). */
  readonly delays: number[] = []

  constructor(start = 1_700_000_000_000) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq
    this.delays.push(ms)
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), seq: id, ms, fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  // A bound property, not a method: the dispatcher hands `clock.random` on as a bare function.
  random = (): number => this.randomValue

  /** Moves time forward by `ms`, firing every timer that comes due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      let next: [number, Timer] | undefined
      for (const entry of this.#timers) {
        const t = entry[1]
        if (
          t.at <= target &&
          (next === undefined || t.at < next[1].at || (t.at === next[1].at && t.seq < next[1].seq))
        ) {
          next = entry
        }
      }
      if (next === undefined) break
      this.#timers.delete(next[0])
      this.#now = Math.max(this.#now, next[1].at)
      next[1].fn()
    }
    this.#now = target
  }

  /** Number of timers not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** `pendingTimers` as a method, the shape `LeakCheck` reads. */
  pending(): number {
    return this.#timers.size
  }

  /** The requested delays of the timers not yet fired or cleared. */
  pendingDelays(): number[] {
    return [...this.#timers.values()].map((t) => t.ms)
  }

  /**
   * Waits until the code under test has set a timer of exactly `ms` that is still pending (real
   * I/O and microtasks run meanwhile). Virtual time does not move.
   */
  async untilTimer(ms: number, waitMs?: number): Promise<void> {
    await until(
      () => this.pendingDelays().includes(ms),
      `a pending ${ms} ms timer`,
      waitMs,
      () => `pending: [${this.pendingDelays().join(', ')}]`,
    )
  }

  /** `untilTimer(ms)`, then `advance(ms)`: fires that timer and whatever else comes due by then. */
  async advanceWhenSet(ms: number, waitMs?: number): Promise<void> {
    await this.untilTimer(ms, waitMs)
    this.advance(ms)
  }
}

/**
 * Lets real I/O and microtasks run until `condition()` holds. Wall time only bounds the wait, so a
 * bug fails the test with a message instead of hanging it; it never drives a clock.
 */
export async function until(
  condition: () => boolean,
  what: string,
  waitMs = 5000,
  detail: () => string = () => '',
): Promise<void> {
  const giveUpAt = Date.now() + waitMs
  while (!condition()) {
    if (Date.now() > giveUpAt)
      throw new Error(`still waiting for ${what} after ${waitMs} ms of real time ${detail()}`)
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}
