import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fakeEmbedding, parseNdjson, parseSse } from '../src/testing/index.js'
import { createMockNetwork, ollamaHandlers, openAIHandlers } from '../src/testing/msw/index.js'
import { post, standIns } from './helpers/stand-ins.js'

const { ollama, openai } = standIns()
const llamacpp = (options: Parameters<typeof openai>[0] = {}) => openai({ flavor: 'llamacpp', ...options })

type Obj = Record<string, unknown>
const postJson = async (url: string, body: unknown) => {
  const r = await post(url, body)
  return { ...r, json: () => JSON.parse(r.text) as Obj }
}

const norm = (v: number[]) => Math.sqrt(v.reduce((n, x) => n + x * x, 0))

describe('fakeEmbedding', () => {
  it('is deterministic, unit length, and differs between texts', () => {
    expect(fakeEmbedding('hello')).toEqual(fakeEmbedding('hello'))
    expect(fakeEmbedding('hello')).not.toEqual(fakeEmbedding('world'))
    expect(norm(fakeEmbedding('hello', 16))).toBeCloseTo(1, 10)
    expect(fakeEmbedding('x', 16)).toHaveLength(16)
  })
})

describe('Ollama stand-in: POST /api/embed and the legacy /api/embeddings', () => {
  it('a string or an array of strings; unit vectors in input order; prompt_eval_count', async () => {
    const s = await ollama()
    const one = (await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: 'hello' })).json()
    expect(one).toEqual({
      model: 'nomic-embed-text',
      embeddings: [fakeEmbedding('hello')],
      total_duration: expect.any(Number),
      prompt_eval_count: 1,
    })
    const many = (
      await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: ['b', 'a', 'b c'] })
    ).json()
    expect(many.embeddings).toEqual([fakeEmbedding('b'), fakeEmbedding('a'), fakeEmbedding('b c')])
    expect(many.prompt_eval_count).toBe(4)
    for (const v of many.embeddings as number[][]) expect(norm(v)).toBeCloseTo(1, 10)
    const dims = (await postJson(`${s.url}/api/embed`, { model: 'm', input: 'hello', dimensions: 4 })).json()
    expect((dims.embeddings as number[][])[0]).toHaveLength(4)
    expect(norm((dims.embeddings as number[][])[0] ?? [])).toBeCloseTo(1, 10)
  })

  it('empty input gives no embeddings; wrong input types are a 400; an unknown model a 404', async () => {
    const s = await ollama({ models: ['nomic-embed-text:latest'] })
    expect((await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: [] })).json()).toEqual({
      model: 'nomic-embed-text',
      embeddings: [],
    })
    const bad = await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: ['a', 2] })
    expect(bad.status).toBe(400)
    expect(bad.json()).toEqual({ error: 'invalid input type' })
    expect((await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: 5 })).status).toBe(400)
    const missing = await postJson(`${s.url}/api/embed`, { model: 'bge', input: 'x' })
    expect(missing.status).toBe(404)
    expect(missing.json()).toEqual({ error: 'model "bge" not found, try pulling it first' })
  })

  it('a custom embed function is used; the legacy route returns one unnormalised `embedding`', async () => {
    const s = await ollama({ embed: (text) => [text.length, 0, 0] })
    expect((await postJson(`${s.url}/api/embed`, { model: 'm', input: ['abc'] })).json().embeddings).toEqual([
      [1, 0, 0],
    ])
    const legacy = (await postJson(`${s.url}/api/embeddings`, { model: 'm', prompt: 'abcd' })).json()
    expect(Object.keys(legacy)).toEqual(['embedding'])
    expect(norm(legacy.embedding as number[])).toBeGreaterThan(1)
    expect((await postJson(`${s.url}/api/embeddings`, { model: 'm', prompt: '' })).json()).toEqual({
      embedding: [],
    })
  })

  it('faults apply to the embed routes by default', async () => {
    const s = await ollama()
    await s.setFault({ type: '500-html', times: 1 })
    expect((await postJson(`${s.url}/api/embed`, { model: 'm', input: 'x' })).status).toBe(500)
    await s.setFault({ type: 'invalid-json', times: 1 })
    const r = await postJson(`${s.url}/api/embed`, { model: 'm', input: 'x' })
    expect(() => JSON.parse(r.text)).toThrow()
  })
})

