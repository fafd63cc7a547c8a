/**
 * In-flight accounting per endpoint: what this router has in flight to each backend, a recent
 * latency figure, and the bounded wait queue for members at their `max_concurrency`.
 *
 * One `MemberState` per endpoint, created when a route table is compiled and kept on the target, so
 * the request path never looks it up by name. A slot is a lease: taken before the first attempt at a
 * target, held across that target's retries, released exactly once when the request moves on (the
 * dispatcher's `finally`). A released slot is handed straight to the oldest waiter of that endpoint,
 * so a request arriving later never overtakes one that waited.
 */
import type { MemberLoad } from './signals.js'

/** Weight of the newest sample in the latency average: about the last ten answers count. */
const LATENCY_ALPHA = 0.2

/**
 * A request waiting for a slot on any of several full members. Besides a freed slot it can be
 * nudged (`LoadRegistry.nudge()`: a member came back into rotation or joined the pool), so the
 * request picks again; it keeps its place in the queues if it goes on waiting.
 */
export class SlotWaiter {
  /** Set when a slot was handed over (the member's `inFlight` already counts it). */
  granted: MemberState | null = null
  done = false
  private pending: ((state: MemberState | null) => void) | null = null
  private nudged = false

  constructor(
    readonly states: readonly MemberState[],
    /** `limits[i]` is the slot count of `states[i]` for this request's record. */
    readonly limits: readonly number[],
    private readonly live: Set<SlotWaiter>,
  ) {}

  /** The next event: the state whose slot it was granted (held), or null when nudged (pick again). */
  next(): Promise<MemberState | null> {
    if (this.granted !== null) return Promise.resolve(this.granted)
    if (this.nudged) {
      this.nudged = false
      return Promise.resolve(null)
    }
    return new Promise((resolve) => {
      this.pending = resolve
    })
  }

  /** The pool may have a new option: the pending `next()` resolves with null. */
  nudge(): void {
    if (this.done) return
    const pending = this.pending
    this.pending = null
    if (pending === null) this.nudged = true
    else pending(null)
  }

  /** Takes a slot just freed on `state` if this waiter may use it. */
  offer(state: MemberState): boolean {
    if (this.done) return false
    const i = this.states.indexOf(state)
    if (i < 0 || state.inFlight >= (this.limits[i] as number)) return false
    state.inFlight++
    this.granted = state
    this.finish()
    const pending = this.pending
    this.pending = null
    pending?.(state)
    return true
  }

  /** Stops waiting. Returns the slot it was granted meanwhile, which the caller must release. */
  cancel(): MemberState | null {
    if (!this.done) this.finish()
    return this.granted
  }

  private finish(): void {
    this.done = true
    this.live.delete(this)
    for (const s of this.states) s.waiting--
  }
}

export class MemberState {
  /** Requests this router has in flight to the endpoint (leases held). */
  inFlight = 0
  /** Requests waiting for a slot here (each waiter counts on every member it waits for). */
  waiting = 0
  /** Exponential moving average of successful attempts' latency (ms); null before any. */
  latencyMs: number | null = null
  private waiters: SlotWaiter[] = []

  constructor(readonly endpoint: string) {}

  /** Takes a slot if fewer than `limit` are in flight. */
  tryAcquire(limit: number): boolean {
    if (this.inFlight >= limit) return false
    this.inFlight++
    return true
  }

  /** Frees a slot: the oldest waiter that can use it gets it at once. */
  release(): void {
    this.inFlight--
    const waiters = this.waiters
    while (waiters.length > 0) {
      const w = waiters[0] as SlotWaiter
      if (w.done) {
        waiters.shift()
        continue
      }
      if (w.offer(this)) waiters.shift()
      return
    }
  }

  /** Records how long a successful attempt took. */
  observe(latencyMs: number): void {
    const prev = this.latencyMs
    this.latencyMs = prev === null ? latencyMs : prev + LATENCY_ALPHA * (latencyMs - prev)
  }

  /** @internal Queues a waiter here (LoadRegistry.wait). */
  enqueue(waiter: SlotWaiter): void {
    // Drop waiters that stopped waiting, so the list stays as short as the live queue.
    if (this.waiters.length > this.waiting) this.waiters = this.waiters.filter((w) => !w.done)
    this.waiters.push(waiter)
    this.waiting++
  }
}

/** The router's per-endpoint load, shared by every route table it compiles. */
export class LoadRegistry implements MemberLoad {
  private readonly members = new Map<string, MemberState>()
  /** Requests waiting for a slot now. */
  private readonly waiters = new Set<SlotWaiter>()

  /** The endpoint's state (created on first use; endpoints come from the config, so the map is bounded by it). */
  member(endpoint: string): MemberState {
    let state = this.members.get(endpoint)
    if (state === undefined) {
      state = new MemberState(endpoint)
      this.members.set(endpoint, state)
    }
    return state
  }

  inFlight(endpoint: string): number {
    return this.members.get(endpoint)?.inFlight ?? 0
  }

  recentLatencyMs(endpoint: string): number | null {
    const latency = this.members.get(endpoint)?.latencyMs ?? null
    return latency === null ? null : Math.round(latency * 1000) / 1000
  }

  /**
   * Waits for a slot on any of `states` (FIFO per member). Returns null at once when a member's queue
   * already holds `maxQueued` requests: the queue is bounded, the caller fails fast instead.
   */
  wait(states: readonly MemberState[], limits: readonly number[], maxQueued: number): SlotWaiter | null {
    for (const s of states) if (s.waiting >= maxQueued) return null
    const waiter = new SlotWaiter(states, limits, this.waiters)
    for (const s of states) s.enqueue(waiter)
    this.waiters.add(waiter)
    return waiter
  }

  /**
   * A member came back into rotation (undrain, a probe passed) or the config changed (a member may have
   * joined): every waiting request picks again, and waits on in its place when nothing is free.
   */
  nudge(): void {
    for (const w of [...this.waiters]) w.nudge()
  }
}
