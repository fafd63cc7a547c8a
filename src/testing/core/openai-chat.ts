/**
 * The OpenAI-compatible conversation routes for the stand-in, per flavor:
 *
 * - `POST /v1/chat/completions` (mlx_lm.server also answers `/chat/completions`). mlx_lm.server: every
 *   delta carries `role`, `content`, `reasoning` and `tool_calls` (whole calls with a uuid4 `id` and a
 *   JSON-string `arguments`, in one chunk); `response_format` is not read; usage only with
 *   `stream_options.include_usage`. llama-server: a first `{"role":"assistant","content":null}` delta,
 *   `reasoning_content` deltas, tool calls streamed as `delta.tool_calls[i]` fragments (the first with
 *   the name, then pieces of the arguments string), ids `""` (or absent in the stream) unless
 *   `toolCallIds: 'generated'`, `response_format` `json_object` / `json_schema` honoured, usage and
 *   `timings` always in the final chunk (`include_usage` ignored).
 * - `POST /v1/embeddings`: llama-server (`data[].embedding` with `index`, usage); 501 when started
 *   without `--embeddings` (`embeddings: false`). mlx_lm.server has no such route: its plain 404.
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { FaultSpec, GenerationOptions } from '../types.js'
import {
  applyStop,
  argumentsString,
  type ConversationOptions,
  canThink,
  embeddingFor,
  limitTokens,
  messageText,
  normalize,
  promptText,
  type ReceivedMessage,
  resolveTurn,
  structuredContent,
} from './conversation.js'
import {
  type Action,
  bodyReply,
  type Frame,
  type IncomingRequest,
  jsonReply,
  type Reply,
  streamReply,
} from './reply.js'
import { countTokens, tokenize } from './text.js'
import { vllmChat, vllmEmbeddings, vllmHex } from './vllm.js'
import { SSE_DONE, sseComment, sseData, sseField } from './wire.js'

/** What the conversation routes need from the OpenAI-compatible stand-in. */
export interface OpenAIChatHost {
  readonly flavor: 'mlx' | 'llamacpp' | 'vllm'
  readonly options: ConversationOptions &
    GenerationOptions & {
      toolCallIds?: 'empty' | 'generated'
      embeddings?: boolean
      contextSize?: number
      defaultMaxTokens?: number
    }
  /** An error in the flavor's own body shape. */
  errorReply(status: number, message: string): Reply
  /** What the flavor does with invalid parameters (mlx: drops the socket). */
  invalidReply(status: number, message: string): Action
  /** Whether `model` (absent: undefined) loads; the model name to echo. */
  resolveModel(requested: string | undefined): { known: boolean; model: string }
  /** Marks the model loaded; returns the cold-load delay this request pays. */
  admit(model: string): number
}

export const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
export const MLX_FINGERPRINT = '0.28.0-0.29.1-macOS-15.5-arm64-arm-64bit-applegpu_g15s'
export const LLAMACPP_FINGERPRINT = 'b6100-stand-in'
/** llama-server's message for a prompt longer than its context (current builds). */
export const CONTEXT_EXCEEDED = 'the request exceeds the available context size, try increasing it'

function isAction(v: unknown): v is Action {
  return typeof v === 'object' && v !== null && 'kind' in v
}

/**
 * The checks both OpenAI routes share, in the server's order: 411 without Content-Length (mlx), JSON
 * parse, an object body, then the typed sampling parameters. Returns the body or the answer to send.
 */
