import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  adminHandlers,
  createMockNetwork,
  makeMetricRecord,
  mlxHandlers,
  OLLAMA_BUSY_MESSAGE,
  ollamaHandlers,
  openAIHandlers,
  parseNdjson,
  parseSse,
  startOllamaServer,
} from '../src/testing/index.js'

const OLLAMA = 'http://ollama.test:11434'
const MLX = 'http://mlx.test:8080'
const ADMIN = 'http://admin.test'

const ollama = ollamaHandlers({
  baseUrl: OLLAMA,
  models: ['llama3.2:latest'],
  respond: 'Paris is the capital.',
})
const mlx = openAIHandlers({ baseUrl: MLX, respond: 'a b c' })
const admin = adminHandlers({
  baseUrl: ADMIN,
  etag: true,
  records: [
    { model_name: 'llama3.2', backend_type: 'ollama', endpoint_url: OLLAMA, enabled: true, priority: 1 },
  ],
})
const network = createMockNetwork(...ollama, ...mlx, ...admin)

beforeAll(() => network.enable())
afterEach(async () => {
  network.resetHandlers()
  ollama.reset()
  mlx.reset()
  admin.reset()
})
afterAll(() => network.disable())

async function send(url: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

const generate = (body: Record<string, unknown> = {}) =>
  send(`${OLLAMA}/api/generate`, { model: 'llama3.2', prompt: 'Capital of France?', ...body })

describe('msw handlers seen by undici.request', () => {
  it('Ollama: JSON, NDJSON stream, discovery, 404 and request recording', async () => {
    const json = await generate({ stream: false })
    expect(json.status).toBe(200)
    expect(JSON.parse(json.text)).toMatchObject({
      response: 'Paris is the capital.',
      done: true,
      eval_count: 4,
    })
    const stream = await generate()
    expect(stream.headers['content-type']).toBe('application/x-ndjson')
    const lines = parseNdjson(stream.text) as Record<string, unknown>[]
    expect(lines.map((l) => l.response).join('')).toBe('Paris is the capital.')
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' })
    expect((await send(`${OLLAMA}/`)).text).toBe('Ollama is running')
    const nf = await generate({ model: 'nope' })
    expect(nf.status).toBe(404)
    expect(nf.text).toBe(`{"error":"model 'nope' not found"}`)
    expect(ollama.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /api/generate',
      'POST /api/generate',
      'GET /',
      'POST /api/generate',
    ])
    expect(ollama.requests[0]?.body).toMatchObject({ model: 'llama3.2', stream: false })
  })

  it('OpenAI: JSON and SSE with keepalive comment, include_usage and [DONE]', async () => {
    const json = await send(`${MLX}/v1/completions`, { prompt: 'x' })
    expect(JSON.parse(json.text)).toMatchObject({ model: 'default_model', choices: [{ text: 'a b c' }] })
    const sse = await send(`${MLX}/v1/completions`, {
      prompt: 'x',
      stream: true,
      stream_options: { include_usage: true },
    })
    expect(sse.headers['content-type']).toBe('text/event-stream')
    const events = parseSse(sse.text)
    expect(events[0]?.comments[0]).toMatch(/^keepalive /)
    const data = events.map((e) => e.data).filter((d): d is string => d !== undefined)
    expect(data.at(-1)).toBe('[DONE]')
    expect(JSON.parse(data.at(-2) ?? '')).toMatchObject({ object: 'chat.completion', choices: [] })
    expect((await send(`${MLX}/health`)).text).toBe('{"status": "ok"}')
    expect(mlxHandlers).toBe(openAIHandlers)
  })

  it('admin: records with ETag/304, model lookup, metrics intake', async () => {
    const first = await send(`${ADMIN}/api/llm-backends/public`)
    expect(JSON.parse(first.text)).toHaveLength(1)
    const etag = String(first.headers.etag)
    expect(
      (await send(`${ADMIN}/api/llm-backends/public`, undefined, { 'if-none-match': etag })).status,
    ).toBe(304)
    expect((await send(`${ADMIN}/api/llm-backends/model/llama3.2`)).status).toBe(200)
    expect((await send(`${ADMIN}/api/llm-backends/model/other`)).status).toBe(404)
    await send(`${ADMIN}/api/llm-backends/metrics`, [makeMetricRecord(), makeMetricRecord()])
    await send(`${ADMIN}/api/llm-backends/metrics`, makeMetricRecord({ model: 'z' }))
    expect(admin.metrics.map((m) => m.model)).toEqual(['llama3.2', 'llama3.2', 'z'])
    expect(admin.metricPosts.map((p) => p.array)).toEqual([true, false])
  })
})

