/**
 * Which instance of a fleet probes an endpoint (issue 14): a leader per endpoint, held as a store
 * value with a TTL (`probe:lead:<endpoint>` = instance id) that the leader renews at each of its
 * probes; when it stops (died, closed, lost Redis), the value expires and the next instance whose
 * probe is due takes over. The leader publishes each result (`probe:result:<endpoint>`); the others
 * read it at their own probe times instead of probing, so every instance skips a down member while
 * the endpoint sees one instance's probes, not N.
 *
 * Through the resilient store: while Redis is down the claim lands in local state and succeeds, so
 * each instance probes for itself again (the behaviour without a fleet).
 */
import type { Store } from '../store/types.js'
import type { ProbeResult } from './probe.js'

/** A leader's probe result as the others read it. */
export interface SharedProbe {
  result: ProbeResult
  /** Epoch ms of the probe (a follower applies each result once). */
  at: number
}

export interface ProbeLeader {
  /** True when this instance probes `endpoint` for the next `ttlMs` (claimed, or renewed as holder). */
  lead(endpoint: string, ttlMs: number): Promise<boolean>
  /** Publishes this instance's result for the others (beside the probe; a failure is dropped). */
  publish(endpoint: string, probe: SharedProbe, ttlMs: number): void
  /** The leader's latest result, or null when none is there (or it is unreadable). */
  read(endpoint: string): Promise<SharedProbe | null>
}

export function storeProbeLeader(store: Store, instanceId: string): ProbeLeader {
  const leadKey = (endpoint: string) => `probe:lead:${endpoint}`
  const resultKey = (endpoint: string) => `probe:result:${endpoint}`
  return {
    async lead(endpoint, ttlMs) {
      if (await store.set(leadKey(endpoint), instanceId, ttlMs, true)) return true
      if ((await store.get(leadKey(endpoint))) !== instanceId) return false
      // Ours: renewed. (Not atomic with the read; at worst two instances probe for one interval.)
      await store.set(leadKey(endpoint), instanceId, ttlMs)
      return true
    },
    publish(endpoint, probe, ttlMs) {
      store.set(resultKey(endpoint), JSON.stringify(probe), ttlMs).catch(() => {})
    },
    async read(endpoint) {
      const raw = await store.get(resultKey(endpoint))
      if (raw === null) return null
      try {
        const parsed = JSON.parse(raw) as SharedProbe
        return typeof parsed.at === 'number' && typeof parsed.result?.ok === 'boolean' ? parsed : null
      } catch {
        return null
      }
    },
  }
}
