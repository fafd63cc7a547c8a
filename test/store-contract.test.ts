/**
 * The store contract: the in-memory store and the Redis store (against a real redis-server) give the
 * same answers to the same calls. Time is passed in, so windows and leases move without sleeping.
 * Last, the resilient wrapper's handling of an admission that answers after its budget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStore } from '../src/store/memory.js'
import { RedisStore } from '../src/store/redis.js'
import { ResilientStore } from '../src/store/resilient.js'
import type { Limits, Store, StoreMessage } from '../src/store/types.js'
import { ManualClock } from './helpers/manual-clock.js'
import { type RedisServer, redisAvailable, startRedis } from './helpers/redis-server.js'

const none: Limits = { requests: null, tokens: null, budget: null, budgetPeriodMs: 60_000, concurrency: null }
const T0 = 1_700_000_000_000

interface Fixture {
  /** Stores that share state (several instances of a fleet). */
  make(): Store
  /** Lets `ms` pass for TTL'd values (set/get). */
  pass(ms: number): Promise<void>
  /** A key prefix unique to the test, so tests never see each other's state. */
  readonly name: string
}

let redis: RedisServer | null = null
const opened: Store[] = []
let seq = 0

beforeAll(async () => {
  if (redisAvailable()) redis = await startRedis()
}, 20_000)

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
  await redis?.stop()
})

function memoryFixture(): Fixture {
  const clock = new ManualClock()
  const store = new MemoryStore(clock)
  return {
    name: 'memory',
    make: () => store,
    pass: async (ms) => clock.advance(ms),
  }
}

function redisFixture(): Fixture {
  const prefix = `contract-${process.pid}-${++seq}:`
  return {
    name: 'redis',
    make: () => {
      const store = new RedisStore({ url: (redis as RedisServer).url, prefix })
      opened.push(store)
      return store
    },
    pass: (ms) => new Promise((r) => setTimeout(r, ms)),
  }
}

