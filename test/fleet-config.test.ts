/**
 * Config and circuits across instances, on real node:http stand-ins and a real redis-server: the last
 * good config survives a restart (file and Redis) and beats env when the admin is down at start; a
 * config change seen by one instance is used by all within 1 s; `admin.watchPath` applies a change
 * without waiting for the TTL; a circuit opened by one instance is honoured by another within 1 s.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import type { Store } from '../src/store/types.js'
import { startAdminServer, startOllamaServer } from '../src/testing/index.js'
import { collect } from './helpers/events.js'
import { until } from './helpers/manual-clock.js'
import { type RedisServer, redisAvailable, startRedis } from './helpers/redis-server.js'

const hasRedis = redisAvailable()
let redis: RedisServer | null = null
const dir = mkdtempSync(join(tmpdir(), 'llm-router-fleet-'))
beforeAll(async () => {
  if (hasRedis) redis = await startRedis()
}, 20_000)
afterAll(async () => {
  await redis?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
})

let seq = 0
function makeRouter(options: Record<string, unknown>, stores?: Store[]): LLMRouter {
  const router = createLLMRouter(
    { env: {}, metrics: false, ...options },
    stores ? { fleet: { onStore: (s) => stores.push(s) } } : {},
  )
  cleanups.push(() => router.close())
  return router
}

/** Listens on 127.0.0.1 (port 0), closed after the test; the base URL. */
async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function rec(model: string, url: string) {
  return { model_name: model, backend_type: 'ollama' as const, endpoint_url: url, enabled: true, priority: 1 }
}

describe('the last good config survives a restart', () => {
  it('admin.snapshotFile: a router started while the admin is down serves it as stale, not env', async () => {
    const ollama = await startOllamaServer({ models: ['saved-model'] })
    cleanups.push(() => ollama.stop())
    const admin = await startAdminServer({ records: [rec('saved-model', ollama.url)] })
    cleanups.push(() => admin.stop())
    const file = join(dir, `last-good-${++seq}.json`)
    const first = makeRouter({ adminUrl: admin.url, admin: { snapshotFile: file } })
    await first.generate({ model: 'saved-model', prompt: 'hi' })
    await until(() => {
      try {
        return readFileSync(file, 'utf8').includes('saved-model')
      } catch {
        return false
      }
    }, 'the snapshot file')
    await first.close()
    await admin.stop()

    const env = { LLM_ROUTER_BACKENDS: JSON.stringify([rec('env-model', ollama.url)]) }
    const second = makeRouter({
      adminUrl: admin.url,
      env,
      admin: { snapshotFile: file, retryBaseMs: 60_000 },
    })
    const restored = collect(second, 'config:restored')
    const fellBack = collect(second, 'config:fallback')
    const result = await second.generate({ model: 'saved-model', prompt: 'hi' })
    expect(result.model).toBe('saved-model')
    expect(second.config()?.origin).toBe('stale')
    expect(second.config()?.records.map((r) => r.model_name)).toEqual(['saved-model'])
    expect(restored).toEqual([{ from: 'file', records: 1, fetchedAt: expect.any(Number) }])
    expect(fellBack).toEqual([])
  })

  it('a snapshot file that is not a saved config is ignored: env records as before', async () => {
    const ollama = await startOllamaServer({ models: ['env-model'] })
    cleanups.push(() => ollama.stop())
    const admin = await startAdminServer({ records: [] })
    cleanups.push(() => admin.stop())
    await admin.stop()
    const file = join(dir, `garbage-${++seq}.json`)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(file, '{"version":1,"records":[{"model_name":"x"}]}')
    const env = { LLM_ROUTER_BACKENDS: JSON.stringify([rec('env-model', ollama.url)]) }
    const router = makeRouter({
      adminUrl: admin.url,
      env,
      admin: { snapshotFile: file, retryBaseMs: 60_000 },
    })
    await router.generate({ model: 'env-model', prompt: 'hi' })
    expect(router.config()?.origin).toBe('env')
  })

  it.skipIf(!hasRedis)(
    'in Redis: a new instance started during an admin outage gets the config another one fetched',
    async () => {
      const ollama = await startOllamaServer({ models: ['shared-model'] })
      cleanups.push(() => ollama.stop())
      const admin = await startAdminServer({ records: [rec('shared-model', ollama.url)] })
      cleanups.push(() => admin.stop())
      const redisOpt = {
        url: (redis as RedisServer).url,
        prefix: `fleet-config-${process.pid}-${++seq}:`,
        timeoutMs: 2000,
      }
      const stores: Store[] = []
      const first = makeRouter({ adminUrl: admin.url, redis: redisOpt }, stores)
      await first.generate({ model: 'shared-model', prompt: 'hi' })
      await admin.stop()
      // Saving is beside the request: wait until the key is there.
      for (let i = 0; i < 100 && (await stores[0]!.get('config:last-good')) === null; i++)
        await new Promise((r) => setTimeout(r, 10))
      const stores2: Store[] = []
      const second = makeRouter(
        { adminUrl: admin.url, redis: redisOpt, admin: { retryBaseMs: 60_000 } },
        stores2,
      )
      // Its first config load reads Redis: let the client connect first (a cold start on a loaded
      // machine may take longer than the 1 s startup budget, and then env records would be used).
      await until(() => stores2.every((s) => s.warm === true), 'Redis connected')
      const restored = collect(second, 'config:restored')
      const result = await second.generate({ model: 'shared-model', prompt: 'hi' })
      expect(result.model).toBe('shared-model')
      expect(second.config()?.origin).toBe('stale')
      expect(restored[0]?.from).toBe('redis')
    },
  )
})

