/**
 * Public types of `router.chat()` and `router.streamChat()`. Backend-neutral: the chat adapters
 * (src/backends/ollama-chat.ts, openai-chat.ts) translate them to each dialect.
 */
import type { AttemptInfo } from '../errors.js'
import type { BackendKind, GenerateRequest, Usage } from '../types.js'

export type { Capability } from '../types.js'

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool'

/** One tool call, the same from every backend: a non-empty id, the tool's name, parsed arguments. */
export interface ToolCall {
  /** The server's id, or one made up (`call_…`) when it sent none or an empty one. */
  id: string
  name: string
  /** The arguments as a parsed JSON object (never a raw string). */
  arguments: Record<string, unknown>
}

export interface ChatMessage {
  role: ChatRole
  /** The text. May be empty (or left out) on an assistant turn that only calls tools. */
  content?: string
  /** Images for vision models: base64 strings, or `data:image/...;base64,` URLs. */
  images?: string[]
  /** On an assistant turn being replayed: the tool calls it made (from a previous `result.message.toolCalls`). */
  toolCalls?: ToolCall[]
  /** On a `tool` message: the `id` of the call this is the result of. Required there. */
  toolCallId?: string
}

/** A function the model may call: its name, what it does, and a JSON schema of its arguments. */
export interface ChatFunctionTool {
  name: string
  description?: string
  /** JSON schema of the arguments object. Default: an object with no properties. */
  parameters?: Record<string, unknown>
}

/** Either the flat form or the OpenAI/Ollama wire form `{ type: 'function', function: {...} }`. */
export type ChatTool = ChatFunctionTool | { type: 'function'; function: ChatFunctionTool }

/** `auto` (the model decides; default), `none` (no calls), `required` (some call), or one named tool. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string }

/** Backend-specific extras, per dialect, so one request can go to either (an `auto` record tries both). */
export interface ChatBackendOptions {
  /** Ollama `/api/chat`: keys Ollama reads at the top level (`keep_alive`, `truncate`...) go there, the rest into `options` (`num_gpu`, `mirostat`...). */
  ollama?: Record<string, unknown>
  /** OpenAI-compatible `/v1/chat/completions`: merged into the body (`repetition_penalty`, `logit_bias`, `chat_template_kwargs`...). */
  openai?: Record<string, unknown>
}

/** Request fields chat shares with `generate()`: routing, limits, deadline, abort, metadata. */
type SharedRequestFields = Omit<GenerateRequest, 'prompt' | 'system' | 'options'>

export interface ChatRequest extends SharedRequestFields {
  messages: ChatMessage[]
  tools?: ChatTool[]
  toolChoice?: ToolChoice
  /** Structured output: `'json'` (any JSON object) or a JSON schema the answer must follow. */
  format?: 'json' | Record<string, unknown>
  /** Reasoning on (`true`, or an effort level where the model has them) or off (`false`). Default: the model's. */
  think?: boolean | 'low' | 'medium' | 'high'
  /** Nucleus sampling, 0..1. */
  topP?: number
  /** Sample from the k most likely tokens (positive integer). */
  topK?: number
  /** Minimum token probability relative to the most likely, 0..1. */
  minP?: number
  /** Sampling seed (integer), for repeatable answers. */
  seed?: number
  /** -2..2 */
  presencePenalty?: number
  /** -2..2 */
  frequencyPenalty?: number
  /** Ollama only: how long the model stays loaded (`'5m'`, seconds, `-1` forever, `0` unload). */
  keepAlive?: string | number
  /** Ollama only: context window in tokens (`options.num_ctx`). OpenAI-compatible servers fix it at start-up. */
  numCtx?: number
  options?: ChatBackendOptions
}

/** The answer: always an assistant message. */
export interface AssistantMessage {
  role: 'assistant'
  content: string
  /** The model's reasoning, when the backend reports it separately (Ollama `thinking`, `reasoning_content`). */
  reasoning?: string
  toolCalls?: ToolCall[]
}

export interface ChatUsage extends Usage {
  /** True when the server sent no usage and the numbers were counted by the router (completion: frames; prompt: 0). */
  estimated?: boolean
}

export interface ChatResult {
  message: AssistantMessage
  /** `stop`, `length`, `tool_calls`, or what the backend said; `null` when it said nothing. */
  doneReason: string | null
  /** The configured model name that answered. */
  model: string
  backend: BackendKind
  endpoint: string
  usage: ChatUsage
  latencyMs: number
  tokensPerSecond: number
  timeToFirstTokenMs?: number
  loadMs?: number
  attempts: AttemptInfo[]
  /** From the answering record's prices per million tokens; absent when it has none for these tokens. */
  cost?: number
}

/** One piece of a streamed chat answer. `text` is always there ('' for a reasoning- or tool-only chunk). */
export interface ChatStreamChunk {
  text: string
  reasoning?: string
  /** Tool calls, each complete (whole arguments) when it appears. */
  toolCalls?: ToolCall[]
  model: string
  backend: BackendKind
}

/** What `router.streamChat()` returns: iterate for chunks; `result` resolves with the whole answer. */
export interface ChatStream extends AsyncIterable<ChatStreamChunk> {
  readonly result: Promise<ChatResult>
  abort(reason?: unknown): void
}
