import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { HttpResponse, http } from 'msw'
import { afterEach, describe, expect, it } from 'vitest'
import { parseRecord } from '../src/config/schema.js'
import {
  type ChatRequest,
  createLLMRouter,
  ErrorCode,
  type LLMRouter,
  type RouterError,
} from '../src/index.js'
import type { MetricRecord, RouterEvents } from '../src/types.js'
import { failedStream } from './helpers/chat.js'
import { ManualClock } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()
const OLLAMA = 'http://ollama.test:11434'
const OLLAMA2 = 'http://ollama2.test:11434'
const MLX = 'http://mlx.test:8080'
const enc = new TextEncoder()

const rec = (over: Record<string, unknown>) => ({
  backend_type: 'ollama',
  endpoint_url: OLLAMA,
  enabled: true,
  priority: 100,
  max_tokens: 64,
  ...over,
})

let routers: LLMRouter[] = []
function makeRouter(records: Record<string, unknown>[]) {
  const r = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false, retry: { maxRetries: 0 } },
    { clock: new ManualClock(Date.now()) },
  )
  routers.push(r)
  return r
}
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
})

function body(lines: string[], delayMs = 1): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      for (const l of lines) {
        controller.enqueue(enc.encode(l))
        await new Promise((r) => setTimeout(r, delayMs))
      }
      controller.close()
    },
  })
}

const ollamaLine = (message: object, extra: object = {}) =>
  `${JSON.stringify({ model: 'qwen3', created_at: '2025-05-27T22:54:57Z', message: { role: 'assistant', ...message }, done: false, ...extra })}\n`
const ollamaDone = (extra: object = {}) =>
  `${JSON.stringify({ model: 'qwen3', created_at: 't', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 12, eval_count: 5, eval_duration: 50_000_000, ...extra })}\n`

const OLLAMA_ANSWER = {
  model: 'qwen3',
  created_at: '2025-05-27T22:54:58Z',
  message: { role: 'assistant', content: 'It is sunny.', thinking: 'Look at the tool result.' },
  done: true,
  done_reason: 'stop',
  prompt_eval_count: 40,
  eval_count: 6,
  eval_duration: 60_000_000,
}

const sse = (obj: object) => `data: ${JSON.stringify(obj)}\n\n`
const delta = (d: object, finish: string | null = null) =>
  sse({
    id: 'c1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: d, finish_reason: finish }],
  })

const TOOLS: ChatRequest['tools'] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
]