describe('msw fault switches', () => {
  it('down and drop-socket are network errors', async () => {
    await ollama.setFault({ type: 'down', times: 1 })
    await expect(generate()).rejects.toThrow()
    expect((await generate()).status).toBe(200)
    await mlx.setFault('drop-socket')
    await expect(send(`${MLX}/v1/completions`, { prompt: 'x' })).rejects.toThrow()
  })

  it('503 exact text, 429 Retry-After, 500 HTML', async () => {
    await ollama.setFault({ type: '503', times: 1 })
    const busy = await generate()
    expect(busy.status).toBe(503)
    expect(busy.text).toBe(`{"error":"${OLLAMA_BUSY_MESSAGE}"}`)
    await ollama.setFault({ type: '429', retryAfter: 3 })
    const limited = await generate()
    expect(limited.status).toBe(429)
    expect(limited.headers['retry-after']).toBe('3')
    await admin.setFault('500-html')
    const html = await send(`${ADMIN}/api/llm-backends/public`)
    expect(html.status).toBe(500)
    expect(html.text).toContain('<html>')
  })

  it('error-mid-stream and cut-stream', async () => {
    await ollama.setFault('error-mid-stream')
    const mid = parseNdjson((await generate()).text) as Record<string, unknown>[]
    expect(mid.at(-1)).toEqual({ error: 'an error was encountered while running the model' })
    expect(mid.some((l) => l.done === true)).toBe(false)
    await mlx.setFault('cut-stream')
    const cut = await send(`${MLX}/v1/completions`, { prompt: 'x', stream: true })
    expect(cut.text).not.toContain('[DONE]')
    expect(cut.text).not.toContain('"finish_reason":"stop"')
  })

  it('slow delays the response; reset-mid-body errors the body after the headers', async () => {
    await ollama.setFault({ type: 'slow', delayMs: 60 })
    const t0 = performance.now()
    expect((await generate()).status).toBe(200)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55)
    await ollama.setFault('reset-mid-body')
    const res = await request(`${OLLAMA}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', prompt: 'x' }),
    })
    expect(res.statusCode).toBe(200)
    await expect(res.body.text()).rejects.toThrow()
  })

  it('hang waits until the client aborts', async () => {
    await ollama.setFault('hang')
    const t0 = performance.now()
    await expect(
      request(`${OLLAMA}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', prompt: 'x' }),
        signal: AbortSignal.timeout(80),
      }),
    ).rejects.toThrow()
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75)
  })

  it('stall-body sends the first line then nothing; oversize, trickle and invalid-json shape the body', async () => {
    await ollama.setFault('stall-body')
    const res = await request(`${OLLAMA}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', prompt: 'x' }),
      signal: AbortSignal.timeout(100),
    })
    let received = ''
    await expect(
      (async () => {
        for await (const chunk of res.body) received += chunk.toString()
      })(),
    ).rejects.toThrow()
    expect(parseNdjson(received)).toEqual([expect.objectContaining({ response: 'Paris', done: false })])
    await ollama.setFault({ type: 'oversize', bytes: 100_000 })
    const big = await generate({ stream: false })
    expect(big.headers['content-length']).toBe('100000')
    expect(big.text).toHaveLength(100_000)
    await ollama.setFault({ type: 'trickle', chunkBytes: 32, delayMs: 1 })
    expect(JSON.parse((await generate({ stream: false })).text)).toMatchObject({ done: true })
    await admin.setFault('invalid-json')
    const garbage = await send(`${ADMIN}/api/llm-backends/public`)
    expect(garbage.status).toBe(200)
    expect(() => JSON.parse(garbage.text)).toThrow()
  })

  it('network.use() handlers win over the stand-ins until resetHandlers()', async () => {
    network.use(...ollamaHandlers({ baseUrl: OLLAMA, respond: 'override' }))
    expect(JSON.parse((await generate({ stream: false })).text).response).toBe('override')
    network.resetHandlers()
    expect(JSON.parse((await generate({ stream: false })).text).response).toBe('Paris is the capital.')
  })

  it('unhandled requests (a real 127.0.0.1 stand-in) pass through', async () => {
    const real = await startOllamaServer()
    try {
      expect((await send(`${real.url}/`)).text).toBe('Ollama is running')
      expect(real.requests).toHaveLength(1)
    } finally {
      await real.stop()
    }
  })
})
