/**
 * Protocol logic of the Ollama stand-in (`POST /api/generate`, `GET /`, `/api/version`, `/api/tags`,
 * `/api/ps`), faithful to shared/notes/protocols.md §1 and §5.
 * @module
 */
import { createHash } from 'node:crypto'
import type { FaultSpec, GenerationOptions, RecordingOptions } from '../types.js'
import type { ConversationOptions } from './conversation.js'
import { ollamaMetrics } from './metrics.js'
import {
  MID_STREAM_MESSAGE,
  type OllamaChatHost,
  ollamaChat,
  ollamaEmbed,
  ollamaEmbeddings,
  ollamaInvalidJson,
  ollamaStream,
} from './ollama-chat.js'
import { type Action, bodyReply, type Frame, type IncomingRequest, jsonReply, type Reply } from './reply.js'
import { type ErrorShape, ServiceCore } from './service.js'
import { fakeTokenIds, generate, tokenize } from './text.js'
import { ndjsonLine } from './wire.js'

/** Options of the Ollama stand-in. */
export interface OllamaOptions extends GenerationOptions, ConversationOptions, RecordingOptions {
  /**
   * Model names the server has, with tags (`llama3.2:latest`; a request for `llama3.2` matches
   * `llama3.2:latest`). Others get 404 `{"error":"model 'x' not found"}`. Default: any model is accepted.
   */
  models?: string[]
  /** `GET /api/version`. Default `0.12.6`. */
  version?: string
  /** Whether the final `done:true` line carries the last text piece, as the real server does. Default true. */
  finalChunkText?: boolean
  /**
   * `/api/chat` tool call ids. `none` (default): no `id`, as older servers (and the strictest case for a
   * client, which must make one up). `generated`: `call_` plus 8 random lower-case letters or digits, as
   * current servers add (server/routes.go `toolCallId`). A scripted `id` is always sent.
   */
  toolCallIds?: 'none' | 'generated'
  /**
   * Models that can call tools. A `/api/chat` request with `tools` for any other model gets 400
   * `registry.ollama.ai/library/<model>:<tag> does not support tools`, as a real server answers for a
   * model without the capability. Default true: every model.
   */
  toolModels?: boolean | string[]
  /**
   * Models loaded at start (listed by `GET /api/ps`, no `loadMs` on their first request), kept loaded
   * as with `keep_alive: -1` until a request says otherwise. Others load on first use: they pay
   * `loadMs` and appear in `/api/ps` once that load is over, as on the real server. Default none.
   */
  loaded?: string[]
}

/** Ollama's exact queue-full text (two spaces after the period). */
export const OLLAMA_BUSY_MESSAGE = 'server busy, please try again.  maximum pending requests exceeded'
const JSON_UTF8 = 'application/json; charset=utf-8'
const NDJSON = 'application/x-ndjson'
const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000
const DEFAULT_TAGS = ['llama3.2:latest']
/** The routes that run a model: faults apply to them by default. */
const MODEL_ROUTES = new Set(['/api/generate', '/api/chat', '/api/embed', '/api/embeddings'])

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** Go `time.ParseDuration`-ish, or seconds as a number. Returns ms, or null when invalid. */
export function parseKeepAlive(value: unknown): number | null {
  if (typeof value === 'number') return value * 1000
  if (typeof value !== 'string') return null
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value) * 1000
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(value)
  if (m === null) return null
  let ms = 0
  for (const part of (m[2] ?? '').matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(part[1]) * (UNITS[part[2] ?? 's'] ?? 1000)
  }
  return m[1] === '-' ? -ms : ms
}

function withTag(name: string): string {
  return name.includes(':') ? name : `${name}:latest`
}

function digest(name: string): string {
  return createHash('sha256').update(name).digest('hex')
}

const DETAILS = {
  parent_model: '',
  format: 'gguf',
  family: 'llama',
  families: ['llama'],
  parameter_size: '3.2B',
  quantization_level: 'Q4_K_M',
}
const MODEL_SIZE = 2_019_393_189

export class OllamaCore extends ServiceCore implements OllamaChatHost {
  protected readonly errors: ErrorShape = {
    error: (status, message) => jsonReply(status, { error: message }, { 'content-type': JSON_UTF8 }),
    busyMessage: OLLAMA_BUSY_MESSAGE,
    rateLimitMessage: 'rate limit exceeded',
    badRequestMessage: 'invalid request',
  }
  /** Loaded models (tagged name -> keep-alive expiry, epoch ms; null = forever). */
  readonly loaded = new Map<string, number | null>()
  /** Tagged name -> epoch ms when its cold load is over (until then it is not in `/api/ps`). */
  readonly #loadingUntil = new Map<string, number>()
  readonly #seen = new Set<string>()

  constructor(readonly options: OllamaOptions = {}) {
    super(options)
    for (const name of options.loaded ?? []) this.loaded.set(withTag(name), null)
  }

  /** Loads `model` now (no `loadMs` on its next request), as `ollama run` would; kept loaded until told otherwise. */
  load(model: string): void {
    this.loaded.set(withTag(model), null)
    this.#loadingUntil.delete(withTag(model))
  }

