/**
 * The router's shared-state wiring: the store (Redis or in-memory), the limiter on top of it, and
 * this instance's id. The router makes one at start and closes it last.
 */
import { randomUUID } from 'node:crypto'
import type { Clock } from '../internal/clock.js'
import { Limiter } from '../limits/limiter.js'
import type { ResolvedOptions } from '../options.js'
import type { RouterEvents } from '../types.js'
import { createStore } from './index.js'
import type { Store } from './types.js'

/** @internal Test seams: the limit window (60 s is "per minute") and the lease TTL. */
export interface FleetInternals {
  limitWindowMs?: number
  leaseTtlMs?: number
  /** Hands the store to a test (to wait until Redis is connected, or to read leases). */
  onStore?: (store: Store) => void
}

export interface Fleet {
  readonly instanceId: string
  readonly store: Store
  readonly limiter: Limiter
  /** Lets pending settlements land, then closes the store's connections. */
  close(): Promise<void>
}

export function createFleet(
  opts: ResolvedOptions,
  clock: Clock,
  emit: <K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]) => void,
  internals: FleetInternals = {},
): Fleet {
  const instanceId = randomUUID()
  const store = createStore(opts.redis, clock, {
    fallback: (error, operation) => emit('store:fallback', { error, operation }),
    rejoined: () => emit('store:rejoined', { kind: 'redis' }),
  })
  internals.onStore?.(store)
  const limiter = new Limiter(
    store,
    clock,
    {
      windowMs: internals.limitWindowMs ?? 60_000,
      leaseTtlMs: internals.leaseTtlMs ?? 30_000,
      maxWaitMs: opts.limits.maxWaitMs,
      maxQueue: opts.limits.maxQueue,
    },
    instanceId,
  )
  return {
    instanceId,
    store,
    limiter,
    async close() {
      await limiter.drain()
      await store.close()
    },
  }
}
