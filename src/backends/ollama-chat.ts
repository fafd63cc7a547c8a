/**
 * Ollama `POST /api/chat` (NDJSON when streaming).
 *
 * Request: `{model, messages, stream, tools?, format?, think?, keep_alive?, options:{num_predict,
 * temperature, top_p, top_k, min_p, seed, presence_penalty, frequency_penalty, stop, num_ctx, <extras>}}`.
 * Messages: `{role, content, images?: [base64], tool_calls?: [{id, function:{name, arguments: object}}],
 * tool_name?, tool_call_id?}`: a tool result names its tool (`tool_name`, what Ollama's templates read)
 * and its call id (read by Ollama 0.12+, ignored before). `/api/chat` has no `tool_choice`: `none` sends
 * no tools, a named tool sends only that one, `required` cannot be enforced (documented).
 *
 * Responses: `message.content`, `message.thinking` (with `think`), `message.tool_calls[]` whose
 * `function.arguments` is an object, each call whole in one line; `done:true` closes the stream with
 * the metrics (as `/api/generate`). `{"error":...}` is BACKEND_ERROR in a 2xx body, STREAM_ERROR in a stream.
 */
import type { ToolCall } from '../chat/types.js'
import {
  type ChatAdapter,
  type ChatDelta,
  type ChatOutput,
  type ChatWire,
  put,
  rawBase64,
  toolCallFrom,
  toolNames,
  wireTools,
} from './chat-common.js'
import {
  describeStreamError,
  errorMessage,
  inBandError,
  isObject,
  type JsonObject,
  malformed,
  parseBody,
  preview,
  streamError,
} from './common.js'
import { FrameShape } from './fast-frame.js'
import { LineDecoder } from './lines.js'
import { finalOutput, OLLAMA_TOP_LEVEL_FIELDS } from './ollama.js'

const LABEL = 'Ollama'

/** Keys the chat adapter controls; the same keys in `options.ollama` are ignored. */
const RESERVED = new Set(['model', 'messages', 'stream', 'options', 'tools', 'format', 'think'])

function encodeMessages(wire: ChatWire): JsonObject[] {
  const names = toolNames(wire.messages)
  return wire.messages.map((m) => {
    const out: JsonObject = { role: m.role, content: m.content ?? '' }
    if (m.images !== undefined && m.images.length > 0) out.images = m.images.map(rawBase64)
    if (m.toolCalls !== undefined && m.toolCalls.length > 0) {
      out.tool_calls = m.toolCalls.map((c) => ({
        id: c.id,
        function: { name: c.name, arguments: c.arguments },
      }))
    }
    if (m.toolCallId !== undefined) {
      put(out, 'tool_name', names.get(m.toolCallId))
      out.tool_call_id = m.toolCallId
    }
    return out
  })
}

function encode(wire: ChatWire): string {
  const body: JsonObject = { model: wire.model, messages: encodeMessages(wire), stream: wire.stream }
  put(body, 'tools', wireTools(wire))
  put(body, 'format', wire.format)
  put(body, 'think', wire.think)
  put(body, 'keep_alive', wire.keepAlive)
  const options: JsonObject = {}
  put(options, 'num_predict', wire.maxTokens)
  put(options, 'temperature', wire.temperature)
  put(options, 'top_p', wire.topP)
  put(options, 'top_k', wire.topK)
  put(options, 'min_p', wire.minP)
  put(options, 'seed', wire.seed)
  put(options, 'presence_penalty', wire.presencePenalty)
  put(options, 'frequency_penalty', wire.frequencyPenalty)
  if (wire.stop !== undefined && wire.stop.length > 0) options.stop = wire.stop
  put(options, 'num_ctx', wire.numCtx)
  const extras = wire.extras
  if (extras !== undefined) {
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value === undefined || RESERVED.has(key)) continue
      if (OLLAMA_TOP_LEVEL_FIELDS.has(key)) body[key] = value
      else options[key] = value
    }
  }
  if (Object.keys(options).length > 0) body.options = options
  return JSON.stringify(body)
}

function toolCallsOf(message: JsonObject): ToolCall[] | undefined {
  const calls = message.tool_calls
  if (calls === undefined || calls === null) return undefined
  if (!Array.isArray(calls)) {
    throw malformed(
      'ollama',
      `${LABEL} sent message.tool_calls that is not a list: ${preview(JSON.stringify(calls))}`,
    )
  }
  return calls.length === 0 ? undefined : calls.map((c) => toolCallFrom('ollama', LABEL, c))
}

function optionalString(message: JsonObject, key: string): string {
  const value = message[key]
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') {
    throw malformed('ollama', `${LABEL} sent a non-string message.${key}: ${preview(JSON.stringify(value))}`)
  }
  return value
}

