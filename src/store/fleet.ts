/**
 * The router's shared-state wiring: the store (Redis or in-memory), the limiter on top of it, this
 * instance's id, and the notices instances send each other through the store:
 * - config: the instance that fetched a changed config says so; the others refetch at once (so no
 *   instance serves an old config for a TTL after another saw the new one);
 * - circuit: an instance that opens (or closes) an endpoint's circuit says so; the others apply it,
 *   so an endpoint one instance found dead is skipped by all within a pub/sub delivery.
 * It also keeps the last good config (Redis and/or `admin.snapshotFile`) and runs the admin's
 * change stream (`admin.watchPath`).
 */
import { createHash, randomUUID } from 'node:crypto'
import type { ConfigSource } from '../config/contract.js'
import { createLastGood, type LastGood } from '../config/last-good.js'
import { contentKey } from '../config/snapshot.js'
import { type Watch, watchAdmin } from '../config/watch.js'
import type { CircuitRegistry } from '../dispatch/circuit.js'
import type { ErrorCode } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import { Limiter } from '../limits/limiter.js'
import type { ResolvedOptions } from '../options.js'
import type { CircuitInfo, RouterEvents } from '../types.js'
import { createStore } from './index.js'
import type { Store, StoreMessage } from './types.js'

/** @internal Test seams: the limit window (60 s is "per minute") and the lease TTL. */
export interface FleetInternals {
  limitWindowMs?: number
  leaseTtlMs?: number
  /** Hands the store to a test (to wait until Redis is connected, or to read leases). */
  onStore?: (store: Store) => void
}

type Emit = <K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]) => void

export interface Fleet {
  readonly instanceId: string
  readonly store: Store
  readonly limiter: Limiter
  readonly lastGood: LastGood | null
  /** Config events pass through here (to tell the fleet about a changed config). */
  configEvent<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void
  /** Starts listening for notices and the admin's change stream for `config`; `onCircuit` hears remote circuit changes. */
  attach(config: ConfigSource, circuits: CircuitRegistry, onCircuit?: (endpoint: string) => void): void
  /** A local circuit transition, told to the fleet. */
  circuitChanged(info: CircuitInfo): void
  /** Stops the change stream, lets pending settlements land, then closes the store's connections. */
  close(): Promise<void>
}

/** Each snapshot's version, hashed once: every notice from another instance asks for the current one. */
const versions = new WeakMap<object, string>()

const versionOf = (config: ConfigSource): string | null => {
  const current = config.current()
  if (current === null) return null
  let version = versions.get(current)
  if (version === undefined) {
    version = createHash('sha1').update(contentKey(current.allRecords)).digest('hex')
    versions.set(current, version)
  }
  return version
}

export function createFleet(
  opts: ResolvedOptions,
  clock: Clock,
  emit: Emit,
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
  const shared = opts.redis !== null
  const lastGood = createLastGood(shared ? store : null, opts.admin.snapshotFile)
  let config: ConfigSource | null = null
  let watch: Watch | null = null
  let unsubscribe: (() => void) | null = null
  const tell = (message: StoreMessage) => {
    if (shared) store.publish(message).catch(() => {})
  }

  return {
    instanceId,
    store,
    limiter,
    lastGood,
    configEvent(event, payload) {
      if (config === null) return
      const changed =
        (event === 'config:loaded' && (payload as RouterEvents['config:loaded']).origin === 'admin') ||
        (event === 'config:refreshed' && (payload as RouterEvents['config:refreshed']).changed)
      if (!changed) return
      const version = versionOf(config)
      if (version !== null) tell({ type: 'config', from: instanceId, version })
    },
    attach(source, circuits, onCircuit) {
      config = source
      if (shared) {
        unsubscribe = store.subscribe((message) => {
          if (message.from === instanceId) return
          if (message.type === 'config') {
            // Already on that config (it may be this instance's own refetch echoing back): nothing to do.
            if (versionOf(source) !== message.version) source.refresh().catch(() => {})
            return
          }
          const circuit = circuits.get(message.endpoint)
          if (circuit.applyRemote(message.state, message.openUntil, message.lastError as ErrorCode | null)) {
            onCircuit?.(message.endpoint)
            emit(message.state === 'open' ? 'circuit:open' : 'circuit:close', circuit.info())
          }
        })
      }
      if (opts.admin.watchPath !== null && opts.adminUrl !== null) {
        watch = watchAdmin({
          adminUrl: opts.adminUrl,
          watchPath: opts.admin.watchPath,
          headers: opts.admin.headers,
          timeoutMs: opts.admin.timeoutMs,
          clock,
          onChange: () => {
            source.refresh().catch(() => {})
          },
        })
      }
    },
    circuitChanged(info) {
      tell({
        type: 'circuit',
        from: instanceId,
        endpoint: info.endpoint,
        state: info.state === 'closed' ? 'closed' : 'open',
        openUntil: info.openUntil ?? 0,
        lastError: info.lastError,
      })
    },
    async close() {
      unsubscribe?.()
      await watch?.close()
      await limiter.drain()
      await store.close()
    },
  }
}
