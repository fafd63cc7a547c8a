/**
 * What the conversation doubles (`/api/chat`, `/v1/chat/completions`, `/api/embed`, `/v1/embeddings`)
 * answer, independent of the dialect: the scripted assistant turn (text, reasoning, tool calls),
 * structured output that really is JSON, and deterministic embedding vectors.
 * @module
 */
import { defaultResponse, tokenize } from './text.js'

/** One tool call a scripted assistant turn makes. */
export interface ScriptedToolCall {
  /** The function name. */
  name: string
  /**
   * The arguments. An object is what a well-behaved model produces. A string is sent as it is (OpenAI
   * dialect) so a test can script arguments that are not valid JSON; Ollama parses it like its own
   * tool parser does, and a string that does not parse comes out as plain `content` instead.
   * Default `{}`.
   */
  arguments?: Record<string, unknown> | string
  /** The call id to send where the server sends one. Default: what the imitated server makes up. */
  id?: string
}

/** A scripted assistant turn. */
export interface ScriptedReply {
  /** The answer text. Default `''` when `toolCalls` are given, else the default sentence. */
  content?: string
  /**
   * Reasoning ("thinking") text, sent only where the model may think: Ollama when the model is in
   * `thinking` and the request does not say `think:false`; OpenAI-compatible servers unless the request
   * turns it off (`chat_template_kwargs.enable_thinking:false`).
   */
  reasoning?: string
  /** Tool calls, sent after the reasoning and the content, in this order. */
  toolCalls?: ScriptedToolCall[]
}

/** One message of a chat request as the double received it (not validated further). */
export interface ReceivedMessage {
  role?: unknown
  content?: unknown
  [key: string]: unknown
}

/** What a chat responder is told about the request it answers. */
export interface ChatContext {
  /** The model name from the request (`default_model` for mlx when absent). */
  model: string
  /** Which stand-in asks. */
  server: 'ollama' | 'openai'
  /** The parsed request body. */
  body: Record<string, unknown>
  /** `body.messages`. */
  messages: ReceivedMessage[]
  /** `body.tools`, or `[]`. */
  tools: unknown[]
  /** How many requests this responder has answered before this one (0 for the first), for multi-turn scripts. */
  turn: number
}

/**
 * The assistant's turn: a string (the answer text), a {@link ScriptedReply}, or a function of the
 * request returning either. Default: a deterministic sentence quoting the last user message.
 */
export type ChatResponder = string | ScriptedReply | ((context: ChatContext) => string | ScriptedReply)

/** Embedding vectors: a function of the input text (and model). Default: {@link fakeEmbedding}. */
export type EmbeddingResponder = (text: string, model: string) => number[]

/** Options of the conversation doubles, shared by the Ollama and OpenAI-compatible stand-ins. */
export interface ConversationOptions {
  /** The assistant's turn for chat requests. See {@link ChatResponder}. */
  chat?: ChatResponder
  /**
   * Models that can think. `true`: every model. Ollama answers `think:true` for any other model with
   * 400 `"<model>" does not support thinking`, and sends `message.thinking` for these unless the request
   * says `think:false`. OpenAI-compatible servers send a scripted reasoning for any model; for a model
   * listed here they also make one up when the script has none. Default: none.
   */
  thinking?: boolean | string[]
  /** Embedding vectors. Default: {@link fakeEmbedding} with `embeddingDimensions`. */
  embed?: EmbeddingResponder
  /** Length of the default embedding vectors. Default 8. */
  embeddingDimensions?: number
}

/** A resolved assistant turn, ready to be put on the wire. */
export interface ResolvedTurn {
  content: string
  reasoning: string
  toolCalls: { name: string; arguments: Record<string, unknown> | string; id?: string }[]
}

/** Whether a model is one of `thinking`. */
export function canThink(options: ConversationOptions, model: string): boolean {
  const t = options.thinking
  if (t === true) return true
  if (!Array.isArray(t)) return false
  const bare = model.endsWith(':latest') ? model.slice(0, -':latest'.length) : model
  return t.includes(model) || t.includes(bare) || t.includes(`${model}:latest`)
}

/** Text of a message's `content`: a string, or the `text` parts of an OpenAI content array. */
export function messageText(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content
    .map((p) => (typeof p === 'object' && p !== null && typeof p.text === 'string' ? p.text : ''))
    .join('')
}

/** Every message's text joined, for the prompt token count. */
export function promptText(messages: ReceivedMessage[]): string {
  return messages.map((m) => messageText(m.content)).join('\n')
}

const turns = new WeakMap<object, number>()

/** Runs the responder for a request. */
export function resolveTurn(
  options: ConversationOptions,
  context: Omit<ChatContext, 'turn'>,
  thinks: boolean,
): ResolvedTurn {
  const responder = options.chat
  let reply: string | ScriptedReply
  if (typeof responder === 'function') {
    const turn = turns.get(responder) ?? 0
    turns.set(responder, turn + 1)
    reply = responder({ ...context, turn })
  } else {
    reply = responder ?? defaultFor(context.messages)
  }
  const script: ScriptedReply = typeof reply === 'string' ? { content: reply } : reply
  const toolCalls = (script.toolCalls ?? []).map((c) => ({
    name: c.name,
    arguments: c.arguments ?? {},
    ...(c.id !== undefined ? { id: c.id } : {}),
  }))
  const content = script.content ?? (toolCalls.length > 0 ? '' : defaultFor(context.messages))
  let reasoning = script.reasoning ?? ''
  if (reasoning === '' && thinks) reasoning = defaultReasoning(context.messages)
  return { content, reasoning, toolCalls }
}

