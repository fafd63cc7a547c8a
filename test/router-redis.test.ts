/**
 * Routers sharing a real redis-server: a limit holds across routers (instances), and Redis going away
 * mid-run loses no request, falls back with an event, and rejoins when it is back.
 */
import { HttpResponse, http } from 'msw'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import type { Store } from '../src/store/types.js'
import type { RouterEvents } from '../src/types.js'
import { collect } from './helpers/events.js'
import { ManualClock, until } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'
import { type RedisServer, redisAvailable, startRedis } from './helpers/redis-server.js'

const net = setupMockNetwork()
const A = 'http://a.test:11434'
const B = 'http://b.test:11434'
const hasRedis = redisAvailable()

let redis: RedisServer | null = null
beforeAll(async () => {
  if (hasRedis) redis = await startRedis()
}, 20_000)
afterAll(async () => {
  await redis?.stop()
})

let routers: LLMRouter[] = []
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
})

let seq = 0
function fleet(n: number, records: Record<string, unknown>[], clock: ManualClock) {
  const prefix = `router-redis-${process.pid}-${++seq}:`
  const env = {
    LLM_ROUTER_BACKENDS: JSON.stringify(
      records.map((r) => ({ backend_type: 'ollama', model_name: 'm', ...r })),
    ),
    LLM_ROUTER_REDIS_URL: (redis as RedisServer).url,
  }
  const stores: Store[] = []
  const list = Array.from({ length: n }, () => {
    const router = createLLMRouter(
      // A generous store budget: these tests are about sharing, not about the budget (a loaded CI
      // machine can take over 100 ms for a cold process's first calls).
      { env, metrics: false, redis: { url: env.LLM_ROUTER_REDIS_URL, prefix, timeoutMs: 2000 } },
      { clock, fleet: { onStore: (s) => stores.push(s) } },
    )
    routers.push(router)
    return router
  })
  return {
    routers: list,
    warm: () => until(() => stores.every((s) => s.warm === true), 'Redis connected', 10_000),
  }
}

function counting(...urls: string[]) {
  const hits = new Map<string, number>()
  for (const url of urls)
    net.use(
      http.post(`${url}/api/generate`, () => {
        hits.set(url, (hits.get(url) ?? 0) + 1)
        return HttpResponse.json({
          model: 'm',
          response: 'ok',
          done: true,
          prompt_eval_count: 3,
          eval_count: 4,
        })
      }),
    )
  return (url: string) => hits.get(url) ?? 0
}

/** Fails the test if the router ever falls back to local state. */
function connected(router: LLMRouter): RouterEvents['store:fallback'][] {
  return collect(router, 'store:fallback')
}

describe.skipIf(!hasRedis)('routers sharing Redis', () => {
  it('an rpm limit holds across instances: the fleet sends rpm requests, the rest go to the next candidate', async () => {
    const hits = counting(A, B)
    const clock = new ManualClock()
    const f = fleet(
      3,
      [
        { endpoint_url: A, priority: 1, rpm: 4 },
        { endpoint_url: B, priority: 2 },
      ],
      clock,
    )
    const routers3 = f.routers
    await f.warm()
    const fallbacks = routers3.map(connected)
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (routers3[i % 3] as LLMRouter).generate({ model: 'm', prompt: 'hi' }),
      ),
    )
    expect(fallbacks.flat().map((f) => String(f.error))).toEqual([])
    expect(hits(A)).toBe(4)
    expect(hits(B)).toBe(8)
    expect(results.filter((r) => r.endpoint === A)).toHaveLength(4)
    expect(fallbacks.flat()).toEqual([])
  })

  it('Redis killed mid-run: every request still answers, store:fallback then store:rejoined, the shared limit resumes', async () => {
    const hits = counting(A, B)
    const clock = new ManualClock()
    const f = fleet(
      2,
      [
        { endpoint_url: A, priority: 1, rpm: 3 },
        { endpoint_url: B, priority: 2 },
      ],
      clock,
    )
    const [r1, r2] = f.routers as [LLMRouter, LLMRouter]
    await f.warm()
    const fell = collect(r1, 'store:fallback')
    const back = collect(r1, 'store:rejoined')
    await r1.generate({ model: 'm', prompt: 'hi' })
    await r2.generate({ model: 'm', prompt: 'hi' })
    expect(hits(A)).toBe(2)
    await (redis as RedisServer).kill()
    // Outage: answered from local state, nothing fails, each request pays at most the store budget.
    const t = performance.now()
    const during = await Promise.all(
      Array.from({ length: 6 }, () => r1.generate({ model: 'm', prompt: 'hi' })),
    )
    expect(during).toHaveLength(6)
    expect(performance.now() - t).toBeLessThan(2000)
    expect(fell).toHaveLength(1)
    // r1 alone now allows 3 locally.
    expect(during.filter((r) => r.endpoint === A)).toHaveLength(3)
    await (redis as RedisServer).restart()
    // Back: an admission after the retry pause reaches Redis again and rejoins.
    for (let i = 0; i < 100 && back.length === 0; i++) {
      await r1.generate({ model: 'm', prompt: 'hi' })
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(back.length).toBe(1)
    // Shared again: a minute later, a burst from both instances sends exactly rpm requests to A.
    clock.advance(60_000)
    const after = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? r2 : r1).generate({ model: 'm', prompt: 'hi' })),
    )
    expect(after.filter((r) => r.endpoint === A)).toHaveLength(3)
  }, 30_000)
})

