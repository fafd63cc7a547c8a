import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FAULT_TYPES, type FaultType, parseSse, type StandInServer } from '../src/testing/index.js'
import { createMockNetwork, openAIHandlers } from '../src/testing/msw/index.js'
import { post, type Res, standIns } from './helpers/stand-ins.js'

const { openai } = standIns()
const MODEL = 'Qwen/Qwen3-8B'
const vllm = (options: Parameters<typeof openai>[0] = {}) =>
  openai({ flavor: 'vllm', modelId: MODEL, ...options })

type Obj = Record<string, unknown>
const obj = (r: Res): Obj => JSON.parse(r.text) as Obj
const USER = [{ role: 'user', content: 'What is the weather in Paris?' }]
const WEATHER = { name: 'get_weather', arguments: { city: 'Paris' } }
const data = (text: string): unknown[] =>
  parseSse(text)
    .filter((e) => e.data !== undefined)
    .map((e) => (e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data ?? '')))
const choice0 = (c: unknown): Obj => ((c as Obj).choices as Obj[])[0] as Obj

describe('OpenAI-compatible stand-in (vLLM): chat', () => {
  it('one-shot: every optional field present as null, reasoning under both names, usage', async () => {
    const s = await vllm({ chat: { reasoning: 'Think.', content: 'Sunny.' } })
    const b = obj(await post(`${s.url}/v1/chat/completions`, { model: MODEL, messages: USER }))
    expect(b.id).toMatch(/^chatcmpl-[0-9a-f]{16}$/)
    expect(b).toMatchObject({ object: 'chat.completion', model: MODEL, system_fingerprint: null })
    expect(b.choices).toEqual([
      {
        index: 0,
        message: {
          role: 'assistant',
          content: 'Sunny.',
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: [],
          reasoning: 'Think.',
          reasoning_content: 'Think.',
        },
        logprobs: null,
        finish_reason: 'stop',
        stop_reason: null,
        token_ids: null,
      },
    ])
    expect(b.usage).toEqual({
      prompt_tokens: 6,
      total_tokens: 8,
      completion_tokens: 2,
      prompt_tokens_details: null,
    })
  })

  it('streams: a role delta, delta.reasoning, content, tool call head then argument pieces, usage only when asked', async () => {
    const s = await vllm({ chat: { reasoning: 'Look it up.', toolCalls: [WEATHER] } })
    const plain = data((await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text)
    expect(plain.at(-1)).toBe('[DONE]')
    const chunks = plain.slice(0, -1) as Obj[]
    expect(chunks.some((c) => 'usage' in c)).toBe(false)
    const deltas = chunks.map((c) => choice0(c).delta as Obj)
    expect(deltas[0]).toEqual({ role: 'assistant', content: '' })
    expect(deltas.map((d) => d.reasoning ?? '').join('')).toBe('Look it up.')
    expect(deltas.some((d) => 'reasoning_content' in d)).toBe(false)
    const frags = deltas
      .filter((d) => d.tool_calls !== undefined)
      .map((d) => (d.tool_calls as Obj[])[0] as Obj)
    expect(frags[0]).toEqual({
      id: expect.stringMatching(/^chatcmpl-tool-[0-9a-f]{16}$/),
      type: 'function',
      index: 0,
      function: { name: 'get_weather' },
    })
    expect(
      JSON.parse(
        frags
          .slice(1)
          .map((f) => (f.function as Obj).arguments)
          .join(''),
      ),
    ).toEqual({ city: 'Paris' })
    expect(choice0(chunks.at(-1))).toEqual({
      index: 0,
      delta: { content: '' },
      logprobs: null,
      finish_reason: 'tool_calls',
      stop_reason: null,
    })
    const withUsage = data(
      (
        await post(`${s.url}/v1/chat/completions`, {
          messages: USER,
          stream: true,
          stream_options: { include_usage: true },
        })
      ).text,
    )
    expect(withUsage.at(-2)).toMatchObject({
      object: 'chat.completion.chunk',
      choices: [],
      usage: { prompt_tokens: 6 },
    })
  })

  it('only the served model name; nested errors named after the exception; stream_options needs stream', async () => {
    const s = await vllm()
    const missing = await post(`${s.url}/v1/chat/completions`, { model: 'llama3.2', messages: USER })
    expect(missing.status).toBe(404)
    expect(obj(missing)).toEqual({
      error: {
        message: 'The model `llama3.2` does not exist.',
        type: 'NotFoundError',
        param: null,
        code: 404,
      },
    })
    const so = await post(`${s.url}/v1/chat/completions`, {
      messages: USER,
      stream_options: { include_usage: true },
    })
    expect(so.status).toBe(400)
    expect((obj(so).error as Obj).type).toBe('BadRequestError')
    expect((await post(`${s.url}/v1/chat/completions`, { model: MODEL })).status).toBe(400)
    // SamplingParams takes no max_tokens below 1 (mlx_lm.server takes 0, llama-server -1).
    const zero = await post(`${s.url}/v1/chat/completions`, { messages: USER, max_tokens: 0 })
    expect(zero.status).toBe(400)
    expect((obj(zero).error as Obj).message).toBe('max_tokens must be at least 1, got 0.')
    const unlimited = await post(`${s.url}/v1/completions`, { prompt: 'hi', max_tokens: -1 })
    expect(unlimited.status).toBe(400)
    expect((await post(`${s.url}/v1/chat/completions`, '{oops')).status).toBe(400)
    const unknown = await post(`${s.url}/v1/nope`, {})
    expect([unknown.status, unknown.text]).toEqual([404, '{"detail":"Not Found"}'])
  })

  it('response_format json_schema is honoured; a mid-stream failure is a data: error event then [DONE]', async () => {
    const s = await vllm({ chat: 'Sunny today' })
    const schema = { type: 'object', properties: { sky: { type: 'string' } } }
    const b = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        response_format: { type: 'json_schema', json_schema: { name: 'w', schema } },
      }),
    )
    expect(JSON.parse((choice0(b).message as Obj).content as string)).toEqual({ sky: 'Sunny today' })
    await s.setFault({ type: 'error-mid-stream', times: 1 })
    const events = data((await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text)
    expect(events.at(-2)).toEqual({
      error: { message: 'generation failed', type: 'InternalServerError', param: null, code: 500 },
    })
    expect(events.at(-1)).toBe('[DONE]')
  })
})