export function readOpenAIBody(
  host: OpenAIChatHost,
  req: IncomingRequest,
): { body: Record<string, unknown> } | { answer: Action } {
  const mlx = host.flavor === 'mlx'
  if (mlx && req.checkContentLength === true && req.headers['content-length'] === undefined) {
    return { answer: host.errorReply(411, 'Content-Length header is required') }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(req.rawBody)
  } catch (e) {
    if (host.flavor === 'vllm') return { answer: host.errorReply(400, 'JSON decode error') }
    return {
      answer: mlx
        ? host.errorReply(400, `Invalid JSON in request body: ${(e as Error).message}`)
        : host.errorReply(500, `Failed to parse input: ${(e as Error).message}`),
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { answer: host.errorReply(400, 'Request should be a JSON dictionary') }
  }
  return { body: parsed as Record<string, unknown> }
}

/** `stream`, `max_tokens` / `max_completion_tokens`, `temperature`, `logprobs` as the server checks them. */
export function checkSampling(host: OpenAIChatHost, body: Record<string, unknown>): Action | null {
  if (body.stream !== undefined && typeof body.stream !== 'boolean') {
    return host.invalidReply(400, 'stream must be a boolean')
  }
  const maxField = body.max_completion_tokens ?? body.max_tokens
  // The least each server takes: -1 (unlimited) on llama-server, 0 on mlx_lm.server, 1 on vLLM.
  const least = host.flavor === 'llamacpp' ? -1 : host.flavor === 'mlx' ? 0 : 1
  if (
    maxField !== undefined &&
    (typeof maxField !== 'number' || !Number.isInteger(maxField) || maxField < least)
  ) {
    if (host.flavor === 'vllm' && typeof maxField === 'number' && Number.isInteger(maxField)) {
      return host.errorReply(400, `max_tokens must be at least 1, got ${maxField}.`)
    }
    return host.invalidReply(400, 'max_tokens must be a non-negative integer')
  }
  if (body.temperature !== undefined && (typeof body.temperature !== 'number' || body.temperature < 0)) {
    return host.invalidReply(400, 'temperature must be a non-negative float')
  }
  if (host.flavor === 'mlx' && body.logprobs !== undefined && typeof body.logprobs !== 'boolean') {
    return { kind: 'drop' }
  }
  if (host.flavor === 'vllm' && body.stream_options != null && body.stream !== true) {
    return host.errorReply(400, 'Stream options can only be defined when `stream=True`.')
  }
  return null
}

/**
 * `max_completion_tokens ?? max_tokens ?? the server default`: 512 on mlx_lm.server, unlimited on
 * llama-server, 16 on vLLM's completions (its chat: the rest of the context).
 */
export function maxTokensOf(
  host: OpenAIChatHost,
  body: Record<string, unknown>,
  route: 'completion' | 'chat',
): number {
  const maxField = body.max_completion_tokens ?? body.max_tokens
  if (typeof maxField === 'number') return maxField
  if (host.options.defaultMaxTokens !== undefined) return host.options.defaultMaxTokens
  if (host.flavor === 'mlx') return 512
  return host.flavor === 'vllm' && route === 'completion' ? 16 : -1
}

/** The flavor's 404 for a model it does not serve. */
export function modelNotFound(host: OpenAIChatHost, model: string, fault: FaultSpec | null): Reply {
  if (fault?.message !== undefined) return host.errorReply(404, fault.message)
  if (host.flavor === 'vllm') return host.errorReply(404, `The model \`${model}\` does not exist.`)
  return host.errorReply(
    404,
    host.flavor === 'mlx' ? `Repository Not Found for model '${model}'` : `model '${model}' not found`,
  )
}

/** The `usage` object: mlx_lm.server's (with `prompt_tokens_details`) or llama-server's key order. */
export function openAIUsage(
  mlx: boolean,
  promptTokens: number,
  completionTokens: number,
): Record<string, unknown> {
  const P = promptTokens
  const n = completionTokens
  return mlx
    ? {
        prompt_tokens: P,
        completion_tokens: n,
        total_tokens: P + n,
        prompt_tokens_details: { cached_tokens: 0 },
      }
    : { completion_tokens: n, prompt_tokens: P, total_tokens: P + n }
}

/** llama-server's `timings` object for a request. */
export function llamaTimings(promptTokens: number, n: number, ttftMs: number, reportedTps: number) {
  const P = promptTokens
  const promptMs = ttftMs > 0 ? ttftMs : P
  const predictedMs = n > 0 ? (n / reportedTps) * 1000 : 0
  return {
    cache_n: 0,
    prompt_n: P,
    prompt_ms: promptMs,
    prompt_per_token_ms: promptMs / P,
    prompt_per_second: (P / promptMs) * 1000,
    predicted_n: n,
    predicted_ms: predictedMs,
    predicted_per_token_ms: n > 0 ? predictedMs / n : 0,
    predicted_per_second: n > 0 ? reportedTps : 0,
  }
}

/** llama-server's mid-stream error: an SSE `error:` field, then `[DONE]`. */
export function llamaStreamError(code: number, message: string, type: string): Frame[] {
  return [
    { data: sseField('error', { error: { code, message, type } }), delayMs: 0, role: 'final' },
    { data: SSE_DONE, delayMs: 0, role: 'final' },
  ]
}

/** mlx_lm.server's `: keepalive n/m` comments while the prompt is processed. */
export function mlxKeepalives(promptTokens: number, ttftMs: number): Frame[] {
  const frames: Frame[] = []
  if (ttftMs > 0) {
    frames.push({
      data: sseComment(`keepalive ${Math.floor(promptTokens / 2)}/${promptTokens}`),
      delayMs: ttftMs / 2,
      role: 'meta',
    })
  }
  frames.push({
    data: sseComment(`keepalive ${promptTokens}/${promptTokens}`),
    delayMs: ttftMs > 0 ? ttftMs / 2 : 0,
    role: 'meta',
  })
  return frames
}

/**
 * mlx_lm.server's stream tail: the usage chunk when `stream_options.include_usage` is true, then
 * `[DONE]`; `stream_options` without the key makes it raise a KeyError, so no usage and no `[DONE]`.
 */
export function mlxStreamTail(body: Record<string, unknown>, usageChunk: () => unknown): Frame[] {
  const so = body.stream_options
  const frames: Frame[] = []
  if (typeof so === 'object' && so !== null) {
    const includeUsage = (so as Record<string, unknown>).include_usage
    if (includeUsage === undefined) return frames
    if (includeUsage === true) frames.push({ data: sseData(usageChunk()), delayMs: 0, role: 'final' })
  }
  frames.push({ data: SSE_DONE, delayMs: 0, role: 'final' })
  return frames
}

/** The pacing options as every generation route reads them. */
export function openAIPacing(host: OpenAIChatHost) {
  const tps = host.options.tokensPerSecond ?? 0
  return {
    perTokenMs: tps > 0 ? 1000 / tps : 0,
    ttftMs: host.options.timeToFirstTokenMs ?? 0,
    reportedTps: host.options.reportedTokensPerSecond ?? (tps > 0 ? tps : 100),
  }
}

/** llama-server's refusal of a prompt longer than `contextSize` (null: it fits, or another flavor). */
export function llamaContextExceeded(
  host: OpenAIChatHost,
  promptTokens: number,
  streaming: boolean,
): Reply | null {
  const limit = host.options.contextSize
  if (host.flavor !== 'llamacpp' || limit === undefined || promptTokens <= limit) return null
  if (!streaming) return host.errorReply(400, CONTEXT_EXCEEDED)
  return streamReply(200, SSE_HEADERS, llamaStreamError(400, CONTEXT_EXCEEDED, 'invalid_request_error'))
}

/**
 * The end of an mlx / llama-server stream after its final chunk: mlx_lm.server's tail (`usageChunk`
 * when asked for), `[DONE]` on llama-server, whose mid-stream error is an SSE `error:` field.
 */
export function openAIStreamEnd(
  host: OpenAIChatHost,
  body: Record<string, unknown>,
  frames: Frame[],
  usageChunk: () => unknown,
  timing: { loadMs: number; ttftMs: number },
  fault: FaultSpec | null,
): Reply {
  const mlx = host.flavor === 'mlx'
  if (mlx) frames.push(...mlxStreamTail(body, usageChunk))
  else frames.push({ data: SSE_DONE, delayMs: 0, role: 'final' })
  const midStreamError = mlx
    ? []
    : llamaStreamError(500, fault?.message ?? 'generation failed', 'server_error')
  return streamReply(200, SSE_HEADERS, frames, {
    delayMs: mlx ? timing.loadMs : timing.loadMs + timing.ttftMs,
    midStreamError,
  })
}

/**
 * The `invalid-json` fault's answer: the first half of the whole answer, as one SSE `data:` line then
 * `[DONE]` when streamed, or as the body.
 */
export function openAIInvalidJson(streaming: boolean, value: unknown): Reply {
  const text = JSON.stringify(value)
  const cut = text.slice(0, Math.max(1, Math.floor(text.length / 2)))
  return streaming
    ? streamReply(200, SSE_HEADERS, [
        { data: `data: ${cut}\n\n`, delayMs: 0, role: 'content' },
        { data: SSE_DONE, delayMs: 0, role: 'final' },
      ])
    : bodyReply(200, 'application/json', cut)
}

/** `error-mid-stream` on a request without a stream: mlx drops the socket, llama-server answers 500. */
export function openAIGenerationFailed(host: OpenAIChatHost, fault: FaultSpec): Action {
  return host.flavor === 'mlx' ? { kind: 'drop' } : host.errorReply(500, fault.message ?? 'generation failed')
}

/** The id the flavor makes up for a tool call the script gave none. */
function toolCallId(host: OpenAIChatHost): string {
  if (host.flavor === 'mlx') return randomUUID()
  if (host.flavor === 'vllm') return `chatcmpl-tool-${vllmHex()}`
  return host.options.toolCallIds === 'generated' ? llamaToolId() : ''
}

function llamaToolId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  return [...randomBytes(32)].map((b) => alphabet[b % alphabet.length]).join('')
}

