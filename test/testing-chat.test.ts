import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import {
  FAULT_TYPES,
  type FaultType,
  parseNdjson,
  parseSse,
  type StandInServer,
} from '../src/testing/index.js'
import { post, type Res, standIns } from './helpers/stand-ins.js'

const { ollama, openai } = standIns()

type Obj = Record<string, unknown>
const obj = (r: Res): Obj => JSON.parse(r.text) as Obj
const USER = [{ role: 'user', content: 'What is the weather in Paris?' }]
const WEATHER = { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }

/** The `data:` payloads of an SSE body, parsed (`[DONE]` kept as the string). */
function sseData(text: string): unknown[] {
  return parseSse(text)
    .filter((e) => e.data !== undefined)
    .map((e) => (e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data ?? '')))
}

describe('Ollama stand-in: POST /api/chat', () => {
  it('one-shot: the ChatResponse shape, integer-ns metrics, done_reason before done', async () => {
    const s = await ollama({ chat: 'It is sunny in Paris.' })
    const r = await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false })
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8')
    const b = obj(r)
    expect(Object.keys(b).slice(0, 5)).toEqual(['model', 'created_at', 'message', 'done_reason', 'done'])
    expect(b.message).toEqual({ role: 'assistant', content: 'It is sunny in Paris.' })
    expect(b).toMatchObject({ model: 'llama3.2', done: true, done_reason: 'stop', eval_count: 5 })
    expect(b.prompt_eval_count).toBe(6)
    for (const k of ['total_duration', 'prompt_eval_duration', 'eval_duration']) {
      expect(Number.isInteger(b[k])).toBe(true)
    }
    expect(b).not.toHaveProperty('load_duration')
    expect(s.requests[0]?.path).toBe('/api/chat')
  })

  it('streams NDJSON by default; the done line carries the last piece and the metrics', async () => {
    const s = await ollama({ chat: 'It is sunny in Paris.' })
    const r = await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER })
    expect(r.headers['content-type']).toBe('application/x-ndjson')
    expect(r.text.endsWith('\n')).toBe(true)
    const lines = parseNdjson(r.text) as Obj[]
    for (const l of lines.slice(0, -1)) {
      expect(l).toEqual({
        model: 'llama3.2',
        created_at: expect.any(String),
        message: { role: 'assistant', content: expect.any(String) },
        done: false,
      })
    }
    const last = lines.at(-1) as Obj
    expect(last).toMatchObject({
      done: true,
      done_reason: 'stop',
      message: { role: 'assistant', content: ' Paris.' },
    })
    expect(lines.map((l) => (l.message as Obj).content).join('')).toBe('It is sunny in Paris.')
    expect(last.eval_count).toBe(5)
  })

  it('thinking: only for models in `thinking`; absent think means on; think:false turns it off', async () => {
    const s = await ollama({
      thinking: ['qwen3'],
      chat: { reasoning: 'Paris is in France.', content: 'Sunny.' },
    })
    const on = parseNdjson(
      (await post(`${s.url}/api/chat`, { model: 'qwen3', messages: USER, think: true })).text,
    )
    const thoughts = (on as Obj[]).filter((l) => (l.message as Obj).thinking !== undefined)
    expect(thoughts.map((l) => (l.message as Obj).thinking).join('')).toBe('Paris is in France.')
    for (const l of thoughts) expect((l.message as Obj).content).toBe('')
    // Thinking comes before the answer.
    const firstAnswer = (on as Obj[]).findIndex((l) => (l.message as Obj).content !== '')
    expect(firstAnswer).toBeGreaterThan((on as Obj[]).indexOf(thoughts.at(-1) as Obj))

    const absent = obj(
      await post(`${s.url}/api/chat`, { model: 'qwen3:latest', messages: USER, stream: false }),
    )
    expect(absent.message).toEqual({ role: 'assistant', content: 'Sunny.', thinking: 'Paris is in France.' })
    const off = obj(
      await post(`${s.url}/api/chat`, { model: 'qwen3', messages: USER, stream: false, think: false }),
    )
    expect(off.message).toEqual({ role: 'assistant', content: 'Sunny.' })
    // Effort levels only for harmony (gpt-oss) models, as the server checks.
    const level = await post(`${s.url}/api/chat`, {
      model: 'qwen3',
      messages: USER,
      stream: false,
      think: 'high',
    })
    expect(obj(level)).toEqual({ error: 'think value "high" is not supported for this model' })
    const s2 = await ollama({ thinking: ['gpt-oss:20b'], chat: { reasoning: 'Hmm.', content: 'Sunny.' } })
    const harmony = obj(
      await post(`${s2.url}/api/chat`, {
        model: 'gpt-oss:20b',
        messages: USER,
        stream: false,
        think: 'high',
      }),
    )
    expect((harmony.message as Obj).thinking).toBe('Hmm.')

    const no = await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, think: true })
    expect(no.status).toBe(400)
    expect(obj(no)).toEqual({ error: '"llama3.2" does not support thinking' })
    expect((await post(`${s.url}/api/chat`, { model: 'qwen3', messages: USER, think: 'deep' })).status).toBe(
      400,
    )
    // A non-thinking model never sends the scripted reasoning.
    const plain = obj(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false }))
    expect(plain.message).toEqual({ role: 'assistant', content: 'Sunny.' })
  })

  it('a thinking model with no scripted reasoning makes one up', async () => {
    const s = await ollama({ thinking: true, chat: 'Sunny.' })
    const b = obj(await post(`${s.url}/api/chat`, { model: 'qwen3', messages: USER, stream: false }))
    expect((b.message as Obj).thinking).toMatch(/What is the weather in Paris\?/)
  })

  it('tool calls: all in one chunk, function.{index,name,arguments} with object arguments, no id', async () => {
    const s = await ollama({
      chat: { toolCalls: [WEATHER, { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' }] },
    })
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }]
    const lines = parseNdjson(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, tools })).text,
    ) as Obj[]
    const withCalls = lines.filter((l) => (l.message as Obj).tool_calls !== undefined)
    expect(withCalls).toHaveLength(1)
    expect((withCalls[0]!.message as Obj).tool_calls).toEqual([
      { function: { index: 0, name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } } },
      { function: { index: 1, name: 'get_time', arguments: { tz: 'Europe/Paris' } } },
    ])
    expect(JSON.stringify(lines)).not.toMatch(/"id"/)
    // Current servers make up ids: call_ and 8 lower-case letters or digits, before `function`.
    const g = await ollama({ toolCallIds: 'generated', chat: { toolCalls: [WEATHER] } })
    const gb = obj(await post(`${g.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false }))
    const [gc] = (gb.message as Obj).tool_calls as Obj[]
    expect(Object.keys(gc ?? {})).toEqual(['id', 'function'])
    expect(gc?.id).toMatch(/^call_[a-z0-9]{8}$/)
    expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' })

    const one = obj(
      await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, tools, stream: false }),
    )
    expect((one.message as Obj).content).toBe('')
    expect(((one.message as Obj).tool_calls as unknown[]).length).toBe(2)
    // The router sees which tools were offered.
    expect(s.requests[0]?.body).toMatchObject({ tools })
  })

  it('tools for a model without the capability: 400 naming the model in full', async () => {
    const s = await ollama({ toolModels: ['llama3.2:latest'] })
    const tools = [{ type: 'function', function: { name: 'f' } }]
    const no = await post(`${s.url}/api/chat`, { model: 'qwen2.5vl:7b', messages: USER, tools })
    expect(no.status).toBe(400)
    expect(obj(no)).toEqual({ error: 'registry.ollama.ai/library/qwen2.5vl:7b does not support tools' })
    expect((await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, tools })).status).toBe(200)
    expect((await post(`${s.url}/api/chat`, { model: 'qwen2.5vl:7b', messages: USER })).status).toBe(200)
  })

  it('tool call arguments that are not JSON stay in the content, as Ollama’s parser leaves them', async () => {
    const s = await ollama({ chat: { toolCalls: [{ name: 'f', arguments: '{not json' }] } })
    const b = obj(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false }))
    expect(b.message).toEqual({ role: 'assistant', content: '{not json' })
  })

  it('format: "json" and a schema produce JSON content; other values get 400', async () => {
    const s = await ollama({ chat: 'Paris is sunny today' })
    const j = obj(
      await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false, format: 'json' }),
    )
    expect(JSON.parse((j.message as Obj).content as string)).toEqual({ response: 'Paris is sunny today' })
    const schema = {
      type: 'object',
      properties: {
        city: { type: 'string' },
        temp: { type: 'integer', minimum: 10 },
        sunny: { type: 'boolean' },
        tags: { type: 'array', items: { type: 'string' } },
        unit: { enum: ['celsius', 'fahrenheit'] },
      },
      required: ['city', 'temp'],
    }
    const streamed = parseNdjson(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, format: schema })).text,
    ) as Obj[]
    expect(streamed.length).toBeGreaterThan(2)
    const value = JSON.parse(streamed.map((l) => (l.message as Obj).content).join('')) as Obj
    expect(value).toEqual({
      city: 'Paris is sunny today',
      temp: 10,
      sunny: true,
      tags: ['Paris is sunny today'],
      unit: 'celsius',
    })
    const bad = await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, format: 'xml' })
    expect(bad.status).toBe(400)
    // A scripted JSON answer is sent as it is.
    const s2 = await ollama({ chat: '{"city":"Lyon"}' })
    const k = obj(
      await post(`${s2.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false, format: schema }),
    )
    expect((k.message as Obj).content).toBe('{"city":"Lyon"}')
  })

  it('errors as the real server sends them', async () => {
    const s = await ollama({ models: ['llama3.2:latest'] })
    const missing = await post(`${s.url}/api/chat`, { model: 'mistral', messages: USER })
    expect(missing.status).toBe(404)
    expect(missing.text).toBe('{"error":"model \'mistral\' not found"}')
    expect(obj(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: 'hi' })).error).toBe(
      'json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message',
    )
    expect(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: 'yes' })).status,
    ).toBe(400)
    expect(obj(await post(`${s.url}/api/chat`, '')).error).toBe('missing request body')
    expect(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, keep_alive: 'soon' })).status,
    ).toBe(400)
    const img = await post(`${s.url}/api/chat`, {
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'see', images: ['not base64!'] }],
    })
    expect(img.status).toBe(400)
    const get = await request(`${s.url}/api/chat`)
    expect(get.statusCode).toBe(405)
    await get.body.text()
  })

  it('decodes the whole body before the model lookup; no model is a 400 (ChatHandler)', async () => {
    const s = await ollama({ models: ['llama3.2:latest'] })
    const noModel = await post(`${s.url}/api/chat`, { messages: USER })
    expect(noModel.status).toBe(400)
    expect(noModel.text).toBe('{"error":"model is required"}')
    // An unknown model with a body that does not decode: the decode error, not the 404.
    const bad = await post(`${s.url}/api/chat`, { model: 'mistral', messages: 'hi' })
    expect(bad.status).toBe(400)
    expect(obj(bad).error).toMatch(/^json: cannot unmarshal string/)
  })

  it('no messages loads the model (done_reason "load"); num_predict cuts (done_reason "length")', async () => {
    const s = await ollama({ chat: 'one two three four five' })
    const load = obj(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: [] }))
    expect(load).toEqual({
      model: 'llama3.2',
      created_at: expect.any(String),
      message: { role: 'assistant', content: '' },
      done_reason: 'load',
      done: true,
    })
    expect(s.loadedModels).toEqual(['llama3.2:latest'])
    const cut = obj(
      await post(`${s.url}/api/chat`, {
        model: 'llama3.2',
        messages: USER,
        stream: false,
        options: { num_predict: 2 },
      }),
    )
    expect(cut).toMatchObject({ done_reason: 'length', eval_count: 2, message: { content: 'one two' } })
    const stop = obj(
      await post(`${s.url}/api/chat`, {
        model: 'llama3.2',
        messages: USER,
        stream: false,
        options: { stop: [' three'] },
      }),
    )
    expect((stop.message as Obj).content).toBe('one two')
  })

  it('faults apply to /api/chat by default: a mid-stream error line and no done line', async () => {
    const s = await ollama({ chat: 'one two three four' })
    await s.setFault({ type: 'error-mid-stream', afterChunks: 2, times: 1 })
    const lines = parseNdjson(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER })).text,
    ) as Obj[]
    expect(lines).toHaveLength(3)
    expect(lines[2]).toEqual({ error: 'an error was encountered while running the model' })
    expect(lines.some((l) => l.done === true)).toBe(false)
    await s.setFault({ type: '503', times: 1 })
    expect((await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER })).status).toBe(503)
    await s.setFault({ type: 'cut-stream', times: 1 })
    const cut = parseNdjson(
      (await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER })).text,
    ) as Obj[]
    expect(cut.some((l) => l.done === true)).toBe(false)
    expect(s.requests.map((r) => r.fault)).toEqual(['error-mid-stream', '503', 'cut-stream'])
  })

  it('turn counts per stand-in, even when two stand-ins share one responder', async () => {
    const seen: string[] = []
    const chat = ({ server, turn }: { server: string; turn: number }) => {
      seen.push(`${server}:${turn}`)
      return 'ok'
    }
    const a = await ollama({ chat })
    const b = await openai({ chat })
    await post(`${a.url}/api/chat`, { model: 'm', messages: USER, stream: false })
    await post(`${b.url}/v1/chat/completions`, { messages: USER })
    await post(`${a.url}/api/chat`, { model: 'm', messages: USER, stream: false })
    expect(seen).toEqual(['ollama:0', 'openai:0', 'ollama:1'])
  })

  it('a function responder sees the messages, the tools and the turn number', async () => {
    const s = await ollama({
      chat: ({ messages, tools, turn }) =>
        turn === 0
          ? { toolCalls: [WEATHER] }
          : `Tools: ${tools.length}, last role: ${String(messages.at(-1)?.role)}`,
    })
    const first = obj(await post(`${s.url}/api/chat`, { model: 'llama3.2', messages: USER, stream: false }))
    expect((first.message as Obj).tool_calls).toHaveLength(1)
    const second = obj(
      await post(`${s.url}/api/chat`, {
        model: 'llama3.2',
        stream: false,
        tools: [{ type: 'function', function: { name: 'get_weather' } }],
        messages: [...USER, first.message, { role: 'tool', content: '21°C', tool_name: 'get_weather' }],
      }),
    )
    expect((second.message as Obj).content).toBe('Tools: 1, last role: tool')
  })
})