describe('OpenAI-compatible stand-in: POST /v1/embeddings', () => {
  it('llama.cpp: data[] with index and object, usage, base64 encoding', async () => {
    const s = await llamacpp()
    const r = await postJson(`${s.url}/v1/embeddings`, { model: 'bge', input: ['one', 'two three'] })
    expect(r.status).toBe(200)
    expect(r.json()).toEqual({
      model: 'bge',
      object: 'list',
      usage: { prompt_tokens: 3, total_tokens: 3 },
      data: [
        { embedding: fakeEmbedding('one'), index: 0, object: 'embedding' },
        { embedding: fakeEmbedding('two three'), index: 1, object: 'embedding' },
      ],
    })
    const b64 = (await postJson(`${s.url}/v1/embeddings`, { input: 'one', encoding_format: 'base64' })).json()
    const item = (b64.data as Obj[])[0] as { embedding: string }
    const bytes = Buffer.from(item.embedding, 'base64')
    const decoded = [...new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)]
    expect(decoded.map((x) => Number(x.toFixed(5)))).toEqual(
      fakeEmbedding('one').map((x) => Number(x.toFixed(5))),
    )
    expect((await postJson(`${s.url}/v1/embeddings`, { input: [] })).status).toBe(400)
  })

  it('llama.cpp started without --embeddings answers 501; mlx_lm.server has no route (404 Not Found)', async () => {
    const off = await llamacpp({ embeddings: false })
    const r = await postJson(`${off.url}/v1/embeddings`, { input: 'x' })
    expect(r.status).toBe(501)
    expect(r.json()).toEqual({
      error: {
        code: 501,
        message: 'This server does not support embeddings. Start it with `--embeddings`',
        type: 'not_supported_error',
      },
    })
    const mlx = await openai()
    const m = await postJson(`${mlx.url}/v1/embeddings`, { input: 'x' })
    expect([m.status, m.text]).toEqual([404, 'Not Found'])
  })
})

describe('conversation doubles as msw handlers', () => {
  const OLLAMA = 'http://ollama-chat.test:11434'
  const LLAMA = 'http://llama-chat.test:8080'
  const o = ollamaHandlers({ baseUrl: OLLAMA, chat: { toolCalls: [{ name: 'f', arguments: { a: 1 } }] } })
  const l = openAIHandlers({ baseUrl: LLAMA, flavor: 'llamacpp', chat: 'Hi there friend' })
  const network = createMockNetwork(...o, ...l)
  beforeAll(() => network.enable())
  afterAll(() => network.disable())

  it('answer /api/chat, /api/embed, /v1/chat/completions and /v1/embeddings like the servers', async () => {
    const lines = parseNdjson(
      (
        await postJson(`${OLLAMA}/api/chat`, {
          model: 'llama3.2',
          messages: [{ role: 'user', content: 'x' }],
        })
      ).text,
    ) as Obj[]
    expect(lines.find((x) => (x.message as Obj).tool_calls !== undefined)?.message).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [{ function: { index: 0, name: 'f', arguments: { a: 1 } } }],
    })
    expect((await postJson(`${OLLAMA}/api/embed`, { model: 'm', input: 'q' })).json().embeddings).toEqual([
      fakeEmbedding('q'),
    ])
    const events = parseSse(
      (await postJson(`${LLAMA}/v1/chat/completions`, { messages: [], stream: true })).text,
    )
    expect(events.at(-1)?.data).toBe('[DONE]')
    expect((await postJson(`${LLAMA}/v1/embeddings`, { input: 'q' })).status).toBe(200)
    expect(o.requests.map((r) => r.path)).toEqual(['/api/chat', '/api/embed'])
  })

  it('the same fault switches', async () => {
    await l.setFault({ type: 'error-mid-stream', times: 1 })
    const events = parseSse(
      (await postJson(`${LLAMA}/v1/chat/completions`, { messages: [], stream: true })).text,
    )
    expect(events.at(-2)?.fields.error).toBeDefined()
    await o.setFault({ type: '429', times: 1, retryAfter: 3 })
    const r = await request(`${OLLAMA}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', messages: [] }),
    })
    expect([r.statusCode, r.headers['retry-after']]).toEqual([429, '3'])
    await r.body.text()
  })
})
