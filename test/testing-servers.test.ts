import { Readable } from 'node:stream'
import { Agent, request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter } from '../src/index.js'
import {
  type AdminServer,
  FAULT_TYPES,
  type FaultType,
  makeMetricRecord,
  OLLAMA_BUSY_MESSAGE,
  type OllamaServer,
  type OpenAIServer,
  parseNdjson,
  parseSse,
  type StandInServer,
  startAdminServer,
  startMlxServer,
  startOllamaServer,
  startOpenAIServer,
  tokenize,
} from '../src/testing/index.js'

const servers: StandInServer[] = []
const agents: Agent[] = []

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.destroy()))
  await Promise.all(servers.splice(0).map((s) => s.stop()))
})

async function ollama(options: Parameters<typeof startOllamaServer>[0] = {}): Promise<OllamaServer> {
  const s = await startOllamaServer(options)
  servers.push(s)
  return s
}
async function mlx(options: Parameters<typeof startOpenAIServer>[0] = {}): Promise<OpenAIServer> {
  const s = await startOpenAIServer(options)
  servers.push(s)
  return s
}
async function admin(options: Parameters<typeof startAdminServer>[0] = {}): Promise<AdminServer> {
  const s = await startAdminServer(options)
  servers.push(s)
  return s
}

function agent(opts: ConstructorParameters<typeof Agent>[0] = {}): Agent {
  const a = new Agent(opts)
  agents.push(a)
  return a
}

interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

