/**
 * OpenAI-compatible `POST /v1/chat/completions`: mlx_lm.server, llama.cpp's llama-server, vLLM, LM
 * Studio (SSE when streaming). Backend kind `mlx`; the server applies the model's chat template.
 *
 * Request: `{model?, messages, max_tokens, temperature, top_p?, top_k?, min_p?, seed?, presence_penalty?,
 * frequency_penalty?, stop?, stream, stream_options?, tools?, tool_choice?, response_format?,
 * chat_template_kwargs?, reasoning_effort?, <options.openai>}`.
 * - `model` only when set (as for `/v1/completions`: mlx_lm.server loads any other value).
 * - Images go as `image_url` content parts with a `data:` URL.
 * - Replayed tool calls carry `arguments` as a JSON string (mlx_lm `json.loads` it; llama.cpp and vLLM
 *   expect the OpenAI shape); tool results are `{role:'tool', tool_call_id, content}`.
 * - `toolChoice`: `none` sends no tools (mlx_lm ignores `tool_choice`), `required` is sent as is, a
 *   named tool sends only that tool with `tool_choice:'required'` (llama.cpp rejects the object form).
 * - `format`: `'json'` -> `{type:'json_object'}`, a schema -> `{type:'json_schema', json_schema:{name, schema}}`.
 * - `think`: a boolean -> `chat_template_kwargs.enable_thinking` (Qwen3-style templates on llama.cpp,
 *   vLLM and mlx_lm); a level -> `reasoning_effort`.
 *
 * Responses: `choices[0].message` (or `.delta`): `content`, reasoning in `reasoning_content` (llama.cpp,
 * older vLLM) or `reasoning` (mlx_lm, newer vLLM), `tool_calls[]` with `function.arguments` a JSON string.
 * In a stream, tool-call fragments are joined by `index` (the id and name come in the first fragment;
 * mlx_lm sends each call whole), and each call is parsed and handed out when its choice finishes.
 * Without usage in the stream (a server that ignores `include_usage`), completion tokens are the
 * frames that carried the answer, and the output says `estimated`.
 */
import type { ToolCall } from '../chat/types.js'
import {
  type ChatAdapter,
  type ChatDelta,
  type ChatOutput,
  type ChatWire,
  dataUrl,
  put,
  toolCallFrom,
  wireTools,
} from './chat-common.js'
import {
  count,
  describeStreamError,
  errorMessage,
  inBandError,
  isObject,
  type JsonObject,
  malformed,
  parseBody,
  preview,
  rejectedInBand,
  rejectsRequest,
  streamError,
} from './common.js'
import { FrameShape } from './fast-frame.js'
import { isErrorPayload, SseDecoder } from './sse.js'

const LABEL = 'OpenAI-compatible backend'
const STREAM = `${LABEL} chat stream`

/** Keys the chat adapter controls; the same keys in `options.openai` are ignored. */
const RESERVED = new Set(['model', 'messages', 'stream', 'stream_options'])
const INCLUDE_USAGE = { include_usage: true } as const
const SCHEMA_NAME = /^[A-Za-z0-9_-]{1,64}$/

function encodeMessages(wire: ChatWire): JsonObject[] {
  return wire.messages.map((m) => {
    const text = m.content ?? ''
    const out: JsonObject = { role: m.role }
    if (m.images !== undefined && m.images.length > 0) {
      const parts: JsonObject[] = []
      if (text.length > 0) parts.push({ type: 'text', text })
      for (const image of m.images) parts.push({ type: 'image_url', image_url: { url: dataUrl(image) } })
      out.content = parts
    } else {
      out.content = text
    }
    if (m.toolCalls !== undefined && m.toolCalls.length > 0) {
      out.tool_calls = m.toolCalls.map((c) => ({
        id: c.id,
        type: 'function',
        function: { name: c.name, arguments: JSON.stringify(c.arguments) },
      }))
    }
    if (m.toolCallId !== undefined) out.tool_call_id = m.toolCallId
    return out
  })
}

function encodeTools(wire: ChatWire, body: JsonObject): void {
  const tools = wireTools(wire)
  if (tools === undefined) return
  body.tools = tools
  // A named tool is sent alone and made required (llama.cpp rejects the object form of tool_choice).
  if (wire.toolChoice === 'required' || typeof wire.toolChoice === 'object') body.tool_choice = 'required'
}

function responseFormat(format: ChatWire['format']): JsonObject | undefined {
  if (format === undefined) return undefined
  if (format === 'json') return { type: 'json_object' }
  const title = format.title
  const name = typeof title === 'string' && SCHEMA_NAME.test(title) ? title : 'response'
  return { type: 'json_schema', json_schema: { name, schema: format } }
}