describe('OpenAI-compatible stand-in (mlx_lm.server): POST /v1/chat/completions', () => {
  it('one-shot: chat.completion with message {role, content, reasoning, tool_calls} and usage', async () => {
    const s = await openai({ chat: 'It is sunny.' })
    const r = await post(`${s.url}/v1/chat/completions`, { messages: USER })
    expect(r.status).toBe(200)
    const b = obj(r)
    expect(Object.keys(b)).toEqual([
      'id',
      'system_fingerprint',
      'object',
      'model',
      'created',
      'choices',
      'usage',
    ])
    expect(b.id).toMatch(/^chatcmpl-[0-9a-f-]{36}$/)
    expect(b).toMatchObject({ object: 'chat.completion', model: 'default_model' })
    expect(b.choices).toEqual([
      {
        index: 0,
        finish_reason: 'stop',
        message: { role: 'assistant', content: 'It is sunny.', reasoning: '', tool_calls: [] },
      },
    ])
    expect(b.usage).toEqual({
      prompt_tokens: 6,
      completion_tokens: 3,
      total_tokens: 9,
      prompt_tokens_details: { cached_tokens: 0 },
    })
    // The alias path mlx_lm.server also serves.
    expect((await post(`${s.url}/chat/completions`, { messages: USER })).status).toBe(200)
  })

  it('streams: keepalive comments, full deltas on every chunk, a final chunk, usage only when asked, [DONE]', async () => {
    const s = await openai({ chat: 'It is sunny.' })
    const r = await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })
    expect(r.headers['content-type']).toBe('text/event-stream')
    expect(parseSse(r.text)[0]?.comments[0]).toMatch(/^keepalive \d+\/\d+$/)
    const data = sseData(r.text)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1) as Obj[]
    for (const c of chunks) expect(c.object).toBe('chat.completion.chunk')
    const deltas = chunks.map((c) => ((c.choices as Obj[])[0] as Obj).delta as Obj)
    for (const d of deltas) expect(Object.keys(d)).toEqual(['role', 'content', 'reasoning', 'tool_calls'])
    expect(deltas.map((d) => d.content).join('')).toBe('It is sunny.')
    expect(((chunks.at(-1)!.choices as Obj[])[0] as Obj).finish_reason).toBe('stop')
    expect(chunks.some((c) => c.usage !== undefined)).toBe(false)

    const withUsage = sseData(
      (
        await post(`${s.url}/v1/chat/completions`, {
          messages: USER,
          stream: true,
          stream_options: { include_usage: true },
        })
      ).text,
    )
    const usage = withUsage.at(-2) as Obj
    expect(usage).toMatchObject({ object: 'chat.completion', choices: [], usage: { completion_tokens: 3 } })
    // stream_options without include_usage: mlx_lm.server's KeyError ends the stream without [DONE].
    const broken = sseData(
      (await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true, stream_options: {} })).text,
    )
    expect(broken).not.toContain('[DONE]')
  })

  it('tool calls come whole in one chunk: uuid4 ids, JSON-string arguments written by json.dumps, finish_reason tool_calls', async () => {
    const s = await openai({ chat: { toolCalls: [WEATHER] } })
    const chunks = sseData(
      (await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text,
    ).slice(0, -1) as Obj[]
    const deltas = chunks.map((c) => ((c.choices as Obj[])[0] as Obj).delta as Obj)
    const withCalls = deltas.filter((d) => (d.tool_calls as unknown[]).length > 0)
    expect(withCalls).toHaveLength(1)
    const [call] = withCalls[0]!.tool_calls as Obj[]
    expect(call).toEqual({
      function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "celsius"}' },
      type: 'function',
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      index: 0,
    })
    expect(((chunks.at(-1)!.choices as Obj[])[0] as Obj).finish_reason).toBe('tool_calls')
    const one = obj(await post(`${s.url}/v1/chat/completions`, { messages: USER }))
    const msg = ((one.choices as Obj[])[0] as Obj).message as Obj
    expect((msg.tool_calls as Obj[])[0]).not.toHaveProperty('index')
    expect(msg.content).toBe('')
  })

  it('reasoning goes in `reasoning`; chat_template_kwargs.enable_thinking:false turns it off', async () => {
    const s = await openai({ chat: { reasoning: 'Think first.', content: 'Sunny.' } })
    const b = obj(await post(`${s.url}/v1/chat/completions`, { messages: USER }))
    expect(((b.choices as Obj[])[0] as Obj).message).toMatchObject({
      reasoning: 'Think first.',
      content: 'Sunny.',
    })
    const chunks = sseData(
      (await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text,
    ).slice(0, -1) as Obj[]
    const deltas = chunks.map((c) => ((c.choices as Obj[])[0] as Obj).delta as Obj)
    expect(deltas.map((d) => d.reasoning).join('')).toBe('Think first.')
    const off = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        chat_template_kwargs: { enable_thinking: false },
      }),
    )
    expect((((off.choices as Obj[])[0] as Obj).message as Obj).reasoning).toBe('')
  })

  it('response_format is not read by mlx_lm.server: the answer stays plain text', async () => {
    const s = await openai({ chat: 'Plain words.' })
    const b = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        response_format: { type: 'json_object' },
      }),
    )
    expect((((b.choices as Obj[])[0] as Obj).message as Obj).content).toBe('Plain words.')
  })

  it('invalid parameters drop the socket; there is no /v1/embeddings (plain 404)', async () => {
    const s = await openai()
    await expect(post(`${s.url}/v1/chat/completions`, { stream: true })).rejects.toThrow()
    await expect(post(`${s.url}/v1/chat/completions`, { messages: USER, stream: 'yes' })).rejects.toThrow()
    const emb = await post(`${s.url}/v1/embeddings`, { input: 'hello' })
    expect(emb.status).toBe(404)
    expect(emb.text).toBe('Not Found')
  })

  it('faults apply to chat by default: mid-stream the mlx stream just stops', async () => {
    const s = await openai({ chat: 'one two three four' })
    await s.setFault({ type: 'error-mid-stream', afterChunks: 2, times: 1 })
    const data = sseData(
      (await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text,
    ) as Obj[]
    expect(data).toHaveLength(2)
    expect(data).not.toContain('[DONE]')
  })
})

