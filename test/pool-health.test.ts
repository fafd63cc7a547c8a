/**
 * Member health on real node:http stand-ins (127.0.0.1, port 0) with a manual clock for the probe
 * interval: active probes take a failing member out of rotation and bring it back after a probe
 * succeeds and one request succeeds; drain/undrain with a stream in flight; router.health();
 * OpenAI-compatible probe paths; warmth from /api/ps only for pools; close() stops probing.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLLMRouter, ErrorCode, isRouterError, type LLMRouter } from '../src/index.js'
import {
  type OllamaServer,
  type OpenAIServer,
  startAdminServer,
  startMlxServer,
  startOllamaServer,
} from '../src/testing/index.js'
import { collect } from './helpers/events.js'
import { ManualClock, until } from './helpers/manual-clock.js'

const INTERVAL = 1000
let clock: ManualClock
let servers: { stop(): Promise<void> }[] = []
let routers: LLMRouter[] = []

beforeEach(() => {
  clock = new ManualClock(Date.now())
})

afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  await Promise.all(servers.map((s) => s.stop()))
  routers = []
  servers = []
})

async function ollama(options: Parameters<typeof startOllamaServer>[0] = {}): Promise<OllamaServer> {
  const s = await startOllamaServer(options)
  servers.push(s)
  return s
}

function pool(urls: string[], extra: Record<string, unknown> = {}) {
  return urls.map((url) => ({ model_name: 'llama3.2', backend_type: 'ollama', endpoint_url: url, ...extra }))
}

/**
 * The same endpoints at priorities 1, 2, ...: tried in this order (a pool of equal priority would choose
 * among them by load, src/pool/select.ts), so a test can say which one a request reaches.
 */
function ordered(urls: string[], extra: Record<string, unknown> = {}) {
  return pool(urls, extra).map((r, i) => ({ ...r, priority: i + 1 }))
}

function router(records: unknown[], options: Record<string, unknown> = {}): LLMRouter {
  const r = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false, ...options },
    { clock },
  )
  routers.push(r)
  return r
}

const generations = (s: OllamaServer) => s.requests.filter((q) => q.path === '/api/generate').length
const probes = (s: { requests: { path: string }[] }, path: string) =>
  s.requests.filter((q) => q.path === path).length
const member = (r: LLMRouter, url: string) => r.health().find((m) => m.endpoint === url)