describe('router.chat()', () => {
  it('sends Ollama /api/chat with native options and returns the message, usage and a chat metric', async () => {
    const sent: Record<string, unknown>[] = []
    net.use(
      http.post(`${OLLAMA}/api/chat`, async ({ request }) => {
        sent.push((await request.json()) as Record<string, unknown>)
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
      http.post(`${OLLAMA}/api/generate`, () =>
        HttpResponse.json({ error: 'wrong endpoint' }, { status: 500 }),
      ),
    )
    const router = makeRouter([rec({ model_name: 'qwen3' })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const r = await router.chat({
      model: 'qwen3',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather?' },
      ],
      think: true,
      keepAlive: '10m',
      numCtx: 8192,
      topK: 20,
      options: { ollama: { num_gpu: 1 }, openai: { repetition_penalty: 2 } },
      metadata: { requestId: 'r-1' },
    })
    expect(r.message).toEqual({
      role: 'assistant',
      content: 'It is sunny.',
      reasoning: 'Look at the tool result.',
    })
    expect(r).toMatchObject({
      model: 'qwen3',
      backend: 'ollama',
      endpoint: OLLAMA,
      doneReason: 'stop',
      usage: { promptTokens: 40, completionTokens: 6 },
    })
    expect(r.usage.estimated).toBeUndefined()
    expect(r.tokensPerSecond).toBeCloseTo(100)
    expect(sent[0]).toEqual({
      model: 'qwen3',
      stream: false,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather?' },
      ],
      think: true,
      keep_alive: '10m',
      // temperature: the env record's default (0.7); options.openai never reaches Ollama.
      options: { num_predict: 64, temperature: 0.7, top_k: 20, num_ctx: 8192, num_gpu: 1 },
    })
    expect(metrics).toHaveLength(1)
    expect(metrics[0]).toMatchObject({
      operation: 'chat',
      outcome: 'success',
      streamed: false,
      tokens: 6,
      prompt_tokens: 40,
      request_id: 'r-1',
    })
  })

  it('sends MLX records to /v1/chat/completions (templated), without model unless backend_model is set', async () => {
    const sent: Record<string, unknown>[] = []
    net.use(
      http.post(`${MLX}/v1/chat/completions`, async ({ request }) => {
        sent.push((await request.json()) as Record<string, unknown>)
        return HttpResponse.json({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          model: 'default_model',
          created: 1,
          choices: [
            {
              index: 0,
              finish_reason: 'stop',
              message: { role: 'assistant', content: 'Hi!', reasoning: null, tool_calls: [] },
            },
          ],
          usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
        })
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'q', backend_type: 'mlx', endpoint_url: MLX, max_tokens: undefined }),
    ])
    const r = await router.chat({
      model: 'q',
      messages: [{ role: 'user', content: 'hello' }],
      keepAlive: '5m',
      numCtx: 4096,
      options: { ollama: { num_gpu: 1 }, openai: { repetition_penalty: 1.1 } },
    })
    expect(r).toMatchObject({
      backend: 'mlx',
      message: { role: 'assistant', content: 'Hi!' },
      usage: { promptTokens: 9 },
    })
    expect(r.message).not.toHaveProperty('toolCalls')
    expect(sent[0]).toEqual({
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 2048,
      temperature: 0.7,
      stream: false,
      repetition_penalty: 1.1,
    })
  })

  it('auto: MLX first, falls over to Ollama /api/chat, and says so in attempts, events and the metric', async () => {
    const paths: string[] = []
    net.use(
      http.post(`${MLX}/v1/chat/completions`, ({ request }) => {
        paths.push(new URL(request.url).pathname)
        return HttpResponse.json({ error: 'model loading' }, { status: 503 })
      }),
      http.post(`${OLLAMA}/api/chat`, ({ request }) => {
        paths.push(new URL(request.url).pathname)
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'llama3', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA }),
    ])
    const fallbacks: RouterEvents['request:fallback'][] = []
    router.on('request:fallback', (e) => fallbacks.push(e))
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const r = await router.chat({ model: 'llama3', messages: [{ role: 'user', content: 'hi' }] })
    expect(paths).toEqual(['/v1/chat/completions', '/api/chat'])
    expect(r.backend).toBe('ollama')
    expect(r.attempts.map((a) => [a.backend, a.code ?? 'ok'])).toEqual([
      ['mlx', 'BACKEND_BUSY'],
      ['ollama', 'ok'],
    ])
    expect(fallbacks).toHaveLength(1)
    expect(metrics[0]).toMatchObject({ operation: 'chat', fallback: true, attempts: 2 })
  })

  it('returns tool calls with ids and parsed arguments, and sends the tool result back with its name', async () => {
    type Sent = { messages: unknown[]; tools?: unknown }
    const sent: Sent[] = []
    net.use(
      http.post(`${OLLAMA}/api/chat`, async ({ request }) => {
        const b = (await request.json()) as Sent
        sent.push(b)
        if (b.messages.length === 1) {
          return HttpResponse.json({
            model: 'qwen3',
            created_at: 't',
            message: {
              role: 'assistant',
              content: '',
              tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
            },
            done: true,
            done_reason: 'stop',
          })
        }
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
    )
    const router = makeRouter([rec({ model_name: 'qwen3' })])
    const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Weather in Paris?' }]
    const first = await router.chat({ model: 'qwen3', messages, tools: TOOLS })
    expect(sent[0]!.tools).toEqual([
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ])
    const call = first.message.toolCalls![0]!
    expect(call).toMatchObject({ name: 'get_weather', arguments: { city: 'Paris' } })
    expect(call.id).toMatch(/^call_/)
    messages.push(first.message, { role: 'tool', toolCallId: call.id, content: '{"sky":"sunny"}' })
    const second = await router.chat({ model: 'qwen3', messages, tools: TOOLS })
    expect(second.message.content).toBe('It is sunny.')
    expect(sent[1]!.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: call.id, function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
      },
      { role: 'tool', content: '{"sky":"sunny"}', tool_name: 'get_weather', tool_call_id: call.id },
    ])
  })

  it('INVALID_TOOL_ARGUMENTS is the error, with no fallover to the next record', async () => {
    let second = 0
    net.use(
      http.post(`${MLX}/v1/chat/completions`, () =>
        HttpResponse.json({
          choices: [
            {
              index: 0,
              finish_reason: 'tool_calls',
              message: {
                role: 'assistant',
                content: null,
                tool_calls: [
                  {
                    id: '',
                    type: 'function',
                    function: { name: 'get_weather', arguments: '{"city": Paris}' },
                  },
                ],
              },
            },
          ],
        }),
      ),
      http.post(`${OLLAMA}/api/chat`, () => {
        second++
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'm', backend_type: 'mlx', endpoint_url: MLX, priority: 1 }),
      rec({ model_name: 'm', priority: 2 }),
    ])
    const e = (await router
      .chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: TOOLS })
      .catch((x) => x)) as RouterError
    expect(e.code).toBe(ErrorCode.INVALID_TOOL_ARGUMENTS)
    expect(e.message).toContain('get_weather')
    expect(second).toBe(0)
  })

  it('counts frames and marks usage estimated when the server ignores include_usage', async () => {
    net.use(
      http.post(
        `${MLX}/v1/chat/completions`,
        () =>
          new HttpResponse(
            body([delta({ content: 'a' }), delta({ content: 'b' }), delta({}, 'stop'), 'data: [DONE]\n\n']),
          ),
      ),
    )
    const router = makeRouter([rec({ model_name: 'm', backend_type: 'mlx', endpoint_url: MLX })])
    const r = await router.streamChat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).result
    expect(r.usage).toEqual({ promptTokens: 0, completionTokens: 2, estimated: true })
  })
})

