/**
 * router.chat() / streamChat() against the testing kit's conversation stand-ins (real servers on
 * 127.0.0.1 speaking each server's own chat dialect: Ollama, mlx_lm.server, llama-server).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type ChatRequest, createLLMRouter, type LLMRouter, type RouterError } from '../src/index.js'
import {
  type OllamaServer,
  type OpenAIServer,
  startOllamaServer,
  startOpenAIServer,
} from '../src/testing/index.js'
import type { MetricRecord } from '../src/types.js'
import { failedStream } from './helpers/chat.js'
import { ManualClock } from './helpers/manual-clock.js'

let ollama: OllamaServer
let ollamaIds: OllamaServer
let mlx: OpenAIServer
let llama: OpenAIServer
let vllm: OpenAIServer

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}

/** A question gets a tool call; a tool result gets an answer quoting it (stateless: servers share it). */
const toolThenAnswer = ({ messages }: { messages: { role?: unknown; content?: unknown }[] }) =>
  messages.at(-1)?.role !== 'tool'
    ? {
        reasoning: 'The user wants the weather.',
        toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
      }
    : `Tool said: ${String(messages.at(-1)?.content)}`

beforeAll(async () => {
  ollama = await startOllamaServer({ thinking: ['qwen3'], chat: toolThenAnswer })
  ollamaIds = await startOllamaServer({ thinking: ['qwen3'], chat: toolThenAnswer, toolCallIds: 'generated' })
  mlx = await startOpenAIServer({ flavor: 'mlx', chat: toolThenAnswer })
  llama = await startOpenAIServer({ flavor: 'llamacpp', chat: toolThenAnswer })
  vllm = await startOpenAIServer({ flavor: 'vllm', chat: toolThenAnswer })
})
afterAll(async () => {
  await Promise.all([ollama.stop(), ollamaIds.stop(), mlx.stop(), llama.stop(), vllm.stop()])
})

let routers: LLMRouter[] = []
function makeRouter(records: Record<string, unknown>[]) {
  const r = createLLMRouter(
    {
      env: {
        LLM_ROUTER_BACKENDS: JSON.stringify(records.map((x) => ({ enabled: true, priority: 1, ...x }))),
      },
      metrics: false,
      retry: { maxRetries: 0 },
    },
    { clock: new ManualClock(Date.now()) },
  )
  routers.push(r)
  return r
}
/** Stand-ins a test started for itself, stopped after it. */
const afterEachStop: OllamaServer[] = []
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
  await Promise.all(afterEachStop.splice(0).map((s) => s.stop()))
  for (const s of [ollama, ollamaIds, mlx, llama, vllm]) await s.clearFault()
})

async function twoTurns(router: LLMRouter, stream: boolean) {
  const messages: ChatRequest['messages'] = [{ role: 'user', content: 'Weather in Paris?' }]
  const ask = (req: ChatRequest) => (stream ? router.streamChat(req).result : router.chat(req))
  const first = await ask({ model: 'm', messages, tools: [WEATHER_TOOL] })
  const call = first.message.toolCalls?.[0]
  expect(call).toMatchObject({ name: 'get_weather', arguments: { city: 'Paris' } })
  expect(call!.id.length).toBeGreaterThan(0)
  messages.push(first.message, { role: 'tool', toolCallId: call!.id, content: '21 °C, sunny' })
  const second = await ask({ model: 'm', messages, tools: [WEATHER_TOOL] })
  return { first, second, call: call! }
}

describe.each([
  [
    'Ollama',
    () => ({ backend_type: 'ollama', endpoint_url: ollama.url, model_name: 'm', backend_model: 'qwen3' }),
  ],
  ['mlx_lm.server', () => ({ backend_type: 'mlx', endpoint_url: mlx.url, model_name: 'm' })],
  ['llama-server', () => ({ backend_type: 'mlx', endpoint_url: llama.url, model_name: 'm' })],
  ['vLLM', () => ({ backend_type: 'mlx', endpoint_url: vllm.url, model_name: 'm' })],
])('a tool-calling conversation on %s', (name, record) => {
  it.each([false, true])('streamed: %s', async (stream) => {
    const router = makeRouter([record()])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const { first, second } = await twoTurns(router, stream)
    if (name !== 'Ollama' || stream) expect(first.message.reasoning).toBe('The user wants the weather.')
    expect(first.doneReason).toBe(name === 'Ollama' ? 'stop' : 'tool_calls')
    expect(second.message).toMatchObject({ role: 'assistant', content: 'Tool said: 21 °C, sunny' })
    expect(second.message.toolCalls).toBeUndefined()
    expect(second.usage.promptTokens).toBeGreaterThan(0)
    expect(second.usage.completionTokens).toBeGreaterThan(0)
    expect(metrics.map((m) => [m.operation, m.outcome, m.streamed])).toEqual([
      ['chat', 'success', stream],
      ['chat', 'success', stream],
    ])
  })
})