function lastUserText(messages: ReceivedMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === 'user') return messageText(messages[i]?.content)
  }
  return ''
}

function defaultFor(messages: ReceivedMessage[]): string {
  return defaultResponse(lastUserText(messages))
}

function defaultReasoning(messages: ReceivedMessage[]): string {
  const words = lastUserText(messages).trim().split(/\s+/).filter(Boolean).slice(0, 8).join(' ')
  return `The user asks: "${words}". I will answer briefly.`
}

/** The first `max` tokens of a text (negative or undefined: all). */
export function limitTokens(text: string, max: number | undefined): { text: string; cut: boolean } {
  if (max === undefined || max < 0) return { text, cut: false }
  const tokens = tokenize(text)
  if (tokens.length <= max) return { text, cut: false }
  return { text: tokens.slice(0, max).join(''), cut: true }
}

/** Applies stop strings: the text up to the first match (the match removed). */
export function applyStop(text: string, stop: unknown): string {
  const list = typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop : []
  for (const s of list) {
    if (typeof s !== 'string' || s.length === 0) continue
    const at = text.indexOf(s)
    if (at >= 0) text = text.slice(0, at)
  }
  return text
}

// ---- structured output -------------------------------------------------------------------------

function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** A JSON value that satisfies the common parts of a JSON schema, with `seed` text for strings. */
export function sampleForSchema(schema: unknown, seed: string, depth = 0): unknown {
  if (typeof schema !== 'object' || schema === null || depth > 8) return seed
  const s = schema as Record<string, unknown>
  if ('const' in s) return s.const
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0]
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const list = s[key]
    if (Array.isArray(list) && list.length > 0) return sampleForSchema(list[0], seed, depth + 1)
  }
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type
  switch (type) {
    case 'object': {
      const props = (typeof s.properties === 'object' && s.properties !== null ? s.properties : {}) as Record<
        string,
        unknown
      >
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(props)) out[k] = sampleForSchema(v, seed, depth + 1)
      return out
    }
    case 'array': {
      const min = typeof s.minItems === 'number' ? Math.max(1, s.minItems) : 1
      return Array.from({ length: min }, () => sampleForSchema(s.items, seed, depth + 1))
    }
    case 'integer':
      return typeof s.minimum === 'number' ? Math.ceil(s.minimum) : 1
    case 'number':
      return typeof s.minimum === 'number' ? s.minimum : 1.5
    case 'boolean':
      return true
    case 'null':
      return null
    case 'string':
      return seed
    default:
      return typeof s.properties === 'object' ? sampleForSchema({ ...s, type: 'object' }, seed, depth) : seed
  }
}

/**
 * Structured output: `content` unchanged when it already is JSON (a scripted JSON answer), else JSON
 * made from it: `{"response": content}` for plain JSON mode, a value satisfying `schema` otherwise.
 * Written with spaces after `:` and `,` (as models usually do), so it streams in several pieces.
 */
export function structuredContent(content: string, schema: unknown | 'json'): string {
  if (isJson(content)) return content
  const seed = content.trim().split(/\s+/).filter(Boolean).slice(0, 4).join(' ')
  const value = schema === 'json' ? { response: content } : sampleForSchema(schema, seed)
  return spacedJson(value)
}

/** JSON with `": "` and `", "` separators (Python's `json.dumps` default, what mlx_lm.server writes). */
export function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(spacedJson).join(', ')}]`
  if (typeof value === 'object' && value !== null) {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}: ${spacedJson(v)}`)
    return `{${parts.join(', ')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** Tool call arguments as the OpenAI dialect sends them: a JSON string (strings sent as they are). */
export function argumentsString(args: Record<string, unknown> | string, spaced: boolean): string {
  if (typeof args === 'string') return args
  return spaced ? spacedJson(args) : JSON.stringify(args)
}

// ---- embeddings --------------------------------------------------------------------------------

/** A deterministic unit-length vector for a text: the same text always gives the same vector. */
export function fakeEmbedding(text: string, dimensions = 8): number[] {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0
  const raw = Array.from({ length: Math.max(1, dimensions) }, (_, i) => Math.sin(h / 997 + (i + 1) * 1.7))
  return normalize(raw)
}

/** Scales a vector to unit length (a zero vector, or one already of unit length, is returned as it is). */
export function normalize(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((n, x) => n + x * x, 0))
  return norm === 0 || Math.abs(norm - 1) < 1e-12 ? v : v.map((x) => x / norm)
}

/** The vector for one input, from the option or the default. */
export function embeddingFor(options: ConversationOptions, text: string, model: string): number[] {
  return options.embed !== undefined
    ? options.embed(text, model)
    : fakeEmbedding(text, options.embeddingDimensions ?? 8)
}
