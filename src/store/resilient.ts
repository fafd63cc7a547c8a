/**
 * Redis with a local safety net. Every call to the shared store has a time budget; a call that fails
 * or runs over is answered from local state instead (an in-process MemoryStore), so Redis down, slow
 * or flapping never fails a request and never delays it by more than the budget. After a failure the
 * shared store is skipped for `retryMs`, then tried again; the first answer that comes back rejoins.
 *
 * Every reservation is settled where it was made (a map from reservation id to store), so nothing
 * taken locally during an outage is ever released in Redis, and nothing taken in Redis is forgotten:
 * a release that cannot reach Redis leaves a lease that expires by its TTL. An admission that timed
 * out may still land in Redis later; it is released there as soon as the answer arrives.
 */
import { ErrorCode, RouterError } from '../errors.js'
import { MemoryStore } from './memory.js'
import { RedisClientMissing } from './redis.js'
import type { AdmitInput, AdmitResult, SettleInput, Store, StoreMessage } from './types.js'

export interface StoreStateEvents {
  /** The shared store failed or was too slow; local state is used until it answers again. */
  fallback(error: unknown, operation: string): void
  /** The shared store answered again after a fallback. */
  rejoined(): void
}

const TIMED_OUT = Symbol('timed out')

export class ResilientStore implements Store {
  readonly kind: 'memory' | 'redis'
  readonly local: MemoryStore
  private readonly where = new Map<string, 'shared' | 'local'>()
  /** performance.now() before which the shared store is not tried (after a failure). */
  private skipUntil = 0
  private degraded = false

  constructor(
    private readonly shared: Store,
    private readonly timeoutMs: number,
    private readonly events: StoreStateEvents,
    local: MemoryStore = new MemoryStore(),
    private readonly retryMs = 500,
    /** Budget while the client first loads and connects (a fleet restarting together should share limits from the start). */
    private readonly startupMs = 3000,
  ) {
    this.kind = shared.kind
    this.local = local
  }

  get warm(): boolean | undefined {
    return this.shared.warm
  }

  /** True while answers come from local state. */
  get fallingBack(): boolean {
    return this.degraded
  }

  /**
   * Runs one shared call within the budget. Returns TIMED_OUT-or-failed as `undefined` after
   * switching to local state; `late` runs if the call answers after its budget ran out.
   */
  private async attempt<T>(
    operation: string,
    fn: () => Promise<T>,
    late?: (value: T) => void,
  ): Promise<{ value: T } | undefined> {
    if (performance.now() < this.skipUntil) return undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    const budgetMs = this.shared.warm === false ? this.startupMs : this.timeoutMs
    const call = fn()
    const budget = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), budgetMs)
      timer.unref?.()
    })
    try {
      const value = await Promise.race([call, budget])
      if (value === TIMED_OUT) {
        if (late) call.then(late, () => {})
        else call.catch(() => {})
        this.fail(new Error(`Redis did not answer ${operation} within ${budgetMs} ms`), operation)
        return undefined
      }
      if (this.degraded) {
        this.degraded = false
        this.events.rejoined()
      }
      return { value: value as T }
    } catch (error) {
      if (error instanceof RedisClientMissing) {
        throw new RouterError(ErrorCode.INVALID_OPTIONS, error.message, { cause: error.cause })
      }
      this.fail(error, operation)
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  private fail(error: unknown, operation: string): void {
    this.skipUntil = performance.now() + this.retryMs
    if (!this.degraded) {
      this.degraded = true
      this.events.fallback(error, operation)
    }
  }

  async admit(input: AdmitInput): Promise<AdmitResult> {
    const shared = await this.attempt(
      'admit',
      () => this.shared.admit(input),
      // Admitted in Redis after we gave up on it: release it there at once.
      (late) => {
        if (late.ok) this.shared.settle({ ...input, estimate: input.tokens, used: 0 }).catch(() => {})
      },
    )
    if (shared !== undefined) {
      if (shared.value.ok) this.where.set(input.id, 'shared')
      return shared.value
    }
    const result = this.local.admitNow(input)
    if (result.ok) this.where.set(input.id, 'local')
    return result
  }

  async settle(input: SettleInput): Promise<void> {
    const where = this.where.get(input.id)
    this.where.delete(input.id)
    if (where === 'local') {
      this.local.settleNow(input)
      return
    }
    if (where === 'shared') await this.attempt('settle', () => this.shared.settle(input))
  }

  async renew(key: string, id: string, now: number, leaseTtlMs: number): Promise<void> {
    const where = this.where.get(id)
    if (where === 'local') await this.local.renew(key, id, now, leaseTtlMs)
    else if (where === 'shared')
      await this.attempt('renew', () => this.shared.renew(key, id, now, leaseTtlMs))
  }

  async inFlight(key: string, now: number): Promise<number> {
    const shared = await this.attempt('inFlight', () => this.shared.inFlight(key, now))
    const local = await this.local.inFlight(key, now)
    return (shared?.value ?? 0) + local
  }

  async set(key: string, value: string, ttlMs: number | null, ifAbsent = false): Promise<boolean> {
    const shared = await this.attempt('set', () => this.shared.set(key, value, ttlMs, ifAbsent))
    return shared !== undefined ? shared.value : this.local.set(key, value, ttlMs, ifAbsent)
  }

  async get(key: string): Promise<string | null> {
    const shared = await this.attempt('get', () => this.shared.get(key))
    return shared !== undefined ? shared.value : this.local.get(key)
  }

  async delete(key: string): Promise<void> {
    await this.attempt('delete', () => this.shared.delete(key))
    await this.local.delete(key)
  }

  async publish(message: StoreMessage): Promise<void> {
    await this.attempt('publish', () => this.shared.publish(message))
  }

  subscribe(listener: (message: StoreMessage) => void): () => void {
    return this.shared.subscribe(listener)
  }

  async close(): Promise<void> {
    await this.shared.close()
    await this.local.close()
  }
}