function encode(wire: ChatWire): string {
  const body: JsonObject = {}
  put(body, 'model', wire.model)
  body.messages = encodeMessages(wire)
  put(body, 'max_tokens', wire.maxTokens)
  put(body, 'temperature', wire.temperature)
  put(body, 'top_p', wire.topP)
  put(body, 'top_k', wire.topK)
  put(body, 'min_p', wire.minP)
  put(body, 'seed', wire.seed)
  put(body, 'presence_penalty', wire.presencePenalty)
  put(body, 'frequency_penalty', wire.frequencyPenalty)
  if (wire.stop !== undefined && wire.stop.length > 0) body.stop = wire.stop
  body.stream = wire.stream
  if (wire.stream) body.stream_options = INCLUDE_USAGE
  encodeTools(wire, body)
  put(body, 'response_format', responseFormat(wire.format))
  if (typeof wire.think === 'boolean') body.chat_template_kwargs = { enable_thinking: wire.think }
  else if (wire.think !== undefined) body.reasoning_effort = wire.think
  const extras = wire.extras
  if (extras !== undefined) {
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value === undefined || RESERVED.has(key)) continue
      // The caller's template kwargs add to ours (and win on the same key).
      if (key === 'chat_template_kwargs' && isObject(value) && isObject(body.chat_template_kwargs)) {
        body.chat_template_kwargs = { ...body.chat_template_kwargs, ...value }
      } else {
        body[key] = value
      }
    }
  }
  return JSON.stringify(body)
}

/** A string field that may be null or absent ('' then); any other type is a protocol violation. */
function text(object: JsonObject, key: string): string {
  const value = object[key]
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') {
    throw malformed('mlx', `${LABEL} sent a non-string "${key}": ${preview(JSON.stringify(value))}`)
  }
  return value
}

/** llama.cpp and older vLLM say `reasoning_content`, mlx_lm and newer vLLM `reasoning`. */
function reasoningOf(object: JsonObject): string {
  const a = text(object, 'reasoning_content')
  return a.length > 0 ? a : text(object, 'reasoning')
}

function decode(body: string): ChatOutput {
  let parsed = parseBody('mlx', LABEL, body)
  if (Array.isArray(parsed)) parsed = parsed[0]
  if (!isObject(parsed)) {
    throw malformed('mlx', `${LABEL} answered 2xx with JSON that is not a chat completion: ${preview(body)}`)
  }
  if (isErrorPayload(parsed)) throw inBandError('mlx', LABEL, parsed.error ?? parsed)
  const choices = parsed.choices
  const choice = Array.isArray(choices) ? choices[0] : undefined
  const message = isObject(choice) ? choice.message : undefined
  if (!isObject(choice) || !isObject(message)) {
    throw malformed(
      'mlx',
      `${LABEL} answered 2xx without choices[0].message (${preview(body)}); ` +
        'check that the endpoint serves /v1/chat/completions',
    )
  }
  const calls = message.tool_calls
  if (calls !== undefined && calls !== null && !Array.isArray(calls)) {
    throw malformed('mlx', `${LABEL} sent message.tool_calls that is not a list: ${preview(body)}`)
  }
  const reason = choice.finish_reason
  const usage = parsed.usage
  const out: ChatOutput = {
    text: text(message, 'content'),
    reasoning: reasoningOf(message),
    toolCalls: Array.isArray(calls) ? calls.map((c) => toolCallFrom('mlx', LABEL, c)) : [],
    doneReason: typeof reason === 'string' && reason.length > 0 ? reason : null,
    promptTokens: isObject(usage) ? count(usage.prompt_tokens) : 0,
    completionTokens: isObject(usage) ? count(usage.completion_tokens) : 0,
  }
  if (!isObject(usage)) out.estimated = true
  return out
}

interface PendingCall {
  index: number
  id: string
  name: string
  /** Joined `function.arguments` string fragments. */
  args: string
  /** A server that sent the arguments as an object. */
  object: Record<string, unknown> | undefined
}

type OnDelta = (delta: ChatDelta) => void

class ChatSseDecoder extends SseDecoder<ChatOutput, ChatDelta> {
  private text = ''
  private reasoning = ''
  private readonly toolCalls: ToolCall[] = []
  private pending: PendingCall[] = []
  private doneReason: string | null = null
  private sawFinish = false
  private sawUsage = false
  private promptTokens = 0
  private completionTokens = 0
  /** Frames that carried part of the answer: the completion-token estimate when no usage comes. */
  private frames = 0
  private readonly shape: FrameShape | null

  constructor(fastFrames = true) {
    super()
    this.shape = fastFrames ? new FrameShape('"content":"') : null
  }

  private get delivered(): number {
    return this.text.length + this.reasoning.length
  }

