/**
 * Ollama's conversation routes for the stand-in: `POST /api/chat` (NDJSON stream or one JSON answer,
 * `message.content` / `message.thinking` / `message.tool_calls` with object arguments and no id,
 * `format`, `think`, `keep_alive`), `POST /api/embed` and the legacy `POST /api/embeddings`, which
 * Ollama still serves (superseded, not removed).
 * @module
 */
import { randomBytes } from 'node:crypto'
import type { FaultSpec, GenerationOptions } from '../types.js'
import {
  applyStop,
  type ConversationOptions,
  canThink,
  embeddingFor,
  limitTokens,
  normalize,
  promptText,
  type ReceivedMessage,
  type ResolvedTurn,
  resolveTurn,
  structuredContent,
} from './conversation.js'
import { ollamaMetrics } from './metrics.js'
import { type Action, bodyReply, type Frame, jsonReply, type Reply, streamReply } from './reply.js'
import { countTokens, tokenize } from './text.js'
import { ndjsonLine } from './wire.js'

const JSON_UTF8 = 'application/json; charset=utf-8'
const NDJSON = 'application/x-ndjson'
export const MID_STREAM_MESSAGE = 'an error was encountered while running the model'
const THINK_LEVELS = new Set(['low', 'medium', 'high', 'max'])

/** What the conversation routes need from the Ollama stand-in. */
export interface OllamaChatHost {
  readonly options: ConversationOptions &
    GenerationOptions & {
      finalChunkText?: boolean
      models?: string[] | undefined
      toolCallIds?: 'none' | 'generated'
      toolModels?: boolean | string[]
    }
  /** Whether the server has the model (by `models`, tags resolved). */
  hasModel(model: string): boolean
  /** Marks the model loaded for `keepAliveMs` and returns the cold-load delay this request pays. */
  admit(model: string, keepAliveMs: number): number
  /** Ollama's keep_alive parser: ms, or null when invalid. */
  parseKeepAlive(value: unknown): number | null
}

function error(status: number, message: string): Reply {
  return jsonReply(status, { error: message }, { 'content-type': JSON_UTF8 })
}

function json(value: unknown): Reply {
  return jsonReply(200, value, { 'content-type': JSON_UTF8 })
}

/** Reads a JSON object body the way gin's ShouldBindJSON fails on it, or an error reply. */
export function readOllamaBody(raw: string, goType: string): Record<string, unknown> | Reply {
  if (raw.trim().length === 0) return error(400, 'missing request body')
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return error(400, `invalid character '${raw.trim()[0] ?? ''}' looking for beginning of value`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    const kind = Array.isArray(parsed) ? 'array' : parsed === null ? 'null' : typeof parsed
    return error(400, `json: cannot unmarshal ${kind} into Go value of type api.${goType}`)
  }
  const body = parsed as Record<string, unknown>
  if (body.stream !== undefined && typeof body.stream !== 'boolean') {
    return error(
      400,
      `json: cannot unmarshal ${typeof body.stream} into Go struct field ${goType}.stream of type bool`,
    )
  }
  return body
}

/** `keep_alive` in ms (default 5 minutes), or Ollama's 400. */
export function readKeepAlive(host: OllamaChatHost, body: Record<string, unknown>): number | Reply {
  if (body.keep_alive === undefined) return 5 * 60_000
  const k = host.parseKeepAlive(body.keep_alive)
  if (k !== null) return k
  return error(
    400,
    typeof body.keep_alive === 'string' ? `time: invalid duration "${body.keep_alive}"` : 'Unsupported type',
  )
}

/**
 * The `invalid-json` fault's answer: the first half of the final line, then a line that is not JSON
 * when streamed; the half line as the body otherwise.
 */
export function ollamaInvalidJson(streaming: boolean, value: unknown): Reply {
  const line = JSON.stringify(value)
  const cut = `${line.slice(0, Math.max(1, Math.floor(line.length / 2)))}\n`
  return streaming
    ? streamReply(200, { 'content-type': NDJSON }, [
        { data: cut, delayMs: 0, role: 'content' },
        { data: 'not json\n', delayMs: 0, role: 'final' },
      ])
    : bodyReply(200, JSON_UTF8, cut.trimEnd())
}

/** An NDJSON stream whose `error-mid-stream` replacement is Ollama's `{"error":…}` line. */
export function ollamaStream(frames: Frame[], delayMs: number, fault: FaultSpec | null): Reply {
  const errorLine: Frame = {
    data: ndjsonLine({ error: fault?.message ?? MID_STREAM_MESSAGE }),
    delayMs: 0,
    role: 'final',
  }
  return streamReply(200, { 'content-type': NDJSON }, frames, { delayMs, midStreamError: [errorLine] })
}

