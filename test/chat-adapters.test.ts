import { describe, expect, it } from 'vitest'
import type { ChatDelta, ChatWire } from '../src/backends/chat-common.js'
import { ollamaChatAdapter } from '../src/backends/ollama-chat.js'
import { openaiChatAdapter } from '../src/backends/openai-chat.js'
import type { ToolCall } from '../src/chat/types.js'
import { ErrorCode, isRouterError, type RouterError } from '../src/errors.js'

const enc = new TextEncoder()

type Adapter = typeof ollamaChatAdapter

/** Feeds `text` in pieces of `size` bytes (splitting UTF-8 sequences too); returns deltas and output. */
function run(adapter: Adapter, text: string, size = Number.POSITIVE_INFINITY, fastFrames = true) {
  const decoder = adapter.createStreamDecoder(fastFrames)
  const bytes = enc.encode(text)
  const deltas: ChatDelta[] = []
  const on = (d: ChatDelta) => deltas.push(d)
  const step = Math.min(size, Math.max(bytes.length, 1))
  for (let i = 0; i < bytes.length; i += step) decoder.push(bytes.subarray(i, i + step), on)
  const output = decoder.end(on)
  return { deltas, output }
}

function caught(fn: () => unknown): RouterError {
  try {
    fn()
  } catch (error) {
    if (isRouterError(error)) return error
    throw new Error(`expected a RouterError, got ${String(error)}`)
  }
  throw new Error('expected a throw')
}

const joined = (deltas: ChatDelta[]) => ({
  text: deltas.map((d) => d.text).join(''),
  reasoning: deltas.map((d) => d.reasoning ?? '').join(''),
  toolCalls: deltas.flatMap((d) => d.toolCalls ?? []),
})

/** WIRE's tools as both dialects send them. */
const WIRE_TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } } },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } },
]

const WIRE: ChatWire = {
  model: 'qwen3',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Paris?', images: ['iVBORw0KGgo='] },
    {
      role: 'assistant',
      content: '',
      toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }],
    },
    { role: 'tool', content: '{"temp":21}', toolCallId: 'call_1' },
  ],
  tools: [
    {
      name: 'get_weather',
      description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } } },
    },
    { name: 'get_time' },
  ],
  temperature: 0.2,
  maxTokens: 100,
  stop: ['###'],
  topP: 0.9,
  topK: 40,
  seed: 7,
  stream: true,
}

// Ollama 0.12 /api/chat NDJSON (api/types.go ChatResponse; ToolCall{id, function{index, name, arguments}}).
const OLLAMA_TOOL_STREAM = [
  '{"model":"qwen3","created_at":"2025-05-27T22:54:57.641643Z","message":{"role":"assistant","content":"","thinking":"The user wants"},"done":false}',
  '{"model":"qwen3","created_at":"2025-05-27T22:54:57.662543Z","message":{"role":"assistant","content":"","thinking":" the weather."},"done":false}',
  '{"model":"qwen3","created_at":"2025-05-27T22:54:58.100000Z","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_k2m1","function":{"index":0,"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":false}',
  '{"model":"qwen3","created_at":"2025-05-27T22:54:58.200000Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":900000000,"load_duration":2000000,"prompt_eval_count":31,"prompt_eval_duration":1000000,"eval_count":20,"eval_duration":500000000}',
]
  .map((l) => `${l}\n`)
  .join('')

const OLLAMA_TEXT_STREAM = [
  '{"model":"llama3.2","created_at":"2025-05-27T22:54:57.1Z","message":{"role":"assistant","content":"Bon"},"done":false}',
  '{"model":"llama3.2","created_at":"2025-05-27T22:54:57.2Z","message":{"role":"assistant","content":"jour "},"done":false}',
  '{"model":"llama3.2","created_at":"2025-05-27T22:54:57.3Z","message":{"role":"assistant","content":"à 🌍"},"done":false}',
  '{"model":"llama3.2","created_at":"2025-05-27T22:54:57.4Z","message":{"role":"assistant","content":"\\"!\\""},"done":false}',
  '{"model":"llama3.2","created_at":"2025-05-27T22:54:57.5Z","message":{"role":"assistant","content":""},"done_reason":"length","done":true,"prompt_eval_count":5,"eval_count":4,"eval_duration":100000000}',
]
  .map((l) => `${l}\n`)
  .join('')