function messageOf(object: JsonObject, body: string): JsonObject {
  const message = object.message
  if (!isObject(message)) {
    throw malformed(
      'ollama',
      `${LABEL} answered without a "message" object (${preview(body)}); check that the endpoint is an Ollama server with /api/chat`,
    )
  }
  return message
}

function decode(body: string): ChatOutput {
  const parsed = parseBody('ollama', LABEL, body)
  if (!isObject(parsed)) {
    throw malformed('ollama', `${LABEL} answered 2xx with JSON that is not an object: ${preview(body)}`)
  }
  if (parsed.error !== undefined && parsed.error !== null) throw inBandError('ollama', LABEL, parsed.error)
  const message = messageOf(parsed, body)
  return {
    ...finalOutput(parsed, optionalString(message, 'content')),
    reasoning: optionalString(message, 'thinking'),
    toolCalls: toolCallsOf(message) ?? [],
  }
}

type OnDelta = (delta: ChatDelta) => void

class OllamaChatStreamDecoder extends LineDecoder<ChatOutput, ChatDelta> {
  private text = ''
  private reasoning = ''
  private readonly toolCalls: ToolCall[] = []
  private final: JsonObject | undefined = undefined
  /** Plain content lines (no thinking, no tool calls) skip JSON.parse once their shape is learned. */
  private readonly shape: FrameShape | null

  constructor(fastFrames = true) {
    super()
    this.shape = fastFrames ? new FrameShape('"content":"', 'created_at') : null
  }

  private get delivered(): number {
    return this.text.length + this.reasoning.length
  }

  protected onLine(line: string, onDelta: OnDelta): void {
    if (line.length === 0) return
    const fast = this.shape?.match(line)
    if (fast !== undefined) {
      if (fast.length > 0) {
        this.text += fast
        onDelta({ text: fast })
      }
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch (cause) {
      if (line.trim().length === 0) return
      if (this.atEnd) {
        throw streamError(
          'ollama',
          `${LABEL} chat stream ended in the middle of a line; ${this.delivered} characters delivered`,
          this.delivered,
          cause,
        )
      }
      throw malformed(
        'ollama',
        `${LABEL} chat stream line is not JSON: ${preview(line)}; check that the endpoint is an Ollama server`,
        cause,
      )
    }
    if (!isObject(parsed))
      throw malformed('ollama', `${LABEL} chat stream line is not a JSON object: ${preview(line)}`)
    if (parsed.error !== undefined && parsed.error !== null) {
      throw streamError(
        'ollama',
        `${LABEL} reported an error mid-stream after ${this.delivered} characters: ${describeStreamError(parsed.error)}`,
        this.delivered,
        parsed.error,
      )
    }
    const message = parsed.message
    if (isObject(message)) this.onMessage(line, parsed, message, onDelta)
    else if (message !== undefined && message !== null) {
      throw malformed('ollama', `${LABEL} chat stream line has a non-object "message": ${preview(line)}`)
    }
    if (parsed.done === true) {
      this.final = parsed
      this.finished = true
    }
  }

  private onMessage(line: string, parsed: JsonObject, message: JsonObject, onDelta: OnDelta): void {
    const text = optionalString(message, 'content')
    const reasoning = optionalString(message, 'thinking')
    const calls = toolCallsOf(message)
    if (text.length === 0 && reasoning.length === 0 && calls === undefined) return
    this.text += text
    this.reasoning += reasoning
    if (calls !== undefined) this.toolCalls.push(...calls)
    const delta: ChatDelta = { text }
    if (reasoning.length > 0) delta.reasoning = reasoning
    if (calls !== undefined) delta.toolCalls = calls
    onDelta(delta)
    if (
      parsed.done === false &&
      reasoning.length === 0 &&
      calls === undefined &&
      message.thinking === undefined
    ) {
      this.shape?.learn(line, text)
    }
  }

  protected onEof(): void {}

  protected truncated(): Error {
    return streamError(
      'ollama',
      `${LABEL} chat stream ended without its final line (done:true); ${this.delivered} characters delivered`,
      this.delivered,
    )
  }

  protected output(): ChatOutput {
    return {
      ...finalOutput(this.final ?? {}, this.text),
      reasoning: this.reasoning,
      toolCalls: this.toolCalls,
    }
  }
}

/** Adapter for Ollama's native `/api/chat`. */
export const ollamaChatAdapter: ChatAdapter = {
  kind: 'ollama',
  path: '/api/chat',
  encode,
  decode,
  errorMessage,
  createStreamDecoder: (fastFrames?: boolean) => new OllamaChatStreamDecoder(fastFrames),
}
