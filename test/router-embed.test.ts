/**
 * router.embed() end to end against the testing kit's node:http stand-ins on 127.0.0.1: Ollama /api/embed,
 * llama-server /v1/embeddings, and mlx_lm.server (which has no embeddings route).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter, ErrorCode, hasErrorCode, isRouterError, type LLMRouter } from '../src/index.js'
import type { Clock } from '../src/internal/clock.js'
import {
  fakeEmbedding,
  type OllamaServer,
  type OpenAIServer,
  type StandInServer,
  startMlxServer,
  startOllamaServer,
  startOpenAIServer,
} from '../src/testing/index.js'
import type { MetricRecord, MetricsSink, RouterEvents } from '../src/types.js'
import { collect } from './helpers/events.js'
import { ManualClock, until } from './helpers/manual-clock.js'

const servers: StandInServer[] = []
let routers: LLMRouter[] = []

afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
  await Promise.all(servers.splice(0).map((s) => s.stop()))
})

async function ollama(options: Parameters<typeof startOllamaServer>[0] = {}): Promise<OllamaServer> {
  const s = await startOllamaServer(options)
  servers.push(s)
  return s
}
async function llamacpp(options: Parameters<typeof startOpenAIServer>[0] = {}): Promise<OpenAIServer> {
  const s = await startOpenAIServer({ flavor: 'llamacpp', ...options })
  servers.push(s)
  return s
}
async function mlx(): Promise<OpenAIServer> {
  const s = await startMlxServer()
  servers.push(s)
  return s
}

function recordingSink(): MetricsSink & { records: MetricRecord[] } {
  const records: MetricRecord[] = []
  return { records, write: (r) => records.push(r), flush: async () => {}, close: async () => {} }
}

function makeRouter(
  records: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
  clock: Clock = new ManualClock(Date.now()),
): { router: LLMRouter; sink: ReturnType<typeof recordingSink> } {
  const sink = recordingSink()
  const router = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: sink, ...extra },
    { clock },
  )
  routers.push(router)
  return { router, sink }
}

const rec = (over: Record<string, unknown>) => ({
  backend_type: 'ollama',
  enabled: true,
  priority: 1,
  ...over,
})
const embedCalls = (s: StandInServer, path = '/api/embed') => s.requests.filter((r) => r.path === path)

describe('router.embed() on Ollama', () => {
  it('one text: sends /api/embed with input as a list, returns the vector and the usual result fields', async () => {
    const s = await ollama()
    const { router, sink } = makeRouter([rec({ model_name: 'nomic-embed-text', endpoint_url: s.url })])
    const e = await router.embed({ model: 'nomic-embed-text', input: 'hello world', keepAlive: '10m' })
    expect(embedCalls(s).map((r) => r.body)).toEqual([
      { model: 'nomic-embed-text', input: ['hello world'], keep_alive: '10m' },
    ])
    expect(e.embeddings).toEqual([fakeEmbedding('hello world')])
    expect(e).toMatchObject({
      model: 'nomic-embed-text',
      backend: 'ollama',
      endpoint: s.url,
      usage: { promptTokens: 2, completionTokens: 0 },
      batches: 1,
    })
    expect(e.latencyMs).toBeGreaterThan(0)
    expect(e.attempts).toEqual([expect.objectContaining({ ok: true, attempt: 1, backend: 'ollama' })])
    expect(sink.records).toHaveLength(1)
    expect(sink.records[0]).toMatchObject({
      operation: 'embed',
      model: 'nomic-embed-text',
      backend: 'ollama',
      endpoint: s.url,
      outcome: 'success',
      prompt_tokens: 2,
      tokens: 0,
      attempts: 1,
      streamed: false,
      fallback: false,
    })
  })

  it('a long list goes in batches of batchSize and comes back in input order, as one metric record', async () => {
    const s = await ollama()
    const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })], {
      embedBatchSize: 3,
    })
    const inputs = Array.from({ length: 10 }, (_, i) => `text number ${i}`)
    const e = await router.embed({ model: 'emb', input: inputs, concurrency: 2, dimensions: 4 })
    const bodies = embedCalls(s).map((r) => r.body as { input: string[]; dimensions: number })
    expect(bodies.map((b) => b.input.length)).toEqual([3, 3, 3, 1])
    expect(bodies.flatMap((b) => b.input).sort()).toEqual([...inputs].sort())
    expect(bodies.every((b) => b.dimensions === 4)).toBe(true)
    expect(e.embeddings).toHaveLength(10)
    // The stand-in's vector is a function of the text, so each vector must be its own input's.
    const expected = inputs.map((t) => {
      const v = fakeEmbedding(t).slice(0, 4)
      const n = Math.sqrt(v.reduce((a, x) => a + x * x, 0))
      return v.map((x) => x / n)
    })
    for (let i = 0; i < 10; i++)
      for (let d = 0; d < 4; d++) expect(e.embeddings[i]![d]).toBeCloseTo(expected[i]![d]!, 12)
    expect(e.batches).toBe(4)
    expect(e.attempts).toHaveLength(4)
    expect(e.usage.promptTokens).toBe(30)
    expect(sink.records).toHaveLength(1)
    expect(sink.records[0]).toMatchObject({
      operation: 'embed',
      attempts: 4,
      prompt_tokens: 30,
      outcome: 'success',
    })
  })

  it('passes options through where /api/embed reads them', async () => {
    const s = await ollama()
    const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })])
    await router.embed({ model: 'emb', input: ['a'], options: { truncate: false, num_ctx: 512 } })
    expect(embedCalls(s)[0]?.body).toEqual({
      model: 'emb',
      input: ['a'],
      truncate: false,
      options: { num_ctx: 512 },
    })
  })

  it("sends the record's keep_alive like generate and chat do; the request's keepAlive or options win", async () => {
    const s = await ollama()
    const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url, keep_alive: '30m' })])
    await router.embed({ model: 'emb', input: ['a'] })
    await router.embed({ model: 'emb', input: ['b'], keepAlive: 0 })
    await router.embed({ model: 'emb', input: ['c'], options: { keep_alive: '1m' } })
    expect(embedCalls(s).map((r) => (r.body as { keep_alive?: unknown }).keep_alive)).toEqual([
      '30m',
      0,
      '1m',
    ])
  })

  it("sends the record's keep_alive also when the record reads its base URL from the environment (generate and chat too)", async () => {
    const s = await ollama()
    const records = [
      rec({
        model_name: 'emb',
        endpoint_url: '',
        endpoint_url_env: 'EMB_URL',
        keep_alive: '30m',
        context_length: 8192,
      }),
    ]
    const router = createLLMRouter(
      { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), EMB_URL: s.url }, metrics: false },
      { clock: new ManualClock(Date.now()) },
    )
    routers.push(router)
    await router.embed({ model: 'emb', input: ['a'] })
    await router.generate({ model: 'emb', prompt: 'b' })
    await router.chat({ model: 'emb', messages: [{ role: 'user', content: 'c' }] })
    const keepAlive = (path: string) =>
      s.requests.filter((r) => r.path === path).map((r) => (r.body as { keep_alive?: unknown }).keep_alive)
    expect(keepAlive('/api/embed')).toEqual(['30m'])
    expect(keepAlive('/api/generate')).toEqual(['30m'])
    expect(keepAlive('/api/chat')).toEqual(['30m'])
    const generated = s.requests.find((r) => r.path === '/api/generate')
    expect((generated?.body as { options?: { num_ctx?: unknown } } | undefined)?.options?.num_ctx).toBe(8192)
  })

  it('rejects bad input with INVALID_REQUEST before anything is sent', async () => {
    const s = await ollama()
    const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })])
    for (const [input, path] of [
      [[], 'input'],
      ['', 'input'],
      [['a', 7], 'input[1]'],
      [undefined, 'input'],
    ] as const) {
      const error = await router.embed({ model: 'emb', input: input as never }).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: ErrorCode.INVALID_REQUEST, issues: [{ path }] })
    }
    await expect(router.embed({ model: 'emb', input: 'a', batchSize: 0 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    })
    expect(s.requests).toHaveLength(0)
    expect(sink.records).toHaveLength(0)
  })

  it('a model missing on the server is MODEL_NOT_FOUND, with the server message', async () => {
    const s = await ollama({ models: ['llama3.2:latest'] })
    const { router, sink } = makeRouter([rec({ model_name: 'nomic-embed-text', endpoint_url: s.url })])
    const error = await router.embed({ model: 'nomic-embed-text', input: 'x' }).catch((e: unknown) => e)
    expect(hasErrorCode(error, ErrorCode.MODEL_NOT_FOUND)).toBe(true)
    expect((error as { attempts: { message?: string }[] }).attempts[0]?.message).toContain(
      'model "nomic-embed-text" not found',
    )
    expect(sink.records).toHaveLength(1)
    expect(sink.records[0]).toMatchObject({
      operation: 'embed',
      outcome: 'error',
      error_code: 'ALL_BACKENDS_FAILED',
    })
  })

  it('a failing batch fails the call, says which batch, stops the rest, and still records one metric', async () => {
    // The stand-in answers an empty vector for the text "broken": MALFORMED_RESPONSE for that batch.
    const s = await ollama({ embed: (t) => (t === 'broken' ? [] : fakeEmbedding(t)) })
    const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })], {
      embedBatchSize: 2,
    })
    const error = await router
      .embed({ model: 'emb', input: ['a', 'b', 'c', 'broken', 'e', 'f', 'g', 'h'], concurrency: 1 })
      .catch((e: unknown) => e)
    expect(isRouterError(error)).toBe(true)
    expect(hasErrorCode(error, ErrorCode.MALFORMED_RESPONSE)).toBe(true)
    expect((error as Error).message).toMatch(/^Batch 2 of 4 \(inputs 2-3\) failed: /)
    // Batch 2 failed with concurrency 1: batches 3 and 4 were never sent.
    expect(embedCalls(s)).toHaveLength(2)
    expect(sink.records).toHaveLength(1)
    expect(sink.records[0]).toMatchObject({ operation: 'embed', outcome: 'error', attempts: 2 })
  })

  it('vectors of different lengths in one call are MALFORMED_RESPONSE, not a silently mixed result', async () => {
    const s = await ollama({ embed: (t) => fakeEmbedding(t, t === 'odd' ? 16 : 8) })
    const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })])
    await expect(router.embed({ model: 'emb', input: ['a', 'odd'] })).rejects.toMatchObject({
      code: ErrorCode.MALFORMED_RESPONSE,
      message: expect.stringContaining('16-dimension vector where the call'),
    })
  })
})

describe('router.embed(): one model per call', () => {
  it('batches after the first go to the model that answered it, without trying fallbackModels again', async () => {
    const primary = await ollama()
    await primary.setFault('503')
    const fallback = await ollama()
    const { router } = makeRouter(
      [
        rec({ model_name: 'a', endpoint_url: primary.url }),
        rec({ model_name: 'b', endpoint_url: fallback.url, priority: 2 }),
      ],
      { retry: { maxRetries: 0 } },
    )
    const e = await router.embed({ model: 'a', input: ['1', '2', '3'], batchSize: 1, fallbackModels: ['b'] })
    expect(e.model).toBe('b')
    // Only the first batch tried model a; the other two went straight to b.
    expect(embedCalls(primary)).toHaveLength(1)
    expect(embedCalls(fallback).map((r) => (r.body as { model: string }).model)).toEqual(['b', 'b', 'b'])
    expect(e.attempts.map((a) => `${a.model}:${a.code ?? 'ok'}`)).toEqual([
      'a:BACKEND_BUSY',
      'b:ok',
      'b:ok',
      'b:ok',
    ])
  })
})

describe('router.embed() on OpenAI-compatible servers', () => {
  it('llama-server: /v1/embeddings, vectors by index, usage; model only when the record names one', async () => {
    const s = await llamacpp()
    const { router, sink } = makeRouter([
      rec({ model_name: 'bge', backend_type: 'mlx', endpoint_url: s.url }),
      rec({ model_name: 'named', backend_type: 'mlx', endpoint_url: s.url, backend_model: 'bge-m3' }),
    ])
    const e = await router.embed({ model: 'bge', input: ['first', 'second'] })
    expect(e.embeddings).toEqual([fakeEmbedding('first'), fakeEmbedding('second')])
    expect(e).toMatchObject({ backend: 'mlx', endpoint: s.url, usage: { promptTokens: 2 } })
    await router.embed({ model: 'named', input: 'x' })
    expect(embedCalls(s, '/v1/embeddings').map((r) => r.body)).toEqual([
      { input: ['first', 'second'] },
      { model: 'bge-m3', input: ['x'] },
    ])
    expect(sink.records.map((r) => r.operation)).toEqual(['embed', 'embed'])
  })

  it('base64 vectors asked for through options are decoded to numbers', async () => {
    const s = await llamacpp()
    const { router } = makeRouter([rec({ model_name: 'bge', backend_type: 'mlx', endpoint_url: s.url })])
    const e = await router.embed({ model: 'bge', input: ['q'], options: { encoding_format: 'base64' } })
    const want = fakeEmbedding('q')
    expect(e.embeddings[0]).toHaveLength(want.length)
    for (let i = 0; i < want.length; i++) expect(e.embeddings[0]![i]).toBeCloseTo(want[i]!, 6)
  })

  it('an auto record: mlx_lm.server has no embeddings route, so its 404 falls over to Ollama', async () => {
    const m = await mlx()
    const o = await ollama()
    const { router, sink } = makeRouter([
      rec({ model_name: 'emb', backend_type: 'auto', endpoint_url: m.url, fallback_url: o.url }),
    ])
    const fallbacks = collect(router, 'request:fallback')
    const e = await router.embed({ model: 'emb', input: ['hi'] })
    expect(e).toMatchObject({ backend: 'ollama', endpoint: o.url })
    expect(e.embeddings).toEqual([fakeEmbedding('hi')])
    expect(embedCalls(m, '/v1/embeddings')).toHaveLength(1)
    expect(e.attempts.map((a) => [a.backend, a.code ?? 'ok', a.status])).toEqual([
      ['mlx', 'UNSUPPORTED_OPERATION', 404],
      ['ollama', 'ok', undefined],
    ])
    expect(fallbacks).toEqual([expect.objectContaining({ code: 'UNSUPPORTED_OPERATION' })])
    // Not retried, and not a health failure: the MLX server is fine for generation.
    expect(router.circuits().every((c) => c.failures === 0 && c.state === 'closed')).toBe(true)
    expect(sink.records[0]).toMatchObject({
      fallback: true,
      attempts: 2,
      backend: 'ollama',
      outcome: 'success',
    })
  })

  it('llama-server without --embeddings (501) is UNSUPPORTED_OPERATION and falls over to the next record', async () => {
    const off = await llamacpp({ embeddings: false })
    const on = await llamacpp()
    const { router } = makeRouter([
      rec({ model_name: 'bge', backend_type: 'mlx', endpoint_url: off.url, priority: 1 }),
      rec({ model_name: 'bge', backend_type: 'mlx', endpoint_url: on.url, priority: 2 }),
    ])
    const e = await router.embed({ model: 'bge', input: 'x' })
    expect(e.endpoint).toBe(on.url)
    expect(e.attempts[0]).toMatchObject({ code: 'UNSUPPORTED_OPERATION', status: 501, attempt: 1 })
    expect(e.attempts[0]?.message).toContain('--embeddings')
    expect(embedCalls(off, '/v1/embeddings')).toHaveLength(1)
  })

  it('vLLM serving a generation model: its 400 "does not support Embeddings API" falls over, not BAD_REQUEST', async () => {
    const generation = await startOpenAIServer({
      flavor: 'vllm',
      modelId: 'Qwen/Qwen3-8B',
      embeddings: false,
    })
    const embedding = await startOpenAIServer({ flavor: 'vllm', modelId: 'BAAI/bge-m3' })
    servers.push(generation, embedding)
    const { router } = makeRouter([
      rec({
        model_name: 'm',
        backend_type: 'mlx',
        endpoint_url: generation.url,
        backend_model: 'Qwen/Qwen3-8B',
      }),
      rec({
        model_name: 'm',
        backend_type: 'mlx',
        endpoint_url: embedding.url,
        backend_model: 'BAAI/bge-m3',
        priority: 2,
      }),
    ])
    const e = await router.embed({ model: 'm', input: ['a', 'b'] })
    expect(e.endpoint).toBe(embedding.url)
    expect(e.embeddings).toEqual([fakeEmbedding('a'), fakeEmbedding('b')])
    expect(e.attempts[0]).toMatchObject({ code: 'UNSUPPORTED_OPERATION', status: 400 })
    expect(e.attempts[0]?.message).toContain('The model does not support Embeddings API')
    expect(embedCalls(embedding, '/v1/embeddings').map((r) => (r.body as { model: string }).model)).toEqual([
      'BAAI/bge-m3',
    ])
  })

  it('only an MLX record: the call fails with every attempt UNSUPPORTED_OPERATION', async () => {
    const m = await mlx()
    const { router } = makeRouter([rec({ model_name: 'emb', backend_type: 'mlx', endpoint_url: m.url })])
    const error = await router.embed({ model: 'emb', input: 'x' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: ErrorCode.ALL_BACKENDS_FAILED })
    expect(hasErrorCode(error, ErrorCode.UNSUPPORTED_OPERATION)).toBe(true)
  })
})

/** An /api/embed server that holds every request until the test releases it, to watch concurrency. */
async function holdingServer() {
  const held: { body: { input: string[] }; res: ServerResponse }[] = []
  let inFlight = 0
  let peak = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (c: Buffer) => {
      raw += c.toString()
    })
    req.on('end', () => {
      inFlight++
      peak = Math.max(peak, inFlight)
      held.push({ body: JSON.parse(raw) as { input: string[] }, res })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const answer = (i: number) => {
    const h = held[i]!
    inFlight--
    h.res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
    h.res.end(JSON.stringify({ model: 'emb', embeddings: h.body.input.map((t) => fakeEmbedding(t)) }))
  }
  const waitFor = async (n: number) => {
    for (let i = 0; i < 500 && held.length < n; i++) await new Promise((r) => setTimeout(r, 2))
    expect(held.length).toBeGreaterThanOrEqual(n)
  }
  return {
    url,
    held,
    answer,
    waitFor,
    peak: () => peak,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  }
}

describe('router.embed() concurrency', () => {
  it('the first batch alone, then at most `concurrency` at once; answers out of order land in order', async () => {
    const h = await holdingServer()
    try {
      const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: h.url })], {
        embedConcurrency: 2,
      })
      const inputs = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
      const p = router.embed({ model: 'emb', input: inputs, batchSize: 2 })
      await h.waitFor(1)
      // Only the first batch is out: later batches are pinned to the model that answers it.
      await new Promise((r) => setTimeout(r, 20))
      expect(h.held).toHaveLength(1)
      h.answer(0)
      await h.waitFor(3)
      await new Promise((r) => setTimeout(r, 20))
      expect(h.held).toHaveLength(3)
      // Answer the later one first.
      h.answer(2)
      await h.waitFor(4)
      h.answer(1)
      h.answer(3)
      const e = await p
      expect(e.embeddings).toEqual(inputs.map((t) => fakeEmbedding(t)))
      expect(h.peak()).toBe(2)
      expect(h.held.map((x) => x.body.input)).toEqual([['a', 'b'], ['c', 'd'], ['e', 'f'], ['g']])
    } finally {
      await h.stop()
    }
  })

  it('the caller’s abort stops every batch in flight; one metric record says aborted', async () => {
    const h = await holdingServer()
    try {
      const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: h.url })])
      const ac = new AbortController()
      const p = router.embed({ model: 'emb', input: ['a', 'b', 'c'], batchSize: 1, signal: ac.signal })
      const settled = p.catch((e: unknown) => e)
      await h.waitFor(1)
      h.answer(0)
      await h.waitFor(3)
      ac.abort()
      const error = await settled
      expect(error).toMatchObject({
        code: ErrorCode.ABORTED,
        message: 'The request was aborted by its AbortSignal',
      })
      expect(sink.records).toHaveLength(1)
      expect(sink.records[0]).toMatchObject({ operation: 'embed', outcome: 'aborted', error_code: 'ABORTED' })
    } finally {
      await h.stop()
    }
  })

  it('timeoutMs bounds the whole call, every batch included', async () => {
    const h = await holdingServer()
    const clock = new ManualClock(Date.now())
    try {
      const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: h.url })], {}, clock)
      const p = router.embed({ model: 'emb', input: ['a', 'b', 'c'], batchSize: 1, timeoutMs: 5000 })
      const settled = p.catch((e: unknown) => e)
      await h.waitFor(1)
      clock.advance(3000)
      h.answer(0)
      await h.waitFor(3)
      // 3 s of the 5 s are gone: the later batches get what is left, not 5 s each.
      clock.advance(2000)
      const error = await settled
      expect(error).toMatchObject({ code: ErrorCode.TIMEOUT })
      expect((error as Error).message).toContain('exceeded its 5000 ms deadline with 1 of 3 batches done')
    } finally {
      await h.stop()
    }
  })
})