  protected dispatch(data: string, event: string, onDelta: OnDelta): void {
    if (data === '[DONE]') {
      if (!this.sawFinish) {
        throw streamError(
          'mlx',
          `${LABEL} chat stream reached [DONE] without any chunk carrying a finish_reason, so the answer ` +
            `was cut short (the server may have hit an error); ${this.delivered} characters delivered`,
          this.delivered,
        )
      }
      this.finished = true
      return
    }
    if (event === '') {
      const fast = this.shape?.match(data)
      if (fast !== undefined) {
        if (fast.length > 0) {
          this.text += fast
          this.frames++
          onDelta({ text: fast })
        }
        return
      }
    }
    const parsed = this.parseEvent(data, event, 'mlx', STREAM, '/v1/chat/completions', this.delivered)
    const choices = parsed.choices
    const choice = Array.isArray(choices) ? choices[0] : undefined
    if (isObject(choice)) this.onChoice(data, event, parsed, choice, onDelta)
    const usage = parsed.usage
    if (isObject(usage)) {
      const prompt = count(usage.prompt_tokens)
      const completion = count(usage.completion_tokens)
      if (prompt > 0 || completion > 0) {
        this.sawUsage = true
        this.promptTokens = prompt
        this.completionTokens = completion
      }
    }
  }

  private onChoice(
    data: string,
    event: string,
    chunk: JsonObject,
    choice: JsonObject,
    onDelta: OnDelta,
  ): void {
    const reason = choice.finish_reason
    const delta = isObject(choice.delta) ? choice.delta : undefined
    if (delta !== undefined) {
      const content = text(delta, 'content')
      const reasoning = reasoningOf(delta)
      const fragments = delta.tool_calls
      const hasFragments = Array.isArray(fragments) && fragments.length > 0
      if (hasFragments) this.join(fragments)
      if (content.length > 0 || reasoning.length > 0 || hasFragments) this.frames++
      if (content.length > 0 || reasoning.length > 0) {
        this.text += content
        this.reasoning += reasoning
        const out: ChatDelta = { text: content }
        if (reasoning.length > 0) out.reasoning = reasoning
        onDelta(out)
      }
      if (
        event === '' &&
        content.length > 0 &&
        reasoning.length === 0 &&
        !hasFragments &&
        (reason === null || reason === undefined) &&
        chunk.usage === undefined &&
        (chunk.choices as unknown[]).length === 1
      ) {
        this.shape?.learn(data, content)
      }
    }
    if (typeof reason === 'string' && reason.length > 0) {
      this.doneReason = reason
      this.sawFinish = true
      this.flushCalls(onDelta)
    }
  }

  /** Adds `delta.tool_calls` fragments to the calls being assembled, by `index`. */
  private join(fragments: unknown[]): void {
    for (const fragment of fragments) {
      if (!isObject(fragment))
        throw malformed('mlx', `${LABEL} sent a tool-call fragment that is not an object`)
      const id = typeof fragment.id === 'string' ? fragment.id : ''
      let index = typeof fragment.index === 'number' ? fragment.index : undefined
      if (index === undefined) {
        // No index (some servers): a new id starts a new call, anything else continues the last one.
        const last = this.pending[this.pending.length - 1]
        index =
          last === undefined || (id !== '' && last.id !== '' && last.id !== id)
            ? this.pending.length
            : last.index
      }
      let call = this.pending.find((c) => c.index === index)
      if (call === undefined) {
        call = { index, id: '', name: '', args: '', object: undefined }
        this.pending.push(call)
      }
      if (call.id === '' && id !== '') call.id = id
      const fn = fragment.function
      if (isObject(fn)) {
        if (call.name === '' && typeof fn.name === 'string') call.name = fn.name
        const args = fn.arguments
        if (typeof args === 'string') call.args += args
        else if (isObject(args)) call.object = args
      }
    }
  }

  /** The choice finished: its assembled calls are parsed and handed out, in index order. */
  private flushCalls(onDelta: OnDelta): void {
    if (this.pending.length === 0) return
    const pending = this.pending.sort((a, b) => a.index - b.index)
    this.pending = []
    const calls = pending.map((c) =>
      toolCallFrom('mlx', LABEL, {
        id: c.id,
        function: { name: c.name, arguments: c.object ?? c.args },
      }),
    )
    this.toolCalls.push(...calls)
    onDelta({ text: '', toolCalls: calls })
  }

  protected errorFrame(payload: unknown): Error {
    if (rejectsRequest(payload)) return rejectedInBand('mlx', LABEL, payload)
    return streamError(
      'mlx',
      `${LABEL} reported an error mid-stream after ${this.delivered} characters: ${describeStreamError(payload)}`,
      this.delivered,
      payload,
    )
  }

  protected truncated(): Error {
    return streamError(
      'mlx',
      `${LABEL} chat stream ended without [DONE]; ${this.delivered} characters delivered`,
      this.delivered,
    )
  }

  protected output(): ChatOutput {
    const out: ChatOutput = {
      text: this.text,
      reasoning: this.reasoning,
      toolCalls: this.toolCalls,
      doneReason: this.doneReason,
      promptTokens: this.promptTokens,
      completionTokens: this.sawUsage ? this.completionTokens : this.frames,
    }
    if (!this.sawUsage) out.estimated = true
    return out
  }
}

/** Adapter for OpenAI-compatible `/v1/chat/completions`. */
export const openaiChatAdapter: ChatAdapter = {
  kind: 'mlx',
  path: '/v1/chat/completions',
  encode,
  decode,
  errorMessage,
  createStreamDecoder: (fastFrames?: boolean) => new ChatSseDecoder(fastFrames),
}
