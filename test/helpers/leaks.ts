/**
 * Leak checks for integration tests: timers and sockets left behind once a router is closed.
 *
 * Three views, because each misses something the others see:
 * - `process.getActiveResourcesInfo()` counts the handles that keep the process alive (ref'd
 *   `Timeout`s, `TCPSocketWrap`s). Library timers are unref'd, so they do not show up there.
 * - An async_hooks tracker sees every timer created while it runs, ref'd or not, with the stack
 *   that created it; only timers created by this package's own code (`/src/`, not the testing kit)
 *   count, so vitest's and node's own timers do not make the check flaky.
 * - The stand-in servers count their open sockets (`connections`), which is the server's view of
 *   whatever the client pool still holds.
 */
import { createHook } from 'node:async_hooks'
import { expect } from 'vitest'

/** Handle counts by type, e.g. `{ Timeout: 2, TCPSocketWrap: 1 }`. */
export function resourceCounts(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) out[type] = (out[type] ?? 0) + 1
  return out
}

function count(type: string): number {
  return resourceCounts()[type] ?? 0
}

const SRC = /[\\/]src[\\/](?!testing[\\/])/

/** Timers created by the package's code (not the kit, not the test) since `start()`, still pending. */
class TimerTracker {
  readonly #live = new Map<number, string>()
  readonly #hook = createHook({
    init: (id, type) => {
      if (type !== 'Timeout') return
      const stack = new Error().stack ?? ''
      // Frames below the async_hooks/timers internals: who asked for the timer.
      const frames = stack.split('\n').filter((l) => !l.includes('node:internal') && !l.includes('leaks.ts'))
      const origin = frames.slice(1, 4).join(' <- ')
      if (SRC.test(origin)) this.#live.set(id, origin.trim())
    },
    destroy: (id) => {
      this.#live.delete(id)
    },
  })

  start(): this {
    this.#hook.enable()
    return this
  }

  stop(): void {
    this.#hook.disable()
  }

  pending(): string[] {
    return [...this.#live.values()]
  }
}

/** Something with an open-socket count: the kit's stand-in servers. */
export interface HasConnections {
  readonly connections: number
}

export interface LeakReport {
  /** Ref'd timers above the baseline (process.getActiveResourcesInfo). */
  timeouts: number
  /** Client+server sockets above the baseline. */
  sockets: number
  /** Open sockets per server, as the servers see them. */
  serverConnections: number[]
  /** Stacks of timers created by src/ that are still pending. */
  srcTimers: string[]
  /** Timers of the injected clock that were set and neither fired nor cleared. */
  clockTimers: number
}

/**
 * Takes a baseline now (create servers first, the router after). `report()` polls until everything
 * is back to the baseline or `waitMs` passes, then says what is left; `expectClean()` asserts it.
 */
export class LeakCheck {
  readonly #timeouts: number
  readonly #sockets: number
  readonly #tracker: TimerTracker
  readonly #servers: readonly HasConnections[]
  readonly #clock: { pending(): number } | null

  constructor(servers: readonly HasConnections[] = [], clock: { pending(): number } | null = null) {
    this.#servers = servers
    this.#clock = clock
    this.#timeouts = count('Timeout')
    this.#sockets = count('TCPSocketWrap')
    this.#tracker = new TimerTracker().start()
  }

  #snapshot(): LeakReport {
    return {
      timeouts: Math.max(0, count('Timeout') - this.#timeouts),
      sockets: Math.max(0, count('TCPSocketWrap') - this.#sockets),
      serverConnections: this.#servers.map((s) => s.connections),
      srcTimers: this.#tracker.pending(),
      clockTimers: this.#clock?.pending() ?? 0,
    }
  }

  static clean(r: LeakReport): boolean {
    return (
      r.timeouts === 0 &&
      r.sockets === 0 &&
      r.serverConnections.every((c) => c === 0) &&
      r.srcTimers.length === 0 &&
      r.clockTimers === 0
    )
  }

  async report(waitMs = 1500): Promise<LeakReport> {
    const until = Date.now() + waitMs
    let r = this.#snapshot()
    // Socket closes reach the server side a tick or two after the client destroys its end.
    while (!LeakCheck.clean(r) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      r = this.#snapshot()
    }
    this.#tracker.stop()
    return r
  }

  async expectClean(waitMs?: number): Promise<void> {
    const r = await this.report(waitMs)
    expect(r).toEqual({
      timeouts: 0,
      sockets: 0,
      serverConnections: this.#servers.map(() => 0),
      srcTimers: [],
      clockTimers: 0,
    })
  }
}