async function send(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string>; dispatcher?: Agent } = {},
): Promise<Res> {
  const body =
    init.body === undefined
      ? undefined
      : typeof init.body === 'string'
        ? init.body
        : JSON.stringify(init.body)
  const res = await request(url, {
    method: (init.method ?? (body !== undefined ? 'POST' : 'GET')) as 'GET',
    headers: { 'content-type': 'application/json', ...init.headers },
    ...(body !== undefined ? { body } : {}),
    ...(init.dispatcher !== undefined ? { dispatcher: init.dispatcher } : {}),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

function json(r: Res): Record<string, unknown> {
  return JSON.parse(r.text) as Record<string, unknown>
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p
  } catch (e) {
    const err = e as { code?: string; message: string }
    return err
  }
  throw new Error('expected the request to fail')
}

describe('Ollama stand-in', () => {
  it('answers the discovery routes', async () => {
    const s = await ollama({ models: ['llama3.2:latest', 'phi3:mini'], version: '0.9.0' })
    const root = await send(`${s.url}/`)
    expect(root.status).toBe(200)
    expect(root.text).toBe('Ollama is running')
    expect(json(await send(`${s.url}/api/version`))).toEqual({ version: '0.9.0' })
    const tags = json(await send(`${s.url}/api/tags`)) as { models: { name: string; details: unknown }[] }
    expect(tags.models.map((m) => m.name)).toEqual(['llama3.2:latest', 'phi3:mini'])
    expect(tags.models[0]?.details).toMatchObject({ format: 'gguf' })
    expect((json(await send(`${s.url}/api/ps`)) as { models: unknown[] }).models).toEqual([])
    await send(`${s.url}/api/generate`, { body: { model: 'llama3.2', prompt: 'hi', stream: false } })
    const ps = json(await send(`${s.url}/api/ps`)) as { models: { name: string; expires_at: string }[] }
    expect(ps.models.map((m) => m.name)).toEqual(['llama3.2:latest'])
    expect(Date.parse(ps.models[0]?.expires_at ?? '')).toBeGreaterThan(Date.now())
    expect((await send(`${s.url}/nope`)).status).toBe(404)
    expect((await send(`${s.url}/api/generate`)).status).toBe(405)
  })

  it('streams NDJSON by default, every line ending in \\n, metrics only on the done line', async () => {
    const s = await ollama({ respond: 'The sky is blue because of Rayleigh scattering.' })
    const r = await send(`${s.url}/api/generate`, {
      body: { model: 'llama3.2', prompt: 'Why is the sky blue?' },
    })
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('application/x-ndjson')
    expect(r.text.endsWith('\n')).toBe(true)
    const lines = parseNdjson(r.text) as Record<string, unknown>[]
    expect(r.text.split('\n').length).toBe(lines.length + 1)
    const last = lines.at(-1) as Record<string, unknown>
    for (const l of lines.slice(0, -1)) {
      expect(l).toEqual({
        model: 'llama3.2',
        created_at: expect.any(String),
        response: expect.any(String),
        done: false,
      })
    }
    expect(last).toMatchObject({ done: true, done_reason: 'stop', model: 'llama3.2' })
    // The final line carries the last piece, as the real server does.
    expect(last.response).toBe(' scattering.')
    expect(lines.map((l) => l.response).join('')).toBe('The sky is blue because of Rayleigh scattering.')
    expect(last.eval_count).toBe(8)
    expect(last.prompt_eval_count).toBe(5)
    for (const k of ['total_duration', 'prompt_eval_duration', 'eval_duration']) {
      expect(Number.isInteger(last[k])).toBe(true)
      expect(last[k]).toBeGreaterThan(0)
    }
    expect(last).not.toHaveProperty('load_duration')
    expect(Array.isArray(last.context)).toBe(true)
  })

  it('answers JSON with stream:false, honours num_predict, stop, system, raw and reports load_duration once', async () => {
    const s = await ollama({ loadMs: 30, respond: 'one two three four five. six seven' })
    const first = json(
      await send(`${s.url}/api/generate`, {
        body: { model: 'm', prompt: 'a b', system: 'be brief', stream: false, options: { num_predict: 3 } },
      }),
    )
    expect(first).toMatchObject({
      response: 'one two three',
      done: true,
      done_reason: 'length',
      eval_count: 3,
    })
    expect(first.prompt_eval_count).toBe(4)
    expect(first.load_duration).toBe(30_000_000)
    const second = json(
      await send(`${s.url}/api/generate`, {
        body: { model: 'm', prompt: 'x', stream: false, options: { stop: ['.'] } },
      }),
    )
    expect(second).toMatchObject({ response: 'one two three four five', done_reason: 'stop', eval_count: 5 })
    expect(second).not.toHaveProperty('load_duration')
    const raw = json(
      await send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'x', stream: false, raw: true } }),
    )
    expect(raw).not.toHaveProperty('context')
    expect(s.loadedModels).toEqual(['m:latest'])
    s.unloadAll()
    const cold = json(
      await send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'x', stream: false } }),
    )
    expect(cold.load_duration).toBe(30_000_000)
  })

  it('paces tokens at tokensPerSecond and reports that speed', async () => {
    const s = await ollama({ tokensPerSecond: 100, timeToFirstTokenMs: 20, respond: 'a b c d e f' })
    const t0 = performance.now()
    const r = await send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'p' } })
    const elapsed = performance.now() - t0
    expect(elapsed).toBeGreaterThanOrEqual(65) // 20 ms TTFT + 5 gaps of 10 ms
    const last = (parseNdjson(r.text) as Record<string, number>[]).at(-1) as Record<string, number>
    expect((last.eval_count ?? 0) / ((last.eval_duration ?? 1) / 1e9)).toBeCloseTo(100, 5)
    expect(last.prompt_eval_duration).toBe(20_000_000)
  })

  it('follows the load-only, unknown model and bad request rules', async () => {
    const s = await ollama({ models: ['llama3.2:latest'] })
    const url = `${s.url}/api/generate`
    const missing = await send(url, { body: { model: 'nope', prompt: 'x' } })
    expect(missing.status).toBe(404)
    expect(missing.text).toBe(`{"error":"model 'nope' not found"}`)
    expect(json(await send(url, { body: { prompt: 'x' } }))).toEqual({ error: "model '' not found" })
    const load = json(await send(url, { body: { model: 'llama3.2' } }))
    expect(load).toMatchObject({ response: '', done: true, done_reason: 'load' })
    const unload = json(await send(url, { body: { model: 'llama3.2', keep_alive: 0 } }))
    expect(unload.done_reason).toBe('unload')
    expect(s.loadedModels).toEqual([])
    expect((await send(url, { body: '' })).text).toBe('{"error":"missing request body"}')
    expect((await send(url, { body: '{nope' })).status).toBe(400)
    expect((await send(url, { body: { model: 'llama3.2', prompt: 'x', stream: 'yes' } })).status).toBe(400)
    expect((await send(url, { body: { model: 'llama3.2', prompt: 'x', keep_alive: 'soon' } })).status).toBe(
      400,
    )
  })

  it('records every request with method, path, headers and parsed body', async () => {
    const s = await ollama()
    await send(`${s.url}/api/generate?x=1`, {
      body: { model: 'm', prompt: 'hello' },
      headers: { 'x-test': 'yes' },
    })
    await send(`${s.url}/`)
    expect(s.requests).toHaveLength(2)
    expect(s.requests[0]).toMatchObject({
      method: 'POST',
      path: '/api/generate',
      url: '/api/generate?x=1',
      body: { model: 'm', prompt: 'hello' },
      fault: null,
    })
    expect(s.requests[0]?.headers['x-test']).toBe('yes')
    s.reset()
    expect(s.requests).toHaveLength(0)
  })
})

