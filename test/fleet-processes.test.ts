/**
 * Several Node processes, one redis-server: the fleet-wide limits hold across processes (max 2 in
 * flight under concurrent load from all of them; an RPM limit over a short window), a circuit opened
 * in one process is honoured by another within 1 s, a config change one process fetched is used by all
 * within 1 s, and killing Redis mid-run and restarting it loses
 * no request and leaks no lease.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../src/store/redis.js'
import { startAdminServer } from '../src/testing/index.js'
import { root } from './helpers/build.js'
import { bundleForChild, type ChildBundle } from './helpers/child-bundle.js'
import { type RedisServer, redisAvailable, startRedis } from './helpers/redis-server.js'
import { cleanEnv } from './helpers/run.js'

const hasRedis = redisAvailable()

// The child: a router on the shared Redis; waits for "go" on stdin, sends its requests, prints a report.
const CHILD = `
import { createLLMRouter } from ${JSON.stringify(join(root, 'src/index.ts'))}
const cfg = JSON.parse(process.env.FLEET_TEST)
let store = null
const router = createLLMRouter(
  { env: { LLM_ROUTER_BACKENDS: JSON.stringify(cfg.records) }, metrics: false, retry: { maxRetries: 0 },
    redis: { url: cfg.redisUrl, prefix: cfg.prefix, timeoutMs: cfg.timeoutMs }, ...cfg.options },
  { fleet: { limitWindowMs: cfg.windowMs, onStore: (s) => { store = s } } },
)
const events = { fallback: 0, rejoined: 0 }
router.on('store:fallback', () => events.fallback++)
router.on('store:rejoined', () => events.rejoined++)
const circuitOpened = []
router.on('circuit:open', (info) => circuitOpened.push({ endpoint: info.endpoint, at: Date.now() }))
while (!store.warm) await new Promise((r) => setTimeout(r, 10))
if (cfg.configMode) {
  // The admin's first config is loaded, and the notice subscription is up (just after the connection).
  await router.refresh()
  await new Promise((r) => setTimeout(r, 100))
}
process.stdout.write('ready\\n')
await new Promise((r) => process.stdin.once('data', r))
const results = []
const config = { fetchedAt: null, seenAt: null }
let next = 0
async function lane() {
  while (next < cfg.requests) {
    next++
    try {
      const r = await router.generate({ model: 'm', prompt: 'hi', timeoutMs: 20000 })
      results.push({ ok: true, endpoint: r.endpoint })
    } catch (e) {
      results.push({ ok: false, code: e.code, message: e.message })
    }
    if (cfg.pauseMs) await new Promise((r) => setTimeout(r, cfg.pauseMs))
  }
}
if (cfg.configMode) {
  // The fetcher refetches the changed config; the others (a 10 min TTL) only hear of it through Redis.
  if (cfg.fetcher) {
    await router.refresh()
    config.fetchedAt = Date.now()
  }
  const giveUpAt = Date.now() + 5000
  while (router.config()?.records[0]?.model_name !== 'new' && Date.now() < giveUpAt)
    await new Promise((r) => setTimeout(r, 5))
  config.seenAt = Date.now()
  try {
    const r = await router.generate({ model: 'new', prompt: 'hi' })
    results.push({ ok: true, endpoint: r.endpoint })
  } catch (e) {
    results.push({ ok: false, code: e.code, message: e.message })
  }
} else if (cfg.waitForCircuit) {
  // The watcher: sends nothing until another process's circuit notice arrives, then one request.
  while (circuitOpened.length === 0) await new Promise((r) => setTimeout(r, 5))
  const r = await router.generate({ model: 'm', prompt: 'hi' })
  results.push({ ok: true, endpoint: r.endpoint, firstCode: r.attempts[0].code })
} else {
  // The opener starts after a delay, so the watcher's subscription is up by then.
  if (cfg.startDelayMs) await new Promise((r) => setTimeout(r, cfg.startDelayMs))
  await Promise.all(Array.from({ length: cfg.lanes }, lane))
}
// Let settlements land, then count the leases this process still holds locally (taken during an outage).
await new Promise((r) => setTimeout(r, 100))
const leases = {}
for (const rec of cfg.records) leases[rec.endpoint_url] = await store.local.inFlight('m|' + rec.endpoint_url, Date.now())
process.stdout.write(JSON.stringify({ results, events, leases, circuitOpened, config }) + '\\n')
await router.close()
process.exit(0)
`

interface Report {
  circuitOpened: { endpoint: string; at: number }[]
  results: { ok: boolean; endpoint?: string; code?: string; message?: string; firstCode?: string }[]
  events: { fallback: number; rejoined: number }
  leases: Record<string, number>
  config: { fetchedAt: number | null; seenAt: number | null }
}

let redis: RedisServer | null = null
let bundle: ChildBundle | null = null
beforeAll(async () => {
  if (!hasRedis) return
  redis = await startRedis()
  bundle = await bundleForChild('llm-router-fleet-', CHILD)
}, 60_000)
afterAll(async () => {
  await redis?.stop()
  await bundle?.remove()
})

/** An Ollama-shaped server that answers after `delayMs` and records how many requests overlapped. */
async function backend(delayMs: number) {
  let inFlight = 0
  let maxInFlight = 0
  let served = 0
  const server: Server = createServer((req, res) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    req.resume()
    setTimeout(() => {
      inFlight--
      served++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ model: 'm', response: 'ok', done: true, prompt_eval_count: 1, eval_count: 1 }))
    }, delayMs)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get maxInFlight() {
      return maxInFlight
    },
    get served() {
      return served
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

let seq = 0
/** Leases left in Redis for the fleet's endpoint (after every process exited: must be 0). */
async function sharedLeases(prefix: string, endpoint: string): Promise<number> {
  const store = new RedisStore({ url: (redis as RedisServer).url, prefix })
  try {
    return await store.inFlight(`m|${endpoint}`, Date.now())
  } finally {
    await store.close()
  }
}

async function runFleet(
  processes: number,
  cfg: Record<string, unknown>,
  during?: () => Promise<void>,
  perProcess: Record<string, unknown>[] = [],
  beforeGo?: () => void,
): Promise<{ reports: Report[]; prefix: string }> {
  const prefix = `procs-${process.pid}-${++seq}:`
  const env = {
    FLEET_TEST: JSON.stringify({
      redisUrl: (redis as RedisServer).url,
      prefix,
      timeoutMs: 2000,
      windowMs: 60_000,
      lanes: 4,
      requests: 8,
      pauseMs: 0,
      ...cfg,
    }),
  }
  const children: ChildProcess[] = []
  const outputs: string[] = []
  const readies: Promise<void>[] = []
  const exits: Promise<void>[] = []
  for (let i = 0; i < processes; i++) {
    const own = perProcess[i]
    const childEnv = own ? { FLEET_TEST: JSON.stringify({ ...JSON.parse(env.FLEET_TEST), ...own }) } : env
    // stdin is a pipe: every child starts its requests on the same "go".
    const child = spawn(process.execPath, [(bundle as ChildBundle).file], {
      cwd: root,
      env: cleanEnv(childEnv),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    child.stdin?.on('error', () => {})
    children.push(child)
    outputs.push('')
    let err = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d
    })
    readies.push(
      new Promise((resolve, reject) => {
        child.stdout?.setEncoding('utf8').on('data', (d: string) => {
          outputs[i] += d
          if (outputs[i]?.startsWith('ready\n')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`child ${i} exited ${code} before ready: ${err}`)))
      }),
    )
    exits.push(
      new Promise((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`child ${i} exited ${code}: ${err}`)),
        ),
      ),
    )
  }
  try {
    await Promise.all(readies)
    beforeGo?.()
    for (const child of children) child.stdin?.write('go\n')
    if (during) await during()
    await Promise.all(exits)
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
  return { reports: outputs.map((o) => JSON.parse(o.slice('ready\n'.length).trim()) as Report), prefix }
}