// mlx_lm.server (server.py generate_response): Python json.dumps spacing, `reasoning`, whole tool calls with index.
const mlx = (delta: object, finish: string | null = null) =>
  `data: ${JSON.stringify({
    id: 'chatcmpl-7f',
    system_fingerprint: '0.28.3',
    object: 'chat.completion.chunk',
    model: 'default_model',
    created: 1755849600,
    choices: [{ index: 0, finish_reason: finish, delta }],
  })
    .replaceAll('":', '": ')
    .replaceAll(',"', ', "')}\n\n`
const MLX_TOOL_STREAM = [
  ': keepalive 64/128\n\n',
  mlx({ role: 'assistant', content: '', reasoning: 'Need weather.', tool_calls: [] }),
  mlx({ role: 'assistant', content: 'Checking', reasoning: '', tool_calls: [] }),
  mlx({
    role: 'assistant',
    content: '',
    reasoning: '',
    tool_calls: [
      {
        function: { name: 'get_weather', arguments: '{"city": "Paris"}' },
        type: 'function',
        id: '5c0e2d1f-4b7a-4d7e-9d1c-0a1b2c3d4e5f',
        index: 0,
      },
    ],
  }),
  mlx({ role: 'assistant', content: '', reasoning: '', tool_calls: [] }, 'tool_calls'),
  'data: {"id": "chatcmpl-7f", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}}\n\n',
  'data: [DONE]\n\n',
].join('')

// llama-server (tools/server): reasoning_content, tool-call fragments joined by index, id "" (older builds).
const lc = (delta: object, finish: string | null = null, extra = '') =>
  `data: {"choices":[{"finish_reason":${JSON.stringify(finish)},"index":0,"delta":${JSON.stringify(delta)}}],"created":1740000000,"id":"chatcmpl-abc","model":"gpt-3.5-turbo","system_fingerprint":"b5000-1a2b","object":"chat.completion.chunk"${extra}}\n\n`