describe.skipIf(!hasRedis)('a fleet sharing Redis', () => {
  it('a config change one instance fetched is used by the others within 1 s (not after their TTL)', async () => {
    const ollama = await startOllamaServer({ models: ['old', 'new'] })
    cleanups.push(() => ollama.stop())
    const admin = await startAdminServer({ records: [rec('old', ollama.url)] })
    cleanups.push(() => admin.stop())
    const redisOpt = {
      url: (redis as RedisServer).url,
      prefix: `fleet-notice-${process.pid}-${++seq}:`,
      timeoutMs: 2000,
    }
    const stores: Store[] = []
    const a = makeRouter({ adminUrl: admin.url, redis: redisOpt, cacheTtlMs: 600_000 }, stores)
    const b = makeRouter({ adminUrl: admin.url, redis: redisOpt, cacheTtlMs: 600_000 }, stores)
    await Promise.all([a.refresh(), b.refresh()])
    await until(() => stores.every((s) => s.warm === true), 'Redis connected')
    // Subscriptions come up just after the connection: give them a moment.
    await new Promise((r) => setTimeout(r, 100))
    admin.setRecords([rec('new', ollama.url)])
    const t0 = performance.now()
    await a.refresh()
    await until(() => b.config()?.records[0]?.model_name === 'new', 'b to use the new config', 1000)
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('a circuit opened by one instance is honoured by another within 1 s', async () => {
    const dead = await startOllamaServer({ models: ['m'] })
    const live = await startOllamaServer({ models: ['m'] })
    cleanups.push(
      () => dead.stop(),
      () => live.stop(),
    )
    const deadUrl = dead.url
    await dead.stop()
    const records = [
      { ...rec('m', deadUrl), priority: 1 },
      { ...rec('m', live.url), priority: 2 },
    ]
    const redisOpt = {
      url: (redis as RedisServer).url,
      prefix: `fleet-circuit-${process.pid}-${++seq}:`,
      timeoutMs: 2000,
    }
    const options = {
      env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) },
      redis: redisOpt,
      circuitBreaker: { threshold: 1, cooldownMs: 60_000 },
      retry: { maxRetries: 0 },
    }
    const stores: Store[] = []
    const a = makeRouter(options, stores)
    const b = makeRouter(options, stores)
    await until(() => stores.every((s) => s.warm === true), 'Redis connected')
    await new Promise((r) => setTimeout(r, 100))
    const opened = collect(b, 'circuit:open')
    const r1 = await a.generate({ model: 'm', prompt: 'hi' })
    expect(r1.attempts[0]).toMatchObject({ endpoint: deadUrl, code: 'BACKEND_UNREACHABLE' })
    await until(() => opened.length === 1, 'b to see the open circuit', 1000)
    expect(b.circuits().find((c) => c.endpoint === `ollama ${deadUrl}`)?.state).toBe('open')
    const r2 = await b.generate({ model: 'm', prompt: 'hi' })
    expect(r2.attempts[0]).toMatchObject({ endpoint: deadUrl, code: 'CIRCUIT_OPEN', attempt: 0 })
    expect(r2.endpoint).toBe(live.url)
  })
})

describe('admin.watchPath', () => {
  it('an event on the change stream refetches at once; comments are keep-alives', async () => {
    const ollama = await startOllamaServer({ models: ['v1', 'v2'] })
    cleanups.push(() => ollama.stop())
    let records = [rec('v1', ollama.url)]
    let fetches = 0
    const streams: ServerResponse[] = []
    const server = createServer((req, res) => {
      if (req.url === '/api/llm-backends/public') {
        fetches++
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(records))
      } else if (req.url === '/changes') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(': hello\n\n')
        streams.push(res)
      } else {
        res.writeHead(404).end()
      }
    })
    const url = await listen(server)
    const router = makeRouter({ adminUrl: url, cacheTtlMs: 600_000, admin: { watchPath: '/changes' } })
    await router.refresh()
    await until(() => streams.length === 1, 'the change stream')
    const before = fetches
    streams[0]!.write(': keep-alive\n\n')
    await new Promise((r) => setTimeout(r, 100))
    expect(fetches).toBe(before)
    records = [rec('v2', ollama.url)]
    const t0 = performance.now()
    streams[0]!.write('event: changed\ndata: {"id":7}\n\n')
    await until(() => router.config()?.records[0]?.model_name === 'v2', 'the new config', 1000)
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(fetches).toBe(before + 1)
  })
})