describe('active probes (healthCheck)', () => {
  it('a member whose probe fails gets no traffic within two probe intervals, and comes back after a probe and one request succeed', async () => {
    const [a, b] = [await ollama(), await ollama()]
    const r = router(ordered([a.url, b.url]), { healthCheck: { intervalMs: INTERVAL } })
    const down = collect(r, 'member:down')
    const up = collect(r, 'member:up')
    // Worst-case jitter: every interval is stretched by the full 10 %.
    clock.randomValue = 0.999

    expect((await r.generate({ model: 'llama3.2', prompt: 'hi' })).endpoint).toBe(a.url)
    // Members join when the config loads; each is probed at once.
    await until(() => probes(a, '/api/version') === 1 && probes(b, '/api/version') === 1, 'first probes')
    await until(() => member(r, a.url)?.lastProbe?.ok === true, 'first probe result')
    expect(member(r, a.url)).toMatchObject({ state: 'up', inRotation: true, backend: 'ollama' })

    // a's probe route fails from now on; its generations would still work, so only the probe can tell.
    await a.setFault({ type: '500-html', path: '/api/version' })
    const before = generations(a)
    await clock.advanceWhenSet(Math.round(INTERVAL * 1.1))
    await until(() => member(r, a.url)?.state === 'down', 'a marked down by its probe')
    expect(down).toEqual([
      { endpoint: a.url, backend: 'ollama', reason: expect.stringContaining('answered 500'), failures: 1 },
    ])
    const h = member(r, a.url)
    expect(h).toMatchObject({ state: 'down', inRotation: false, lastProbe: { ok: false } })
    expect(h?.since).toBe(clock.now())

    for (let i = 0; i < 5; i++) {
      const res = await r.generate({ model: 'llama3.2', prompt: `p${i}` })
      expect(res.endpoint).toBe(b.url)
      expect(res.attempts[0]).toMatchObject({
        endpoint: a.url,
        attempt: 0,
        ok: false,
        code: ErrorCode.MEMBER_DOWN,
      })
    }
    expect(generations(a)).toBe(before)

    // The probe passes again: back in rotation, but `up` only once a real request succeeded there.
    await a.clearFault()
    await clock.advanceWhenSet(Math.round(INTERVAL * 1.1))
    await until(() => member(r, a.url)?.inRotation === true, 'a back in rotation')
    expect(member(r, a.url)).toMatchObject({
      state: 'down',
      reason: expect.stringContaining('once one request succeeds'),
    })
    expect(up).toEqual([])
    const res = await r.generate({ model: 'llama3.2', prompt: 'back?' })
    expect(res.endpoint).toBe(a.url)
    expect(up).toEqual([{ endpoint: a.url, backend: 'ollama', downMs: Math.round(INTERVAL * 1.1) }])
    expect(member(r, a.url)).toMatchObject({ state: 'up', reason: null, inRotation: true })
  })

  it('a member back from probes whose next request fails goes out again until the next probe', async () => {
    const [a, b] = [await ollama(), await ollama()]
    const r = router(ordered([a.url, b.url]), {
      healthCheck: { intervalMs: INTERVAL },
      retry: { maxRetries: 0 },
    })
    await r.refresh()
    await r.resolve('llama3.2')
    await until(() => member(r, a.url)?.lastProbe !== null, 'first probe')
    await a.setFault({ type: '500-html', path: '/api/version' })
    await clock.advanceWhenSet(INTERVAL)
    await until(() => member(r, a.url)?.state === 'down', 'a down')
    // The probe passes but generations fail.
    await a.setFault({ type: '500-html' })
    await clock.advanceWhenSet(INTERVAL)
    await until(() => member(r, a.url)?.inRotation === true, 'a back in rotation')
    const res = await r.generate({ model: 'llama3.2', prompt: 'x' })
    expect(res.endpoint).toBe(b.url)
    expect(res.attempts.map((x) => [x.endpoint, x.code])).toEqual([
      [a.url, ErrorCode.BACKEND_ERROR],
      [b.url, undefined],
    ])
    expect(member(r, a.url)).toMatchObject({ state: 'down', inRotation: false })
    expect(member(r, a.url)?.reason).toContain('the next request there failed')
  })

  it('a probe that hangs fails at its timeout on the injected clock', async () => {
    const [a, b] = [await ollama(), await ollama()]
    const r = router(pool([a.url, b.url]), { healthCheck: { intervalMs: INTERVAL, timeoutMs: 300 } })
    await a.setFault({ type: 'hang', path: '/api/version' })
    await r.resolve('llama3.2')
    await until(() => probes(a, '/api/version') === 1, 'probe sent')
    expect(member(r, a.url)?.state).toBe('up')
    await clock.advanceWhenSet(300)
    await until(() => member(r, a.url)?.state === 'down', 'a down after the probe timeout')
    expect(member(r, a.url)?.reason).toBe('GET /api/version did not answer within 300 ms')
  })

  it('failuresBeforeDown: 2 needs two failed probes in a row', async () => {
    const a = await ollama()
    const r = router(pool([a.url]), { healthCheck: { intervalMs: INTERVAL, failuresBeforeDown: 2 } })
    await a.setFault('down')
    await r.resolve('llama3.2')
    await until(() => member(r, a.url)?.lastProbe?.ok === false, 'first failed probe')
    expect(member(r, a.url)).toMatchObject({ state: 'up', inRotation: true })
    await clock.advanceWhenSet(INTERVAL)
    await until(() => member(r, a.url)?.state === 'down', 'down after the second')
    expect(member(r, a.url)?.reason).toMatch(/^GET \/api\/version failed: ECONNREFUSED/)
    const error = await r.generate({ model: 'llama3.2', prompt: 'x' }).catch((e: unknown) => e)
    expect(isRouterError(error) && error.code).toBe(ErrorCode.ALL_BACKENDS_FAILED)
    expect(isRouterError(error) && error.attempts?.map((x) => x.code)).toEqual([ErrorCode.MEMBER_DOWN])
    expect(isRouterError(error) && (error.cause as Error).message).toContain(
      'out of rotation because its health probes fail',
    )
  })

  it('probes OpenAI-compatible servers on /health: llama.cpp loading (503) is down', async () => {
    const llama: OpenAIServer = await startMlxServer({ flavor: 'llamacpp' })
    servers.push(llama)
    await llama.setFault({ type: '503', path: '/health' })
    const r = router([{ model_name: 'q', backend_type: 'mlx', endpoint_url: llama.url }], {
      healthCheck: { intervalMs: INTERVAL },
    })
    await r.resolve('q')
    await until(() => member(r, llama.url)?.state === 'down', 'llama.cpp down while loading')
    expect(member(r, llama.url)?.reason).toContain('GET /health answered 503')
    expect(member(r, llama.url)?.reason).toContain('Loading model')
    await llama.clearFault()
    await clock.advanceWhenSet(INTERVAL)
    await until(() => member(r, llama.url)?.inRotation === true, 'back')
    const res = await r.generate({ model: 'q', prompt: 'x' })
    expect(res.endpoint).toBe(llama.url)
    expect(member(r, llama.url)?.state).toBe('up')
    // Never a generation: every probe is a GET of /health.
    expect(llama.requests.filter((q) => q.method === 'GET').map((q) => q.path)).toEqual([
      '/health',
      '/health',
    ])
  })

  it('falls back to GET /v1/models on a server without /health, and remembers it', async () => {
    const seen: string[] = []
    const server: Server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`)
      if (req.method === 'GET' && req.url === '/v1/models') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"object":"list","data":[{"id":"m"}]}')
      } else res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Unexpected endpoint"}')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push({ stop: () => new Promise<void>((resolve) => server.close(() => resolve())) })
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const r = router([{ model_name: 'm', backend_type: 'mlx', endpoint_url: url }], {
      healthCheck: { intervalMs: INTERVAL },
    })
    await r.resolve('m')
    await until(() => member(r, url)?.lastProbe !== null, 'first probe')
    await clock.advanceWhenSet(INTERVAL)
    await until(() => seen.length === 3, 'second probe')
    expect(seen).toEqual(['GET /health', 'GET /v1/models', 'GET /v1/models'])
    expect(member(r, url)).toMatchObject({ state: 'up', lastProbe: { ok: true } })
    r.close()
    server.closeAllConnections()
  })

  it('close() stops probing: no timer left, no request after it', async () => {
    const a = await ollama()
    const r = router(pool([a.url]), { healthCheck: { intervalMs: INTERVAL } })
    await r.resolve('llama3.2')
    await until(() => member(r, a.url)?.lastProbe !== null, 'first probe')
    // randomValue 0.5: no jitter, the next probe one interval away.
    await clock.untilTimer(INTERVAL)
    await r.close()
    expect(clock.pendingTimers).toBe(0)
    // The probe pool is destroyed with the router: no socket left open at the server.
    await until(() => a.connections === 0, 'the probe socket closed', 500)
    const count = a.requestCount
    clock.advance(INTERVAL * 10)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(a.requestCount).toBe(count)
  })

  it('without healthCheck nothing is probed and a lone endpoint gets no /api/ps', async () => {
    const a = await ollama()
    const r = router(pool([a.url]))
    // Env records are the config in use from the start: the member is listed before any request.
    expect(r.health().map((m) => m.endpoint)).toEqual([a.url])
    await r.generate({ model: 'llama3.2', prompt: 'x' })
    await r.generate({ model: 'llama3.2', prompt: 'y' })
    expect(a.requests.map((q) => q.path)).toEqual(['/api/generate', '/api/generate'])
    expect(clock.pendingTimers).toBe(0)
    expect(member(r, a.url)).toMatchObject({ state: 'up', warmModels: null, lastProbe: null, inFlight: 0 })
  })
})

describe('warmth (/api/ps)', () => {
  it('members of a pool get their loaded models fetched in the background; router.health() shows them', async () => {
    const cold = await ollama()
    const warm = await ollama({ loaded: ['llama3.2'] })
    const lone = await ollama()
    const r = router([
      ...pool([cold.url, warm.url]),
      { model_name: 'other', backend_type: 'ollama', endpoint_url: lone.url },
    ])
    await r.resolve('llama3.2')
    await until(
      () => member(r, warm.url)?.warmModels !== null && member(r, cold.url)?.warmModels !== null,
      'ps fetched',
    )
    expect(member(r, warm.url)?.warmModels).toEqual(['llama3.2:latest'])
    expect(member(r, cold.url)?.warmModels).toEqual([])
    expect(member(r, lone.url)?.warmModels).toBeNull()
    expect(probes(lone, '/api/ps')).toBe(0)
    expect(probes(warm, '/api/ps')).toBe(1)
  })
})

describe('drain / undrain', () => {
  it('a drained member gets no new requests; its stream in flight finishes; undrain puts it back', async () => {
    const words = 'one two three four five six seven eight nine ten'
    const a = await ollama({ respond: words, tokensPerSecond: 40 })
    const b = await ollama()
    const r = router(ordered([a.url, b.url]))
    const drained = collect(r, 'member:drained')
    const undrained = collect(r, 'member:undrained')

    const stream = r.stream({ model: 'llama3.2', prompt: 'long one' })
    const it = stream[Symbol.asyncIterator]()
    const first = await it.next()
    expect(first.done).toBe(false)
    expect(member(r, a.url)).toMatchObject({ state: 'up', inFlight: 1 })

    expect(r.drain(`${a.url}/`)).toBe(true)
    expect(drained).toEqual([{ endpoint: a.url, known: true, inFlight: 1 }])
    expect(member(r, a.url)).toMatchObject({ state: 'draining', inRotation: false, inFlight: 1 })
    expect(r.drain(a.url)).toBe(true)
    expect(drained).toHaveLength(1)

    const next = await r.generate({ model: 'llama3.2', prompt: 'new' })
    expect(next.endpoint).toBe(b.url)
    expect(next.attempts[0]).toMatchObject({ endpoint: a.url, attempt: 0, code: ErrorCode.MEMBER_DRAINED })

    let text = first.value?.text ?? ''
    for (let n = await it.next(); !n.done; n = await it.next()) text += n.value.text
    const result = await stream.result
    expect(text).toBe(words)
    expect(result.endpoint).toBe(a.url)
    expect(member(r, a.url)).toMatchObject({ state: 'draining', inFlight: 0 })
    expect(generations(a)).toBe(1)

    expect(r.undrain(a.url)).toBe(true)
    expect(undrained).toEqual([{ endpoint: a.url }])
    expect(r.undrain(a.url)).toBe(false)
    expect(member(r, a.url)).toMatchObject({ state: 'up', inRotation: true })
    expect((await r.generate({ model: 'llama3.2', prompt: 'again' })).endpoint).toBe(a.url)
  })

  it('an endpoint not in the config: false, the mark is kept for when it joins; a non-URL is INVALID_REQUEST', async () => {
    const a = await ollama()
    const r = router(pool([a.url]))
    await r.resolve('llama3.2')
    const events = collect(r, 'member:drained')
    expect(r.drain('http://127.0.0.1:1')).toBe(false)
    expect(events).toEqual([{ endpoint: 'http://127.0.0.1:1', known: false, inFlight: 0 }])
    expect(r.health().map((m) => m.endpoint)).toEqual([a.url])
    expect(r.undrain('http://127.0.0.1:1')).toBe(true)
    for (const bad of ['not a url', 'ftp://x', 42]) {
      let error: unknown
      try {
        r.drain(bad as string)
      } catch (e) {
        error = e
      }
      expect(isRouterError(error) && error.code).toBe(ErrorCode.INVALID_REQUEST)
    }
  })

  it('a drain mark on an endpoint not in the config applies once an admin change adds it', async () => {
    const [a, b] = [await ollama(), await ollama()]
    const rec = (url: string, priority: number) => ({
      model_name: 'llama3.2',
      backend_type: 'ollama',
      endpoint_url: url,
      enabled: true,
      priority,
    })
    const admin = await startAdminServer({ records: [rec(a.url, 2)] })
    servers.push(admin)
    const r = createLLMRouter({ adminUrl: admin.url, metrics: false }, { clock })
    routers.push(r)
    // Nothing loaded from the admin yet: no members.
    expect(r.health()).toEqual([])
    await r.refresh()
    expect(r.drain(b.url)).toBe(false)
    admin.setRecords([rec(b.url, 1), rec(a.url, 2)])
    await r.refresh()
    const res = await r.generate({ model: 'llama3.2', prompt: 'x' })
    expect(res.endpoint).toBe(a.url)
    expect(res.attempts[0]).toMatchObject({ endpoint: b.url, code: ErrorCode.MEMBER_DRAINED })
    expect(member(r, b.url)).toMatchObject({ state: 'draining', inRotation: false })
    expect(b.requestCount).toBe(0)
    // A member that leaves the config is no longer reported.
    admin.setRecords([rec(b.url, 1)])
    await r.refresh()
    expect(r.health().map((m) => m.endpoint)).toEqual([b.url])
    // drain()'s answer is about the config in use now, even when nothing has read it since the change.
    admin.setRecords([rec(b.url, 1), rec(a.url, 2)])
    await r.refresh()
    expect(r.drain(a.url)).toBe(true)
    expect(member(r, a.url)).toMatchObject({ state: 'draining', inRotation: false })
  })

  it('draining the only member fails the request without connecting', async () => {
    const a = await ollama()
    const r = router(pool([a.url]))
    await r.resolve('llama3.2')
    r.drain(a.url)
    const error = await r.generate({ model: 'llama3.2', prompt: 'x' }).catch((e: unknown) => e)
    expect(isRouterError(error) && error.code).toBe(ErrorCode.ALL_BACKENDS_FAILED)
    expect(isRouterError(error) && (error.cause as Error).message).toContain('is drained (router.drain())')
    expect(a.requestCount).toBe(0)
  })
})

describe('router.health() and the circuit', () => {
  it('shows a member whose circuit opened as cooling-down, since the opening, with the last error', async () => {
    const [a, b] = [await ollama(), await ollama()]
    const r = router(ordered([a.url, b.url]), {
      circuitBreaker: { threshold: 1, cooldownMs: 5000 },
      retry: { maxRetries: 0 },
    })
    await a.setFault('500-html')
    clock.advance(7)
    const res = await r.generate({ model: 'llama3.2', prompt: 'x' })
    expect(res.endpoint).toBe(b.url)
    const h = member(r, a.url)
    expect(h).toMatchObject({ state: 'cooling-down', inRotation: true, since: clock.now() })
    expect(h?.reason).toContain('circuit open after 1 failures (last: BACKEND_ERROR)')
    expect(member(r, b.url)).toMatchObject({ state: 'up', inFlight: 0 })
    expect(member(r, b.url)?.recentLatencyMs).toEqual(expect.any(Number))
    expect(member(r, b.url)?.models).toEqual(['llama3.2'])
  })
})
