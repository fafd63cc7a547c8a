/**
 * Testing your own service with msw: the testing kit's handlers (`llm-backend-router/testing/msw`)
 * stand in for the admin API, Ollama and an MLX server, on fake hostnames, so tests never need a model server (or any network at all).
 * Faults (down, 503, 429, slow, cut-stream, ...) are one call away.
 *
 * Needs msw (and @mswjs/interceptors) as dev dependencies of your project.
 * Run:
 *   node --test examples/testing-with-msw.ts      (or: node examples/testing-with-msw.ts)
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, test } from 'node:test'
import { createLLMRouter, isRouterError, type LLMRouter } from 'llm-backend-router'
import { adminHandlers, createMockNetwork, mlxHandlers, ollamaHandlers } from 'llm-backend-router/testing/msw'

// --- the code under test: a service function built on the router ---------------------------

interface Summary {
  text: string
  /** True when the preferred backend (MLX) did not answer. */
  degraded: boolean
}

/** Summarises text; when every backend fails it returns the first sentence instead of throwing. */
async function summarize(router: LLMRouter, text: string): Promise<Summary> {
  try {
    const r = await router.generate({
      model: 'summarizer',
      prompt: `Summarize in one line: ${text}`,
      maxTokens: 60,
    })
    return { text: r.response.trim(), degraded: r.backend !== 'mlx' }
  } catch (error) {
    if (!isRouterError(error)) throw error
    return { text: `${text.split('. ')[0]}.`, degraded: true }
  }
}

// --- the tests --------------------------------------------------------------------------------

const ollama = ollamaHandlers({ baseUrl: 'http://ollama.test:11434', respond: 'Ollama summary.' })
const mlx = mlxHandlers({ baseUrl: 'http://mlx.test:8080', respond: 'MLX summary.' })
const admin = adminHandlers({
  baseUrl: 'http://admin.test',
  records: [
    {
      model_name: 'summarizer',
      backend_type: 'auto',
      endpoint_url: 'http://mlx.test:8080',
      backend_model: 'mlx-community/Qwen2.5-3B-Instruct-4bit',
      fallback_url: 'http://ollama.test:11434',
      enabled: true,
      priority: 1,
    },
  ],
})
const network = createMockNetwork(...admin, ...ollama, ...mlx)

const TEXT = 'The router sends requests to local model servers. It falls back when one is down.'

let router: LLMRouter
before(() => network.enable())
after(() => network.disable())
const newRouter = () =>
  // env: {} keeps the developer's own OLLAMA_HOST etc. out of the test; tiny backoff keeps it fast.
  createLLMRouter({ adminUrl: 'http://admin.test', env: {}, retry: { maxRetries: 1, baseDelayMs: 1 } })
afterEach(async () => {
  await router.close()
  for (const server of [ollama, mlx, admin]) server.reset()
})

test('answers from MLX, as the admin record says', async () => {
  router = newRouter()
  const summary = await summarize(router, TEXT)
  assert.deepEqual(summary, { text: 'MLX summary.', degraded: false })
  // The handlers record what the router sent.
  const sent = mlx.requests.find((r) => r.path === '/v1/completions')?.body as Record<string, unknown>
  assert.equal(sent.model, 'mlx-community/Qwen2.5-3B-Instruct-4bit')
  assert.match(String(sent.prompt), /falls back when one is down/)
})

test('falls back to Ollama when MLX is down', async () => {
  router = newRouter()
  await mlx.setFault('down')
  const summary = await summarize(router, TEXT)
  assert.deepEqual(summary, { text: 'Ollama summary.', degraded: true })
  assert.equal(ollama.requests.filter((r) => r.path === '/api/generate').length, 1)
})

test('degrades to the first sentence when every backend fails', async () => {
  router = newRouter()
  await mlx.setFault('down')
  await ollama.setFault('503')
  const summary = await summarize(router, TEXT)
  assert.deepEqual(summary, { text: 'The router sends requests to local model servers.', degraded: true })
})

test('reports one metric per request to the admin', async () => {
  router = newRouter()
  await summarize(router, TEXT)
  await router.close() // flushes the metrics batch
  assert.equal(admin.metrics.length, 1)
  assert.equal(admin.metrics[0]?.model, 'summarizer')
  assert.equal(admin.metrics[0]?.outcome, 'success')
})
