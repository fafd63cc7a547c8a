/**
 * Issue 10, defects 5 to 8 (config side), against the kit's node:http stand-ins:
 * 5. an admin list whose records are all disabled is an empty list (env fallback, LLM_ROUTER_BACKENDS
 *    included), and an all-disabled LLM_ROUTER_BACKENDS is an empty one;
 * 6. the seed's defaults (max_tokens 2048, temperature 0.7, timeout 60 s) for default and env records,
 *    and an explicit max_tokens and temperature on the wire to every OpenAI-compatible server;
 * 7. a request without `model` never sends the literal "default";
 * 8. an error that went to the default backend says why.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { envRecords } from '../src/config/env.js'
import { createLLMRouter, type LLMRouter, type RouterOptions } from '../src/index.js'
import {
  type AdminServer,
  type OllamaServer,
  type OpenAIServer,
  startAdminServer,
  startMlxServer,
  startOllamaServer,
} from '../src/testing/index.js'
import { ManualClock } from './helpers/manual-clock.js'

let admin: AdminServer
let ollama: OllamaServer
let mlx: OpenAIServer
let deadUrl: string

beforeAll(async () => {
  ollama = await startOllamaServer({ models: ['m', 'llama3.2'] })
  mlx = await startMlxServer()
  admin = await startAdminServer()
  const dead = await startOllamaServer()
  deadUrl = dead.url
  await dead.stop()
})

afterAll(async () => {
  await Promise.all([admin.stop(), ollama.stop(), mlx.stop()])
})

const routers: LLMRouter[] = []
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()))
  for (const s of [admin, ollama, mlx]) s.reset()
  admin.setRecords([])
})

function router(options: RouterOptions): LLMRouter {
  const r = createLLMRouter(
    { metrics: false, retry: { maxRetries: 0 }, ...options },
    { clock: new ManualClock() },
  )
  routers.push(r)
  return r
}

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

const rec = (model: string, url: string, extra: Record<string, unknown> = {}) => ({
  model_name: model,
  backend_type: 'ollama',
  endpoint_url: url,
  enabled: true,
  priority: 100,
  ...extra,
})

describe('defect 5: an all-disabled admin list is an empty list', () => {
  it('falls back to LLM_ROUTER_BACKENDS, exactly as an empty list does', async () => {
    admin.setRecords([rec('m', deadUrl, { enabled: false }), rec('other', deadUrl, { enabled: false })])
    const r = router({
      adminUrl: admin.url,
      env: { LLM_ROUTER_BACKENDS: JSON.stringify([rec('m', ollama.url)]), OLLAMA_HOST: deadUrl },
    })
    const fallbacks: string[] = []
    r.on('config:fallback', (e) => fallbacks.push(e.reason))
    const result = await r.generate({ model: 'm', prompt: 'hi' })
    expect(result.endpoint).toBe(ollama.url)
    expect(r.config()?.origin).toBe('env')
    expect(r.config()?.records.map((x) => x.model_name)).toEqual(['m'])
    expect(fallbacks).toEqual([expect.stringContaining('disabled')])
  })

  it('an all-disabled LLM_ROUTER_BACKENDS is ignored like an empty one (OLLAMA_HOST is next)', () => {
    const result = envRecords({
      LLM_ROUTER_BACKENDS: JSON.stringify([rec('m', 'http://127.0.0.1:1', { enabled: false })]),
      OLLAMA_HOST: '127.0.0.1:5',
    })
    expect(result.records).toEqual([
      expect.objectContaining({ model_name: '*', endpoint_url: 'http://127.0.0.1:5' }),
    ])
    expect(result.reason).toContain('OLLAMA_HOST')
    expect(result.invalid).toEqual([
      expect.objectContaining({ field: 'LLM_ROUTER_BACKENDS', message: expect.stringContaining('disabled') }),
    ])
  })
})

describe("defect 6: the seed's defaults, and explicit max_tokens/temperature to OpenAI-compatible servers", () => {
  it('an admin mlx record without them sends max_tokens 2048 and temperature 0.7', async () => {
    admin.setRecords([{ model_name: 'q', backend_type: 'mlx', endpoint_url: mlx.url }])
    const r = router({ adminUrl: admin.url })
    await r.generate({ model: 'q', prompt: 'hi' })
    expect(mlx.requests.at(-1)?.body).toMatchObject({ prompt: 'hi', max_tokens: 2048, temperature: 0.7 })
    // The request's own values still win.
    await r.generate({ model: 'q', prompt: 'hi', maxTokens: 5, temperature: 0 })
    expect(mlx.requests.at(-1)?.body).toMatchObject({ max_tokens: 5, temperature: 0 })
  })

  it("the record's own values are sent as they are", async () => {
    admin.setRecords([
      {
        model_name: 'q',
        backend_type: 'mlx',
        endpoint_url: mlx.url,
        max_tokens: 64,
        temperature_default: 0.2,
      },
    ])
    const r = router({ adminUrl: admin.url })
    await r.generate({ model: 'q', prompt: 'hi' })
    expect(mlx.requests.at(-1)?.body).toMatchObject({ max_tokens: 64, temperature: 0.2 })
  })

  it('the env default backend (MLX_HOST) carries the seed defaults, on the wire and in config()', async () => {
    const r = router({ env: { MLX_HOST: mlx.url } })
    await r.generate({ model: 'anything', prompt: 'hi' })
    expect(mlx.requests.at(-1)?.body).toMatchObject({ max_tokens: 2048, temperature: 0.7 })
    expect(r.config()?.records[0]).toMatchObject({
      max_tokens: 2048,
      temperature_default: 0.7,
      timeout_seconds: 60,
    })
  })

  it('the default Ollama backend sends num_predict 2048 and temperature 0.7', async () => {
    const r = router({ env: { OLLAMA_HOST: ollama.url } })
    await r.generate({ model: 'm', prompt: 'hi' })
    expect(ollama.requests.at(-1)?.body).toMatchObject({
      model: 'm',
      options: { num_predict: 2048, temperature: 0.7 },
    })
  })
})

describe('defect 7: a request without a model', () => {
  it('env-only Ollama default: INVALID_REQUEST saying a model is needed, nothing sent', async () => {
    const r = router({ env: { OLLAMA_HOST: ollama.url } })
    const error = await failure(r.generate({ prompt: 'hi' }))
    expect(error.code).toBe('INVALID_REQUEST')
    expect(error.message).toMatch(/model is required/)
    expect(ollama.requestCount).toBe(0)
  })

  it("a '*' admin record: its backend_model is the model", async () => {
    admin.setRecords([rec('*', ollama.url, { backend_model: 'llama3.2' })])
    const r = router({ adminUrl: admin.url })
    const result = await r.generate({ prompt: 'hi' })
    expect(ollama.requests.at(-1)?.body).toMatchObject({ model: 'llama3.2' })
    expect(result.model).toBe('llama3.2')
  })

  it('a \'*\' Ollama record without backend_model: INVALID_REQUEST, never the literal "default"', async () => {
    admin.setRecords([rec('*', ollama.url)])
    const r = router({ adminUrl: admin.url })
    const error = await failure(r.generate({ prompt: 'hi' }))
    expect(error.code).toBe('INVALID_REQUEST')
    expect(ollama.requestCount).toBe(0)
  })

  it('an OpenAI-compatible default needs no model: none is sent, the server answers with its own', async () => {
    const r = router({ env: { MLX_HOST: mlx.url } })
    await r.generate({ prompt: 'hi' })
    const body = mlx.requests.at(-1)?.body as Record<string, unknown>
    expect(body).not.toHaveProperty('model')
  })
})

describe('defect 8: errors that went to the default backend say why', () => {
  it('no record for the model (list mode)', async () => {
    admin.setRecords([rec('m', ollama.url)])
    const r = router({ adminUrl: admin.url, env: { OLLAMA_HOST: deadUrl } })
    const error = await failure(r.generate({ model: 'unknown', prompt: 'hi' }))
    expect(error.code).toBe('ALL_BACKENDS_FAILED')
    expect(error.message).toContain(
      'The default backend was used because there is no enabled record for model "unknown" in the admin config',
    )
  })

  it('the only record is invalid: the field is named (list and model lookup)', async () => {
    admin.setRecords([rec('m', ollama.url), rec('broken', 'not a url')])
    for (const lookup of ['list', 'model'] as const) {
      const r = router({ adminUrl: admin.url, admin: { lookup }, env: { OLLAMA_HOST: deadUrl } })
      const error = await failure(r.generate({ model: 'broken', prompt: 'hi' }))
      expect(error.code).toBe('ALL_BACKENDS_FAILED')
      expect(error.message, lookup).toMatch(
        /model "broken" has no usable record: its only record is invalid \(endpoint_url: /,
      )
      const route = await r.resolve('broken')
      expect(route.defaultReason).toContain('endpoint_url')
    }
  })

  it('the admin cannot be reached: its origin is named (list and model lookup)', async () => {
    for (const lookup of ['list', 'model'] as const) {
      const r = router({
        adminUrl: `${deadUrl}/admin?token=secret`,
        admin: { lookup },
        env: { OLLAMA_HOST: deadUrl },
      })
      const error = await failure(r.generate({ model: 'm', prompt: 'hi' }))
      expect(error.code).toBe('ALL_BACKENDS_FAILED')
      expect(error.message, lookup).toContain(
        `the admin API at ${deadUrl} is unavailable (CONFIG_FETCH_FAILED)`,
      )
      expect(error.message).not.toContain('secret')
    }
  })

  it('a disabled record is named as the reason (model lookup)', async () => {
    admin.setRecords([rec('m', ollama.url, { enabled: false })])
    const r = router({ adminUrl: admin.url, admin: { lookup: 'model' }, env: { OLLAMA_HOST: deadUrl } })
    const error = await failure(r.generate({ model: 'm', prompt: 'hi' }))
    expect(error.message).toContain('model "m" has no usable record: its record is disabled')
  })
})