describe('Ollama faults', () => {
  const gen = (s: StandInServer, body: Record<string, unknown> = {}) =>
    send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'hello there', ...body } })

  it('503 busy with the exact text, for the next N requests only, generation route only', async () => {
    const s = await ollama()
    await s.setFault({ type: '503', times: 2 })
    expect((await send(`${s.url}/`)).status).toBe(200)
    const busy = await gen(s)
    expect(busy.status).toBe(503)
    expect(busy.text).toBe(`{"error":"${OLLAMA_BUSY_MESSAGE}"}`)
    expect(OLLAMA_BUSY_MESSAGE).toContain('again.  maximum')
    expect((await gen(s)).status).toBe(503)
    expect((await gen(s)).status).toBe(200)
    expect(s.fault).toBeNull()
    expect(s.requests.map((r) => r.fault)).toEqual([null, '503', '503', null])
  })

  it('429 with Retry-After in seconds or as an HTTP-date', async () => {
    const s = await ollama()
    await s.setFault({ type: '429', retryAfter: 7 })
    const a = await gen(s)
    expect(a.status).toBe(429)
    expect(a.headers['retry-after']).toBe('7')
    const date = new Date(Date.now() + 5000).toUTCString()
    await s.setFault({ type: '429', retryAfter: date })
    expect((await gen(s)).headers['retry-after']).toBe(date)
  })

  it('500 with an HTML body, 400, 404-model and invalid JSON', async () => {
    const s = await ollama()
    await s.setFault('500-html')
    const html = await gen(s)
    expect(html.status).toBe(500)
    expect(html.headers['content-type']).toBe('text/html')
    expect(html.text).toContain('<html>')
    await s.setFault('400')
    expect((await gen(s)).status).toBe(400)
    await s.setFault('404-model')
    const nf = await gen(s)
    expect(nf.status).toBe(404)
    expect(nf.text).toBe(`{"error":"model 'm' not found"}`)
    await s.setFault('invalid-json')
    const bad = await gen(s, { stream: false })
    expect(bad.status).toBe(200)
    expect(() => JSON.parse(bad.text)).toThrow()
    const badStream = await gen(s)
    expect(() => parseNdjson(badStream.text)).toThrow()
  })

  it('error-mid-stream: status 200, an error line after a chunk, no done line', async () => {
    const s = await ollama()
    await s.setFault({ type: 'error-mid-stream' })
    const r = await gen(s)
    expect(r.status).toBe(200)
    const lines = parseNdjson(r.text) as Record<string, unknown>[]
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({ done: false })
    expect(lines[1]).toEqual({ error: 'an error was encountered while running the model' })
    const nonStream = await gen(s, { stream: false })
    expect(nonStream.status).toBe(500)
  })

  it('cut-stream: a clean end without the done line', async () => {
    const s = await ollama()
    await s.setFault('cut-stream')
    const r = await gen(s)
    expect(r.status).toBe(200)
    const lines = parseNdjson(r.text) as Record<string, unknown>[]
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.every((l) => l.done === false)).toBe(true)
  })

  it('reset-mid-body: headers and part of the body, then a socket error', async () => {
    const s = await ollama()
    await s.setFault('reset-mid-body')
    const res = await request(`${s.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x' }),
    })
    expect(res.statusCode).toBe(200)
    await expect(res.body.text()).rejects.toThrow()
    await s.setFault('reset-mid-body')
    const res2 = await request(`${s.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x', stream: false }),
    })
    expect(Number(res2.headers['content-length'])).toBeGreaterThan(0)
    await expect(res2.body.text()).rejects.toThrow()
  })

  it('stall-body: headers and the first line, then silence; hang: no headers at all', async () => {
    const s = await ollama()
    await s.setFault('stall-body')
    const res = await request(`${s.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x' }),
      signal: AbortSignal.timeout(150),
    })
    expect(res.statusCode).toBe(200)
    let received = ''
    const err = await failure(
      (async () => {
        for await (const chunk of res.body) received += chunk.toString()
      })(),
    )
    expect(err.message).toMatch(/abort/i)
    expect(parseNdjson(received)).toEqual([expect.objectContaining({ done: false })])
    await s.setFault('hang')
    const t0 = performance.now()
    const headErr = await failure(
      request(`${s.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'm', prompt: 'x' }),
        signal: AbortSignal.timeout(100),
      }),
    )
    expect(headErr.message).toMatch(/abort/i)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95)
    expect(s.requests.at(-1)?.fault).toBe('hang')
  })

  it('slow delays the answer; trickle cuts it into many small delayed pieces', async () => {
    const s = await ollama({ respond: 'abc' })
    await s.setFault({ type: 'slow', delayMs: 80 })
    let t0 = performance.now()
    expect((await gen(s)).status).toBe(200)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75)
    await s.setFault({ type: 'trickle', chunkBytes: 8, delayMs: 5 })
    t0 = performance.now()
    const res = await request(`${s.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x', stream: false }),
    })
    let pieces = 0
    let text = ''
    for await (const chunk of res.body) {
      pieces++
      text += chunk.toString()
    }
    expect(pieces).toBeGreaterThan(10)
    expect(JSON.parse(text)).toMatchObject({ response: 'abc', done: true })
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50)
  })

  it('oversize: a lazily generated body of the requested size (50 MiB by default)', async () => {
    const s = await ollama()
    await s.setFault({ type: 'oversize', bytes: 300_000 })
    const r = await gen(s, { stream: false })
    expect(r.status).toBe(200)
    expect(r.headers['content-length']).toBe('300000')
    expect(Buffer.byteLength(r.text)).toBe(300_000)
    expect(r.text.startsWith('{"response":"xxx')).toBe(true)
    await s.setFault('oversize')
    const res = await request(`${s.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', prompt: 'x', stream: false }),
    })
    expect(res.headers['content-length']).toBe(String(50 * 1024 * 1024))
    res.body.destroy()
  })

  it('drop-socket: the socket closes with no response', async () => {
    const s = await ollama()
    await s.setFault('drop-socket')
    const err = await failure(gen(s))
    expect(err.code).toBe('UND_ERR_SOCKET')
  })

  it('down: connection refused until cleared, then the same port answers again', async () => {
    const s = await ollama()
    const port = s.port
    await s.setFault('down')
    expect(s.listening).toBe(false)
    expect(s.fault?.type).toBe('down')
    expect((await failure(send(`${s.url}/`))).code).toBe('ECONNREFUSED')
    await s.clearFault()
    expect(s.port).toBe(port)
    expect((await send(`${s.url}/`)).text).toBe('Ollama is running')
  })

  it('a path-scoped fault applies only there', async () => {
    const s = await ollama()
    await s.setFault({ type: '500-html', path: '/api/tags' })
    expect((await gen(s)).status).toBe(200)
    expect((await send(`${s.url}/api/tags`)).status).toBe(500)
    await s.setFault({ type: '503', path: '*' })
    expect((await send(`${s.url}/`)).status).toBe(503)
  })
})