const LLAMA_TOOL_STREAM = [
  lc({ role: 'assistant', content: null }),
  lc({ reasoning_content: 'Paris, so' }),
  lc({ reasoning_content: ' call it.' }),
  lc({
    tool_calls: [
      { index: 0, id: '', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } },
    ],
  }),
  lc({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Par' } }] }),
  lc({ tool_calls: [{ index: 0, function: { arguments: 'is"}' } }] }),
  lc({
    tool_calls: [{ index: 1, id: 'call_t', type: 'function', function: { name: 'get_time', arguments: '' } }],
  }),
  lc({}, 'tool_calls', ',"usage":{"completion_tokens":21,"prompt_tokens":60,"total_tokens":81}'),
  'data: [DONE]\n\n',
].join('')

const LLAMA_TEXT_NO_USAGE = [
  lc({ role: 'assistant', content: null }),
  lc({ content: 'Hi' }),
  lc({ content: ' there' }),
  lc({ content: ' 🌍' }),
  lc({}, 'stop'),
  'data: [DONE]\n\n',
].join('')

const SIZES = [1, 2, 3, 7, 64, Number.POSITIVE_INFINITY]

describe('ollamaChatAdapter encode', () => {
  it('builds /api/chat with messages, images, tool history, tools and options', () => {
    expect(ollamaChatAdapter.path).toBe('/api/chat')
    const body = JSON.parse(
      ollamaChatAdapter.encode({
        ...WIRE,
        format: { type: 'object' },
        think: true,
        keepAlive: '10m',
        numCtx: 8192,
        extras: { mirostat: 1, truncate: false, model: 'evil', messages: [] },
      }),
    )
    expect(body).toEqual({
      model: 'qwen3',
      stream: true,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather in Paris?', images: ['iVBORw0KGgo='] },
        {
          role: 'assistant',
          content: '',
          tool_calls: [{ id: 'call_1', function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
        },
        { role: 'tool', content: '{"temp":21}', tool_name: 'get_weather', tool_call_id: 'call_1' },
      ],
      tools: WIRE_TOOLS,
      format: { type: 'object' },
      think: true,
      keep_alive: '10m',
      truncate: false,
      options: {
        num_predict: 100,
        temperature: 0.2,
        top_p: 0.9,
        top_k: 40,
        seed: 7,
        stop: ['###'],
        num_ctx: 8192,
        mirostat: 1,
      },
    })
  })

  it('strips data: URL prefixes from images, drops tools for toolChoice none, narrows to a named tool', () => {
    const withImage: ChatWire = {
      messages: [{ role: 'user', content: 'see', images: ['data:image/png;base64,iVBORw0KGgo='] }],
      stream: false,
      model: 'llava',
    }
    expect(JSON.parse(ollamaChatAdapter.encode(withImage)).messages[0].images).toEqual(['iVBORw0KGgo='])
    expect(JSON.parse(ollamaChatAdapter.encode({ ...WIRE, toolChoice: 'none' }))).not.toHaveProperty('tools')
    const named = JSON.parse(ollamaChatAdapter.encode({ ...WIRE, toolChoice: { name: 'get_time' } }))
    expect(named.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(['get_time'])
    expect(named).not.toHaveProperty('tool_choice')
  })
})

describe('ollamaChatAdapter decode', () => {
  it('reads a non-streamed answer with thinking and an object-arguments tool call without id', () => {
    const out = ollamaChatAdapter.decode(
      '{"model":"qwen3","created_at":"2025-05-27T22:54:58Z","message":{"role":"assistant","content":"","thinking":"hmm","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},"done_reason":"stop","done":true,"prompt_eval_count":31,"eval_count":20,"eval_duration":500000000,"load_duration":3000000}',
    )
    expect(out).toMatchObject({
      text: '',
      reasoning: 'hmm',
      doneReason: 'stop',
      promptTokens: 31,
      completionTokens: 20,
      evalDurationNs: 500000000,
      loadDurationNs: 3000000,
    })
    expect(out.toolCalls).toHaveLength(1)
    expect(out.toolCalls[0]).toMatchObject({ name: 'get_weather', arguments: { city: 'Paris' } })
    expect(out.toolCalls[0]!.id).toMatch(/^call_[0-9a-f]{24}$/)
  })

  it('is BACKEND_ERROR for an in-band error and MALFORMED_RESPONSE without a message', () => {
    expect(caught(() => ollamaChatAdapter.decode('{"error":"model runner crashed"}')).code).toBe(
      ErrorCode.BACKEND_ERROR,
    )
    const e = caught(() => ollamaChatAdapter.decode('{"model":"m","response":"hi","done":true}'))
    expect(e.code).toBe(ErrorCode.MALFORMED_RESPONSE)
    expect(e.message).toContain('/api/chat')
  })

  it('is INVALID_TOOL_ARGUMENTS for arguments that are neither an object nor object JSON', () => {
    for (const args of ['"not json"', '[1,2]', '"{\\"a\\":"']) {
      const e = caught(() =>
        ollamaChatAdapter.decode(
          `{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":${args}}}]},"done":true}`,
        ),
      )
      expect(e.code).toBe(ErrorCode.INVALID_TOOL_ARGUMENTS)
      expect(e.message).toContain('tool "f"')
    }
  })
})

describe('ollamaChatAdapter stream', () => {
  it.each(SIZES)('delivers thinking, a whole tool call and the metrics at %s-byte chunks', (size) => {
    const { deltas, output } = run(ollamaChatAdapter, OLLAMA_TOOL_STREAM, size)
    const all = joined(deltas)
    expect(all.reasoning).toBe('The user wants the weather.')
    expect(all.text).toBe('')
    expect(all.toolCalls).toEqual([{ id: 'call_k2m1', name: 'get_weather', arguments: { city: 'Paris' } }])
    expect(output).toMatchObject({
      reasoning: 'The user wants the weather.',
      toolCalls: all.toolCalls,
      doneReason: 'stop',
      promptTokens: 31,
      completionTokens: 20,
    })
  })

  it.each(SIZES)(
    'delivers text with escapes and emoji the same with and without the fast path (%s)',
    (size) => {
      for (const fast of [true, false]) {
        const { deltas, output } = run(ollamaChatAdapter, OLLAMA_TEXT_STREAM, size, fast)
        expect(joined(deltas).text).toBe('Bonjour à 🌍"!"')
        expect(output).toMatchObject({ text: 'Bonjour à 🌍"!"', doneReason: 'length', completionTokens: 4 })
      }
    },
  )

  it('is STREAM_ERROR for an error line and for a body without done:true', () => {
    const errorLine = `${OLLAMA_TEXT_STREAM.split('\n')[0]}\n{"error":"an error was encountered while running the model"}\n`
    const e = caught(() => run(ollamaChatAdapter, errorLine))
    expect(e.code).toBe(ErrorCode.STREAM_ERROR)
    expect(e.message).toContain('while running the model')
    const cut = OLLAMA_TEXT_STREAM.split('\n').slice(0, 2).join('\n')
    expect(caught(() => run(ollamaChatAdapter, `${cut}\n`)).code).toBe(ErrorCode.STREAM_ERROR)
  })
})

describe('openaiChatAdapter encode', () => {
  it('builds /v1/chat/completions with image parts, JSON-string tool arguments and tool results', () => {
    const { model: _omitted, ...withoutModel } = WIRE
    expect(openaiChatAdapter.path).toBe('/v1/chat/completions')
    const body = JSON.parse(
      openaiChatAdapter.encode({
        ...withoutModel,
        think: false,
        format: { title: 'Weather', type: 'object' },
        extras: { repetition_penalty: 1.1, chat_template_kwargs: { foo: 1 }, stream: false },
      }),
    )
    expect(body).toEqual({
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather in Paris?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          ],
        },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            {
              id: 'call_1',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: 'tool', content: '{"temp":21}', tool_call_id: 'call_1' },
      ],
      max_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      seed: 7,
      stop: ['###'],
      stream: true,
      stream_options: { include_usage: true },
      tools: WIRE_TOOLS,
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'Weather', schema: { title: 'Weather', type: 'object' } },
      },
      chat_template_kwargs: { enable_thinking: false, foo: 1 },
      repetition_penalty: 1.1,
    })
  })

  it("maps 'json', effort levels and tool choices", () => {
    const base: ChatWire = { messages: [{ role: 'user', content: 'x' }], stream: false }
    expect(JSON.parse(openaiChatAdapter.encode({ ...base, format: 'json' })).response_format).toEqual({
      type: 'json_object',
    })
    expect(JSON.parse(openaiChatAdapter.encode({ ...base, think: 'high' }))).toMatchObject({
      reasoning_effort: 'high',
    })
    const plain = JSON.parse(openaiChatAdapter.encode(base))
    expect(plain).not.toHaveProperty('stream_options')
    expect(plain).not.toHaveProperty('model')
    expect(JSON.parse(openaiChatAdapter.encode({ ...WIRE, toolChoice: 'none' }))).not.toHaveProperty('tools')
    expect(JSON.parse(openaiChatAdapter.encode({ ...WIRE, toolChoice: 'required' })).tool_choice).toBe(
      'required',
    )
    const named = JSON.parse(openaiChatAdapter.encode({ ...WIRE, toolChoice: { name: 'get_time' } }))
    expect(named.tool_choice).toBe('required')
    expect(named.tools).toHaveLength(1)
  })
})

