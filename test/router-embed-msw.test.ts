/**
 * router.embed() with msw-mocked backends: the testing kit's msw handlers (the same protocol cores as the
 * node:http stand-ins), so a service's own unit tests can mock embeddings without servers.
 */
import { afterEach, expect, it } from 'vitest'
import { createLLMRouter, ErrorCode, type LLMRouter } from '../src/index.js'
import { fakeEmbedding } from '../src/testing/index.js'
import { ollamaHandlers, openAIHandlers } from '../src/testing/msw/index.js'
import { ManualClock } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

const OLLAMA = 'http://ollama.test:11434'
const MLX = 'http://mlx.test:8080'
const LLAMA = 'http://llama.test:8081'

const ollama = ollamaHandlers({ baseUrl: OLLAMA })
const mlx = openAIHandlers({ baseUrl: MLX })
const llama = openAIHandlers({ baseUrl: LLAMA, flavor: 'llamacpp' })
setupMockNetwork(...ollama, ...mlx, ...llama)

let routers: LLMRouter[] = []
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
  await Promise.all([ollama.clearFault(), llama.clearFault()])
})

function makeRouter(records: Record<string, unknown>[]): LLMRouter {
  const router = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false, retry: { maxRetries: 0 } },
    { clock: new ManualClock(Date.now()) },
  )
  routers.push(router)
  return router
}

const rec = (over: Record<string, unknown>) => ({
  backend_type: 'ollama',
  enabled: true,
  priority: 1,
  ...over,
})

it('an auto record: the mocked mlx_lm.server answers 404, the mocked Ollama embeds', async () => {
  const router = makeRouter([
    rec({ model_name: 'emb', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA }),
  ])
  const e = await router.embed({ model: 'emb', input: ['one', 'two', 'three'], batchSize: 2 })
  expect(e.embeddings).toEqual(['one', 'two', 'three'].map((t) => fakeEmbedding(t)))
  expect(e).toMatchObject({ backend: 'ollama', endpoint: OLLAMA, batches: 2 })
  expect(e.attempts.map((a) => `${a.backend}:${a.code ?? 'ok'}`)).toEqual([
    'mlx:UNSUPPORTED_OPERATION',
    'ollama:ok',
    'mlx:UNSUPPORTED_OPERATION',
    'ollama:ok',
  ])
})

it('llama.cpp flavour: vectors by index; a 503 with no retries left falls over to the next record', async () => {
  await llama.setFault({ type: '503', times: 1 })
  const router = makeRouter([
    rec({ model_name: 'bge', backend_type: 'mlx', endpoint_url: LLAMA, priority: 1 }),
    rec({ model_name: 'bge', endpoint_url: OLLAMA, priority: 2 }),
  ])
  const first = await router.embed({ model: 'bge', input: ['q'] })
  expect(first).toMatchObject({
    backend: 'ollama',
    attempts: [{ code: ErrorCode.BACKEND_BUSY }, { ok: true }],
  })
  const second = await router.embed({ model: 'bge', input: ['q', 'r'] })
  expect(second).toMatchObject({ backend: 'mlx', endpoint: LLAMA })
  expect(second.embeddings).toEqual([fakeEmbedding('q'), fakeEmbedding('r')])
})