function isReply(v: unknown): v is Reply {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'reply'
}

function goKind(v: unknown): string {
  if (Array.isArray(v)) return 'array'
  if (v === null) return 'null'
  return typeof v === 'object' ? 'object' : typeof v
}

/** Current Ollama's made-up call ids: `call_` and 8 lower-case letters or digits. */
function ollamaToolId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  return `call_${[...randomBytes(8)].map((b) => alphabet[b % alphabet.length]).join('')}`
}

/**
 * Ollama's tool-call shape: `{function:{index, name, arguments}}` with object arguments; with
 * `generated` ids (current servers) an `id` first, else none (older servers).
 */
function ollamaToolCalls(
  turn: ResolvedTurn,
  ids: 'none' | 'generated',
): { calls: Record<string, unknown>[]; unparsed: string } {
  const calls: Record<string, unknown>[] = []
  let unparsed = ''
  for (const call of turn.toolCalls) {
    let args: unknown = call.arguments
    if (typeof args === 'string') {
      try {
        args = JSON.parse(args)
      } catch {
        // Ollama's tool parser gives up on text that is not JSON: it stays in the content.
        unparsed += args
        continue
      }
    }
    const fn = { function: { index: calls.length, name: call.name, arguments: args } }
    calls.push(ids === 'generated' || call.id !== undefined ? { id: call.id ?? ollamaToolId(), ...fn } : fn)
  }
  return { calls, unparsed }
}