/** The JSON mode a request asks for: null (none), `'json'`, or a schema. llama.cpp only. */
function responseFormat(host: OpenAIChatHost, body: Record<string, unknown>): { mode: unknown } | Action {
  const rf = body.response_format
  if (host.flavor === 'mlx' || rf === undefined || rf === null) return { mode: null }
  const type = typeof rf === 'object' ? (rf as Record<string, unknown>).type : undefined
  if (type === 'text') return { mode: null }
  if (type === 'json_object') {
    const schema = (rf as Record<string, unknown>).schema
    return { mode: schema !== undefined ? schema : 'json' }
  }
  if (type === 'json_schema') {
    const js = (rf as Record<string, unknown>).json_schema
    const schema = typeof js === 'object' && js !== null ? (js as Record<string, unknown>).schema : undefined
    return { mode: schema ?? 'json' }
  }
  return host.errorReply(
    400,
    `response_format type must be one of "text" or "json_object", but got: ${JSON.stringify(type ?? rf)}`,
  )
}

/** A JSON reply whose body is cut to its first 20 bytes (the `invalid-json` fault on a whole body). */
function truncatedJson(reply: Reply): Reply {
  const body = [...reply.frames]
    .map((f) => (typeof f.data === 'string' ? f.data : Buffer.from(f.data).toString()))
    .join('')
  return bodyReply(200, 'application/json', body.slice(0, 20))
}

