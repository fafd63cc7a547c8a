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
import type { Clock } from '../internal/clock.js'

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
}

/**
 * Which member each session is pinned to, per pool: least recently used entries go beyond
 * `maxSessions`, and a pin unused for `ttlMs` is forgotten (then the hash places the session again,
 * most often on the same member).
 */
export class SessionPins {
  private readonly pins = new Map<string, Pin>()

  constructor(
    private readonly clock: Pick<Clock, 'now'>,
    readonly ttlMs: number,
    readonly maxSessions: number,
  ) {}

  get(key: string): string | undefined {
    const pin = this.pins.get(key)
    if (pin === undefined) return undefined
    const now = this.clock.now()
    if (now - pin.at > this.ttlMs) {
      this.pins.delete(key)
      return undefined
    }
    return pin.endpoint
  }

  set(key: string, endpoint: string): void {
    const now = this.clock.now()
    const pin = this.pins.get(key)
    if (pin !== undefined) {
      // Re-inserted so Map order stays least-recently-used first.
      this.pins.delete(key)
      pin.endpoint = endpoint
      pin.at = now
      this.pins.set(key, pin)
      return
    }
    if (this.pins.size >= this.maxSessions) {
      const oldest = this.pins.keys().next()
      if (oldest.done !== true) this.pins.delete(oldest.value)
    }
    this.pins.set(key, { endpoint, at: now })
  }

  get size(): number {
    return this.pins.size
  }
}