// Real time and processes: fast (a few hundred ms each), but not through the mocked network.
describe.skipIf(!hasRedis)('a fleet of processes on one Redis', () => {
  it('max_concurrency 2 holds across 3 processes under concurrent load; every request answers', async () => {
    const b = await backend(40)
    try {
      const { reports, prefix } = await runFleet(3, {
        records: [{ model_name: 'm', backend_type: 'ollama', endpoint_url: b.url, max_concurrency: 2 }],
      })
      const all = reports.flatMap((r) => r.results)
      expect(all).toHaveLength(24)
      expect(all.filter((r) => !r.ok)).toEqual([])
      expect(b.maxInFlight).toBe(2)
      expect(reports.map((r) => r.leases[b.url])).toEqual([0, 0, 0])
      expect(await sharedLeases(prefix, b.url)).toBe(0)
    } finally {
      await b.close()
    }
  }, 30_000)

  it('an rpm limit holds across processes over a short window; the rest go to the next candidate', async () => {
    const a = await backend(5)
    const b = await backend(5)
    try {
      const { reports } = await runFleet(3, {
        windowMs: 10_000,
        records: [
          { model_name: 'm', backend_type: 'ollama', endpoint_url: a.url, priority: 1, rpm: 5 },
          { model_name: 'm', backend_type: 'ollama', endpoint_url: b.url, priority: 2 },
        ],
      })
      const all = reports.flatMap((r) => r.results)
      expect(all.filter((r) => !r.ok)).toEqual([])
      expect(a.served).toBe(5)
      expect(b.served).toBe(19)
    } finally {
      await a.close()
      await b.close()
    }
  }, 30_000)

  it('a circuit opened in one process is honoured by another within 1 s', async () => {
    const dead = await backend(1)
    const deadUrl = dead.url
    await dead.close()
    const live = await backend(1)
    try {
      const { reports } = await runFleet(
        2,
        {
          records: [
            { model_name: 'm', backend_type: 'ollama', endpoint_url: deadUrl, priority: 1 },
            { model_name: 'm', backend_type: 'ollama', endpoint_url: live.url, priority: 2 },
          ],
          options: { circuitBreaker: { threshold: 1, cooldownMs: 60_000 } },
          lanes: 1,
          requests: 1,
        },
        undefined,
        [{ startDelayMs: 500 }, { waitForCircuit: true }],
      )
      const [opener, watcher] = reports as [Report, Report]
      const openedHere = opener.circuitOpened.find((c) => c.endpoint === `ollama ${deadUrl}`)
      const seenThere = watcher.circuitOpened.find((c) => c.endpoint === `ollama ${deadUrl}`)
      expect(opener.results).toMatchObject([{ ok: true, endpoint: live.url }])
      expect(seenThere!.at - openedHere!.at).toBeLessThan(1000)
      // The watcher skipped the dead endpoint without connecting.
      expect(watcher.results).toEqual([{ ok: true, endpoint: live.url, firstCode: 'CIRCUIT_OPEN' }])
    } finally {
      await live.close()
    }
  }, 30_000)

  it('a config change one process fetched is used by the others within 1 s (their TTL is 10 min)', async () => {
    const b = await backend(1)
    const rec = (model: string) => ({
      model_name: model,
      backend_type: 'ollama',
      endpoint_url: b.url,
      enabled: true,
    })
    const admin = await startAdminServer({ records: [rec('old')] })
    try {
      const { reports } = await runFleet(
        3,
        { configMode: true, records: [], options: { adminUrl: admin.url, cacheTtlMs: 600_000 } },
        undefined,
        [{ fetcher: true }],
        // Every child has loaded the old config: now the admin changes, before "go".
        () => admin.setRecords([rec('new')]),
      )
      const fetchedAt = reports[0]?.config.fetchedAt as number
      expect(fetchedAt).not.toBeNull()
      for (const r of reports) {
        expect(r.results).toEqual([{ ok: true, endpoint: b.url }])
        expect((r.config.seenAt as number) - fetchedAt).toBeLessThan(1000)
      }
    } finally {
      await admin.stop()
      await b.close()
    }
  }, 30_000)

  it('Redis killed mid-run and restarted: no request lost, no lease leaked, fallback and rejoin seen', async () => {
    const b = await backend(10)
    try {
      const { reports, prefix } = await runFleet(
        3,
        {
          timeoutMs: 100,
          lanes: 2,
          requests: 100,
          pauseMs: 20,
          records: [{ model_name: 'm', backend_type: 'ollama', endpoint_url: b.url, max_concurrency: 2 }],
        },
        async () => {
          const wait = async (n: number) => {
            while (b.served < n) await new Promise((r) => setTimeout(r, 5))
          }
          await wait(20)
          await (redis as RedisServer).kill()
          await new Promise((r) => setTimeout(r, 300))
          await (redis as RedisServer).restart()
        },
      )
      const all = reports.flatMap((r) => r.results)
      expect(all).toHaveLength(300)
      expect(all.filter((r) => !r.ok)).toEqual([])
      expect(b.served).toBe(300)
      expect(await sharedLeases(prefix, b.url)).toBe(0)
      for (const r of reports) {
        expect(r.leases[b.url]).toBe(0)
        expect(r.events.fallback).toBeGreaterThanOrEqual(1)
        expect(r.events.rejoined).toBeGreaterThanOrEqual(1)
      }
    } finally {
      await b.close()
    }
  }, 30_000)
})