describe('OpenAI-compatible stand-in (llama.cpp): POST /v1/chat/completions', () => {
  it('streams a role delta, reasoning_content, content, tool call fragments, usage + timings in the final chunk', async () => {
    const s = await openai({
      flavor: 'llamacpp',
      chat: { reasoning: 'Let me look.', content: 'Checking.', toolCalls: [WEATHER] },
    })
    const r = await post(`${s.url}/v1/chat/completions`, {
      messages: USER,
      stream: true,
      stream_options: { include_usage: true },
    })
    const data = sseData(r.text)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1) as Obj[]
    for (const c of chunks)
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['choices', 'created', 'id', 'model', 'object']))
    const deltas = chunks.map((c) => ((c.choices as Obj[])[0] as Obj).delta as Obj)
    expect(deltas[0]).toEqual({ role: 'assistant', content: null })
    expect(deltas.map((d) => d.reasoning_content ?? '').join('')).toBe('Let me look.')
    expect(deltas.map((d) => d.content ?? '').join('')).toBe('Checking.')
    const frags = deltas
      .filter((d) => d.tool_calls !== undefined)
      .map((d) => (d.tool_calls as Obj[])[0] as Obj)
    expect(frags.length).toBeGreaterThan(2)
    // Empty ids: llama-server leaves out id and type.
    expect(frags[0]).toEqual({ index: 0, function: { name: 'get_weather', arguments: '' } })
    for (const f of frags.slice(1)) expect(Object.keys(f.function as Obj)).toEqual(['arguments'])
    expect(JSON.parse(frags.map((f) => (f.function as Obj).arguments).join(''))).toEqual(WEATHER.arguments)
    const last = chunks.at(-1) as Obj
    expect(last.choices).toEqual([{ finish_reason: 'tool_calls', index: 0, delta: {} }])
    expect(last.usage).toMatchObject({ prompt_tokens: 6 })
    expect(last.timings).toMatchObject({ prompt_n: 6 })
    // include_usage is ignored: no separate usage chunk.
    expect(chunks.filter((c) => c.usage !== undefined)).toHaveLength(1)
  })

  it('one-shot: tool_calls with id "" and content null; toolCallIds "generated" makes up ids', async () => {
    const s = await openai({ flavor: 'llamacpp', chat: { toolCalls: [WEATHER] } })
    const b = obj(await post(`${s.url}/v1/chat/completions`, { messages: USER }))
    expect(b.choices).toEqual([
      {
        finish_reason: 'tool_calls',
        index: 0,
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' },
              id: '',
            },
          ],
        },
      },
    ])
    expect(b).toHaveProperty('timings')
    const g = await openai({ flavor: 'llamacpp', toolCallIds: 'generated', chat: { toolCalls: [WEATHER] } })
    const frags = (
      sseData((await post(`${g.url}/v1/chat/completions`, { messages: USER, stream: true })).text).slice(
        0,
        -1,
      ) as Obj[]
    )
      .map((c) => ((c.choices as Obj[])[0] as Obj).delta as Obj)
      .filter((d) => d.tool_calls !== undefined)
    expect((frags[0]!.tool_calls as Obj[])[0]).toEqual({
      index: 0,
      id: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    })
  })

  it('response_format json_object / json_schema are honoured; an unknown type is a 400', async () => {
    const s = await openai({ flavor: 'llamacpp', chat: 'Sunny and warm' })
    const j = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        response_format: { type: 'json_object' },
      }),
    )
    expect(JSON.parse((((j.choices as Obj[])[0] as Obj).message as Obj).content as string)).toEqual({
      response: 'Sunny and warm',
    })
    const schema = { type: 'object', properties: { sky: { type: 'string' }, temp: { type: 'number' } } }
    const k = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        response_format: { type: 'json_schema', json_schema: { name: 'weather', schema } },
      }),
    )
    expect(JSON.parse((((k.choices as Obj[])[0] as Obj).message as Obj).content as string)).toEqual({
      sky: 'Sunny and warm',
      temp: 1.5,
    })
    const bad = await post(`${s.url}/v1/chat/completions`, {
      messages: USER,
      response_format: { type: 'yaml' },
    })
    expect(bad.status).toBe(400)
    expect(obj(bad).error).toMatchObject({ code: 400, type: 'invalid_request_error' })
  })

  it('reasoning_format "none" leaves the thinking inline; enable_thinking:false drops it', async () => {
    const s = await openai({ flavor: 'llamacpp', chat: { reasoning: 'Hmm.', content: 'Sunny.' } })
    const inline = obj(
      await post(`${s.url}/v1/chat/completions`, { messages: USER, reasoning_format: 'none' }),
    )
    expect(((inline.choices as Obj[])[0] as Obj).message).toEqual({
      role: 'assistant',
      content: '<think>\nHmm.\n</think>\n\nSunny.',
    })
    const off = obj(
      await post(`${s.url}/v1/chat/completions`, {
        messages: USER,
        chat_template_kwargs: { enable_thinking: false },
      }),
    )
    expect(((off.choices as Obj[])[0] as Obj).message).toEqual({ role: 'assistant', content: 'Sunny.' })
  })

  it('errors: an SSE error field then [DONE] mid-stream; nested error bodies; a missing model is a 404', async () => {
    const s = await openai({ flavor: 'llamacpp', chat: 'one two three', models: ['qwen'] })
    await s.setFault({ type: 'error-mid-stream', afterChunks: 1, times: 1 })
    const events = parseSse(
      (await post(`${s.url}/v1/chat/completions`, { messages: USER, stream: true })).text,
    )
    expect(JSON.parse(events.at(-2)?.fields.error ?? '')).toEqual({
      error: { code: 500, message: 'generation failed', type: 'server_error' },
    })
    expect(events.at(-1)?.data).toBe('[DONE]')
    const missing = await post(`${s.url}/v1/chat/completions`, { model: 'other', messages: USER })
    expect(missing.status).toBe(404)
    expect(obj(missing)).toEqual({
      error: { code: 404, message: "model 'other' not found", type: 'not_found_error' },
    })
    const noMessages = await post(`${s.url}/v1/chat/completions`, { model: 'qwen' })
    expect(noMessages.status).toBe(400)
  })

  it('contextSize applies to chat prompts too', async () => {
    const s = await openai({ flavor: 'llamacpp', contextSize: 3 })
    const r = await post(`${s.url}/v1/chat/completions`, { messages: USER })
    expect(r.status).toBe(400)
  })
})

