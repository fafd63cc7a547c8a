import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { HttpResponse, http } from 'msw'
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import type { MetricRecord } from '../src/types.js'
import { ManualClock } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()
const OLLAMA = 'http://ollama.test:11434'
const MLX = 'http://mlx.test:8080'
const enc = new TextEncoder()

function ndjson(lines: object[], { cutAfter }: { cutAfter?: number } = {}): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      for (let i = 0; i < lines.length; i++) {
        if (cutAfter !== undefined && i === cutAfter) {
          controller.close()
          return
        }
        controller.enqueue(enc.encode(`${JSON.stringify(lines[i])}\n`))
        await new Promise((r) => setTimeout(r, 1))
      }
      controller.close()
    },
  })
}

const OLLAMA_LINES = [
  { model: 'm', created_at: 't', response: 'Hel', done: false },
  { model: 'm', created_at: 't', response: 'lo ', done: false },
  { model: 'm', created_at: 't', response: 'wörld 🌍', done: false },
  {
    model: 'm',
    created_at: 't',
    response: '!',
    done: true,
    done_reason: 'stop',
    prompt_eval_count: 4,
    eval_count: 4,
    eval_duration: 100_000_000,
    load_duration: 2_000_000,
  },
]

function sse(frames: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      for (const f of frames) {
        controller.enqueue(enc.encode(f))
        await new Promise((r) => setTimeout(r, 1))
      }
      controller.close()
    },
  })
}

const chunk = (text: string, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: 'c', object: 'text_completion', model: 'default_model', created: 1, choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`

const MLX_FRAMES = [
  ': keepalive 10/20\n\n',
  chunk('From'),
  chunk(' MLX'),
  chunk('', 'stop'),
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })}\n\n`,
  'data: [DONE]\n\n',
]

const rec = (over: Record<string, unknown>) => ({
  backend_type: 'ollama',
  endpoint_url: OLLAMA,
  enabled: true,
  priority: 100,
  max_tokens: 64,
  ...over,
})

let routers: LLMRouter[] = []
// A ManualClock nobody advances: no test here is about time, and on a busy machine no retry wait or
// attempt limit (first token, idle, overall) may fire on its own and change what a test sees.
function makeRouter(records: Record<string, unknown>[]) {
  const r = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false },
    { clock: new ManualClock(Date.now()) },
  )
  routers.push(r)
  return r
}
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
})