describe('OpenAI-compatible (mlx) stand-in', () => {
  const complete = (s: StandInServer, body: Record<string, unknown>, init: { dispatcher?: Agent } = {}) =>
    send(`${s.url}/v1/completions`, { body: { prompt: 'Once upon a time', ...body }, ...init })

  it('answers JSON like mlx_lm.server and closes the connection after each response', async () => {
    const s = await mlx({ respond: 'there was a fox' })
    const r = await complete(s, { max_tokens: 32 })
    expect(r.status).toBe(200)
    expect(r.headers.connection).toBe('close')
    expect(r.headers['content-type']).toBe('application/json')
    const body = json(r)
    expect(body).toMatchObject({
      object: 'text_completion',
      model: 'default_model',
      choices: [{ index: 0, finish_reason: 'stop', text: 'there was a fox' }],
      usage: {
        prompt_tokens: 4,
        completion_tokens: 4,
        total_tokens: 8,
        prompt_tokens_details: { cached_tokens: 0 },
      },
    })
    expect(String(body.id)).toMatch(/^cmpl-/)
    expect(typeof body.system_fingerprint).toBe('string')
    expect(json(await complete(s, { model: 'mlx-community/x', max_tokens: 2 }))).toMatchObject({
      model: 'mlx-community/x',
      choices: [{ finish_reason: 'length', text: 'there was' }],
    })
    await expect.poll(() => s.connections).toBe(0)
  })

  it('streams SSE: keepalive comment first, deltas with finish_reason null, final chunk, [DONE]', async () => {
    const s = await mlx({ respond: 'a b c' })
    const r = await complete(s, { stream: true })
    expect(r.headers['content-type']).toBe('text/event-stream')
    expect(r.headers['cache-control']).toBe('no-cache')
    expect(r.headers['transfer-encoding']).toBeUndefined()
    expect(r.text.startsWith(': keepalive 4/4\n\n')).toBe(true)
    const events = parseSse(r.text)
    const data = events.filter((e) => e.data !== undefined).map((e) => e.data as string)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: Record<string, unknown>[] })
    expect(chunks.slice(0, 3).map((c) => c.choices[0])).toEqual([
      { index: 0, finish_reason: null, text: 'a' },
      { index: 0, finish_reason: null, text: ' b' },
      { index: 0, finish_reason: null, text: ' c' },
    ])
    expect(chunks[3]?.choices[0]).toEqual({ index: 0, finish_reason: 'stop', text: '' })
    expect(chunks).toHaveLength(4)
    expect(r.text).not.toContain('usage')
  })

  it('adds the chat.completion usage chunk only with include_usage', async () => {
    const s = await mlx({ respond: 'a b c' })
    const r = await complete(s, { stream: true, stream_options: { include_usage: true } })
    const data = parseSse(r.text)
      .map((e) => e.data)
      .filter((d): d is string => d !== undefined)
    expect(data.at(-1)).toBe('[DONE]')
    const usage = JSON.parse(data.at(-2) ?? '') as Record<string, unknown>
    expect(usage).toMatchObject({ object: 'chat.completion', choices: [], usage: { completion_tokens: 3 } })
  })

  it('keeps the TTFT as keepalive comments and paces tokens', async () => {
    const s = await mlx({ respond: 'a b c', timeToFirstTokenMs: 40, tokensPerSecond: 100 })
    const t0 = performance.now()
    const r = await complete(s, { stream: true })
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55)
    const comments = parseSse(r.text).flatMap((e) => e.comments)
    expect(comments).toEqual(['keepalive 2/4', 'keepalive 4/4'])
  })

  it('411 without Content-Length, 400 on invalid JSON, dropped socket on invalid parameters', async () => {
    const s = await mlx()
    const chunked = await request(`${s.url}/v1/completions`, {
      method: 'POST',
      // A Readable has no known length, so undici sends it chunked, without Content-Length.
      body: Readable.from([Buffer.from('{"prompt":"x"}')]),
    })
    expect(chunked.statusCode).toBe(411)
    expect(await chunked.body.json()).toEqual({ error: 'Content-Length header is required' })
    const bad = await send(`${s.url}/v1/completions`, { body: '{nope' })
    expect(bad.status).toBe(400)
    expect(String(json(bad).error)).toMatch(/^Invalid JSON in request body: /)
    expect((await failure(complete(s, { stream: 'yes' }))).code).toBe('UND_ERR_SOCKET')
    expect((await failure(send(`${s.url}/v1/completions`, { body: { max_tokens: 3 } }))).code).toBe(
      'UND_ERR_SOCKET',
    )
    // max_tokens below 0 fails validate_model_parameters (llama-server takes -1 as unlimited).
    expect((await failure(complete(s, { max_tokens: -1 }))).code).toBe('UND_ERR_SOCKET')
  })

  it('health, models, unknown routes, and 404 for models outside the list', async () => {
    const s = await mlx({ models: ['mlx-community/a'], modelId: 'mlx-community/a' })
    const health = await send(`${s.url}/health`)
    expect(health.text).toBe('{"status": "ok"}')
    expect(json(await send(`${s.url}/v1/models`))).toMatchObject({
      object: 'list',
      data: [{ id: 'mlx-community/a', object: 'model' }],
    })
    expect((await send(`${s.url}/elsewhere`)).status).toBe(404)
    const nf = await complete(s, { model: 'other/repo' })
    expect(nf.status).toBe(404)
    expect(typeof json(nf).error).toBe('string')
  })

  it('keepAlive: true keeps the connection open between responses', async () => {
    const s = await mlx({ keepAlive: true })
    const a = agent({ connections: 1 })
    const r1 = await complete(s, {}, { dispatcher: a })
    expect(r1.headers.connection).not.toBe('close')
    await complete(s, { stream: true }, { dispatcher: a })
    expect(s.connections).toBe(1)
  })

  it('mlx error-mid-stream: a stream just stops, a non-streamed answer never comes', async () => {
    const s = await startMlxServer({ respond: 'a b c d' })
    servers.push(s)
    await s.setFault('error-mid-stream')
    const cut = await complete(s, { stream: true })
    expect(cut.status).toBe(200)
    expect(cut.text).not.toContain('[DONE]')
    expect(parseSse(cut.text).filter((e) => e.data !== undefined)).toHaveLength(1)
    // Non-streamed: mlx_lm.server had only buffered its headers, so the client gets no response at all.
    expect((await failure(complete(s, { stream: false }))).code).toBe('UND_ERR_SOCKET')
  })

  it('mlx reset-mid-body: a truncated stream on a closing connection, a body error on a kept-alive one', async () => {
    const s = await mlx({ respond: 'a b c d' })
    await s.setFault({ type: 'reset-mid-body', afterChunks: 2 })
    // undici treats a reset that ends a connection-delimited body as its end (client-h1 onHttpSocketError):
    // what the client can detect is the missing final chunk and [DONE].
    const cut = await complete(s, { stream: true })
    expect(cut.status).toBe(200)
    expect(parseSse(cut.text).filter((e) => e.data !== undefined)).toHaveLength(2)
    expect(cut.text).not.toContain('[DONE]')
    const kept = await mlx({ respond: 'a b c d', keepAlive: true })
    await kept.setFault({ type: 'reset-mid-body', afterChunks: 2 })
    const res = await request(`${kept.url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ prompt: 'x', stream: true }),
    })
    expect(res.statusCode).toBe(200)
    await expect(res.body.text()).rejects.toThrow()
  })

  it('mlx 503 uses the flat error shape', async () => {
    const s = await mlx()
    await s.setFault({ type: '503', times: 1 })
    const busy = await complete(s, {})
    expect(busy.status).toBe(503)
    expect(json(busy)).toEqual({ error: 'Loading model' })
    expect((await complete(s, {})).status).toBe(200)
  })
})

describe('OpenAI-compatible (llama.cpp flavor) stand-in', () => {
  it('puts usage and timings in the final chunk, nested errors, error: field mid-stream', async () => {
    const s = await mlx({ flavor: 'llamacpp', respond: 'a b c', models: ['tiny'] })
    expect(s.flavor).toBe('llamacpp')
    const r = await send(`${s.url}/v1/completions`, { body: { prompt: 'x', stream: true, model: 'tiny' } })
    expect(r.headers.connection).not.toBe('close')
    expect(r.text).not.toContain('keepalive')
    const data = parseSse(r.text)
      .map((e) => e.data)
      .filter((d): d is string => d !== undefined)
    expect(data.at(-1)).toBe('[DONE]')
    const final = JSON.parse(data.at(-2) ?? '') as Record<string, unknown>
    expect(final).toMatchObject({
      choices: [{ finish_reason: 'stop', text: '' }],
      usage: { completion_tokens: 3, prompt_tokens: 1 },
      timings: { predicted_n: 3, predicted_per_second: 100 },
    })
    const nf = await send(`${s.url}/v1/completions`, { body: { prompt: 'x', model: 'nope' } })
    expect(nf.status).toBe(404)
    expect(json(nf)).toEqual({
      error: { code: 404, message: "model 'nope' not found", type: 'not_found_error' },
    })
    await s.setFault('error-mid-stream')
    const mid = await send(`${s.url}/v1/completions`, { body: { prompt: 'x', stream: true } })
    const events = parseSse(mid.text)
    expect(events.some((e) => e.fields.error !== undefined)).toBe(true)
    expect(events.at(-1)?.data).toBe('[DONE]')
    expect(events.some((e) => e.data?.includes('"finish_reason":"stop"'))).toBe(false)
  })

  it('contextSize: a longer prompt gets 400, or HTTP 200 + an error: field + [DONE] when streamed', async () => {
    const s = await mlx({ flavor: 'llamacpp', respond: 'a b', contextSize: 3 })
    const detail = {
      code: 400,
      message: 'the request exceeds the available context size, try increasing it',
      type: 'invalid_request_error',
    }
    const long = 'one two three four five'
    const plain = await send(`${s.url}/v1/completions`, { body: { prompt: long } })
    expect([plain.status, json(plain)]).toEqual([400, { error: detail }])
    const streamed = await send(`${s.url}/v1/completions`, { body: { prompt: long, stream: true } })
    expect(streamed.status).toBe(200)
    const events = parseSse(streamed.text)
    expect(events.map((e) => (e.fields.error === undefined ? e.data : JSON.parse(e.fields.error)))).toEqual([
      { error: detail },
      '[DONE]',
    ])
    expect((await send(`${s.url}/v1/completions`, { body: { prompt: 'short' } })).status).toBe(200)

    // The router reads both as the caller's BAD_REQUEST, with the server's message, and does not fall over.
    const fallback = await ollama({ respond: 'from ollama' })
    const router = createLLMRouter({
      env: {
        LLM_ROUTER_BACKENDS: JSON.stringify([
          {
            model_name: 'm',
            backend_type: 'auto',
            endpoint_url: s.url,
            fallback_url: fallback.url,
            enabled: true,
          },
        ]),
      },
      metrics: false,
    })
    try {
      for (const run of [
        () => router.generate({ model: 'm', prompt: long }),
        () => router.stream({ model: 'm', prompt: long }).result,
      ]) {
        const error = (await run().catch((e: unknown) => e)) as { code: string; message: string }
        expect(error.code).toBe('BAD_REQUEST')
        expect(error.message).toContain('exceeds the available context size')
      }
      expect(fallback.requests).toHaveLength(0)
    } finally {
      await router.close()
    }
  })
})

describe('admin stand-in', () => {
  const record = (model: string, priority = 1) => ({
    id: priority,
    model_name: model,
    backend_type: 'ollama' as const,
    endpoint_url: 'http://127.0.0.1:11434',
    enabled: true,
    priority,
  })

  it('sends no ETag by default, like the seed (If-None-Match is ignored)', async () => {
    const s = await admin({ records: [record('a')] })
    const first = await send(`${s.url}/api/llm-backends/public`)
    expect(JSON.parse(first.text)).toEqual([record('a')])
    expect(first.headers.etag).toBeUndefined()
    const again = await send(`${s.url}/api/llm-backends/public`, { headers: { 'if-none-match': '*' } })
    expect(again.status).toBe(200)
    expect(JSON.parse(again.text)).toEqual([record('a')])
  })

  it('with etag: true, serves records with an ETag and answers If-None-Match with 304', async () => {
    const s = await admin({ records: [record('a')], etag: true })
    const first = await send(`${s.url}/api/llm-backends/public`)
    expect(JSON.parse(first.text)).toEqual([record('a')])
    const etag = String(first.headers.etag)
    expect(etag).toMatch(/^".+"$/)
    const again = await send(`${s.url}/api/llm-backends/public`, { headers: { 'if-none-match': etag } })
    expect(again.status).toBe(304)
    expect(again.text).toBe('')
    s.setRecords([record('b')])
    const changed = await send(`${s.url}/api/llm-backends/public`, { headers: { 'if-none-match': etag } })
    expect(changed.status).toBe(200)
    expect(changed.headers.etag).not.toBe(etag)
    s.setPayload({ data: [record('c')] })
    expect(JSON.parse((await send(`${s.url}/api/llm-backends/public`)).text)).toEqual({ data: [record('c')] })
  })

  it('looks up one model (404 with FastAPI\'s {"detail"} when absent)', async () => {
    const s = await admin({ records: [record('x', 5), record('x', 2), record('y')] })
    const hit = await send(`${s.url}/api/llm-backends/model/x`)
    expect(json(hit)).toMatchObject({ model_name: 'x', priority: 2 })
    const miss = await send(`${s.url}/api/llm-backends/model/${encodeURIComponent('llama3.1:8b')}`)
    expect(miss.status).toBe(404)
    expect(json(miss)).toEqual({ detail: expect.stringContaining('llama3.1:8b') })
    expect(json(await send(`${s.url}/api/nothing`))).toEqual({ detail: 'Not Found' })
    const wrongMethod = await send(`${s.url}/api/llm-backends/metrics`)
    expect([wrongMethod.status, json(wrongMethod)]).toEqual([405, { detail: 'Method Not Allowed' }])
  })

  it("takes ONE metric record per POST like the seed: arrays and invalid records get FastAPI's 422", async () => {
    const s = await admin()
    const m1 = makeMetricRecord({ model: 'a' })
    const m2 = makeMetricRecord({ model: 'b' })
    const url = `${s.url}/api/llm-backends/metrics`
    const one = await send(url, { body: m1 })
    expect([one.status, json(one)]).toEqual([200, { id: 1, status: 'created' }])
    expect(json(await send(url, { body: m2 }))).toEqual({ id: 2, status: 'created' })
    const array = await send(url, { body: [m1, m2] })
    expect([array.status, json(array)]).toEqual([
      422,
      { detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }] },
    ])
    const { model: _m, tokens: _t, ...missing } = m1
    const invalid = await send(url, { body: { ...missing, latency_seconds: 'slow', request_id: null } })
    expect([invalid.status, json(invalid)]).toEqual([
      422,
      {
        detail: [
          { loc: ['body', 'model'], msg: 'field required', type: 'value_error.missing' },
          { loc: ['body', 'latency_seconds'], msg: 'value is not a valid float', type: 'type_error.float' },
          { loc: ['body', 'tokens'], msg: 'field required', type: 'value_error.missing' },
        ],
      },
    ])
    const notJson = await send(url, { body: '{"model":' })
    expect(notJson.status).toBe(422)
    expect(json(notJson)).toMatchObject({ detail: [{ loc: ['body', 0], type: 'value_error.jsondecode' }] })
    // pydantic coerces like this; extra fields (the router's endpoint, outcome, ...) are ignored.
    const coerced = await send(url, { body: { ...m1, tokens: '12', timestamp: 1, extra: { x: 1 } } })
    expect(json(coerced)).toEqual({ id: 3, status: 'created' })
    expect(s.metrics.map((m) => m.model)).toEqual(['a', 'b', 'a'])
    expect(s.metricPosts.map((p) => [p.array, p.records, p.status])).toEqual([
      [false, 1, 200],
      [false, 1, 200],
      [true, 0, 422],
      [false, 0, 422],
      [false, 0, 422],
      [false, 1, 200],
    ])
  })

  it('with acceptArrays: true, also takes arrays of records, each validated', async () => {
    const s = await admin({ acceptArrays: true })
    const url = `${s.url}/api/llm-backends/metrics`
    const m1 = makeMetricRecord({ model: 'a' })
    const m2 = makeMetricRecord({ model: 'b' })
    expect(json(await send(url, { body: [m1, m2] }))).toEqual({ ids: [1, 2], status: 'created' })
    expect(json(await send(url, { body: m1 }))).toEqual({ id: 3, status: 'created' })
    const bad = await send(url, { body: [m1, 'x'] })
    expect([bad.status, json(bad)]).toEqual([
      422,
      { detail: [{ loc: ['body', 1], msg: 'value is not a valid dict', type: 'type_error.dict' }] },
    ])
    expect(s.metrics.map((m) => m.model)).toEqual(['a', 'b', 'a'])
  })

  it('applies faults to every route by default, or to one path', async () => {
    const s = await admin({ records: [record('a')] })
    await s.setFault({ type: '503', times: 1 })
    expect((await send(`${s.url}/api/llm-backends/public`)).status).toBe(503)
    expect((await send(`${s.url}/api/llm-backends/public`)).status).toBe(200)
    await s.setFault({ type: '500-html', path: '/api/llm-backends/metrics' })
    expect((await send(`${s.url}/api/llm-backends/public`)).status).toBe(200)
    expect((await send(`${s.url}/api/llm-backends/metrics`, { body: makeMetricRecord() })).status).toBe(500)
    expect(s.metrics).toHaveLength(0)
    await s.setFault('invalid-json')
    const garbage = await send(`${s.url}/api/llm-backends/public`)
    expect(() => JSON.parse(garbage.text)).toThrow()
  })
})

describe('server lifecycle', () => {
  it('refuses connections after stop() and answers on the same port after listen()', async () => {
    const s = await startMlxServer()
    servers.push(s)
    const port = s.port
    await s.stop()
    expect((await failure(send(`${s.url}/health`))).code).toBe('ECONNREFUSED')
    await s.listen()
    expect(s.port).toBe(port)
    expect((await send(`${s.url}/health`)).status).toBe(200)
    await s.setFault('down')
    await s.stop()
    await s.listen()
    expect(s.fault).toBeNull()
    expect((await send(`${s.url}/v1/completions`, { body: { prompt: 'x' } })).status).toBe(200)
  })

  it('counts open connections, which return to 0 when the client closes its pool', async () => {
    const s = await ollama()
    const a = new Agent()
    await Promise.all(
      [1, 2, 3].map(() =>
        send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'x' }, dispatcher: a }),
      ),
    )
    expect(s.connections).toBeGreaterThan(0)
    await a.close()
    await expect.poll(() => s.connections).toBe(0)
  })

  it('stop() destroys sockets held by hanging requests', async () => {
    const s = await ollama()
    await s.setFault('hang')
    const pending = failure(send(`${s.url}/api/generate`, { body: { model: 'm', prompt: 'x' } }))
    await expect.poll(() => s.requests.length).toBe(1)
    expect(s.connections).toBe(1)
    await s.stop()
    expect(s.connections).toBe(0)
    expect((await pending).code).toBe('UND_ERR_SOCKET')
  })

  it('tokenize keeps the text intact', () => {
    expect(tokenize(' a  bc d').join('')).toBe(' a  bc d')
    expect(tokenize('hello world')).toEqual(['hello', ' world'])
  })
})

describe('every fault on every server', () => {
  type Kind = 'ollama' | 'mlx' | 'llamacpp' | 'admin'
  const start = (kind: Kind): Promise<StandInServer> =>
    kind === 'ollama'
      ? ollama()
      : kind === 'admin'
        ? admin({
            records: [
              {
                model_name: 'm',
                backend_type: 'ollama',
                endpoint_url: 'http://x',
                enabled: true,
                priority: 1,
              },
            ],
          })
        : mlx({ flavor: kind, keepAlive: kind === 'llamacpp' })

  async function primary(
    kind: Kind,
    s: StandInServer,
    timeoutMs = 2000,
  ): Promise<{ status: number; text: string } | 'error'> {
    try {
      const res =
        kind === 'admin'
          ? await request(`${s.url}/api/llm-backends/public`, { signal: AbortSignal.timeout(timeoutMs) })
          : await request(`${s.url}${kind === 'ollama' ? '/api/generate' : '/v1/completions'}`, {
              method: 'POST',
              body: JSON.stringify({
                model: 'm',
                prompt: 'hello world',
                stream: kind === 'ollama' ? undefined : true,
              }),
              signal: AbortSignal.timeout(timeoutMs),
            })
      return { status: res.statusCode, text: await res.body.text() }
    } catch {
      return 'error'
    }
  }

  /** What a client can check: a 200 whose body is complete by its protocol's rules. */
  function complete(kind: Kind, r: { status: number; text: string } | 'error'): boolean {
    if (r === 'error' || r.status !== 200) return false
    try {
      if (kind === 'admin') return Array.isArray(JSON.parse(r.text))
      if (kind === 'ollama') return (parseNdjson(r.text).at(-1) as { done?: boolean }).done === true
      const data = parseSse(r.text).map((e) => e.data)
      return data.at(-1) === '[DONE]' && data.some((d) => d?.includes('"finish_reason":"stop"'))
    } catch {
      return false
    }
  }

  const benign: FaultType[] = ['slow', 'trickle']
  for (const kind of ['ollama', 'mlx', 'llamacpp', 'admin'] as const) {
    it(`${kind}: each fault is detectable by a client (slow and trickle are not), and the server recovers`, async () => {
      const s = await start(kind)
      expect(complete(kind, await primary(kind, s))).toBe(true)
      for (const type of FAULT_TYPES) {
        await s.setFault({ type, times: 1, delayMs: 2, bytes: 10_000, chunkBytes: 512 })
        const outcome = await primary(kind, s, type === 'hang' || type === 'stall-body' ? 80 : 2000)
        expect([type, complete(kind, outcome)]).toEqual([type, benign.includes(type)])
        if (type === 'down') {
          expect(s.requests.at(-1)?.fault).not.toBe('down')
          await s.clearFault()
        } else {
          expect(s.requests.at(-1)?.fault).toBe(type)
          expect(s.fault).toBeNull()
        }
        expect([type, complete(kind, await primary(kind, s))]).toEqual([type, true])
      }
    })
  }

  it('caps the recorded requests but counts them all, and reports them as they arrive', async () => {
    const seen: string[] = []
    const s = await ollama({ maxRecordedRequests: 2, onRequest: (r) => seen.push(r.url) })
    for (let i = 0; i < 4; i++) await send(`${s.url}/?i=${i}`)
    expect(s.requests.map((r) => r.url)).toEqual(['/?i=2', '/?i=3'])
    expect(s.requestCount).toBe(4)
    expect(seen).toEqual(['/?i=0', '/?i=1', '/?i=2', '/?i=3'])
    const batches: number[] = []
    const a = await admin({
      acceptArrays: true,
      maxRecordedMetrics: 1,
      onMetrics: (_post, accepted) => batches.push(accepted.length),
    })
    await send(`${a.url}/api/llm-backends/metrics`, {
      body: [makeMetricRecord(), makeMetricRecord({ model: 'last' })],
    })
    expect(a.metrics.map((m) => m.model)).toEqual(['last'])
    expect(a.metricsReceived).toBe(2)
    expect(batches).toEqual([2])
  })
})
