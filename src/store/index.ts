/**
 * Picks the store: Redis (behind the resilient wrapper) when `redis.url` or LLM_ROUTER_REDIS_URL is
 * set, else the in-memory store. The `redis` package is only imported when a Redis URL is set.
 */
import type { Clock } from '../internal/clock.js'
import type { ResolvedOptions } from '../options.js'
import { MemoryStore } from './memory.js'
import { RedisStore } from './redis.js'
import { ResilientStore, type StoreStateEvents } from './resilient.js'
import type { Store } from './types.js'

export function createStore(redis: ResolvedOptions['redis'], clock: Clock, events: StoreStateEvents): Store {
  if (redis === null) return new MemoryStore(clock)
  const shared = new RedisStore({ url: redis.url, prefix: redis.prefix })
  return new ResilientStore(shared, redis.timeoutMs, events, new MemoryStore(clock))
}