describe('openaiChatAdapter decode', () => {
  it('reads llama.cpp: content null, reasoning_content, string arguments, empty id made up', () => {
    const out = openaiChatAdapter.decode(
      '{"choices":[{"finish_reason":"tool_calls","index":0,"message":{"role":"assistant","content":null,"reasoning_content":"think","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"},"id":""}]}}],"created":1,"model":"gpt-3.5-turbo","object":"chat.completion","usage":{"completion_tokens":9,"prompt_tokens":30,"total_tokens":39},"id":"chatcmpl-1"}',
    )
    expect(out).toMatchObject({
      text: '',
      reasoning: 'think',
      doneReason: 'tool_calls',
      promptTokens: 30,
      completionTokens: 9,
    })
    expect(out.estimated).toBeUndefined()
    expect(out.toolCalls[0]).toMatchObject({ name: 'get_weather', arguments: { city: 'Paris' } })
    expect(out.toolCalls[0]!.id).toMatch(/^call_/)
  })

  it('reads mlx_lm: reasoning field and its uuid ids', () => {
    const out = openaiChatAdapter.decode(
      '{"id": "chatcmpl-1", "object": "chat.completion", "model": "default_model", "created": 1, "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi", "reasoning": "r", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}, "type": "function", "id": "u-1"}]}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}',
    )
    expect(out).toMatchObject({
      text: 'Hi',
      reasoning: 'r',
      toolCalls: [{ id: 'u-1', name: 'f', arguments: {} }],
    })
  })

  it('is INVALID_TOOL_ARGUMENTS for unparseable argument strings and BACKEND_ERROR for in-band errors', () => {
    const e = caught(() =>
      openaiChatAdapter.decode(
        '{"choices":[{"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{city: Paris"}}]}}]}',
      ),
    )
    expect(e.code).toBe(ErrorCode.INVALID_TOOL_ARGUMENTS)
    expect(e.message).toContain('{city: Paris')
    expect(
      caught(() => openaiChatAdapter.decode('{"error":{"message":"boom","type":"server_error"}}')).code,
    ).toBe(ErrorCode.BACKEND_ERROR)
    expect(caught(() => openaiChatAdapter.decode('{"choices":[{"text":"hi"}]}')).code).toBe(
      ErrorCode.MALFORMED_RESPONSE,
    )
  })
})