describe('router.stream()', () => {
  it('streams Ollama NDJSON (stream:true), appends the final line text, and resolves result', async () => {
    const bodies: Record<string, unknown>[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        bodies.push((await request.json()) as Record<string, unknown>)
        return new HttpResponse(ndjson(OLLAMA_LINES), { headers: { 'content-type': 'application/x-ndjson' } })
      }),
    )
    const router = makeRouter([rec({ model_name: 'm' })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const s = router.stream({ model: 'm', prompt: 'hi' })
    const texts: string[] = []
    for await (const c of s) {
      texts.push(c.text)
      expect(c).toMatchObject({ model: 'm', backend: 'ollama' })
    }
    expect(texts.join('')).toBe('Hello wörld 🌍!')
    expect(bodies[0]).toMatchObject({ stream: true, model: 'm' })
    const result = await s.result
    expect(result).toMatchObject({
      response: 'Hello wörld 🌍!',
      doneReason: 'stop',
      usage: { promptTokens: 4, completionTokens: 4 },
    })
    expect(result.tokensPerSecond).toBeCloseTo(40)
    expect(result.timeToFirstTokenMs).toBeGreaterThan(0)
    expect(metrics).toHaveLength(1)
    expect(metrics[0]).toMatchObject({ streamed: true, outcome: 'success', tokens: 4 })
    expect(metrics[0]!.time_to_first_token_seconds).toBeGreaterThan(0)
  })

  it('coalesces deltas that arrive while the consumer is busy into one chunk', async () => {
    const body = OLLAMA_LINES.map((l) => `${JSON.stringify(l)}\n`).join('')
    net.use(http.post(`${OLLAMA}/api/generate`, () => new HttpResponse(body)))
    const router = makeRouter([rec({ model_name: 'm' })])
    const chunks: string[] = []
    for await (const c of router.stream({ model: 'm', prompt: 'hi' })) chunks.push(c.text)
    expect(chunks.join('')).toBe('Hello wörld 🌍!')
    // One packet, four deltas: the first goes to the waiting consumer, the rest arrive as one chunk.
    expect(chunks.length).toBeLessThan(OLLAMA_LINES.length)
  })

  it('streams OpenAI SSE with keepalive comments and a separate usage chunk', async () => {
    const bodies: Record<string, unknown>[] = []
    net.use(
      http.post(`${MLX}/v1/completions`, async ({ request }) => {
        bodies.push((await request.json()) as Record<string, unknown>)
        return new HttpResponse(sse(MLX_FRAMES), { headers: { 'content-type': 'text/event-stream' } })
      }),
    )
    const router = makeRouter([rec({ model_name: 'q', backend_type: 'mlx', endpoint_url: MLX })])
    const s = router.stream({ model: 'q', prompt: 'hi' })
    let text = ''
    for await (const c of s) text += c.text
    expect(text).toBe('From MLX')
    expect(bodies[0]).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    expect(bodies[0]).not.toHaveProperty('model')
    expect(await s.result).toMatchObject({
      backend: 'mlx',
      usage: { promptTokens: 3, completionTokens: 2 },
      doneReason: 'stop',
    })
  })

  it('falls back before the first chunk (auto: MLX 503 -> Ollama)', async () => {
    net.use(
      http.post(`${MLX}/v1/completions`, () =>
        HttpResponse.json({ error: 'Loading model' }, { status: 503 }),
      ),
      http.post(`${OLLAMA}/api/generate`, () => new HttpResponse(ndjson(OLLAMA_LINES))),
    )
    const router = createLLMRouter(
      {
        env: {
          LLM_ROUTER_BACKENDS: JSON.stringify([
            rec({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA }),
          ]),
        },
        metrics: false,
        retry: { maxRetries: 0 },
      },
      { clock: new ManualClock(Date.now()) },
    )
    routers.push(router)
    const s = router.stream({ model: 'm', prompt: 'hi' })
    let text = ''
    for await (const c of s) {
      expect(c.backend).toBe('ollama')
      text += c.text
    }
    expect(text).toBe('Hello wörld 🌍!')
    const r = await s.result
    expect(r.attempts.map((a) => a.code ?? 'ok')).toEqual(['BACKEND_BUSY', 'ok'])
  })

  it('an error line after chunks is STREAM_INTERRUPTED, saying how much was delivered; no fallback', async () => {
    let fallbackHits = 0
    net.use(
      http.post(
        `${OLLAMA}/api/generate`,
        () =>
          new HttpResponse(
            ndjson([OLLAMA_LINES[0]!, { error: 'an error was encountered while running the model' }]),
          ),
      ),
      http.post('http://ollama2.test:11434/api/generate', () => {
        fallbackHits++
        return new HttpResponse(ndjson(OLLAMA_LINES))
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'm' }),
      rec({ model_name: 'm', priority: 200, endpoint_url: 'http://ollama2.test:11434' }),
    ])
    const s = router.stream({ model: 'm', prompt: 'hi' })
    const got: string[] = []
    const err = await (async () => {
      for await (const c of s) got.push(c.text)
    })().catch((e) => e)
    expect(got).toEqual(['Hel'])
    expect(err.code).toBe('STREAM_INTERRUPTED')
    expect(err.delivered).toBe(3)
    expect(err.message).toContain('3 characters')
    expect(err.cause.code).toBe('STREAM_ERROR')
    expect(fallbackHits).toBe(0)
    await expect(s.result).rejects.toMatchObject({ code: 'STREAM_INTERRUPTED' })
  })

  it('a stream cut without its final line is an error, never a silent truncation', async () => {
    net.use(
      http.post(`${OLLAMA}/api/generate`, () => new HttpResponse(ndjson(OLLAMA_LINES, { cutAfter: 2 }))),
    )
    const router = makeRouter([rec({ model_name: 'm' })])
    const s = router.stream({ model: 'm', prompt: 'hi' })
    const err = await (async () => {
      for await (const _ of s) {
      }
    })().catch((e) => e)
    expect(err.code).toBe('STREAM_INTERRUPTED')
    expect(err.cause.code).toBe('STREAM_ERROR')
  })

  it('an SSE stream without [DONE] is an error', async () => {
    net.use(http.post(`${MLX}/v1/completions`, () => new HttpResponse(sse(MLX_FRAMES.slice(0, 3)))))
    const router = makeRouter([rec({ model_name: 'q', backend_type: 'mlx', endpoint_url: MLX })])
    await expect(router.stream({ model: 'q', prompt: 'x' }).result).rejects.toMatchObject({
      code: 'STREAM_INTERRUPTED',
    })
  })

  it('result works without iterating, and an unread stream sends nothing', async () => {
    let hits = 0
    net.use(
      http.post(`${OLLAMA}/api/generate`, () => {
        hits++
        return new HttpResponse(ndjson(OLLAMA_LINES))
      }),
    )
    const router = makeRouter([rec({ model_name: 'm' })])
    router.stream({ model: 'm', prompt: 'never read' })
    await new Promise((r) => setTimeout(r, 20))
    expect(hits).toBe(0)
    const r = await router.stream({ model: 'm', prompt: 'x' }).result
    expect(r.response).toBe('Hello wörld 🌍!')
    expect(hits).toBe(1)
  })
})

