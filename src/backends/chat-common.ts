/**
 * Contract of the chat adapters (`/api/chat`, `/v1/chat/completions`) and the pieces both share:
 * tool-call normalisation (a non-empty id, parsed object arguments, a clear error otherwise).
 * Pure: no I/O, no timers.
 */
import { randomUUID } from 'node:crypto'
import type { ChatFunctionTool, ChatMessage, ChatRequest, ToolCall } from '../chat/types.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'
import { clip, isObject, type JsonObject, malformed } from './common.js'
import type { BackendOutput, ProtocolAdapter } from './types.js'

/** Request fields that reach the adapters as the caller wrote them. */
export const CHAT_WIRE_FIELDS = [
  'toolChoice',
  'format',
  'think',
  'topP',
  'topK',
  'minP',
  'seed',
  'presencePenalty',
  'frequencyPenalty',
] as const

/** What the chat operation asks an adapter to encode, after the record's defaults were applied. */
export interface ChatWire
  extends Pick<
    ChatRequest,
    (typeof CHAT_WIRE_FIELDS)[number] | 'temperature' | 'maxTokens' | 'keepAlive' | 'numCtx'
  > {
  /** Same rule as WireRequest.model: undefined means "omit" (OpenAI-compatible without backend_model). */
  model?: string
  messages: readonly ChatMessage[]
  tools?: readonly ChatFunctionTool[]
  stop?: readonly string[]
  /** This dialect's extras from `request.options.ollama` / `request.options.openai`. */
  extras?: Readonly<Record<string, unknown>>
  stream: boolean
}

/** Everything the router reads from a finished chat answer. */
export interface ChatOutput extends BackendOutput {
  reasoning: string
  toolCalls: ToolCall[]
  /** The server sent no usage; `completionTokens` counts the answer's frames. */
  estimated?: boolean
}

/** One streamed piece: text ('' when none), reasoning, and tool calls that are complete. */
export interface ChatDelta {
  text: string
  reasoning?: string
  toolCalls?: ToolCall[]
}

export interface ChatAdapter extends ProtocolAdapter<ChatOutput, ChatDelta> {
  encode(request: ChatWire): string
}

/** A tool-call id for servers that send none (Ollama before 0.12) or `""` (llama.cpp). */
export function makeToolCallId(): string {
  return `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`
}

function badArguments(backend: BackendKind, label: string, name: string, raw: string, cause?: unknown) {
  return new RouterError(
    ErrorCode.INVALID_TOOL_ARGUMENTS,
    `${label} returned a call to tool "${clip(name, 64)}" whose arguments are not a JSON object: ${JSON.stringify(clip(raw, 120))}. The model produced malformed arguments; retry, lower the temperature, or use a model with better tool support`,
    cause === undefined ? { backend } : { backend, cause },
  )
}

/**
 * Arguments as a plain object: an object as is (Ollama), a JSON string parsed (OpenAI dialect),
 * missing or an empty string as `{}` (a call without parameters). Anything else is
 * INVALID_TOOL_ARGUMENTS, never a crash and never a raw string handed to the caller.
 */
export function toolArguments(
  backend: BackendKind,
  label: string,
  name: string,
  raw: unknown,
): Record<string, unknown> {
  if (raw === undefined || raw === null) return {}
  if (isObject(raw)) return raw
  if (typeof raw !== 'string') throw badArguments(backend, label, name, JSON.stringify(raw) ?? String(raw))
  if (raw.trim().length === 0) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch (cause) {
    throw badArguments(backend, label, name, raw, cause)
  }
  if (!isObject(parsed)) throw badArguments(backend, label, name, raw)
  return parsed
}

/** One normalised call from a server's `{id?, function:{name, arguments}}`. */
export function toolCallFrom(backend: BackendKind, label: string, value: unknown): ToolCall {
  const fn = isObject(value) ? value.function : undefined
  if (!isObject(fn) || typeof fn.name !== 'string' || fn.name.length === 0) {
    throw malformed(
      backend,
      `${label} sent a tool call without a function name: ${clip(String(JSON.stringify(value)), 120)}`,
    )
  }
  const id =
    isObject(value) && typeof value.id === 'string' && value.id.length > 0 ? value.id : makeToolCallId()
  return { id, name: fn.name, arguments: toolArguments(backend, label, fn.name, fn.arguments) }
}

/** The tool name of each call id in the conversation (Ollama's tool messages name the tool, not the call). */
export function toolNames(messages: readonly ChatMessage[]): Map<string, string> {
  const names = new Map<string, string>()
  for (const m of messages) if (m.toolCalls) for (const c of m.toolCalls) names.set(c.id, c.name)
  return names
}

const DATA_URL = /^data:([^;,]+)?(;base64)?,/

/** Base64 without a `data:` prefix (Ollama's `images`). */
export function rawBase64(image: string): string {
  const m = DATA_URL.exec(image)
  return m === null ? image : image.slice(m[0].length)
}

/** A `data:` URL for OpenAI-style `image_url` parts; the type is read from the image's first bytes. */
export function dataUrl(image: string): string {
  if (image.startsWith('data:')) return image
  let type = 'image/png'
  if (image.startsWith('/9j/')) type = 'image/jpeg'
  else if (image.startsWith('R0lGOD')) type = 'image/gif'
  else if (image.startsWith('UklGR')) type = 'image/webp'
  return `data:${type};base64,${image}`
}

/**
 * The tools as both dialects take them (`{type:'function', function:{name, description?, parameters}}`),
 * after `toolChoice`: none for `'none'`, only the named one for `{ name }`; undefined when none are sent.
 */
export function wireTools(wire: ChatWire): JsonObject[] | undefined {
  const choice = wire.toolChoice
  let tools = wire.tools
  if (tools === undefined || tools.length === 0 || choice === 'none') return undefined
  if (typeof choice === 'object') tools = tools.filter((t) => t.name === choice.name)
  return tools.map((t) => ({
    type: 'function',
    function: {
      name: t.name,
      ...(t.description === undefined ? {} : { description: t.description }),
      parameters: t.parameters ?? { type: 'object', properties: {} },
    },
  }))
}

/** Sets `key` on `target` unless `value` is undefined. */
export function put(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value
}