/** Calls per command since the server started (INFO commandstats over a raw socket). */
async function commandCalls(port: number): Promise<Record<string, number>> {
  const { connect } = await import('node:net')
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.setEncoding('utf8')
    socket.once('error', reject)
    socket.once('connect', () => socket.write('INFO commandstats\r\n'))
    socket.on('data', (d: string) => {
      data += d
      const m = /^\$(\d+)\r\n/.exec(data)
      if (m && Buffer.byteLength(data) >= m[0].length + Number(m[1]) + 2) {
        socket.destroy()
        resolve(data)
      }
    })
  })
  const calls: Record<string, number> = {}
  for (const m of reply.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) calls[m[1] as string] = Number(m[2])
  return calls
}

describe.skipIf(!hasRedis)('Redis round trips', () => {
  it('a limited request costs one script call to admit and one to settle, nothing else', async () => {
    counting(A)
    const clock = new ManualClock()
    const f = fleet(1, [{ endpoint_url: A, rpm: 1000, tpm: 1_000_000 }], clock)
    const [router] = f.routers as [LLMRouter]
    await f.warm()
    // The first request after connecting; then measure 20 more.
    await router.generate({ model: 'm', prompt: 'hi' })
    await new Promise((r) => setTimeout(r, 50))
    const port = (redis as RedisServer).port
    const before = await commandCalls(port)
    for (let i = 0; i < 20; i++) await router.generate({ model: 'm', prompt: 'hi' })
    await new Promise((r) => setTimeout(r, 50))
    const after = await commandCalls(port)
    const delta = Object.fromEntries(
      Object.keys(after)
        .map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)] as const)
        .filter(([k, n]) => n > 0 && k !== 'info'),
    )
    // INFO counts the commands a script runs too: every other command here is one the scripts call.
    const scriptCommands = new Set([
      'zremrangebyscore',
      'zrangebyscore',
      'zcard',
      'zrange',
      'zadd',
      'zrem',
      'hget',
      'hmget',
      'hset',
      'hdel',
      'hincrby',
      'pexpire',
      'get',
      'set',
      'incrby',
    ])
    const { evalsha, ...inner } = delta
    expect(evalsha).toBe(40)
    expect(Object.keys(inner).filter((k) => !scriptCommands.has(k))).toEqual([])
  })
})

describe('Redis unreachable from the start', () => {
  it('a refused first connection falls back at once: the request answers, store:fallback says why', async () => {
    const hits = counting(A)
    const { createServer } = await import('node:net')
    // A port nothing listens on.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port
        s.close(() => resolve(p))
      })
    })
    const router = createLLMRouter(
      {
        env: {
          LLM_ROUTER_BACKENDS: JSON.stringify([
            { backend_type: 'ollama', model_name: 'm', endpoint_url: A, rpm: 5 },
          ]),
        },
        metrics: false,
        redis: { url: `redis://127.0.0.1:${port}` },
      },
      { clock: new ManualClock() },
    )
    routers.push(router)
    const fell = collect(router, 'store:fallback')
    const t = performance.now()
    const r = await router.generate({ model: 'm', prompt: 'hi' })
    expect(r.endpoint).toBe(A)
    expect(performance.now() - t).toBeLessThan(2500)
    expect(fell).toHaveLength(1)
    expect(hits(A)).toBe(1)
  })
})