async function connected(store: Store): Promise<void> {
  // A RedisStore connects in the background; wait until a call goes through.
  for (let i = 0; i < 200; i++) {
    try {
      await store.get('ping')
      return
    } catch {
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  throw new Error('store never connected')
}

const kinds: [string, () => Fixture][] = [
  ['memory', memoryFixture],
  ['redis', redisFixture],
]

describe.each(kinds)('store contract: %s', (kind, fixture) => {
  const skip = kind === 'redis' && !redisAvailable()
  let f: Fixture
  let store: Store
  const setup = async () => {
    f = fixture()
    store = f.make()
    await connected(store)
  }
  const admit = (
    key: string,
    id: string,
    now: number,
    limits: Partial<Limits>,
    tokens = 0,
    windowMs = 1000,
  ) => store.admit({ key, id, now, limits: { ...none, ...limits }, tokens, windowMs, leaseTtlMs: 5000 })
  const settle = (
    key: string,
    id: string,
    now: number,
    limits: Partial<Limits>,
    estimate: number,
    used: number,
  ) => store.settle({ key, id, now, limits: { ...none, ...limits }, estimate, used })

  it.skipIf(skip)('a concurrency limit of 2 admits 2, refuses the 3rd until one is released', async () => {
    await setup()
    const lim = { concurrency: 2 }
    expect(await admit('ep', 'a', T0, lim)).toEqual({ ok: true })
    expect(await admit('ep', 'b', T0 + 10, lim)).toEqual({ ok: true })
    expect(await admit('ep', 'c', T0 + 20, lim)).toEqual({
      ok: false,
      limit: 'concurrency',
      retryAfterMs: 4980,
    })
    expect(await store.inFlight('ep', T0 + 20)).toBe(2)
    await settle('ep', 'a', T0 + 30, lim, 0, 0)
    expect(await store.inFlight('ep', T0 + 30)).toBe(1)
    expect(await admit('ep', 'c', T0 + 40, lim)).toEqual({ ok: true })
    // Settling twice is harmless.
    await settle('ep', 'a', T0 + 50, lim, 0, 0)
    expect(await store.inFlight('ep', T0 + 50)).toBe(2)
  })

  it.skipIf(skip)('a lease expires by itself after its TTL (an instance died), unless renewed', async () => {
    await setup()
    const lim = { concurrency: 1 }
    expect((await admit('ep', 'dead', T0, lim)).ok).toBe(true)
    expect((await admit('ep', 'x', T0 + 4999, lim)).ok).toBe(false)
    expect((await admit('ep', 'x', T0 + 5000, lim)).ok).toBe(true)
    await store.renew('ep', 'x', T0 + 9000, 5000)
    expect((await admit('ep', 'y', T0 + 12_000, lim)).ok).toBe(false)
    expect((await admit('ep', 'y', T0 + 14_000, lim)).ok).toBe(true)
    // A released lease is not brought back by a late renew.
    await settle('ep', 'y', T0 + 14_001, lim, 0, 0)
    await store.renew('ep', 'y', T0 + 14_002, 5000)
    expect(await store.inFlight('ep', T0 + 14_003)).toBe(0)
  })

  it.skipIf(skip)(
    'a request limit holds over a sliding window and says when the oldest entry leaves',
    async () => {
      await setup()
      const lim = { requests: 3 }
      for (const [i, dt] of [0, 10, 20].entries())
        expect((await admit('ep', `r${i}`, T0 + dt, lim)).ok).toBe(true)
      expect(await admit('ep', 'r3', T0 + 30, lim)).toEqual({
        ok: false,
        limit: 'requests',
        retryAfterMs: 970,
      })
      // Refusals do not take a slot.
      expect(await admit('ep', 'r3', T0 + 999, lim)).toEqual({
        ok: false,
        limit: 'requests',
        retryAfterMs: 1,
      })
      expect((await admit('ep', 'r3', T0 + 1000, lim)).ok).toBe(true)
      expect(await admit('ep', 'r4', T0 + 1001, lim)).toEqual({
        ok: false,
        limit: 'requests',
        retryAfterMs: 9,
      })
    },
  )

  it.skipIf(skip)('tokens are reserved from the estimate and reconciled with real usage', async () => {
    await setup()
    const lim = { tokens: 100 }
    expect((await admit('ep', 'a', T0, lim, 60)).ok).toBe(true)
    expect(await admit('ep', 'b', T0 + 100, lim, 60)).toEqual({
      ok: false,
      limit: 'tokens',
      retryAfterMs: 900,
    })
    await settle('ep', 'a', T0 + 200, lim, 60, 10)
    expect((await admit('ep', 'b', T0 + 300, lim, 60)).ok).toBe(true)
    // 10 + 60 in the window: 40 more would pass 100; 30 fits.
    expect((await admit('ep', 'c', T0 + 400, lim, 40)).ok).toBe(false)
    expect((await admit('ep', 'c', T0 + 400, lim, 30)).ok).toBe(true)
    // b and c stay until T0+1300/1400: retry when enough of them has left.
    expect(await admit('ep', 'd', T0 + 1100, lim, 80)).toEqual({
      ok: false,
      limit: 'tokens',
      retryAfterMs: 300,
    })
  })

  it.skipIf(skip)('an estimate larger than the token limit runs alone in an empty window', async () => {
    await setup()
    const lim = { tokens: 100 }
    expect((await admit('ep', 'big', T0, lim, 500)).ok).toBe(true)
    expect(await admit('ep', 'small', T0 + 1, lim, 1)).toEqual({
      ok: false,
      limit: 'tokens',
      retryAfterMs: 999,
    })
    expect((await admit('ep', 'small', T0 + 1000, lim, 1)).ok).toBe(true)
  })

  it.skipIf(skip)(
    'a token budget is spent per period, reconciled, and renewed when the period rolls over',
    async () => {
      await setup()
      const period = 10_000
      const start = Math.ceil(T0 / period) * period
      const lim = { budget: 100, budgetPeriodMs: period }
      expect((await admit('ep', 'a', start + 1, lim, 80)).ok).toBe(true)
      expect((await admit('ep', 'b', start + 2, lim, 80)).ok).toBe(true)
      expect(await admit('ep', 'c', start + 3, lim, 1)).toEqual({
        ok: false,
        limit: 'budget',
        retryAfterMs: 9997,
      })
      await settle('ep', 'a', start + 4, lim, 80, 5)
      await settle('ep', 'b', start + 5, lim, 80, 5)
      expect((await admit('ep', 'c', start + 6, lim, 90)).ok).toBe(true)
      expect((await admit('ep', 'd', start + 7, lim, 1)).ok).toBe(false)
      expect((await admit('ep', 'd', start + period, lim, 1)).ok).toBe(true)
    },
  )

  it.skipIf(skip)(
    'every limit of an endpoint is checked before any is reserved, and keys are independent',
    async () => {
      await setup()
      const lim = { concurrency: 5, requests: 1 }
      expect((await admit('ep1', 'a', T0, lim)).ok).toBe(true)
      expect((await admit('ep1', 'b', T0 + 1, lim)).ok).toBe(false)
      // b took no lease although the concurrency check passed.
      expect(await store.inFlight('ep1', T0 + 2)).toBe(1)
      expect((await admit('ep2', 'b', T0 + 2, lim)).ok).toBe(true)
    },
  )

  it.skipIf(skip)('values with a TTL expire; ifAbsent takes a lock once', async () => {
    await setup()
    expect(await store.set('leader', 'me', 50, true)).toBe(true)
    expect(await store.set('leader', 'you', 50, true)).toBe(false)
    expect(await store.get('leader')).toBe('me')
    await f.pass(80)
    expect(await store.get('leader')).toBeNull()
    expect(await store.set('config', '{"a":1}', null)).toBe(true)
    expect(await store.get('config')).toBe('{"a":1}')
    await store.delete('config')
    expect(await store.get('config')).toBeNull()
  })

  it.skipIf(skip)('a published notice reaches every subscribed instance', async () => {
    await setup()
    const other = f.make()
    await connected(other)
    const got: StoreMessage[] = []
    other.subscribe((m) => got.push(m))
    const message: StoreMessage = { type: 'config', from: 'instance-a', version: 'v2' }
    // The subscriber connection may come up a moment after the command one.
    for (let i = 0; i < 100 && got.length === 0; i++) {
      await store.publish(message)
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(got[0]).toEqual(message)
  })

  it.skipIf(skip)('concurrent admissions from several instances never pass the limit (atomic)', async () => {
    await setup()
    const instances = [store, f.make(), f.make(), f.make()]
    await Promise.all(instances.map(connected))
    const lim = { concurrency: 2, requests: 5 }
    const all = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (instances[i % instances.length] as Store).admit({
          key: 'hot2',
          id: `id${i}`,
          now: T0,
          limits: { ...none, ...lim },
          tokens: 0,
          windowMs: 1000,
          leaseTtlMs: 5000,
        }),
      ),
    )
    expect(all.filter((r) => r.ok).length).toBe(2)
    expect(await store.inFlight('hot2', T0)).toBe(2)
  })
})

describe('resilient store: an admission that answers after its budget', () => {
  /** A shared store whose admissions answer only when the test says so; records its settlements. */
  function slowShared() {
    const answers: ((r: { ok: true } | { ok: false; limit: 'requests'; retryAfterMs: number }) => void)[] = []
    const settled: { id: string; used: number; estimate: number }[] = []
    const shared: Store = {
      kind: 'redis',
      admit: () => new Promise((resolve) => answers.push(resolve)),
      settle: async (input) => {
        settled.push({ id: input.id, used: input.used, estimate: input.estimate })
      },
      renew: async () => {},
      inFlight: async () => 0,
      set: async () => true,
      get: async () => null,
      delete: async () => {},
      publish: async () => {},
      subscribe: () => () => {},
      close: async () => {},
    }
    return { shared, answers, settled }
  }
  const input = (id: string) => ({
    key: 'ep',
    id,
    now: T0,
    limits: { ...none, concurrency: 1 },
    tokens: 30,
    windowMs: 1000,
    leaseTtlMs: 5000,
  })

  it('is admitted locally, and a late admission in Redis is released there at once; the local lease settles locally', async () => {
    const { shared, answers, settled } = slowShared()
    const fallbacks: string[] = []
    const store = new ResilientStore(shared, 20, {
      fallback: (_e, op) => fallbacks.push(op),
      rejoined: () => {},
    })
    expect(await store.admit(input('a'))).toEqual({ ok: true })
    expect(fallbacks).toEqual(['admit'])
    expect(await store.local.inFlight('ep', T0)).toBe(1)
    // Redis admits it after all: that lease is given back with nothing used.
    answers[0]?.({ ok: true })
    await new Promise((r) => setTimeout(r, 0))
    expect(settled).toEqual([{ id: 'a', used: 0, estimate: 30 }])
    // The request's own settlement goes where it was admitted (local), never to Redis.
    await store.settle({ key: 'ep', id: 'a', now: T0 + 5, limits: input('a').limits, estimate: 30, used: 12 })
    expect(await store.local.inFlight('ep', T0 + 5)).toBe(0)
    expect(settled).toHaveLength(1)
    await store.close()
  })

  it('a late refusal releases nothing', async () => {
    const { shared, answers, settled } = slowShared()
    const store = new ResilientStore(shared, 20, { fallback: () => {}, rejoined: () => {} })
    expect((await store.admit(input('b'))).ok).toBe(true)
    answers[0]?.({ ok: false, limit: 'requests', retryAfterMs: 100 })
    await new Promise((r) => setTimeout(r, 0))
    expect(settled).toEqual([])
    await store.close()
  })
})
