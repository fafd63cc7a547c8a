/**
 * Endpoint limits (record fields `rpm`, `tpm`, `token_budget` + `budget_period_seconds`, and
 * `max_concurrency` when the record has it) enforced through the store: one atomic admission when an
 * attempt at an endpoint starts, one settlement (lease released, tokens reconciled) when it ends.
 * The admission is the only store round trip on a request's path; settlement and lease renewal run
 * beside it and are never awaited by the request.
 */
import type { Clock } from '../internal/clock.js'
import type { LimitKind, Limits, Store } from '../store/types.js'
import type { BackendRecord, LimitField } from '../types.js'

export interface LimiterOptions {
  /** The rpm/tpm window; 60 000 (tests shorten it). */
  windowMs: number
  /** A lease of a dead instance frees itself after this; live ones are renewed at a third of it. */
  leaseTtlMs: number
  /** Longest a request waits in total for a limit to lift before RATE_LIMITED. */
  maxWaitMs: number
  /** Requests of this router that may wait at once; more fail at once with RATE_LIMITED. */
  maxQueue: number
}

/** Completion tokens assumed when neither the request nor the record sets max_tokens (the seed's default). */
const DEFAULT_COMPLETION_ESTIMATE = 2048
const DEFAULT_BUDGET_PERIOD_SECONDS = 86_400

/**
 * The limits a record sets, or null when it sets none (then no store call is made at all).
 * `max_concurrency` is counted here only when the store is shared (fleet-wide leases); within one
 * process the pool's own slots (src/pool/load.ts) already hold it.
 */
export function recordLimits(record: BackendRecord, fleetConcurrency: boolean): Limits | null {
  const requests = record.rpm ?? null
  const tokens = record.tpm ?? null
  const budget = record.token_budget ?? null
  const concurrency = fleetConcurrency ? (record.max_concurrency ?? null) : null
  if (requests === null && tokens === null && budget === null && concurrency === null) return null
  return {
    requests,
    tokens,
    budget,
    budgetPeriodMs: (record.budget_period_seconds ?? DEFAULT_BUDGET_PERIOD_SECONDS) * 1000,
    concurrency,
  }
}

/** The characters of a request's input, whatever the operation (prompt/system, chat messages, embed input). */
function inputChars(req: object): number {
  const r = req as { prompt?: unknown; system?: unknown; messages?: unknown; input?: unknown }
  let n = 0
  const add = (v: unknown) => {
    if (typeof v === 'string') n += v.length
    else if (Array.isArray(v))
      for (const x of v) add(typeof x === 'object' && x !== null ? (x as { content?: unknown }).content : x)
  }
  add(r.prompt)
  add(r.system)
  add(r.messages)
  add(r.input)
  return n
}

/**
 * Tokens a request is expected to use: its input at ~4 characters a token, plus its completion
 * limit (the request's maxTokens, else the record's max_tokens, else 2048). Reconciled with the
 * real usage when the attempt ends, so a generous estimate only delays, never overcharges.
 */
export function estimateTokens(req: object, record: BackendRecord): { prompt: number; total: number } {
  const prompt = Math.ceil(inputChars(req) / 4)
  const maxTokens = (req as { maxTokens?: number }).maxTokens
  return { prompt, total: prompt + (maxTokens ?? record.max_tokens ?? DEFAULT_COMPLETION_ESTIMATE) }
}

export interface Reservation {
  /** Releases the lease and reconciles the tokens with `used`. Exactly once; later calls do nothing. */
  settle(used: number): void
}

export type Admission =
  | { ok: true; reservation: Reservation }
  | { ok: false; limit: LimitKind; retryAfterMs: number }

export class Limiter {
  /** Requests of this router waiting for a limit right now. */
  waiting = 0
  private seq = 0
  /** The latest refusal per endpoint (for router.health()): which limit, until when, for which model. */
  private readonly refusals = new Map<string, { limit: LimitField; until: number; model: string }>()
  /** Settlements on their way to the store, so close() can let them land before the store closes. */
  private readonly pending = new Set<Promise<void>>()

  /** Leases for max_concurrency are taken only when the store is shared (Redis). */
  get fleetConcurrency(): boolean {
    return this.store.kind === 'redis'
  }

  constructor(
    readonly store: Store,
    private readonly clock: Clock,
    readonly options: LimiterOptions,
    private readonly instanceId: string,
  ) {}

  async admit(key: string, limits: Limits, estimate: number): Promise<Admission> {
    const { store, clock, options } = this
    const id = `${this.instanceId}:${++this.seq}`
    const result = await store.admit({
      key,
      id,
      now: clock.now(),
      limits,
      tokens: estimate,
      windowMs: options.windowMs,
      leaseTtlMs: options.leaseTtlMs,
    })
    if (!result.ok) return result
    let renewTimer: unknown = null
    if (limits.concurrency !== null) {
      const renew = () => {
        store.renew(key, id, clock.now(), options.leaseTtlMs).catch(() => {})
        renewTimer = clock.setTimeout(renew, options.leaseTtlMs / 3)
      }
      renewTimer = clock.setTimeout(renew, options.leaseTtlMs / 3)
    }
    let settled = false
    return {
      ok: true,
      reservation: {
        settle: (used) => {
          if (settled) return
          settled = true
          if (renewTimer !== null) clock.clearTimeout(renewTimer)
          const p = store.settle({ key, id, now: clock.now(), limits, estimate, used }).catch(() => {})
          this.pending.add(p)
          p.then(() => this.pending.delete(p))
        },
      },
    }
  }

  /** Remembers a refusal at `endpoint` for router.health(). */
  noteRefusal(endpoint: string, model: string, limit: LimitField, retryAfterMs: number): void {
    this.refusals.set(endpoint, { limit, until: this.clock.now() + retryAfterMs, model })
  }

  /** The refusal at `endpoint` that has not lifted yet, or null (an admission there since clears it). */
  limitedAt(endpoint: string): { limit: LimitField; until: number; model: string } | null {
    const r = this.refusals.get(endpoint)
    if (r === undefined) return null
    if (r.until <= this.clock.now()) {
      this.refusals.delete(endpoint)
      return null
    }
    return r
  }

  /** An admission at `endpoint` went through: whatever refused there before has lifted. */
  noteAdmitted(endpoint: string): void {
    if (this.refusals.size > 0) this.refusals.delete(endpoint)
  }

  /** Resolves when every settlement sent so far has landed (or failed). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending])
  }
}