describe('every fault on every conversation route', () => {
  type Kind = 'ollama-chat' | 'mlx-chat' | 'llamacpp-chat' | 'ollama-embed' | 'llamacpp-embed'
  const kinds: Kind[] = ['ollama-chat', 'mlx-chat', 'llamacpp-chat', 'ollama-embed', 'llamacpp-embed']
  const start = (kind: Kind): Promise<StandInServer> =>
    kind.startsWith('ollama')
      ? ollama({ chat: 'It is sunny.' })
      : openai({
          flavor: kind.startsWith('mlx') ? 'mlx' : 'llamacpp',
          keepAlive: !kind.startsWith('mlx'),
          chat: 'It is sunny.',
        })
  const route: Record<Kind, string> = {
    'ollama-chat': '/api/chat',
    'mlx-chat': '/v1/chat/completions',
    'llamacpp-chat': '/v1/chat/completions',
    'ollama-embed': '/api/embed',
    'llamacpp-embed': '/v1/embeddings',
  }

  async function call(kind: Kind, s: StandInServer, timeoutMs = 2000): Promise<Res | 'error'> {
    const chat = kind.endsWith('chat')
    const body = chat
      ? { model: 'm', messages: USER, ...(kind === 'ollama-chat' ? {} : { stream: true }) }
      : { model: 'm', input: ['a', 'b'] }
    try {
      const res = await request(`${s.url}${route[kind]}`, {
        method: 'POST',
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    } catch {
      return 'error'
    }
  }

  /** What a client can check: a 200 whose body is complete by its protocol's rules. */
  function complete(kind: Kind, r: Res | 'error'): boolean {
    if (r === 'error' || r.status !== 200) return false
    try {
      if (kind === 'ollama-chat') return (parseNdjson(r.text).at(-1) as Obj).done === true
      if (kind === 'ollama-embed')
        return (JSON.parse(r.text) as { embeddings: unknown[] }).embeddings.length === 2
      if (kind === 'llamacpp-embed') return (JSON.parse(r.text) as { data: unknown[] }).data.length === 2
      const data = sseData(r.text)
      const finishes = data.map((d) => ((d as { choices?: Obj[] }).choices ?? [])[0]?.finish_reason)
      return data.at(-1) === '[DONE]' && finishes.includes('stop')
    } catch {
      return false
    }
  }

  const benign: FaultType[] = ['slow', 'trickle']
  for (const kind of kinds) {
    it(`${kind}: each fault is detectable by a client (slow and trickle are not), and the server recovers`, async () => {
      const s = await start(kind)
      expect(complete(kind, await call(kind, s))).toBe(true)
      for (const type of FAULT_TYPES) {
        await s.setFault({ type, times: 1, delayMs: 2, bytes: 10_000, chunkBytes: 512 })
        const outcome = await call(kind, s, type === 'hang' || type === 'stall-body' ? 80 : 2000)
        expect([type, complete(kind, outcome)]).toEqual([type, benign.includes(type)])
        if (type === 'down') await s.clearFault()
        else expect(s.requests.at(-1)?.fault).toBe(type)
        expect([type, complete(kind, await call(kind, s))]).toEqual([type, true])
      }
    })
  }
})