describe('openaiChatAdapter stream', () => {
  it.each(SIZES)('mlx_lm: reasoning, text, a whole tool call, separate usage (%s-byte chunks)', (size) => {
    const { deltas, output } = run(openaiChatAdapter, MLX_TOOL_STREAM, size)
    const all = joined(deltas)
    expect(all).toEqual({
      text: 'Checking',
      reasoning: 'Need weather.',
      toolCalls: [
        { id: '5c0e2d1f-4b7a-4d7e-9d1c-0a1b2c3d4e5f', name: 'get_weather', arguments: { city: 'Paris' } },
      ],
    })
    expect(output).toMatchObject({ doneReason: 'tool_calls', promptTokens: 40, completionTokens: 12 })
    expect(output.estimated).toBeUndefined()
  })

  it.each(SIZES)('llama.cpp: fragments joined by index, ids made up for "", zero-arg call (%s)', (size) => {
    const { deltas, output } = run(openaiChatAdapter, LLAMA_TOOL_STREAM, size)
    const all = joined(deltas)
    expect(all.reasoning).toBe('Paris, so call it.')
    const calls = all.toolCalls as ToolCall[]
    expect(calls.map((c) => [c.name, c.arguments])).toEqual([
      ['get_weather', { city: 'Paris' }],
      ['get_time', {}],
    ])
    expect(calls[0]!.id).toMatch(/^call_[0-9a-f]{24}$/)
    expect(calls[1]!.id).toBe('call_t')
    expect(output).toMatchObject({ doneReason: 'tool_calls', promptTokens: 60, completionTokens: 21 })
  })

  it.each(SIZES)('counts frames and says estimated when no usage comes (%s)', (size) => {
    for (const fast of [true, false]) {
      const { deltas, output } = run(openaiChatAdapter, LLAMA_TEXT_NO_USAGE, size, fast)
      expect(joined(deltas).text).toBe('Hi there 🌍')
      expect(output).toMatchObject({
        text: 'Hi there 🌍',
        completionTokens: 3,
        promptTokens: 0,
        estimated: true,
      })
    }
  })

  it('is INVALID_TOOL_ARGUMENTS when joined fragments are not JSON', () => {
    const bad = [
      lc({
        tool_calls: [{ index: 0, id: 'x', type: 'function', function: { name: 'f', arguments: '{"a":' } }],
      }),
      lc({}, 'tool_calls'),
      'data: [DONE]\n\n',
    ].join('')
    expect(caught(() => run(openaiChatAdapter, bad)).code).toBe(ErrorCode.INVALID_TOOL_ARGUMENTS)
  })

  it('error frames in the forms servers send: llama.cpp error: field, vLLM data error, event: error', () => {
    const first = lc({ content: 'Hi' })
    const llama = `${first}error: {"code":500,"message":"slot crashed","type":"server_error"}\n\ndata: [DONE]\n\n`
    const e1 = caught(() => run(openaiChatAdapter, llama))
    expect(e1.code).toBe(ErrorCode.STREAM_ERROR)
    expect(e1.message).toContain('slot crashed')
    const vllm = `${first}data: {"error":{"object":"error","message":"engine dead","type":"InternalServerError","code":500}}\n\n`
    expect(caught(() => run(openaiChatAdapter, vllm)).message).toContain('engine dead')
    const ctx =
      'error: {"code":400,"message":"the request exceeds the available context size","type":"invalid_request_error"}\n\ndata: [DONE]\n\n'
    expect(caught(() => run(openaiChatAdapter, ctx)).code).toBe(ErrorCode.BAD_REQUEST)
    expect(caught(() => run(openaiChatAdapter, `event: error\ndata: {"message":"x"}\n\n`)).code).toBe(
      ErrorCode.STREAM_ERROR,
    )
  })

  it('is STREAM_ERROR for [DONE] without a finish_reason and for a body without [DONE]', () => {
    expect(caught(() => run(openaiChatAdapter, `${lc({ content: 'Hi' })}data: [DONE]\n\n`)).code).toBe(
      ErrorCode.STREAM_ERROR,
    )
    expect(caught(() => run(openaiChatAdapter, `${lc({ content: 'Hi' })}${lc({}, 'stop')}`)).code).toBe(
      ErrorCode.STREAM_ERROR,
    )
  })
})