describe('OpenAI-compatible stand-in (vLLM): completions and embeddings', () => {
  it('completions: default max_tokens 16, the last piece carries finish_reason, usage only when asked', async () => {
    const s = await vllm({ respond: Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ') })
    const b = obj(await post(`${s.url}/v1/completions`, { prompt: 'hi' }))
    expect(b.id).toMatch(/^cmpl-[0-9a-f]{32}$/)
    expect(choice0(b)).toMatchObject({ finish_reason: 'length', stop_reason: null, prompt_logprobs: null })
    expect((b.usage as Obj).completion_tokens).toBe(16)
    const chunks = data(
      (await post(`${s.url}/v1/completions`, { prompt: 'hi', max_tokens: 3, stream: true })).text,
    )
    expect(chunks).toHaveLength(4)
    expect(chunks.slice(0, 3).map((c) => choice0(c).text)).toEqual(['w0', ' w1', ' w2'])
    expect(choice0(chunks[2]).finish_reason).toBe('length')
    expect(choice0(chunks[1]).finish_reason).toBeNull()
  })

  it('embeddings: data[] with index, embd- id, usage with completion_tokens 0; 400 for a generation model', async () => {
    const s = await vllm()
    const b = obj(await post(`${s.url}/v1/embeddings`, { input: ['a', 'b'] }))
    expect(b.id).toMatch(/^embd-/)
    expect((b.data as Obj[]).map((d) => d.index)).toEqual([0, 1])
    expect(b.usage).toEqual({
      prompt_tokens: 2,
      total_tokens: 2,
      completion_tokens: 0,
      prompt_tokens_details: null,
    })
    const off = await vllm({ embeddings: false })
    const r = await post(`${off.url}/v1/embeddings`, { input: 'a' })
    expect(r.status).toBe(400)
    expect(obj(r)).toEqual({
      error: {
        message: 'The model does not support Embeddings API',
        type: 'BadRequestError',
        param: null,
        code: 400,
      },
    })
  })

  it('every fault is detectable on chat streams, and the server recovers', async () => {
    const s: StandInServer = await vllm({ chat: 'It is sunny.' })
    const call = async (timeoutMs = 2000): Promise<Res | 'error'> => {
      try {
        const { request } = await import('undici')
        const res = await request(`${s.url}/v1/chat/completions`, {
          method: 'POST',
          body: JSON.stringify({ messages: USER, stream: true }),
          signal: AbortSignal.timeout(timeoutMs),
        })
        return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
      } catch {
        return 'error'
      }
    }
    const complete = (r: Res | 'error'): boolean => {
      if (r === 'error' || r.status !== 200) return false
      try {
        const d = data(r.text)
        return d.at(-1) === '[DONE]' && d.some((c) => c !== '[DONE]' && choice0(c)?.finish_reason === 'stop')
      } catch {
        return false
      }
    }
    const benign: FaultType[] = ['slow', 'trickle']
    expect(complete(await call())).toBe(true)
    for (const type of FAULT_TYPES) {
      await s.setFault({ type, times: 1, delayMs: 2, bytes: 10_000, chunkBytes: 512 })
      const outcome = await call(type === 'hang' || type === 'stall-body' ? 80 : 2000)
      expect([type, complete(outcome)]).toEqual([type, benign.includes(type)])
      if (type === 'down') await s.clearFault()
      expect([type, complete(await call())]).toEqual([type, true])
    }
  })
})

describe('the vLLM flavor as msw handlers', () => {
  const VLLM = 'http://vllm.test:8000'
  const handlers = openAIHandlers({ baseUrl: VLLM, flavor: 'vllm', modelId: MODEL, chat: 'Hi there' })
  const network = createMockNetwork(...handlers)
  beforeAll(() => network.enable())
  afterAll(() => network.disable())

  it('answers like the server, faults included', async () => {
    const b = obj(await post(`${VLLM}/v1/chat/completions`, { model: MODEL, messages: USER }))
    expect(choice0(b).message).toMatchObject({ content: 'Hi there', reasoning: null })
    await handlers.setFault({ type: '404-model', times: 1 })
    const r = await post(`${VLLM}/v1/chat/completions`, { model: MODEL, messages: USER })
    expect(r.status).toBe(404)
    expect((obj(r).error as Obj).type).toBe('NotFoundError')
  })
})