/** `POST /api/chat`. */
export function ollamaChat(host: OllamaChatHost, rawBody: string, fault: FaultSpec | null): Action {
  const body = readOllamaBody(rawBody, 'ChatRequest')
  if (isReply(body)) return body
  if (body.messages !== undefined && body.messages !== null && !Array.isArray(body.messages)) {
    return error(
      400,
      `json: cannot unmarshal ${goKind(body.messages)} into Go struct field ChatRequest.messages of type []api.Message`,
    )
  }
  const messages = (Array.isArray(body.messages) ? body.messages : []) as ReceivedMessage[]
  for (const m of messages) {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      return error(
        400,
        `json: cannot unmarshal ${goKind(m)} into Go struct field ChatRequest.messages of type api.Message`,
      )
    }
    if (m.content !== undefined && typeof m.content !== 'string') {
      return error(
        400,
        `json: cannot unmarshal ${goKind(m.content)} into Go struct field Message.messages.content of type string`,
      )
    }
    if (m.images !== undefined) {
      const bad = Array.isArray(m.images) ? m.images.find((i) => !isBase64(i)) : m.images
      if (bad !== undefined) return error(400, 'illegal base64 data at input byte 0')
    }
  }
  // The body is decoded whole (the checks above) before the model is looked up; a missing name is a
  // 400 on /api/chat (ChatHandler), where /api/generate answers 404 "model '' not found".
  const model = typeof body.model === 'string' ? body.model : ''
  if (model === '') return error(400, 'model is required')
  if (!host.hasModel(model) || fault?.type === '404-model') {
    return error(404, fault?.message ?? `model '${model}' not found`)
  }
  const think = body.think
  if (
    think !== undefined &&
    typeof think !== 'boolean' &&
    !(typeof think === 'string' && THINK_LEVELS.has(think))
  ) {
    return error(
      400,
      `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", true, or false)`,
    )
  }
  const thinks = canThink(host.options, model)
  if (think !== undefined && think !== false && !thinks) {
    return error(400, `"${model}" does not support thinking`)
  }
  if (Array.isArray(body.tools) && body.tools.length > 0 && !canUseTools(host, model)) {
    // The scheduler's capability check names the model in full.
    return error(400, `${fullName(model)} does not support tools`)
  }
  const format = body.format
  if (
    format !== undefined &&
    format !== null &&
    format !== '' &&
    format !== 'json' &&
    (typeof format !== 'object' || Array.isArray(format))
  ) {
    return error(400, `invalid format: ${JSON.stringify(format)}; expected "json" or a valid JSON Schema`)
  }
  const keepAliveMs = readKeepAlive(host, body)
  if (isReply(keepAliveMs)) return keepAliveMs
  const loadMs = host.admit(model, keepAliveMs)
  const streaming = body.stream !== false
  const t0 = Date.now()
  const createdAt = (afterMs = 0) => new Date(t0 + afterMs).toISOString()

  if (messages.length === 0) {
    const reason = keepAliveMs === 0 ? 'unload' : 'load'
    const r = json({
      model,
      created_at: createdAt(),
      message: { role: 'assistant', content: '' },
      done_reason: reason,
      done: true,
    })
    return { ...r, delayMs: loadMs }
  }

  // Effort levels are for harmony (gpt-oss) models only; checked after the model is loaded.
  if (typeof think === 'string' && !model.includes('gpt-oss')) {
    return error(400, `think value ${JSON.stringify(think)} is not supported for this model`)
  }
  // An absent `think` on a thinking model means on, as the real server does.
  const thinkingOn = thinks && think !== false
  const turn = resolveTurn(
    host,
    { model, server: 'ollama', body, messages, tools: Array.isArray(body.tools) ? body.tools : [] },
    thinkingOn,
  )
  const opts = (typeof body.options === 'object' && body.options !== null ? body.options : {}) as Record<
    string,
    unknown
  >
  const { calls, unparsed } = ollamaToolCalls(turn, host.options.toolCallIds ?? 'none')
  let content = turn.content + unparsed
  if (format === 'json' || (typeof format === 'object' && format !== null)) {
    content = structuredContent(content, format === 'json' ? 'json' : format)
  }
  const stopped = Array.isArray(opts.stop) ? applyStop(content, opts.stop) : content
  const limited = limitTokens(stopped, typeof opts.num_predict === 'number' ? opts.num_predict : undefined)
  content = limited.text
  const reasoning = thinkingOn ? turn.reasoning : ''
  const contentTokens = tokenize(content)
  const reasoningTokens = tokenize(reasoning)
  const evalCount = contentTokens.length + reasoningTokens.length + calls.length * 8
  const promptTokens = countTokens(promptText(messages))

  const tps = host.options.tokensPerSecond ?? 0
  const perTokenMs = tps > 0 ? 1000 / tps : 0
  const ttftMs = host.options.timeToFirstTokenMs ?? 0
  const metrics = ollamaMetrics({
    promptTokens,
    evalCount,
    loadMs,
    ...(ttftMs > 0 ? { promptMs: ttftMs } : {}),
    tokensPerSecond: host.options.reportedTokensPerSecond ?? (tps > 0 ? tps : 100),
  })
  const doneReason = limited.cut ? 'length' : 'stop'
  const final = (message: Record<string, unknown>, atMs: number) => ({
    model,
    created_at: createdAt(atMs),
    message,
    done_reason: doneReason,
    done: true,
    ...metrics,
  })
  const whole: Record<string, unknown> = { role: 'assistant', content }
  if (reasoning !== '') whole.thinking = reasoning
  if (calls.length > 0) whole.tool_calls = calls

  if (fault?.type === 'invalid-json') return ollamaInvalidJson(streaming, final(whole, 0))
  if (!streaming) {
    if (fault?.type === 'error-mid-stream') return error(500, fault.message ?? MID_STREAM_MESSAGE)
    const delayMs = loadMs + ttftMs + perTokenMs * evalCount
    return { ...json(final(whole, delayMs)), delayMs }
  }

  const startMs = loadMs + ttftMs
  const frames: Frame[] = []
  let at = 0
  const push = (message: Record<string, unknown>) => {
    frames.push({
      data: ndjsonLine({ model, created_at: createdAt(startMs + at * perTokenMs), message, done: false }),
      delayMs: frames.length === 0 ? 0 : perTokenMs,
      role: 'content',
    })
    at++
  }
  for (const t of reasoningTokens) push({ role: 'assistant', content: '', thinking: t })
  const carryLast = (host.options.finalChunkText ?? true) && contentTokens.length > 0 && calls.length === 0
  const pieces = carryLast ? contentTokens.slice(0, -1) : contentTokens
  for (const t of pieces) push({ role: 'assistant', content: t })
  // Ollama's tool parser emits every call whole, in one chunk, once it has seen the end of the calls.
  if (calls.length > 0) push({ role: 'assistant', content: '', tool_calls: calls })
  const last = carryLast ? (contentTokens[contentTokens.length - 1] ?? '') : ''
  frames.push({
    data: ndjsonLine(final({ role: 'assistant', content: last }, startMs + at * perTokenMs)),
    delayMs: frames.length > 0 ? perTokenMs : 0,
    role: 'final',
  })
  return ollamaStream(frames, startMs, fault)
}

function canUseTools(host: OllamaChatHost, model: string): boolean {
  const t = host.options.toolModels
  if (t === undefined || t === true) return true
  if (t === false) return false
  return t.includes(model) || t.includes(fullName(model).split('/').pop() ?? '')
}