describe('capabilities', () => {
  it('parses capabilities on records and rejects unknown names', () => {
    const ok = parseRecord(rec({ model_name: 'm', capabilities: ['tools', 'vision', 'tools'] }))
    expect(ok).toMatchObject({ ok: true, record: { capabilities: ['tools', 'vision'] } })
    const bad = parseRecord(rec({ model_name: 'm', capabilities: ['tool'] }))
    expect(bad).toMatchObject({ ok: false, field: 'capabilities.0' })
    expect(bad.ok === false && bad.message).toContain('unknown capability "tool"')
  })

  it('skips records that declare capabilities without the one needed (listed in attempts, nothing sent)', async () => {
    const hits: string[] = []
    net.use(
      http.post(`${OLLAMA}/api/chat`, () => {
        hits.push('vision-only')
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
      http.post(`${OLLAMA2}/api/chat`, () => {
        hits.push('undeclared')
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'm', priority: 1, capabilities: ['vision'] }),
      rec({ model_name: 'm', priority: 2, endpoint_url: OLLAMA2 }),
    ])
    const r = await router.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: TOOLS })
    expect(hits).toEqual(['undeclared'])
    expect(r.endpoint).toBe(OLLAMA2)
    expect(r.attempts[0]).toMatchObject({
      endpoint: OLLAMA,
      attempt: 0,
      ok: false,
      code: 'NO_CAPABLE_BACKEND',
    })
    expect(r.attempts[0]!.message).toContain('does not declare "tools"')
    // toolChoice 'none' needs no tool support: the first record serves.
    const none = await router.chat({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      tools: TOOLS,
      toolChoice: 'none',
    })
    expect(none.endpoint).toBe(OLLAMA)
  })

  it('walks fallback models for the capability, and fails with NO_CAPABLE_BACKEND before sending when none has it', async () => {
    let sent = 0
    net.use(
      http.post(`${OLLAMA}/api/chat`, () => {
        sent++
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
      http.post(`${MLX}/v1/chat/completions`, () => {
        sent++
        return HttpResponse.json({ error: 'x' }, { status: 500 })
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'small', capabilities: ['tools'] }),
      rec({
        model_name: 'vl',
        backend_type: 'auto',
        endpoint_url: MLX,
        fallback_url: OLLAMA,
        capabilities: ['vision', 'tools'],
      }),
    ])
    const image = { role: 'user' as const, content: 'what is this?', images: ['iVBORw0KGgo='] }
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const e = (await router.chat({ model: 'small', messages: [image] }).catch((x) => x)) as RouterError
    expect(e.code).toBe(ErrorCode.NO_CAPABLE_BACKEND)
    expect(e.message).toContain('"vision"')
    expect(e.attempts).toHaveLength(1)
    expect(sent).toBe(0)
    expect(metrics[0]).toMatchObject({
      operation: 'chat',
      outcome: 'error',
      error_code: 'NO_CAPABLE_BACKEND',
    })
    const r = await router.chat({ model: 'small', messages: [image], fallbackModels: ['vl'] })
    expect(r.model).toBe('vl')
    expect(r.attempts.map((a) => [a.model, a.backend, a.code ?? 'ok'])).toEqual([
      ['small', 'ollama', 'NO_CAPABLE_BACKEND'],
      ['vl', 'mlx', 'BACKEND_ERROR'],
      ['vl', 'ollama', 'ok'],
    ])
    // Stream too: the typed error comes out of the iterator and `result`, still nothing sent.
    const s = router.streamChat({ model: 'small', messages: [image] })
    await expect(s.result).rejects.toMatchObject({ code: 'NO_CAPABLE_BACKEND' })
    expect(sent).toBe(2)
  })
})