/** Splits a string into pieces of `size` characters (the arguments fragments llama-server streams). */
function pieces(text: string, size: number): string[] {
  const out: string[] = []
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size))
  return out
}

/** `POST /v1/chat/completions`. */
export function openAIChat(host: OpenAIChatHost, req: IncomingRequest, fault: FaultSpec | null): Action {
  const mlx = host.flavor === 'mlx'
  const read = readOpenAIBody(host, req)
  if ('answer' in read) return read.answer
  const body = read.body
  if (body.messages === undefined) {
    // mlx_lm.server asserts outside any try: the socket closes without an answer.
    return host.invalidReply(400, "'messages' is required")
  }
  if (!Array.isArray(body.messages)) return host.invalidReply(400, "Expected 'messages' to be an array")
  const bad = checkSampling(host, body)
  if (bad !== null) return bad
  const rf = responseFormat(host, body)
  if (isAction(rf)) return rf
  const requested = typeof body.model === 'string' ? body.model : undefined
  const { known, model } = host.resolveModel(requested)
  if (!known || fault?.type === '404-model') return modelNotFound(host, model, fault)
  const messages = body.messages as ReceivedMessage[]
  const promptTokens = countTokens(promptText(messages))
  const streaming = body.stream === true
  const tooLong = llamaContextExceeded(host, promptTokens, streaming)
  if (tooLong !== null) return tooLong

  const kwargs = body.chat_template_kwargs
  const thinkingOff =
    typeof kwargs === 'object' &&
    kwargs !== null &&
    (kwargs as Record<string, unknown>).enable_thinking === false
  const turn = resolveTurn(
    host,
    { model, server: 'openai', body, messages, tools: Array.isArray(body.tools) ? body.tools : [] },
    canThink(host.options, model) && !thinkingOff,
  )
  let reasoning = thinkingOff ? '' : turn.reasoning
  let content = turn.content
  if (rf.mode !== null) content = structuredContent(content, rf.mode)
  // llama-server with reasoning_format "none" leaves the thinking inline in the content.
  if (host.flavor === 'llamacpp' && body.reasoning_format === 'none' && reasoning !== '') {
    content = `<think>\n${reasoning}\n</think>\n\n${content}`
    reasoning = ''
  }
  content = applyStop(content, body.stop)
  const limited = limitTokens(content, maxTokensOf(host, body, 'chat'))
  content = limited.text
  const toolCalls = limited.cut ? [] : turn.toolCalls
  const calls = toolCalls.map((c, index) => ({
    index,
    id: c.id ?? toolCallId(host),
    name: c.name,
    arguments: argumentsString(c.arguments, mlx),
  }))
  const contentTokens = tokenize(content)
  const reasoningTokens = tokenize(reasoning)
  const n =
    contentTokens.length +
    reasoningTokens.length +
    calls.reduce((k, c) => k + tokenize(c.arguments).length + 2, 0)
  const finish = limited.cut ? 'length' : calls.length > 0 ? 'tool_calls' : 'stop'

  const loadMs = host.admit(model)
  const { perTokenMs, ttftMs, reportedTps } = openAIPacing(host)
  const P = promptTokens
  if (host.flavor === 'vllm') {
    return vllmChat({
      model,
      promptTokens: P,
      completionTokens: n,
      content,
      reasoning,
      contentTokens,
      reasoningTokens,
      calls,
      finish,
      streaming,
      body,
      fault,
      startMs: loadMs + ttftMs,
      perTokenMs,
      invalidJson: openAIInvalidJson,
    })
  }
  const id = mlx ? `chatcmpl-${randomUUID()}` : `chatcmpl-${randomUUID().replaceAll('-', '')}`
  const created = Math.floor(Date.now() / 1000)
  const usage = openAIUsage(mlx, P, n)
  const timings = llamaTimings(P, n, ttftMs, reportedTps)
  const object = streaming ? 'chat.completion.chunk' : 'chat.completion'
  const envelope = (choices: unknown[], obj = object) =>
    mlx
      ? { id, system_fingerprint: MLX_FINGERPRINT, object: obj, model, created, choices }
      : { choices, created, model, system_fingerprint: LLAMACPP_FINGERPRINT, object: obj, id }

  const wholeCalls = calls.map((c) =>
    mlx
      ? { function: { name: c.name, arguments: c.arguments }, type: 'function', id: c.id }
      : { type: 'function', function: { name: c.name, arguments: c.arguments }, id: c.id },
  )
  const message: Record<string, unknown> = mlx
    ? { role: 'assistant', content, reasoning, tool_calls: wholeCalls }
    : {
        role: 'assistant',
        content: content === '' && calls.length > 0 ? null : content,
        ...(reasoning !== '' ? { reasoning_content: reasoning } : {}),
        ...(calls.length > 0 ? { tool_calls: wholeCalls } : {}),
      }
  const wholeChoice = mlx
    ? { index: 0, finish_reason: finish, message }
    : { finish_reason: finish, index: 0, message }

  if (fault?.type === 'invalid-json') return openAIInvalidJson(streaming, envelope([wholeChoice]))
  if (!streaming) {
    if (fault?.type === 'error-mid-stream') return openAIGenerationFailed(host, fault)
    const value = mlx ? { ...envelope([wholeChoice]), usage } : { ...envelope([wholeChoice]), usage, timings }
    return { ...jsonReply(200, value), delayMs: loadMs + ttftMs + perTokenMs * n }
  }

  const frames: Frame[] = mlx ? mlxKeepalives(P, ttftMs) : []
  let first = true
  const push = (delta: Record<string, unknown>, role: Frame['role'] = 'content') => {
    const choice = mlx ? { index: 0, finish_reason: null, delta } : { finish_reason: null, index: 0, delta }
    frames.push({ data: sseData(envelope([choice])), delayMs: first ? 0 : perTokenMs, role })
    first = false
  }
  const mlxDelta = (c: string, r: string, tc: unknown[] = []) => ({
    role: 'assistant',
    content: c,
    reasoning: r,
    tool_calls: tc,
  })
  if (!mlx) push({ role: 'assistant', content: null }, 'meta')
  for (const t of reasoningTokens) push(mlx ? mlxDelta('', t) : { reasoning_content: t })
  for (const t of contentTokens) push(mlx ? mlxDelta(t, '') : { content: t })
  if (mlx) {
    // mlx_lm.server parses each call once its end tag arrives and sends it whole.
    if (calls.length > 0) {
      push(
        mlxDelta(
          '',
          '',
          calls.map((c) => ({
            function: { name: c.name, arguments: c.arguments },
            type: 'function',
            id: c.id,
            index: c.index,
          })),
        ),
      )
    }
  } else {
    for (const c of calls) {
      const head: Record<string, unknown> = { index: c.index }
      // llama-server leaves out id and type when the id is empty.
      if (c.id !== '') Object.assign(head, { id: c.id, type: 'function' })
      push({ tool_calls: [{ ...head, function: { name: c.name, arguments: '' } }] })
      for (const p of pieces(c.arguments, 6))
        push({ tool_calls: [{ index: c.index, function: { arguments: p } }] })
    }
  }
  const lastChoice = mlx
    ? { index: 0, finish_reason: finish, delta: mlxDelta('', '') }
    : { finish_reason: finish, index: 0, delta: {} }
  frames.push({
    data: sseData(mlx ? envelope([lastChoice]) : { ...envelope([lastChoice]), usage, timings }),
    delayMs: first ? 0 : perTokenMs,
    role: 'final',
  })
  const usageChunk = () => ({ ...envelope([], 'chat.completion'), usage })
  return openAIStreamEnd(host, body, frames, usageChunk, { loadMs, ttftMs }, fault)
}