/** `llama3.2` -> `registry.ollama.ai/library/llama3.2:latest`, as Ollama's model names expand. */
function fullName(model: string): string {
  const tagged = model.includes(':') ? model : `${model}:latest`
  const slashes = tagged.split('/').length - 1
  return slashes === 0
    ? `registry.ollama.ai/library/${tagged}`
    : slashes === 1
      ? `registry.ollama.ai/${tagged}`
      : tagged
}

function isBase64(v: unknown): boolean {
  return typeof v === 'string' && v.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(v)
}

/** `POST /api/embed`: `input` a string or an array of strings, unit-length `embeddings` in input order. */
export function ollamaEmbed(host: OllamaChatHost, rawBody: string, fault: FaultSpec | null): Action {
  const body = readOllamaBody(rawBody, 'EmbedRequest')
  if (isReply(body)) return body
  const model = typeof body.model === 'string' ? body.model : ''
  const input = body.input
  let texts: string[]
  if (typeof input === 'string') texts = input.length > 0 ? [input] : []
  else if (Array.isArray(input)) {
    if (input.some((i) => typeof i !== 'string')) return error(400, 'invalid input type')
    texts = input as string[]
  } else if (input === undefined || input === null) texts = []
  else return error(400, 'invalid input type')
  // The input is checked before the model is scheduled (and found missing).
  if (!host.hasModel(model) || fault?.type === '404-model') {
    return error(404, fault?.message ?? `model "${model}" not found, try pulling it first`)
  }
  const keepAliveMs = readKeepAlive(host, body)
  if (isReply(keepAliveMs)) return keepAliveMs
  const loadMs = host.admit(model, keepAliveMs)
  if (texts.length === 0) return { ...json({ model, embeddings: [] }), delayMs: loadMs }
  const dims = typeof body.dimensions === 'number' && body.dimensions > 0 ? body.dimensions : undefined
  const embeddings = texts.map((t) => {
    const v = normalize(embeddingFor(host.options, t, model))
    return dims !== undefined && dims < v.length ? normalize(v.slice(0, dims)) : v
  })
  const promptTokens = texts.reduce((n, t) => n + countTokens(t), 0)
  const m = ollamaMetrics({ promptTokens, evalCount: 0, loadMs })
  const value = {
    model,
    embeddings,
    ...(m.total_duration !== undefined ? { total_duration: m.total_duration } : {}),
    ...(m.load_duration !== undefined ? { load_duration: m.load_duration } : {}),
    prompt_eval_count: promptTokens,
  }
  if (fault?.type === 'invalid-json') return bodyReply(200, JSON_UTF8, JSON.stringify(value).slice(0, 20))
  // An embedding that fails in the runner: Ollama answers 500 with the runner's error.
  if (fault?.type === 'error-mid-stream') return error(500, fault.message ?? MID_STREAM_MESSAGE)
  return { ...json(value), delayMs: loadMs + (host.options.timeToFirstTokenMs ?? 0) }
}

/** Legacy `POST /api/embeddings`: one `prompt`, one `embedding` (not normalised, as Ollama returns it). */
export function ollamaEmbeddings(host: OllamaChatHost, rawBody: string, fault: FaultSpec | null): Action {
  const body = readOllamaBody(rawBody, 'EmbeddingRequest')
  if (isReply(body)) return body
  const model = typeof body.model === 'string' ? body.model : ''
  if (!host.hasModel(model) || fault?.type === '404-model') {
    return error(404, fault?.message ?? `model "${model}" not found, try pulling it first`)
  }
  if (body.prompt !== undefined && typeof body.prompt !== 'string') {
    return error(
      400,
      `json: cannot unmarshal ${goKind(body.prompt)} into Go struct field EmbeddingRequest.prompt of type string`,
    )
  }
  const keepAliveMs = readKeepAlive(host, body)
  if (isReply(keepAliveMs)) return keepAliveMs
  const loadMs = host.admit(model, keepAliveMs)
  const prompt = typeof body.prompt === 'string' ? body.prompt : ''
  if (prompt.length === 0) return { ...json({ embedding: [] }), delayMs: loadMs }
  // The legacy route skips the normalisation /api/embed applies: scale the unit vector up.
  const embedding = normalize(embeddingFor(host.options, prompt, model)).map((x) => x * 7.5)
  const value = { embedding }
  if (fault?.type === 'invalid-json') return bodyReply(200, JSON_UTF8, JSON.stringify(value).slice(0, 20))
  if (fault?.type === 'error-mid-stream') return error(500, fault.message ?? MID_STREAM_MESSAGE)
  return { ...json(value), delayMs: loadMs }
}
