/**
 * The in-memory store (default): the same semantics as the Redis store's scripts, for one process.
 * Also the local fallback while Redis is down or slow (store/resilient.ts).
 */
import type { AdmitInput, AdmitResult, SettleInput, Store, StoreMessage } from './types.js'

interface WindowEntry {
  id: string
  at: number
  tokens: number
}

interface EndpointState {
  /** Lease id -> expiry (epoch ms). */
  leases: Map<string, number>
  /** Rate window entries, oldest first, from index `head` (dropping from the front is O(1)). */
  window: WindowEntry[]
  head: number
  /** The same entries by id (settlement finds its entry without a scan: windows hold thousands). */
  byId: Map<string, WindowEntry>
  windowTokens: number
  /** Budget use per period index (only the current and previous period are kept). */
  budget: Map<number, number>
  /** Reservation id -> budget period index it was charged to. */
  budgetOf: Map<string, number>
}

export function budgetPeriod(now: number, periodMs: number): number {
  return Math.floor(now / periodMs)
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const
  private readonly endpoints = new Map<string, EndpointState>()
  private readonly values = new Map<string, { value: string; expiresAt: number | null }>()
  private readonly listeners = new Set<(message: StoreMessage) => void>()

  /** `now` for TTL'd values (set/get); limits take their time from the caller. */
  constructor(private readonly clock: { now(): number } = { now: () => Date.now() }) {}

  private state(key: string): EndpointState {
    let s = this.endpoints.get(key)
    if (s === undefined) {
      s = {
        leases: new Map(),
        window: [],
        head: 0,
        byId: new Map(),
        windowTokens: 0,
        budget: new Map(),
        budgetOf: new Map(),
      }
      this.endpoints.set(key, s)
    }
    return s
  }

  private trim(s: EndpointState, now: number, windowMs: number): void {
    for (const [id, expiresAt] of s.leases) if (expiresAt <= now) s.leases.delete(id)
    while (s.head < s.window.length && (s.window[s.head] as WindowEntry).at <= now - windowMs) {
      const old = s.window[s.head] as WindowEntry
      s.windowTokens -= old.tokens
      s.byId.delete(old.id)
      s.head++
    }
    // Compact now and then, not on every drop (a minute's window at high rates holds many entries).
    if (s.head > 1024 && s.head * 2 > s.window.length) {
      s.window = s.window.slice(s.head)
      s.head = 0
    }
  }

  async admit(input: AdmitInput): Promise<AdmitResult> {
    return this.admitNow(input)
  }

  /** Synchronous admission (the resilient store's fallback path calls it directly). */
  admitNow(input: AdmitInput): AdmitResult {
    const { now, limits, windowMs } = input
    const s = this.state(input.key)
    this.trim(s, now, windowMs)
    if (limits.concurrency !== null && s.leases.size >= limits.concurrency) {
      let first = Number.POSITIVE_INFINITY
      for (const at of s.leases.values()) first = Math.min(first, at)
      return { ok: false, limit: 'concurrency', retryAfterMs: Math.max(1, first - now) }
    }
    if (limits.requests !== null && s.window.length - s.head >= limits.requests) {
      const oldest = s.window[s.window.length - limits.requests] as WindowEntry
      return { ok: false, limit: 'requests', retryAfterMs: Math.max(1, oldest.at + windowMs - now) }
    }
    const tokens = limits.tokens === null ? input.tokens : Math.min(input.tokens, limits.tokens)
    if (limits.tokens !== null && s.windowTokens > 0 && s.windowTokens + tokens > limits.tokens) {
      let freed = 0
      let retry = windowMs
      for (let i = s.head; i < s.window.length; i++) {
        const e = s.window[i] as WindowEntry
        freed += e.tokens
        if (s.windowTokens - freed + tokens <= limits.tokens) {
          retry = e.at + windowMs - now
          break
        }
      }
      return { ok: false, limit: 'tokens', retryAfterMs: Math.max(1, retry) }
    }
    const period = budgetPeriod(now, limits.budgetPeriodMs)
    if (limits.budget !== null) {
      for (const p of s.budget.keys()) if (p < period - 1) s.budget.delete(p)
      const used = s.budget.get(period) ?? 0
      if (used >= limits.budget) {
        return {
          ok: false,
          limit: 'budget',
          retryAfterMs: Math.max(1, (period + 1) * limits.budgetPeriodMs - now),
        }
      }
    }
    // Every limit has room: reserve all of them.
    if (limits.concurrency !== null) s.leases.set(input.id, now + input.leaseTtlMs)
    if (limits.requests !== null || limits.tokens !== null) {
      const entry = { id: input.id, at: now, tokens }
      s.window.push(entry)
      s.byId.set(input.id, entry)
      s.windowTokens += tokens
    }
    if (limits.budget !== null) {
      s.budget.set(period, (s.budget.get(period) ?? 0) + input.tokens)
      s.budgetOf.set(input.id, period)
    }
    return { ok: true }
  }

  async settle(input: SettleInput): Promise<void> {
    this.settleNow(input)
  }

  settleNow(input: SettleInput): void {
    const s = this.endpoints.get(input.key)
    if (s === undefined) return
    s.leases.delete(input.id)
    const entry = s.byId.get(input.id)
    if (entry !== undefined) {
      const used = input.limits.tokens === null ? input.used : Math.min(input.used, input.limits.tokens)
      s.windowTokens += used - entry.tokens
      entry.tokens = used
    }
    const period = s.budgetOf.get(input.id)
    if (period !== undefined) {
      s.budgetOf.delete(input.id)
      const current = s.budget.get(period)
      if (current !== undefined) s.budget.set(period, Math.max(0, current + input.used - input.estimate))
    }
  }

  async renew(key: string, id: string, now: number, leaseTtlMs: number): Promise<void> {
    const s = this.endpoints.get(key)
    if (s?.leases.has(id)) s.leases.set(id, now + leaseTtlMs)
  }

  async inFlight(key: string, now: number): Promise<number> {
    const s = this.endpoints.get(key)
    if (s === undefined) return 0
    let n = 0
    for (const at of s.leases.values()) if (at > now) n++
    return n
  }

  async set(key: string, value: string, ttlMs: number | null, ifAbsent = false): Promise<boolean> {
    if (ifAbsent && (await this.get(key)) !== null) return false
    this.values.set(key, { value, expiresAt: ttlMs === null ? null : this.clock.now() + ttlMs })
    return true
  }

  async get(key: string): Promise<string | null> {
    const v = this.values.get(key)
    if (v === undefined) return null
    if (v.expiresAt !== null && v.expiresAt <= this.clock.now()) {
      this.values.delete(key)
      return null
    }
    return v.value
  }

  async delete(key: string): Promise<void> {
    this.values.delete(key)
  }

  async publish(message: StoreMessage): Promise<void> {
    for (const listener of this.listeners) {
      try {
        listener(message)
      } catch {
        // A subscriber's exception must not reach the publisher.
      }
    }
  }

  subscribe(listener: (message: StoreMessage) => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  async close(): Promise<void> {
    this.listeners.clear()
  }
}