/** `POST /v1/embeddings` (llama-server; mlx_lm.server has no such route). */
export function openAIEmbeddings(
  host: OpenAIChatHost,
  req: IncomingRequest,
  fault: FaultSpec | null,
): Action {
  if (host.flavor === 'mlx') return bodyReply(404, 'application/json', 'Not Found')
  // vLLM serving a generation model (older builds answer the same text in the flat error shape).
  if (host.flavor === 'vllm' && host.options.embeddings === false) {
    return host.errorReply(400, 'The model does not support Embeddings API')
  }
  if (host.options.embeddings === false) {
    return jsonReply(501, {
      error: {
        code: 501,
        message: 'This server does not support embeddings. Start it with `--embeddings`',
        type: 'not_supported_error',
      },
    })
  }
  const read = readOpenAIBody(host, req)
  if ('answer' in read) return read.answer
  const body = read.body
  const input = body.input ?? body.content
  let texts: string[]
  if (typeof input === 'string') texts = [input]
  else if (Array.isArray(input) && input.length > 0 && input.every((i) => typeof i === 'string'))
    texts = input
  else return host.errorReply(400, '"input" must be a string or an array of strings')
  const requested = typeof body.model === 'string' ? body.model : undefined
  const { known, model } = host.resolveModel(requested)
  if (!known || fault?.type === '404-model') return modelNotFound(host, model, fault)
  const base64 = body.encoding_format === 'base64'
  const data = texts.map((t, index) => {
    const v = normalize(embeddingFor(host.options, t, model))
    const embedding = base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v
    return { embedding, index, object: 'embedding' }
  })
  const tokens = texts.reduce((k, t) => k + countTokens(messageText(t)), 0)
  const value =
    host.flavor === 'vllm'
      ? vllmEmbeddings(
          model,
          data.map((d) => d.embedding),
          tokens,
        )
      : jsonReply(200, {
          model,
          object: 'list',
          usage: { prompt_tokens: tokens, total_tokens: tokens },
          data,
        })
  const loadMs = host.admit(model)
  if (fault?.type === 'invalid-json') return truncatedJson(value)
  if (fault?.type === 'error-mid-stream') return host.errorReply(500, fault.message ?? 'embedding failed')
  return { ...value, delayMs: loadMs + (host.options.timeToFirstTokenMs ?? 0) }
}
