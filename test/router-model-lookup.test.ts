/**
 * Per-model lookup mode (`admin.lookup: 'model'`) at router level, against the kit's node:http
 * admin as it is by default, like the seed's (no ETag; 404 `{"detail": ...}` for unknown models) and one
 * Ollama stand-in per model. A manual clock moves through many TTLs.
 *
 * Issue 10, defect 1: an unchanged re-fetch of model A was stamped with B's version and A was then
 * routed with B's table (the default backend); fallbackModels ignored B's record; 'priority' walked
 * only A's records; config()/refresh() showed the env/default records.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import {
  type AdminServer,
  type OllamaServer,
  startAdminServer,
  startOllamaServer,
} from '../src/testing/index.js'
import { ManualClock } from './helpers/manual-clock.js'

const TTL = 60_000

let admin: AdminServer
let ollamaA: OllamaServer
let ollamaB: OllamaServer
let ollamaC: OllamaServer
/** A port nothing listens on: the default backend, so a misroute fails loudly. */
let deadUrl: string

beforeAll(async () => {
  ollamaA = await startOllamaServer({ models: ['a'] })
  ollamaB = await startOllamaServer({ models: ['b'] })
  ollamaC = await startOllamaServer({ models: ['c'] })
  const dead = await startOllamaServer()
  deadUrl = dead.url
  await dead.stop()
  admin = await startAdminServer({ records: [] })
})

afterAll(async () => {
  await Promise.all([admin.stop(), ollamaA.stop(), ollamaB.stop(), ollamaC.stop()])
})

const routers: LLMRouter[] = []
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()))
  for (const s of [admin, ollamaA, ollamaB, ollamaC]) s.reset()
})

function records() {
  return [
    { model_name: 'a', backend_type: 'ollama', endpoint_url: ollamaA.url, enabled: true, priority: 10 },
    { model_name: 'b', backend_type: 'ollama', endpoint_url: ollamaB.url, enabled: true, priority: 20 },
    { model_name: 'c', backend_type: 'ollama', endpoint_url: ollamaC.url, enabled: true, priority: 30 },
  ]
}

function makeRouter(clock: ManualClock): LLMRouter {
  admin.setRecords(records())
  const router = createLLMRouter(
    {
      adminUrl: admin.url,
      admin: { lookup: 'model' },
      cacheTtlMs: TTL,
      env: { OLLAMA_HOST: deadUrl },
      metrics: false,
      retry: { maxRetries: 0 },
    },
    { clock },
  )
  routers.push(router)
  return router
}

const lookups = (model: string) =>
  admin.requests.filter((r) => r.path === `/api/llm-backends/model/${model}`).length

describe('per-model lookup through many TTLs (no ETag)', () => {
  it('routes every model to its own backend after each unchanged re-fetch', async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    const servers = { a: ollamaA, b: ollamaB, c: ollamaC }
    for (let cycle = 0; cycle < 8; cycle++) {
      for (const model of ['a', 'b', 'c'] as const) {
        const result = await router.generate({ model, prompt: `cycle ${cycle}` })
        expect(result.endpoint, `cycle ${cycle}, model ${model}`).toBe(servers[model].url)
        expect(result.model).toBe(model)
        const route = await router.resolve(model)
        expect(route.usesDefault).toBe(false)
        expect(route.targets.map((t) => t.endpoint)).toEqual([servers[model].url])
      }
      // Past the TTL: the next lookups serve the cached records and re-fetch each model once.
      clock.advance(TTL + 1)
      for (const model of ['a', 'b', 'c']) await router.resolve(model)
      await vi.waitFor(() => {
        for (const model of ['a', 'b', 'c']) expect(lookups(model)).toBe(cycle + 2)
      })
    }
    expect(ollamaA.requestCount).toBe(8)
    expect(ollamaB.requestCount).toBe(8)
    expect(ollamaC.requestCount).toBe(8)
  })

  it('a changed record takes effect after the TTL; the other models keep their routes', async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    await router.generate({ model: 'a', prompt: 'x' })
    await router.generate({ model: 'b', prompt: 'x' })
    // The admin now sends a to b's server.
    admin.setRecords([
      { ...records()[0]!, endpoint_url: ollamaB.url, model_name: 'a' },
      ...records().slice(1),
    ])
    ollamaB.reset()
    clock.advance(TTL + 1)
    await router.resolve('a')
    await router.resolve('b')
    await vi.waitFor(() => expect(lookups('a') + lookups('b')).toBe(4))
    const b = await router.generate({ model: 'b', prompt: 'x' })
    expect(b.endpoint).toBe(ollamaB.url)
    expect((await router.resolve('a')).targets[0]?.endpoint).toBe(ollamaB.url)
  })
})

describe('fallbackModels in model lookup mode', () => {
  it("['b'] falls back to b's own admin record, looked up on demand", async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    await ollamaA.setFault('down')
    try {
      const result = await router.generate({ model: 'a', prompt: 'x', fallbackModels: ['b'] })
      expect(result.model).toBe('b')
      expect(result.endpoint).toBe(ollamaB.url)
      expect(result.attempts.map((x) => [x.model, x.endpoint, x.ok])).toEqual([
        ['a', ollamaA.url, false],
        ['b', ollamaB.url, true],
      ])
      expect(lookups('b')).toBe(1)
    } finally {
      await ollamaA.listen()
    }
  })

  it("'priority' walks every record the router has looked up, in priority order", async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    await router.generate({ model: 'c', prompt: 'x' })
    await router.generate({ model: 'b', prompt: 'x' })
    await ollamaA.setFault('down')
    await ollamaB.setFault('down')
    try {
      const result = await router.generate({ model: 'a', prompt: 'x', fallbackModels: 'priority' })
      expect(result.attempts.map((x) => [x.model, x.ok])).toEqual([
        ['a', false],
        ['b', false],
        ['c', true],
      ])
      expect(result.endpoint).toBe(ollamaC.url)
    } finally {
      await ollamaA.listen()
      await ollamaB.listen()
    }
  })
})

describe('config() and refresh() in model lookup mode', () => {
  it('report the admin records in use, not the env/default ones', async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    expect(router.config()).toBeNull()
    await router.generate({ model: 'a', prompt: 'x' })
    await router.generate({ model: 'b', prompt: 'x' })
    const info = router.config()
    expect(info?.origin).toBe('admin')
    expect(info?.records.map((r) => [r.model_name, r.endpoint_url])).toEqual([
      ['a', ollamaA.url],
      ['b', ollamaB.url],
    ])
    const fetchedAt = info?.fetchedAt
    expect(fetchedAt).toBe(clock.now())

    clock.advance(5_000)
    const refreshed = await router.refresh()
    expect(refreshed.origin).toBe('admin')
    expect(refreshed.records.map((r) => r.model_name)).toEqual(['a', 'b'])
    expect(refreshed.fetchedAt).toBe(clock.now())
    expect(lookups('a')).toBe(2)
    expect(lookups('b')).toBe(2)
    // Unchanged records: the same version.
    expect(refreshed.version).toBe(info?.version)
  })

  it('an unknown model goes to the default backend and the error says the admin has no record (404)', async () => {
    const clock = new ManualClock()
    const router = makeRouter(clock)
    const route = await router.resolve('nope')
    expect(route.usesDefault).toBe(true)
    expect(route.defaultReason).toMatch(/no record for it \(404\)/)
    const error = await router.generate({ model: 'nope', prompt: 'x' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ALL_BACKENDS_FAILED' })
    expect((error as Error).message).toMatch(
      /default backend was used because model "nope" has no usable record/,
    )
    expect((error as Error).message).toContain('(404)')
  })
})