describe.skipIf(!hasRedis)('session pins across a fleet', () => {
  it('a session moved by one instance is kept there by another that never saw it (not placed by its hash)', async () => {
    const servers = await Promise.all([0, 1, 2].map(() => startOllamaServer({ models: ['m'] })))
    for (const s of servers) cleanups.push(() => s.stop())
    const records = servers.map((s) => rec('m', s.url))
    const options = {
      env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) },
      redis: {
        url: (redis as RedisServer).url,
        prefix: `fleet-pins-${process.pid}-${++seq}:`,
        timeoutMs: 2000,
      },
      // No circuit opens: the other instance must follow the pin, not skip a member with an open circuit.
      circuitBreaker: { threshold: 100 },
      retry: { maxRetries: 0 },
    }
    const ask = (router: LLMRouter) =>
      router.generate({ model: 'm', prompt: 'hi', metadata: { sessionId: 'conversation-7' } })
    const stores: Store[] = []
    const a = makeRouter(options, stores)
    await until(() => stores.every((s) => s.warm === true), 'Redis connected')
    const home = (await ask(a)).endpoint
    const homeServer = servers.find((s) => s.url === home) as (typeof servers)[number]
    await homeServer.setFault('down')
    const moved = (await ask(a)).endpoint
    expect(moved).not.toBe(home)
    await homeServer.clearFault()
    // The pin is written beside the request.
    let shared: string | null | undefined = null
    for (let i = 0; i < 100 && shared !== moved; i++) {
      shared = await stores[0]?.get('pin:m|1:conversation-7')
      if (shared !== moved) await new Promise((r) => setTimeout(r, 10))
    }
    expect(shared).toBe(moved)

    const b = makeRouter(options, stores)
    await until(() => stores.every((s) => s.warm === true), 'Redis connected')
    const fromB = await ask(b)
    expect(fromB.endpoint).toBe(moved)
    // Without the fleet, the hash places the session at home again (so the check above can fail).
    const alone = makeRouter({ env: options.env })
    expect((await ask(alone)).endpoint).toBe(home)
  })

  it('Redis unreachable: pins stay local, a moved session stays moved after its member is back', async () => {
    const servers = await Promise.all([0, 1, 2].map(() => startOllamaServer({ models: ['m'] })))
    for (const s of servers) cleanups.push(() => s.stop())
    const gone = await startOllamaServer({ models: ['m'] })
    const refused = gone.url.replace('http', 'redis')
    await gone.stop()
    const router = makeRouter({
      env: { LLM_ROUTER_BACKENDS: JSON.stringify(servers.map((s) => rec('m', s.url))) },
      redis: { url: refused, prefix: 'fleet-pins-down:' },
      circuitBreaker: { threshold: 100 },
      retry: { maxRetries: 0 },
    })
    const fallbacks = collect(router, 'store:fallback')
    const ask = () => router.generate({ model: 'm', prompt: 'hi', metadata: { sessionId: 'conversation-9' } })
    const home = (await ask()).endpoint
    const homeServer = servers.find((s) => s.url === home) as (typeof servers)[number]
    await homeServer.setFault('down')
    const moved = (await ask()).endpoint
    expect(moved).not.toBe(home)
    await homeServer.clearFault()
    expect((await ask()).endpoint).toBe(moved)
    expect(fallbacks.length).toBeGreaterThan(0)
  })
})

describe.skipIf(!hasRedis)('health probes across a fleet', () => {
  it('one instance probes an endpoint, the others use its results; another takes over when it stops', async () => {
    let probes = 0
    let up = true
    const server = createServer((req, res) => {
      req.resume()
      if (req.url === '/api/version') probes++
      res.writeHead(up ? 200 : 500, { 'content-type': 'application/json' })
      res.end(up ? '{"version":"0.5.0"}' : '{"error":"down"}')
    })
    const url = await listen(server)
    const options = {
      env: { LLM_ROUTER_BACKENDS: JSON.stringify([rec('m', url)]) },
      redis: {
        url: (redis as RedisServer).url,
        prefix: `fleet-probes-${process.pid}-${++seq}:`,
        timeoutMs: 2000,
      },
      healthCheck: { intervalMs: 100, jitter: 0 },
    }
    const stores: Store[] = []
    const routers = [makeRouter(options, stores), makeRouter(options, stores), makeRouter(options, stores)]
    await until(() => stores.length === 3 && stores.every((s) => s.warm === true), 'Redis connected')
    for (const r of routers) await r.refresh()
    await until(() => routers.every((r) => r.health()[0]?.state === 'up'), 'all up')
    const before = probes
    await new Promise((r) => setTimeout(r, 1000))
    const inASecond = probes - before
    // One prober at 100 ms: about 10 a second (three probing on their own: about 30).
    expect(inASecond).toBeGreaterThanOrEqual(5)
    expect(inASecond).toBeLessThanOrEqual(15)

    up = false
    await until(
      () => routers.every((r) => r.health()[0]?.inRotation === false),
      'all take it out of rotation',
      2000,
    )
    // Whichever led stops: the others take over (its claim expires), and see the endpoint come back.
    await routers[0]?.close()
    await routers[1]?.close()
    up = true
    await until(
      () => routers[2]?.health()[0]?.inRotation === true,
      'the last one puts it back in rotation',
      2000,
    )
  })
})