  /** Whether a request is a generation (the route the concurrency limit applies to). */
  isGeneration(req: IncomingRequest): boolean {
    return this.isPrimary(req)
  }

  protected isPrimary(req: IncomingRequest): boolean {
    return req.method === 'POST' && MODEL_ROUTES.has(req.path)
  }

  protected contentTypeFor(req: IncomingRequest): { contentType: string; streaming: boolean } {
    const streaming =
      req.method === 'POST' &&
      (req.path === '/api/generate' || req.path === '/api/chat') &&
      isStreaming(req.rawBody)
    return { contentType: streaming ? NDJSON : JSON_UTF8, streaming }
  }

  readonly parseKeepAlive = parseKeepAlive

  /** Whether the server has the model (for the conversation routes in ollama-chat.ts). */
  hasModel(model: string): boolean {
    return this.#knows(model)
  }

  /** Marks the model loaded for `keepAliveMs` (0 unloads) and returns the cold-load delay it pays. */
  admit(model: string, keepAliveMs: number): number {
    const tagged = withTag(model)
    this.#seen.add(tagged)
    // A request that arrives while its model is loading waits for the rest of that load.
    const now = Date.now()
    const loadingUntil = this.#loadingUntil.get(tagged)
    const cold = !this.loaded.has(tagged)
    const loadMs = cold
      ? (this.options.loadMs ?? 0)
      : loadingUntil !== undefined && loadingUntil > now
        ? loadingUntil - now
        : 0
    if (cold && loadMs > 0) this.#loadingUntil.set(tagged, now + loadMs)
    if (keepAliveMs === 0) this.loaded.delete(tagged)
    else this.loaded.set(tagged, keepAliveMs < 0 ? null : now + keepAliveMs)
    return loadMs
  }