describe('router.embed() under backend faults', () => {
  it('a 503 is retried on the same endpoint, then answered', async () => {
    const s = await ollama()
    await s.setFault({ type: '503', times: 1 })
    const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })], {
      retry: { baseDelayMs: 0, maxDelayMs: 0 },
    })
    const retries = collect(router, 'request:retry')
    const e = await router.embed({ model: 'emb', input: ['a', 'b'] })
    expect(e.embeddings).toEqual([fakeEmbedding('a'), fakeEmbedding('b')])
    expect(e.attempts.map((a) => [a.attempt, a.code ?? 'ok'])).toEqual([
      [1, 'BACKEND_BUSY'],
      [2, 'ok'],
    ])
    expect(retries).toEqual([expect.objectContaining({ code: 'BACKEND_BUSY', attempt: 1 })])
    expect(sink.records[0]).toMatchObject({ attempts: 2, outcome: 'success', fallback: false })
  })

  it('a hung server: the attempt limit fires and the call falls over to the next record', async () => {
    const hung = await ollama()
    await hung.setFault('hang')
    const good = await ollama()
    const clock = new ManualClock(Date.now())
    const { router } = makeRouter(
      [
        rec({ model_name: 'emb', endpoint_url: hung.url, priority: 1, timeout_seconds: 5 }),
        rec({ model_name: 'emb', endpoint_url: good.url, priority: 2 }),
      ],
      {},
      clock,
    )
    const p = router.embed({ model: 'emb', input: 'x' })
    await until(() => embedCalls(hung).length === 1, 'the request at the hung server')
    await clock.advanceWhenSet(5000)
    const e = await p
    expect(e.endpoint).toBe(good.url)
    expect(e.attempts[0]).toMatchObject({ code: 'TIMEOUT', endpoint: hung.url })
  })

  it('a connection reset mid-body falls over; a body that is not JSON is MALFORMED_RESPONSE and falls over', async () => {
    const reset = await ollama()
    await reset.setFault('reset-mid-body')
    const garbled = await ollama()
    await garbled.setFault('invalid-json')
    const good = await ollama()
    const { router } = makeRouter([
      rec({ model_name: 'emb', endpoint_url: reset.url, priority: 1 }),
      rec({ model_name: 'emb', endpoint_url: garbled.url, priority: 2 }),
      rec({ model_name: 'emb', endpoint_url: good.url, priority: 3 }),
    ])
    const e = await router.embed({ model: 'emb', input: 'x' })
    expect(e.endpoint).toBe(good.url)
    expect(e.attempts.map((a) => a.code ?? 'ok')).toEqual(['BACKEND_UNREACHABLE', 'MALFORMED_RESPONSE', 'ok'])
  })

  it('a refused port falls over at once', async () => {
    const down = await ollama()
    await down.setFault('down')
    const good = await ollama()
    const { router } = makeRouter([
      rec({ model_name: 'emb', endpoint_url: down.url, priority: 1 }),
      rec({ model_name: 'emb', endpoint_url: good.url, priority: 2 }),
    ])
    const e = await router.embed({ model: 'emb', input: ['x', 'y'], batchSize: 1 })
    expect(e.endpoint).toBe(good.url)
    // Each batch walks the candidates on its own: both tried the refused port first.
    expect(e.attempts.map((a) => a.code ?? 'ok')).toEqual([
      'BACKEND_UNREACHABLE',
      'ok',
      'BACKEND_UNREACHABLE',
      'ok',
    ])
  })

  it('emits request:start and request:end for a call that answers and for one that fails', async () => {
    const s = await ollama()
    const { router } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })])
    const starts: RouterEvents['request:start'][] = []
    const ends: RouterEvents['request:end'][] = []
    router.on('request:start', (e) => starts.push(e))
    router.on('request:end', (e) => ends.push(e))
    await router.embed({ model: 'emb', input: 'x', metadata: { requestId: 'r1' } })
    await s.setFault('404-model')
    const error = await router.embed({ model: 'emb', input: 'x' }).catch((e: unknown) => e)
    expect(isRouterError(error)).toBe(true)
    expect(starts).toEqual([
      { requestId: 'r1', model: 'emb', stream: false },
      { requestId: null, model: 'emb', stream: false },
    ])
    expect(ends).toEqual([
      expect.objectContaining({ requestId: 'r1', model: 'emb', ok: true, code: null }),
      expect.objectContaining({
        requestId: null,
        model: 'emb',
        ok: false,
        code: (error as { code: string }).code,
      }),
    ])
  })

  it('close() stops a call still in flight with CLOSED and records its metric', async () => {
    const s = await ollama()
    await s.setFault('hang')
    const { router, sink } = makeRouter([rec({ model_name: 'emb', endpoint_url: s.url })], {
      closeTimeoutMs: 0,
    })
    const settled = router.embed({ model: 'emb', input: 'x' }).catch((e: unknown) => e)
    await until(() => embedCalls(s).length === 1, 'the request at the server')
    await router.close()
    expect(await settled).toMatchObject({ code: ErrorCode.CLOSED })
    expect(sink.records).toEqual([expect.objectContaining({ operation: 'embed', error_code: 'CLOSED' })])
    await expect(router.embed({ model: 'emb', input: 'x' })).rejects.toMatchObject({ code: ErrorCode.CLOSED })
  })
})

