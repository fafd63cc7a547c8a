/**
 * One request's side of the limits: admits each target before its attempt (a refusal sends the walk
 * to the next candidate), remembers the refused ones, and when the walk ends with nothing answered
 * but something refused, says how long to wait before trying those again, or builds the
 * RATE_LIMITED error when waiting does not fit the deadline, the wait bound or the queue.
 */
import type { RequestControl } from '../dispatch/attempt.js'
import type { DispatchCore } from '../dispatch/dispatcher.js'
import type { DispatchRequest, DispatchResult } from '../dispatch/operation.js'
import type { Candidate, Target } from '../dispatch/routes.js'
import { type AttemptInfo, ErrorCode, RouterError } from '../errors.js'
import type { LimitKind } from '../store/types.js'
import type { BackendKind, LimitField, RouterEvents } from '../types.js'
import { estimateTokens, type Limiter, type Reservation, recordLimits } from './limiter.js'

/** How often a request waiting on a lease or a token reservation checks again. */
const POLL_MS = 200

const FIELD: Record<LimitKind, LimitField> = {
  requests: 'rpm',
  tokens: 'tpm',
  budget: 'token_budget',
  concurrency: 'max_concurrency',
}

export interface Where {
  model: string
  backend: BackendKind
  endpoint: string
}

interface Refusal {
  limit: LimitField
  retryAfterMs: number
}

export interface GateHost {
  now(): number
  /** Epoch ms of the request's deadline (it may be extended after the gate is made). */
  deadline(): number
  emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void
  listens(event: keyof RouterEvents): boolean
}

export function gateHost(core: DispatchCore, control: RequestControl): GateHost {
  return {
    now: () => core.clock.now(),
    deadline: () => control.deadline,
    emit: core.emit,
    listens: core.listens,
  }
}

/** The reservation held while one target is attempted; `done` settles it with the real usage. */
export interface Held {
  done(result: DispatchResult | null): void
}

export class LimitGate {
  private refused = new Map<Target, Refusal>()
  /** Targets refused in the previous pass: the only ones a later pass tries. */
  private retrying: Set<Target> | null = null
  private waitedMs = 0

  constructor(
    private readonly limiter: Limiter,
    private readonly req: DispatchRequest,
    private readonly host: GateHost,
  ) {}

  /** False when a later pass leaves this target out (it failed for another reason). */
  includes(target: Target): boolean {
    return this.retrying === null || this.retrying.has(target)
  }

  /**
   * Admits `target` (null: the record sets no limits, nothing to hold), or records the refusal and
   * returns its RATE_LIMITED error for the attempt list. A store failure never gets here: the store
   * falls back to local state.
   */
  async admit(candidate: Candidate, target: Target, where: Where): Promise<Held | null | RouterError> {
    const limits = recordLimits(candidate.record, this.limiter.fleetConcurrency)
    if (limits === null) return null
    const estimate = estimateTokens(this.req, candidate.record)
    const admission = await this.limiter.admit(
      `${candidate.model}|${target.endpoint}`,
      limits,
      estimate.total,
    )
    if (!admission.ok) {
      const limit = FIELD[admission.limit]
      const { retryAfterMs } = admission
      this.refused.set(target, { limit, retryAfterMs })
      this.limiter.noteRefusal(where.endpoint, where.model, limit, retryAfterMs)
      if (this.host.listens('limit:refused'))
        this.host.emit('limit:refused', { ...where, limit, retryAfterMs })
      return new RouterError(
        ErrorCode.RATE_LIMITED,
        `${where.backend} at ${where.endpoint} is at its ${limit} limit for ${where.model}; skipped without connecting`,
        { ...where, retryAfterMs },
      )
    }
    this.limiter.noteAdmitted(where.endpoint)
    const reservation: Reservation = admission.reservation
    return {
      // A failed attempt is charged its prompt: the backend read it (most providers count it).
      done: (result) =>
        reservation.settle(
          result === null ? estimate.prompt : result.usage.promptTokens + result.usage.completionTokens,
        ),
    }
  }

  /**
   * After a pass that ended with nothing answered: the wait before the targets refused in it are
   * tried again, or null when nothing was refused or the wait does not fit and other failures decide
   * the error. Throws RATE_LIMITED when every failure of the pass was a limit and the wait does not
   * fit the deadline, the wait bound (`limits.maxWaitMs`) or the queue (`limits.maxQueue`).
   */
  nextWait(model: string | undefined, attempts: AttemptInfo[], allRefused: boolean): number | null {
    if (this.refused.size === 0) return null
    // retryAfterMs is when the refusal lifts at the latest. Leases and token reservations usually
    // end much earlier (a request settles), so those are re-checked every POLL_MS until then.
    let wait = Number.POSITIVE_INFINITY
    let hint = Number.POSITIVE_INFINITY
    for (const r of this.refused.values()) {
      hint = Math.min(hint, r.retryAfterMs)
      const early = r.limit === 'max_concurrency' || r.limit === 'tpm'
      wait = Math.min(wait, early ? Math.min(POLL_MS, r.retryAfterMs) : r.retryAfterMs)
    }
    const { maxWaitMs, maxQueue } = this.limiter.options
    const fits =
      this.host.now() + wait < this.host.deadline() &&
      this.waitedMs + wait <= maxWaitMs &&
      this.limiter.waiting < maxQueue
    if (!fits) {
      if (!allRefused) return null
      const limits = [...new Set([...this.refused.values()].map((r) => r.limit))].join(', ')
      throw new RouterError(
        ErrorCode.RATE_LIMITED,
        `Every backend for model "${model ?? '(default)'}" is at its limit (${limits}); retry after ${Math.ceil(hint)} ms at the latest, or raise the limit in the admin records`,
        { retryAfterMs: Math.ceil(hint), attempts, ...(model === undefined ? {} : { model }) },
      )
    }
    this.waitedMs += wait
    this.retrying = new Set(this.refused.keys())
    this.refused = new Map()
    if (this.host.listens('limit:wait'))
      this.host.emit('limit:wait', {
        model: model ?? 'default',
        waitMs: wait,
        waiting: this.limiter.waiting + 1,
      })
    return wait
  }

  /** Sleeps `ms` as one of the router's waiting requests (counted against `limits.maxQueue`). */
  async sleep(sleep: (ms: number) => Promise<void>, ms: number): Promise<void> {
    this.limiter.waiting++
    try {
      await sleep(ms)
    } finally {
      this.limiter.waiting--
    }
  }
}
