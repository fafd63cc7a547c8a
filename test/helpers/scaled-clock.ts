import type { Clock } from '../../src/internal/clock.js'

/**
 * A clock that runs `factor` times faster than real time: backoff, Retry-After waits, cooldowns
 * and deadlines keep their proportions (and their order relative to each other), but a test
 * that exercises a 2 s Retry-After waits 20 ms. Requested delays are recorded for assertions.
 */
export function scaledClock(factor = 100): Clock & { delays: number[] } {
  const realStart = Date.now()
  const virtualStart = Date.now()
  const delays: number[] = []
  return {
    delays,
    now: () => virtualStart + (Date.now() - realStart) * factor,
    setTimeout: (fn, ms) => {
      delays.push(ms)
      const t = setTimeout(fn, ms / factor)
      t.unref?.()
      return t
    },
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    random: () => 0.5,
  }
}
