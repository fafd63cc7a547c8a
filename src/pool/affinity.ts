/**
 * Session affinity: weighted rendezvous hashing (highest random weight) of `metadata.sessionId` over
 * a pool's members, and the pins that keep a session where it went.
 *
 * Rendezvous hashing gives each member a score per session; the highest wins. Members joining or
 * leaving change only the sessions whose highest score they hold, and `weight / -ln(u)` as the score
 * makes a member's share of sessions proportional to its weight, so a 10 % canary gets about 10 % of
 * the sessions and a session is on one side of the split for good. The pin remembers the member that
 * answered: a session that moved because its member failed or left stays on its new member, even
 * after the old one comes back (its prompt cache is there now).
 */
/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function hashString(value: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** murmur3's finaliser: spreads the bits of a combined hash. */
function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Rendezvous score of a member for a session: higher wins; proportional shares by `weight`. */
export function rendezvousScore(sessionHash: number, memberHash: number, weight: number): number {
  // u in (0, 1): never 0 or 1, so the logarithm is finite and non-zero.
  const u = (mix(sessionHash ^ Math.imul(memberHash, 0x9e3779b1)) + 0.5) / 4294967296
  return weight / -Math.log(u)
}

interface Pin {
  endpoint: string
  at: number
  /** When this pin was last written to the shared store (0: never). */
  sharedAt: number
}

/**
 * Where pins are shared across a fleet (the store's TTL'd values when Redis is configured): a
 * session placed by one instance is kept by another. `get` is the one store read on a request's path,
 * made only when this instance has no pin for the session; writes run beside the request.
 */
export interface SharedPinStore {
  get(key: string): Promise<string | null>
  set(key: string, value: string, ttlMs: number | null): Promise<boolean>
}

/** The store key of a session's pin in a pool (the pool key holds a NUL between model and priority). */
const sharedKey = (pool: string, session: string) => `pin:${pool.replace('\u0000', '|')}:${session}`

/** A pin refreshed more recently than this keeps its place in the LRU order (saves a Map delete + set per request). */
const REORDER_AFTER_MS = 1000

/**
 * Which member each session is pinned to, per pool: a pin unused for `ttlMs` is forgotten (then the
 * hash places the session again, most often on the same member), and beyond `maxSessions` the least
 * recently used go first. Keyed pool, then session, so the request path never builds a key string.
 */
export class SessionPins {
  private readonly pools = new Map<string, Map<string, Pin>>()
  private count = 0

  constructor(
    readonly ttlMs: number,
    readonly maxSessions: number,
    /** The fleet's store (Redis configured); without it pins are this process's own. */
    readonly shared: SharedPinStore | null = null,
  ) {}

  /**
   * The session's member like `get`, asking the shared store when this instance has no pin (another
   * instance may have placed the session). A store that is down answers from local state (the
   * resilient store's fallback), so the hash places the session as without a fleet.
   */
  async recall(pool: string, session: string, now: number): Promise<string | undefined> {
    const local = this.get(pool, session, now)
    if (local !== undefined || this.shared === null) return local
    let endpoint: string | null = null
    try {
      endpoint = await this.shared.get(sharedKey(pool, session))
    } catch {
      return undefined
    }
    if (endpoint === null) return undefined
    this.set(pool, session, endpoint, now, now)
    return endpoint
  }

  /** The session's member in `pool` at `now` (epoch ms), if pinned and not expired. */
  get(pool: string, session: string, now: number): string | undefined {
    const pins = this.pools.get(pool)
    const pin = pins?.get(session)
    if (pin === undefined) return undefined
    if (now - pin.at > this.ttlMs) {
      ;(pins as Map<string, Pin>).delete(session)
      this.count--
      return undefined
    }
    return pin.endpoint
  }

  /** Pins the session (`sharedAt`: the shared store already has it, as when recalled from there). */
  set(pool: string, session: string, endpoint: string, now: number, sharedAt = 0): void {
    let pins = this.pools.get(pool)
    if (pins === undefined) {
      pins = new Map()
      this.pools.set(pool, pins)
    }
    const pin = pins.get(session)
    if (pin !== undefined) {
      if (pin.endpoint === endpoint && now - pin.at < REORDER_AFTER_MS) return
      const moved = pin.endpoint !== endpoint
      // Re-inserted so Map order stays least-recently-used first.
      pins.delete(session)
      pin.endpoint = endpoint
      pin.at = now
      pins.set(session, pin)
      // A move is told at once; a kept pin's shared TTL is refreshed at most every half TTL.
      if (moved || now - pin.sharedAt >= this.ttlMs / 2) this.share(pool, session, pin, now)
      return
    }
    if (this.count >= this.maxSessions) this.evictOne(pins)
    const added: Pin = { endpoint, at: now, sharedAt }
    pins.set(session, added)
    this.count++
    if (sharedAt === 0) this.share(pool, session, added, now)
  }

  /** Writes the pin to the shared store beside the request (a failure leaves it local: the fallback). */
  private share(pool: string, session: string, pin: Pin, now: number): void {
    if (this.shared === null) return
    pin.sharedAt = now
    this.shared.set(sharedKey(pool, session), pin.endpoint, this.ttlMs).catch(() => {})
  }

  /** Drops the least recently used pin of `preferred` (else of the first pool that has one). */
  private evictOne(preferred: Map<string, Pin>): void {
    let from: Map<string, Pin> | undefined = preferred.size > 0 ? preferred : undefined
    if (from === undefined) for (const pins of this.pools.values()) if (pins.size > 0) from = pins
    const oldest = from?.keys().next()
    if (from === undefined || oldest === undefined || oldest.done === true) return
    from.delete(oldest.value)
    this.count--
  }

  get size(): number {
    return this.count
  }
}