describe('ids and dialect details', () => {
  it("keeps the server's tool-call id (Ollama 0.12+ generated ids) and sends it back", async () => {
    const router = makeRouter([
      { backend_type: 'ollama', endpoint_url: ollamaIds.url, model_name: 'm', backend_model: 'qwen3' },
    ])
    ollamaIds.reset()
    const { call } = await twoTurns(router, true)
    expect(call.id).toMatch(/^call_[a-z0-9]{8}$/)
    const sentBack = ollamaIds.requests.at(-1)!.body as { messages: Record<string, unknown>[] }
    expect(sentBack.messages.at(-1)).toMatchObject({
      role: 'tool',
      tool_name: 'get_weather',
      tool_call_id: call.id,
    })
  })

  it('Ollama answers think:true for a model that cannot think with 400: BAD_REQUEST, no fallover', async () => {
    const router = makeRouter([
      {
        backend_type: 'ollama',
        endpoint_url: ollama.url,
        model_name: 'm',
        backend_model: 'llama3.2',
        priority: 1,
      },
      { backend_type: 'mlx', endpoint_url: mlx.url, model_name: 'm', priority: 2 },
    ])
    mlx.reset()
    const e = (await router
      .chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], think: true })
      .catch((x) => x)) as RouterError
    expect(e.code).toBe('BAD_REQUEST')
    expect(e.message).toContain('does not support thinking')
    expect(mlx.requestCount).toBe(0)
  })

  it('Ollama refuses tools for a model without tool support (400); declared capabilities route around it', async () => {
    const strict = await startOllamaServer({ toolModels: ['qwen3'], chat: toolThenAnswer })
    try {
      const plain = {
        backend_type: 'ollama',
        endpoint_url: strict.url,
        model_name: 'm',
        backend_model: 'llama3.2',
      }
      const req: ChatRequest = {
        model: 'm',
        messages: [{ role: 'user', content: 'x' }],
        tools: [WEATHER_TOOL],
      }
      const e = (await makeRouter([plain])
        .chat(req)
        .catch((x) => x)) as RouterError
      expect(e.code).toBe('BAD_REQUEST')
      expect(e.message).toContain('does not support tools')
      const router = makeRouter([
        { ...plain, priority: 1, capabilities: [] },
        { ...plain, priority: 2, backend_model: 'qwen3', capabilities: ['tools', 'thinking'] },
      ])
      const r = await router.chat(req)
      expect(r.message.toolCalls?.[0]?.name).toBe('get_weather')
      expect(r.attempts.map((a) => a.code ?? 'ok')).toEqual(['NO_CAPABLE_BACKEND', 'ok'])
    } finally {
      await strict.stop()
    }
  })

  it('structured output: llama-server honours a JSON schema; the content parses', async () => {
    const server = await startOpenAIServer({ flavor: 'llamacpp' })
    try {
      const router = makeRouter([{ backend_type: 'mlx', endpoint_url: server.url, model_name: 'm' }])
      const schema = {
        type: 'object',
        properties: { city: { type: 'string' }, celsius: { type: 'number' } },
        required: ['city', 'celsius'],
      }
      const r = await router.chat({
        model: 'm',
        messages: [{ role: 'user', content: 'Paris?' }],
        format: schema,
      })
      const parsed = JSON.parse(r.message.content) as Record<string, unknown>
      expect(typeof parsed.city).toBe('string')
      expect(typeof parsed.celsius).toBe('number')
      expect(server.requests.at(-1)!.body).toMatchObject({
        response_format: { type: 'json_schema', json_schema: { name: 'response', schema } },
      })
    } finally {
      await server.stop()
    }
  })

  it('arguments that are not JSON from llama-server are INVALID_TOOL_ARGUMENTS', async () => {
    const server = await startOpenAIServer({
      flavor: 'llamacpp',
      chat: { toolCalls: [{ name: 'get_weather', arguments: '{"city": Paris' }] },
    })
    try {
      const router = makeRouter([{ backend_type: 'mlx', endpoint_url: server.url, model_name: 'm' }])
      for (const stream of [false, true]) {
        const req: ChatRequest = {
          model: 'm',
          messages: [{ role: 'user', content: 'x' }],
          tools: [WEATHER_TOOL],
        }
        const e = (await (stream ? router.streamChat(req).result : router.chat(req)).catch(
          (x) => x,
        )) as RouterError
        expect(e.code).toBe('INVALID_TOOL_ARGUMENTS')
      }
    } finally {
      await server.stop()
    }
  })
})

describe('faults on the chat routes', () => {
  it.each([
    ['503', 'BACKEND_BUSY'],
    ['500-html', 'BACKEND_ERROR'],
    ['drop-socket', 'BACKEND_UNREACHABLE'],
    ['invalid-json', 'MALFORMED_RESPONSE'],
  ])('an auto record falls over from mlx_lm (%s) to Ollama /api/chat', async (fault, code) => {
    await mlx.setFault(fault as '503')
    const router = makeRouter([
      { backend_type: 'auto', endpoint_url: mlx.url, fallback_url: ollama.url, model_name: 'qwen3' },
    ])
    const r = await router.streamChat({
      model: 'qwen3',
      messages: [{ role: 'user', content: 'Hello there' }],
    }).result
    expect(r.backend).toBe('ollama')
    expect(r.attempts[0]).toMatchObject({ backend: 'mlx', ok: false, code })
    expect(r.attempts[1]).toMatchObject({ backend: 'ollama', ok: true })
  })

  it('an Ollama error line after text is STREAM_INTERRUPTED with what was delivered', async () => {
    // Its own stand-in: the shared ones answer turn by turn (a tool call on even turns carries no text).
    const talker = await startOllamaServer({
      chat: 'Once upon a time there was a router that never dropped a call.',
    })
    afterEachStop.push(talker)
    await talker.setFault({ type: 'error-mid-stream', afterChunks: 2 })
    const router = makeRouter([{ backend_type: 'ollama', endpoint_url: talker.url, model_name: 'llama3.2' }])
    const s = router.streamChat({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Tell me a story' }],
    })
    const { text, error: e } = await failedStream(s)
    expect(text.length).toBeGreaterThan(0)
    expect(e.code).toBe('STREAM_INTERRUPTED')
    expect(e.delivered).toBe(text.length)
  })
})