describe('chat validation', () => {
  const user = { role: 'user' as const, content: 'x' }
  it.each([
    [{ messages: [] }, 'messages'],
    [{ messages: 'hi' }, 'messages'],
    [{ messages: [{ content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ messages: [user, { role: 'tool', content: '1' }] }, 'messages[1].toolCallId'],
    [{ messages: [user, { role: 'tool', content: '1', toolCallId: 'nope' }] }, 'messages[1].toolCallId'],
    [
      { messages: [{ role: 'assistant', content: '', toolCalls: [{ id: '', name: 'f', arguments: {} }] }] },
      'messages[0].toolCalls[0].id',
    ],
    [
      {
        messages: [{ role: 'assistant', content: '', toolCalls: [{ id: 'a', name: 'f', arguments: '{}' }] }],
      },
      'messages[0].toolCalls[0].arguments',
    ],
    [{ messages: [{ role: 'user', content: 'x', images: [''] }] }, 'messages[0].images[0]'],
    [{ messages: [user], tools: {} }, 'tools'],
    [{ messages: [user], tools: [{ name: 'bad name' }] }, 'tools[0].name'],
    [
      { messages: [user], tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] },
      'tools[0].function.parameters',
    ],
    [{ messages: [user], tools: [{ name: 'f' }, { name: 'f' }] }, 'tools[1].name'],
    [{ messages: [user], toolChoice: 'auto' }, 'toolChoice'],
    [{ messages: [user], tools: [{ name: 'f' }], toolChoice: { name: 'g' } }, 'toolChoice.name'],
    [{ messages: [user], format: 'yaml' }, 'format'],
    [{ messages: [user], think: 'max' }, 'think'],
    [{ messages: [user], topP: 2 }, 'topP'],
    [{ messages: [user], topK: 0.5 }, 'topK'],
    [{ messages: [user], numCtx: -1 }, 'numCtx'],
    [{ messages: [user], options: { num_ctx: 1 } }, 'options.num_ctx'],
    [{ messages: [user], temperature: -1 }, 'temperature'],
    [{ messages: [user], model: '' }, 'model'],
  ])('%j is INVALID_REQUEST naming %s, before anything is sent', async (request, path) => {
    let sent = 0
    net.use(
      http.post(`${OLLAMA}/api/chat`, () => {
        sent++
        return HttpResponse.json(OLLAMA_ANSWER)
      }),
    )
    const router = makeRouter([rec({ model_name: 'm' })])
    const e = (await router.chat({ model: 'm', ...request } as ChatRequest).catch((x) => x)) as RouterError
    expect(e.code).toBe(ErrorCode.INVALID_REQUEST)
    expect(e.issues[0]!.path).toBe(path)
    expect(e.message).toContain(path)
    const s = router.streamChat({ model: 'm', ...request } as ChatRequest)
    await expect(s.result).rejects.toMatchObject({ code: 'INVALID_REQUEST' })
    expect(sent).toBe(0)
  })
})

describe('router.streamChat()', () => {
  it('streams Ollama thinking, text and a tool call as chunk parts, then the whole result', async () => {
    const sent: Record<string, unknown>[] = []
    net.use(
      http.post(`${OLLAMA}/api/chat`, async ({ request }) => {
        sent.push((await request.json()) as Record<string, unknown>)
        return new HttpResponse(
          body([
            ollamaLine({ content: '', thinking: 'Hmm' }),
            ollamaLine({ content: 'Let me ' }),
            ollamaLine({ content: 'check.' }),
            ollamaLine({
              content: '',
              tool_calls: [
                { id: 'call_x', function: { index: 0, name: 'get_weather', arguments: { city: 'Oslo' } } },
              ],
            }),
            ollamaDone(),
          ]),
          { headers: { 'content-type': 'application/x-ndjson' } },
        )
      }),
    )
    const router = makeRouter([rec({ model_name: 'qwen3' })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const s = router.streamChat({
      model: 'qwen3',
      messages: [{ role: 'user', content: 'Oslo?' }],
      tools: TOOLS,
      think: true,
    })
    let text = ''
    let reasoning = ''
    const calls: unknown[] = []
    for await (const c of s) {
      expect(c).toMatchObject({ model: 'qwen3', backend: 'ollama' })
      text += c.text
      reasoning += c.reasoning ?? ''
      calls.push(...(c.toolCalls ?? []))
    }
    expect({ text, reasoning, calls }).toEqual({
      text: 'Let me check.',
      reasoning: 'Hmm',
      calls: [{ id: 'call_x', name: 'get_weather', arguments: { city: 'Oslo' } }],
    })
    expect(sent[0]).toMatchObject({ stream: true, think: true })
    const r = await s.result
    expect(r.message).toEqual({
      role: 'assistant',
      content: 'Let me check.',
      reasoning: 'Hmm',
      toolCalls: [{ id: 'call_x', name: 'get_weather', arguments: { city: 'Oslo' } }],
    })
    expect(r.timeToFirstTokenMs).toBeGreaterThan(0)
    expect(metrics[0]).toMatchObject({ operation: 'chat', streamed: true, tokens: 5, prompt_tokens: 12 })
  })

  it('merges parts that arrive while the consumer is busy: text and reasoning joined, tool calls kept', async () => {
    const lines = [
      ollamaLine({ content: '', thinking: 'a' }),
      ollamaLine({ content: '', thinking: 'b' }),
      ollamaLine({ content: 'x' }),
      ollamaLine({ content: 'y', tool_calls: [{ function: { name: 'f', arguments: {} } }] }),
      ollamaLine({ content: 'z', tool_calls: [{ function: { name: 'g', arguments: { n: 1 } } }] }),
      ollamaDone(),
    ]
    // One write: every delta is decoded before the consumer's second pull.
    net.use(http.post(`${OLLAMA}/api/chat`, () => new HttpResponse(lines.join(''))))
    const router = makeRouter([rec({ model_name: 'm' })])
    const chunks = []
    for await (const c of router.streamChat({ model: 'm', messages: [{ role: 'user', content: 'x' }] })) {
      chunks.push(c)
      await new Promise((r) => setTimeout(r, 5))
    }
    expect(chunks.length).toBeLessThan(5)
    expect(chunks.map((c) => c.text).join('')).toBe('xyz')
    expect(chunks.map((c) => c.reasoning ?? '').join('')).toBe('ab')
    expect(chunks.flatMap((c) => c.toolCalls ?? []).map((t) => [t.name, t.arguments])).toEqual([
      ['f', {}],
      ['g', { n: 1 }],
    ])
  })

  it('streams OpenAI-compatible reasoning_content and joins tool-call fragments', async () => {
    const sent: Record<string, unknown>[] = []
    net.use(
      http.post(`${MLX}/v1/chat/completions`, async ({ request }) => {
        sent.push((await request.json()) as Record<string, unknown>)
        return new HttpResponse(
          body([
            ': keepalive 1/2\n\n',
            delta({ role: 'assistant', content: null }),
            delta({ reasoning_content: 'think' }),
            delta({
              tool_calls: [
                { index: 0, id: '', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } },
              ],
            }),
            delta({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Rome"}' } }] }),
            delta({}, 'tool_calls'),
            sse({
              id: 'c1',
              object: 'chat.completion.chunk',
              choices: [],
              usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 },
            }),
            'data: [DONE]\n\n',
          ]),
          { headers: { 'content-type': 'text/event-stream' } },
        )
      }),
    )
    const router = makeRouter([
      rec({ model_name: 'm', backend_type: 'mlx', endpoint_url: MLX, backend_model: 'mlx-community/Qwen3' }),
    ])
    const s = router.streamChat({
      model: 'm',
      messages: [{ role: 'user', content: 'Rome?' }],
      tools: TOOLS,
      toolChoice: 'required',
      format: 'json',
    })
    const chunks = []
    for await (const c of s) chunks.push(c)
    expect(chunks.map((c) => c.reasoning ?? '').join('')).toBe('think')
    const calls = chunks.flatMap((c) => c.toolCalls ?? [])
    expect(calls).toHaveLength(1)
    expect(calls[0]).toMatchObject({ name: 'get_weather', arguments: { city: 'Rome' } })
    expect(calls[0]!.id).toMatch(/^call_/)
    expect(sent[0]).toMatchObject({
      model: 'mlx-community/Qwen3',
      stream: true,
      stream_options: { include_usage: true },
      tool_choice: 'required',
      response_format: { type: 'json_object' },
    })
    const r = await s.result
    expect(r).toMatchObject({ doneReason: 'tool_calls', usage: { promptTokens: 20, completionTokens: 8 } })
    expect(r.message.toolCalls).toEqual(calls)
  })

  it('keeps INVALID_TOOL_ARGUMENTS as the code after text was delivered', async () => {
    net.use(
      http.post(
        `${MLX}/v1/chat/completions`,
        () =>
          new HttpResponse(
            body([
              delta({ content: 'Calling' }),
              delta({
                tool_calls: [
                  { index: 0, id: 'a', type: 'function', function: { name: 'f', arguments: '{"x":' } },
                ],
              }),
              delta({}, 'tool_calls'),
              'data: [DONE]\n\n',
            ]),
          ),
      ),
    )
    const router = makeRouter([rec({ model_name: 'm', backend_type: 'mlx', endpoint_url: MLX })])
    const s = router.streamChat({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ name: 'f' }],
    })
    const { text, error: e } = await failedStream(s)
    expect(text).toBe('Calling')
    expect(e.code).toBe(ErrorCode.INVALID_TOOL_ARGUMENTS)
  })

  it('abort() stops the stream with ABORTED and records an aborted chat metric', async () => {
    net.use(
      http.post(
        `${OLLAMA}/api/chat`,
        () =>
          new HttpResponse(
            body(
              Array.from({ length: 200 }, (_, i) => ollamaLine({ content: `t${i} ` })),
              5,
            ),
          ),
      ),
    )
    const router = makeRouter([rec({ model_name: 'm' })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const s = router.streamChat({ model: 'm', messages: [{ role: 'user', content: 'x' }] })
    const it0 = s[Symbol.asyncIterator]()
    const first = await it0.next()
    expect(first.value?.text).toBe('t0 ')
    s.abort()
    await expect(s.result).rejects.toMatchObject({ code: 'ABORTED' })
    expect(metrics[0]).toMatchObject({ operation: 'chat', outcome: 'aborted', streamed: true })
  })
})

describe('chat against real sockets', () => {
  let server: Server | null = null
  afterEach(async () => {
    if (server) await new Promise((r) => server!.close(r))
    server = null
  })

  async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
    server = createServer(handler)
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  it('a reset before any text falls over to the next record; after text it is STREAM_INTERRUPTED', async () => {
    let mode: 'early' | 'late' = 'early'
    const url = await listen((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      if (mode === 'late') res.write(ollamaLine({ content: 'partial ' }))
      setTimeout(() => res.socket?.destroy(), 5)
    })
    net.use(
      http.post(
        `${OLLAMA}/api/chat`,
        () => new HttpResponse(body([ollamaLine({ content: 'ok' }), ollamaDone()])),
      ),
    )
    const router = makeRouter([
      rec({ model_name: 'm', endpoint_url: url, priority: 1 }),
      rec({ model_name: 'm', priority: 2 }),
    ])
    const early = await router.streamChat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).result
    expect(early).toMatchObject({ endpoint: OLLAMA, message: { content: 'ok' } })
    expect(early.attempts[0]).toMatchObject({ endpoint: url, ok: false })
    mode = 'late'
    const s = router.streamChat({ model: 'm', messages: [{ role: 'user', content: 'x' }] })
    const { text, error: e } = await failedStream(s)
    expect(text).toBe('partial ')
    expect(e).toMatchObject({ code: 'STREAM_INTERRUPTED', delivered: 8 })
  })

  it('a refused port falls over from MLX to the Ollama fallback of an auto record', async () => {
    const url = await listen(() => {})
    await new Promise((r) => server!.close(r))
    server = null
    net.use(http.post(`${OLLAMA}/api/chat`, () => HttpResponse.json(OLLAMA_ANSWER)))
    const router = makeRouter([
      rec({ model_name: 'm', backend_type: 'auto', endpoint_url: url, fallback_url: OLLAMA }),
    ])
    const r = await router.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] })
    expect(r.attempts.map((a) => [a.backend, a.code ?? 'ok'])).toEqual([
      ['mlx', 'BACKEND_UNREACHABLE'],
      ['ollama', 'ok'],
    ])
  })
})