describe('stream connection handling (real server)', () => {
  let server: Server | null = null
  afterEach(async () => {
    server?.closeAllConnections()
    await new Promise((r) => server?.close(r) ?? r(undefined))
    server = null
  })

  it('breaking out of the loop closes the connection', async () => {
    let closed = false
    let sent = 0
    server = createServer((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      const timer = setInterval(() => {
        sent++
        res.write(`${JSON.stringify({ model: 'm', response: `t${sent} `, done: false })}\n`)
      }, 2)
      res.on('close', () => {
        closed = true
        clearInterval(timer)
      })
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const router = makeRouter([rec({ model_name: 'm', endpoint_url: url })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const s = router.stream({ model: 'm', prompt: 'x' })
    let n = 0
    for await (const _ of s) {
      if (++n === 3) break
    }
    await expect(s.result).rejects.toMatchObject({ code: 'ABORTED' })
    for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 5))
    expect(closed).toBe(true)
    expect(metrics).toHaveLength(1)
    expect(metrics[0]).toMatchObject({ outcome: 'aborted', error_code: 'ABORTED', streamed: true })
  })

  it('abort() and the caller signal stop a stream mid-way', async () => {
    server = createServer((req, res) => {
      req.resume()
      res.writeHead(200)
      const timer = setInterval(() => res.write(`${JSON.stringify({ response: 'x', done: false })}\n`), 2)
      res.on('close', () => clearInterval(timer))
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const router = makeRouter([rec({ model_name: 'm', endpoint_url: url })])
    const ac = new AbortController()
    const s = router.stream({ model: 'm', prompt: 'x', signal: ac.signal })
    const err = await (async () => {
      let n = 0
      for await (const _ of s) if (++n === 2) ac.abort()
    })().catch((e) => e)
    expect(err.code).toBe('ABORTED')
    expect(err.delivered).toBeGreaterThan(0)

    const s2 = router.stream({ model: 'm', prompt: 'x' })
    const err2 = await (async () => {
      let n = 0
      for await (const _ of s2) if (++n === 2) s2.abort()
    })().catch((e) => e)
    expect(err2.code).toBe('ABORTED')
  })
})
