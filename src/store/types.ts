/**
 * The store: the one place the router keeps state that a fleet of instances must share (limits,
 * concurrency leases, circuit state, config change notices, small TTL'd values). Two implementations
 * pass the same contract tests (test/store-contract.test.ts): in-memory (the default, one process)
 * and Redis (an optional peer dependency). Nothing else in the router knows which one it has.
 *
 * Time is passed in (`now`, epoch ms from the router's clock), so windows and leases are testable with
 * a manual clock and every instance judges a window by the same rule. Instances' clocks are assumed
 * to be NTP-synced; a skew of s ms shifts a window edge by s ms.
 */

/** Limits of one endpoint; null = no limit of that kind. */
export interface Limits {
  /** Requests per window (`rpm`). */
  requests: number | null
  /** Tokens per window (`tpm`), reserved from an estimate and reconciled with real usage. */
  tokens: number | null
  /** Tokens per budget period (`token_budget`). */
  budget: number | null
  budgetPeriodMs: number
  /** Requests in flight at once (`max_concurrency`), fleet-wide when the store is shared. */
  concurrency: number | null
}

export interface AdmitInput {
  /** Endpoint identity, the same on every instance. */
  key: string
  /** Unique per reservation (lease member, window entry). */
  id: string
  now: number
  limits: Limits
  /** Estimated tokens of the request (prompt + completion). */
  tokens: number
  /** Rate window (60 000 for "per minute"). */
  windowMs: number
  /** A lease not renewed or released within this expires by itself (an instance died). */
  leaseTtlMs: number
}

export type LimitKind = 'concurrency' | 'requests' | 'tokens' | 'budget'

export type AdmitResult =
  | { ok: true }
  | {
      ok: false
      /** Which limit refused. */
      limit: LimitKind
      /** When the refusal is expected to lift (at least 1). */
      retryAfterMs: number
    }

export interface SettleInput {
  key: string
  id: string
  now: number
  limits: Limits
  /** The estimate reserved at admission. */
  estimate: number
  /** Real usage (tokens) to reconcile the reservation with. */
  used: number
}

export interface CircuitNotice {
  /** Endpoint identity. */
  endpoint: string
  state: 'open' | 'closed'
  /** Epoch ms until which an open circuit skips the endpoint. */
  openUntil: number
  lastError: string | null
}

export type StoreMessage =
  | { type: 'config'; from: string; version: string }
  | ({ type: 'circuit'; from: string } & CircuitNotice)

export interface Store {
  readonly kind: 'memory' | 'redis'
  /** Redis: false until the first connection is up (the client is still loading or connecting). */
  readonly warm?: boolean | undefined
  /**
   * Checks every limit of the endpoint and, when all have room, reserves a concurrency lease, a rate
   * window entry and the token estimate, atomically (one Lua script on Redis).
   */
  admit(input: AdmitInput): Promise<AdmitResult>
  /** Releases the lease and reconciles the token reservation with real usage. Idempotent per id. */
  settle(input: SettleInput): Promise<void>
  /** Extends a lease of a long request (heartbeat). */
  renew(key: string, id: string, now: number, leaseTtlMs: number): Promise<void>
  /** Leases in flight at the endpoint (expired ones not counted). */
  inFlight(key: string, now: number): Promise<number>
  /** A value with a TTL (null ttl: no expiry); `ifAbsent`: only when no value is there (a lock). */
  set(key: string, value: string, ttlMs: number | null, ifAbsent?: boolean): Promise<boolean>
  get(key: string): Promise<string | null>
  delete(key: string): Promise<void>
  /** Fleet-wide notices (config changed, circuit opened); a store of one process delivers locally. */
  publish(message: StoreMessage): Promise<void>
  subscribe(listener: (message: StoreMessage) => void): () => void
  close(): Promise<void>
}
