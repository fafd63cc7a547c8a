/**
 * A Clock that only moves when a test says so. Timers fire in due order during `advance()`,
 * including timers that callbacks schedule within the advanced window.
 */
import type { Clock } from '../../src/internal/clock.js'

interface Timer {
  at: number
  seq: number
  fn: () => void
}

export class ManualClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers = new Map<number, Timer>()
  /** What `random()` returns; tests set it to pin jitter. */
  randomValue = 0.5

  constructor(start = 1_700_000_000_000) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), seq: id, fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  random(): number {
    return this.randomValue
  }

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
}