  #knows(model: string): boolean {
    const list = this.options.models
    if (list === undefined) return model.length > 0
    return list.includes(model) || list.includes(withTag(model))
  }

  #tags(): string[] {
    return this.options.models ?? [...new Set([...DEFAULT_TAGS, ...this.#seen])]
  }

  protected route(req: IncomingRequest, fault: FaultSpec | null): Action {
    const { method, path } = req
    const get = method === 'GET' || method === 'HEAD'
    switch (path) {
      case '/':
        return get ? bodyReply(200, 'text/plain; charset=utf-8', 'Ollama is running') : notAllowed()
      case '/api/version':
        return get ? this.#json({ version: this.options.version ?? '0.12.6' }) : notAllowed()
      case '/api/tags':
        return get ? this.#json({ models: this.#tags().map((n) => this.#tagEntry(n)) }) : notAllowed()
      case '/api/ps':
        return method === 'GET' ? this.#json({ models: this.#ps() }) : notAllowed()
      case '/api/generate':
        return method === 'POST' ? this.#generate(req, fault) : notAllowed()
      case '/api/chat':
        return method === 'POST' ? ollamaChat(this, req.rawBody, fault) : notAllowed()
      case '/api/embed':
        return method === 'POST' ? ollamaEmbed(this, req.rawBody, fault) : notAllowed()
      case '/api/embeddings':
        return method === 'POST' ? ollamaEmbeddings(this, req.rawBody, fault) : notAllowed()
      default:
        return bodyReply(404, 'text/plain', '404 page not found')
    }
  }

  #json(value: unknown, status = 200): Reply {
    return jsonReply(status, value, { 'content-type': JSON_UTF8 })
  }

  #error(status: number, message: string): Reply {
    return this.errors.error(status, message)
  }

  #tagEntry(name: string): Record<string, unknown> {
    return {
      name,
      model: name,
      modified_at: new Date(0).toISOString(),
      size: MODEL_SIZE,
      digest: digest(name),
      details: DETAILS,
    }
  }

  #ps(): Record<string, unknown>[] {
    const now = Date.now()
    const out: Record<string, unknown>[] = []
    for (const [name, expires] of this.loaded) {
      if (expires !== null && expires <= now) {
        this.loaded.delete(name)
        continue
      }
      const loadingUntil = this.#loadingUntil.get(name)
      if (loadingUntil !== undefined) {
        if (loadingUntil > now) continue
        this.#loadingUntil.delete(name)
      }
      out.push({
        ...this.#tagEntry(name),
        expires_at: new Date(expires ?? now + 10 * 365 * 86_400_000).toISOString(),
        size_vram: MODEL_SIZE,
        context_length: 4096,
      })
    }
    // PsHandler lists the longest time left first (a stable sort on expires_at).
    return out.sort((a, b) => Date.parse(String(b.expires_at)) - Date.parse(String(a.expires_at)))
  }

  /** Unloads every model, so the next request pays `loadMs` again. */
  unloadAll(): void {
    this.loaded.clear()
    this.#loadingUntil.clear()
  }

  #generate(req: IncomingRequest, fault: FaultSpec | null): Action {
    if (req.rawBody.trim().length === 0) return this.#error(400, 'missing request body')
    let parsed: unknown
    try {
      parsed = JSON.parse(req.rawBody)
    } catch {
      const c = req.rawBody.trim()[0] ?? ''
      return this.#error(400, `invalid character '${c}' looking for beginning of value`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      const kind = Array.isArray(parsed) ? 'array' : parsed === null ? 'null' : typeof parsed
      return this.#error(400, `json: cannot unmarshal ${kind} into Go value of type api.GenerateRequest`)
    }
    const body = parsed as Record<string, unknown>
    if (body.stream !== undefined && typeof body.stream !== 'boolean') {
      return this.#error(
        400,
        `json: cannot unmarshal ${typeof body.stream} into Go struct field GenerateRequest.stream of type bool`,
      )
    }
    const model = typeof body.model === 'string' ? body.model : ''
    if (!this.#knows(model) || fault?.type === '404-model') {
      return this.#error(404, fault?.message ?? `model '${model}' not found`)
    }
    if (
      body.raw === true &&
      (body.system !== undefined || body.template !== undefined || body.context !== undefined)
    ) {
      return this.#error(400, 'raw mode does not support template, system, or context')
    }
    let keepAliveMs = DEFAULT_KEEP_ALIVE_MS
    if (body.keep_alive !== undefined) {
      const k = parseKeepAlive(body.keep_alive)
      if (k === null) {
        return this.#error(
          400,
          typeof body.keep_alive === 'string'
            ? `time: invalid duration "${body.keep_alive}"`
            : 'Unsupported type',
        )
      }
      keepAliveMs = k
    }
    const streaming = body.stream !== false
    const loadMs = this.admit(model, keepAliveMs)

    const t0 = Date.now()
    const createdAt = (afterMs = 0) => new Date(t0 + afterMs).toISOString()
    const prompt = typeof body.prompt === 'string' ? body.prompt : ''
    if (prompt.length === 0) {
      const reason = keepAliveMs === 0 ? 'unload' : 'load'
      const r = this.#json({ model, created_at: createdAt(), response: '', done: true, done_reason: reason })
      return { ...r, delayMs: loadMs }
    }

    const opts = (typeof body.options === 'object' && body.options !== null ? body.options : {}) as Record<
      string,
      unknown
    >
    const numPredict = typeof opts.num_predict === 'number' ? opts.num_predict : -1
    const stop = Array.isArray(opts.stop) ? opts.stop.filter((s): s is string => typeof s === 'string') : []
    const gen = generate({
      prompt,
      ...(typeof body.system === 'string' ? { system: body.system } : {}),
      maxTokens: numPredict,
      stop,
      respond: this.options.respond,
      context: { model, server: 'ollama', body },
    })

    const tps = this.options.tokensPerSecond ?? 0
    const perTokenMs = tps > 0 ? 1000 / tps : 0
    const ttftMs = this.options.timeToFirstTokenMs ?? 0
    const reportedTps = this.options.reportedTokensPerSecond ?? (tps > 0 ? tps : 100)
    const evalCount = gen.tokens.length
    const metrics = ollamaMetrics({
      promptTokens: gen.promptTokens,
      evalCount,
      loadMs,
      ...(ttftMs > 0 ? { promptMs: ttftMs } : {}),
      tokensPerSecond: reportedTps,
    })
    const context = body.raw === true ? undefined : fakeTokenIds([...tokenize(prompt), ...gen.tokens])
    const final = (response: string, atMs: number) => ({
      model,
      created_at: createdAt(atMs),
      response,
      done: true,
      done_reason: gen.doneReason,
      ...(context !== undefined ? { context } : {}),
      ...metrics,
    })

    if (fault?.type === 'invalid-json') return ollamaInvalidJson(streaming, final(gen.text, 0))
    if (!streaming) {
      if (fault?.type === 'error-mid-stream') return this.#error(500, fault.message ?? MID_STREAM_MESSAGE)
      const delayMs = loadMs + ttftMs + perTokenMs * evalCount
      return { ...this.#json(final(gen.text, delayMs)), delayMs }
    }

    const carryLast = (this.options.finalChunkText ?? true) && evalCount > 0
    const pieces = carryLast ? gen.tokens.slice(0, -1) : gen.tokens
    const startMs = loadMs + ttftMs
    const frames: Frame[] = pieces.map((t, i) => ({
      data: ndjsonLine({ model, created_at: createdAt(startMs + i * perTokenMs), response: t, done: false }),
      delayMs: i === 0 ? 0 : perTokenMs,
      role: 'content',
    }))
    frames.push({
      data: ndjsonLine(
        final(carryLast ? (gen.tokens[evalCount - 1] ?? '') : '', startMs + pieces.length * perTokenMs),
      ),
      delayMs: pieces.length > 0 ? perTokenMs : 0,
      role: 'final',
    })
    return ollamaStream(frames, startMs, fault)
  }
}

function notAllowed(): Reply {
  return bodyReply(405, 'text/plain', '405 method not allowed')
}

function isStreaming(raw: string): boolean {
  try {
    const b = JSON.parse(raw) as { stream?: unknown }
    return b.stream !== false
  } catch {
    return true
  }
}
