/**
 * The stand-ins' pool and probe features, over real HTTP: Ollama models loaded at start, cold loads
 * that show in /api/ps only once done (and that a second request waits for), the
 * NUM_PARALLEL/MAX_QUEUE limit, faults on the probe routes; llama.cpp's startup load (503 on
 * /health, /v1/models answered) and each flavour's /health body.
 */
import { Agent, request } from 'undici'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  OLLAMA_BUSY_MESSAGE,
  type OllamaServer,
  type StandInServer,
  startMlxServer,
  startOllamaServer,
} from '../src/testing/index.js'

const servers: StandInServer[] = []
// Enough sockets for the concurrency tests.
const agent = new Agent({ connections: 16 })

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()))
})
afterAll(() => agent.destroy())

async function ollama(options: Parameters<typeof startOllamaServer>[0] = {}): Promise<OllamaServer> {
  const s = await startOllamaServer(options)
  servers.push(s)
  return s
}

async function get(url: string): Promise<{ status: number; body: unknown }> {
  const res = await request(url, { dispatcher: agent })
  const text = await res.body.text()
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined }
}

async function generate(
  url: string,
  model = 'llama3.2',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${url}/api/generate`, {
    dispatcher: agent,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'hi', stream: false }),
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

const psNames = async (url: string) =>
  ((await get(`${url}/api/ps`)).body as { models: { name: string }[] }).models.map((m) => m.name)

describe('Ollama stand-in: loaded models and cold loads', () => {
  it('lists models loaded at start in /api/ps with the real shape; their first request pays no load', async () => {
    const s = await ollama({ loaded: ['llama3.2'], loadMs: 200 })
    const ps = (await get(`${s.url}/api/ps`)).body as { models: Record<string, unknown>[] }
    expect(ps.models).toHaveLength(1)
    expect(Object.keys(ps.models[0] ?? {}).sort()).toEqual(
      [
        'context_length',
        'details',
        'digest',
        'expires_at',
        'model',
        'modified_at',
        'name',
        'size',
        'size_vram',
      ].sort(),
    )
    expect(ps.models[0]).toMatchObject({ name: 'llama3.2:latest', model: 'llama3.2:latest' })
    const t0 = performance.now()
    const warm = await generate(s.url)
    expect(performance.now() - t0).toBeLessThan(150)
    expect(warm.body).not.toHaveProperty('load_duration')
  })

  it('a cold model shows in /api/ps only once its load is over; a request during the load waits for the rest', async () => {
    const s = await ollama({ loadMs: 300 })
    const first = generate(s.url)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await psNames(s.url)).toEqual([])
    const t1 = performance.now()
    const second = await generate(s.url)
    // It waited for the remaining ~200 ms of the load and, as on the real server (handler start to
    // runner ready), reports that wait as its load_duration.
    expect(performance.now() - t1).toBeGreaterThanOrEqual(150)
    expect(second.body.load_duration).toBeGreaterThan(100_000_000)
    expect(second.body.load_duration).toBeLessThan(300_000_000)
    expect((await first).body.load_duration).toBe(300_000_000)
    expect(await psNames(s.url)).toEqual(['llama3.2:latest'])
  })

  it('/api/ps lists the longest time left first, as PsHandler sorts by expires_at', async () => {
    const s = await ollama()
    for (const [model, keep_alive] of [
      ['llama3.2', '1m'],
      ['phi3:mini', '10m'],
      ['qwen2.5', '5m'],
    ]) {
      const res = await request(`${s.url}/api/generate`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: 'hi', stream: false, keep_alive }),
      })
      expect(res.statusCode).toBe(200)
      await res.body.text()
    }
    expect(await psNames(s.url)).toEqual(['phi3:mini', 'qwen2.5:latest', 'llama3.2:latest'])
  })

  it('loadModel() warms a model by hand; unloadAll() empties /api/ps', async () => {
    const s = await ollama()
    s.loadModel('phi3:mini')
    expect(await psNames(s.url)).toEqual(['phi3:mini'])
    s.unloadAll()
    expect(await psNames(s.url)).toEqual([])
  })
})

describe('Ollama stand-in: numParallel / maxQueue', () => {
  it('runs numParallel generations at once, queues the rest, answers 503 busy beyond maxQueue', async () => {
    const s = await ollama({ numParallel: 2, maxQueue: 2, timeToFirstTokenMs: 400 })
    const all = Array.from({ length: 5 }, () => generate(s.url))
    for (let i = 0; i < 200 && s.inFlight + s.queued < 4; i++) await new Promise((r) => setTimeout(r, 5))
    expect(s.inFlight).toBe(2)
    expect(s.queued).toBe(2)
    const results = await Promise.all(all)
    const statuses = results.map((r) => r.status).sort()
    expect(statuses).toEqual([200, 200, 200, 200, 503])
    expect(results.find((r) => r.status === 503)?.body).toEqual({ error: OLLAMA_BUSY_MESSAGE })
    expect(s.peakInFlight).toBe(2)
    expect(s.inFlight).toBe(0)
    // Discovery and probe routes are not generations: never queued.
    expect((await get(`${s.url}/api/version`)).status).toBe(200)
  })
})

describe('Ollama stand-in: faults on probe routes', () => {
  it('a fault scoped to /api/version or /api/ps leaves generations alone', async () => {
    const s = await ollama({ loaded: ['llama3.2'] })
    await s.setFault({ type: '503', path: '/api/version' })
    expect(await get(`${s.url}/api/version`)).toEqual({ status: 503, body: { error: OLLAMA_BUSY_MESSAGE } })
    expect((await generate(s.url)).status).toBe(200)
    // A body cut in half (with a matching Content-Length): what a probe must not take for a list.
    await s.setFault({ type: 'cut-stream', path: '/api/ps', times: 1 })
    const res = await request(`${s.url}/api/ps`, { dispatcher: agent })
    expect(res.statusCode).toBe(200)
    const text = await res.body.text()
    expect(text.startsWith('{"models":[')).toBe(true)
    expect(() => JSON.parse(text)).toThrow()
    expect(await psNames(s.url)).toEqual(['llama3.2:latest'])
  })
})

describe('OpenAI-compatible stand-in: probe routes per flavour', () => {
  it('llama.cpp while loadingMs runs: 503 Loading model on /health and completions, /v1/models answered', async () => {
    const s = await startMlxServer({ flavor: 'llamacpp', loadingMs: 300 })
    servers.push(s)
    const loading = { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } }
    expect(await get(`${s.url}/health`)).toEqual({ status: 503, body: loading })
    expect(await get(`${s.url}/v1/health`)).toEqual({ status: 503, body: loading })
    expect((await get(`${s.url}/v1/models`)).status).toBe(200)
    const res = await request(`${s.url}/v1/completions`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }),
    })
    expect(res.statusCode).toBe(503)
    expect(await res.body.json()).toEqual(loading)
    await new Promise((resolve) => setTimeout(resolve, 320))
    const ok = await request(`${s.url}/health`, { dispatcher: agent })
    expect(ok.statusCode).toBe(200)
    expect(await ok.body.text()).toBe('{"status":"ok"}')
  })

  it('mlx_lm.server: /health is always 200 {"status": "ok"} (json.dumps spacing)', async () => {
    const s = await startMlxServer({ loadingMs: 1000 })
    servers.push(s)
    const res = await request(`${s.url}/health`, { dispatcher: agent })
    expect(res.statusCode).toBe(200)
    expect(await res.body.text()).toBe('{"status": "ok"}')
  })
})