describe('router.embed() and record capabilities', () => {
  it('skips records that declare capabilities without embeddings, and says so in the attempts', async () => {
    const chatOnly = await ollama()
    const embedder = await ollama()
    const { router } = makeRouter([
      rec({ model_name: 'm', endpoint_url: chatOnly.url, priority: 1, capabilities: ['tools', 'thinking'] }),
      rec({ model_name: 'm', endpoint_url: embedder.url, priority: 2, capabilities: ['embeddings'] }),
    ])
    const e = await router.embed({ model: 'm', input: 'x' })
    expect(e.endpoint).toBe(embedder.url)
    expect(embedCalls(chatOnly)).toHaveLength(0)
    expect(e.attempts[0]).toMatchObject({ code: 'NO_CAPABLE_BACKEND', endpoint: chatOnly.url, attempt: 0 })
    expect(e.attempts[0]?.message).toContain('"embeddings"')
  })

  it('records that declare nothing are assumed able', async () => {
    const s = await ollama()
    const { router } = makeRouter([rec({ model_name: 'm', endpoint_url: s.url })])
    await expect(router.embed({ model: 'm', input: 'x' })).resolves.toMatchObject({ endpoint: s.url })
  })

  it('no record can embed: NO_CAPABLE_BACKEND before anything is sent, with one metric', async () => {
    const s = await ollama()
    const { router, sink } = makeRouter([
      rec({ model_name: 'm', endpoint_url: s.url, capabilities: ['tools'] }),
    ])
    const error = await router.embed({ model: 'm', input: ['x', 'y'], batchSize: 1 }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: ErrorCode.NO_CAPABLE_BACKEND })
    expect(s.requests).toHaveLength(0)
    expect(sink.records).toEqual([
      expect.objectContaining({ operation: 'embed', error_code: 'NO_CAPABLE_BACKEND' }),
    ])
  })
})
