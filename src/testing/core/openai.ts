/**
 * Protocol logic of the OpenAI-compatible stand-in: mlx_lm.server by default (shared/notes/protocols.md
 * §2 and §5), or llama.cpp's llama-server (`flavor: 'llamacpp'`, §4 and §6).
 * @module
 */
import { randomUUID } from 'node:crypto'
import type { FaultSpec, GenerationOptions, RecordingOptions } from '../types.js'
import {
  type Action,
  bodyReply,
  emptyReply,
  type Frame,
  type IncomingRequest,
  jsonReply,
  type Reply,
  streamReply,
} from './reply.js'
import { type ErrorShape, ServiceCore } from './service.js'
import { generate } from './text.js'
import { SSE_DONE, sseComment, sseData, sseField } from './wire.js'

/** Which OpenAI-compatible server to imitate. */
export type OpenAIFlavor = 'mlx' | 'llamacpp'

/** Options of the OpenAI-compatible stand-in. */
export interface OpenAIOptions extends GenerationOptions, RecordingOptions {
  /**
   * `mlx` (default): mlx_lm.server: flat `{"error":"…"}` bodies, `: keepalive` comments, usage only with
   * `stream_options.include_usage`, dropped socket on invalid parameters, 411 without Content-Length.
   * `llamacpp`: llama-server: nested `{"error":{code,message,type}}` bodies, usage and `timings` in the
   * final chunk, an SSE `error:` field for mid-stream errors.
   */
  flavor?: OpenAIFlavor
  /**
   * `model` values that load. Others get the server's 404. `default_model` and an absent `model` always
   * work. Default: any value is accepted (as mlx_lm.server loads any path or repo id).
   */
  models?: string[]
  /** The id listed by `GET /v1/models`. Default `mlx-community/Llama-3.2-3B-Instruct-4bit`. */
  modelId?: string
  /** `max_tokens` when the request has none. Default 512 for mlx, -1 (unlimited) for llama.cpp. */
  defaultMaxTokens?: number
  /**
   * llama.cpp only: the model is still loading for this long after start. Meanwhile llama-server answers
   * `GET /v1/models` as usual and every other route (`/health` included) with 503
   * `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`. Default 0.
   */
  loadingMs?: number
  /**
   * llama.cpp only: the context size in prompt tokens. A longer prompt is rejected as current
   * llama-server builds do: 400 `{"error":{code:400,…,type:"invalid_request_error"}}` without a
   * stream; with one, HTTP 200, then an SSE `error:` field with that error and `data: [DONE]`.
   * Default: no limit (older builds truncate silently).
   */
  contextSize?: number
}

const CONTEXT_EXCEEDED = 'the request exceeds the available context size, try increasing it'

const MLX_FINGERPRINT = '0.28.0-0.29.1-macOS-15.5-arm64-arm-64bit-applegpu_g15s'
const LLAMACPP_FINGERPRINT = 'b6100-stand-in'
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
const DEFAULT_MODEL_ID = 'mlx-community/Llama-3.2-3B-Instruct-4bit'

function errorType(status: number): string {
  if (status === 404) return 'not_found_error'
  if (status === 503) return 'unavailable_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

export class OpenAICore extends ServiceCore {
  readonly flavor: OpenAIFlavor
  protected readonly errors: ErrorShape
  readonly #loaded = new Set<string>()
  /** Epoch ms when llama.cpp's startup load is over. */
  readonly #readyAt: number

  constructor(readonly options: OpenAIOptions = {}) {
    super(options)
    this.flavor = options.flavor ?? 'mlx'
    this.#readyAt = Date.now() + (options.loadingMs ?? 0)
    const nested = this.flavor === 'llamacpp'
    this.errors = {
      error: (status, message) =>
        jsonReply(
          status,
          nested ? { error: { code: status, message, type: errorType(status) } } : { error: message },
        ),
      busyMessage: 'Loading model',
      rateLimitMessage: 'Rate limit exceeded',
      badRequestMessage: nested ? 'Invalid request' : 'Request should be a JSON dictionary',
    }
  }

  protected isPrimary(req: IncomingRequest): boolean {
    return req.method === 'POST' && (req.path === '/v1/completions' || req.path === '/v1/chat/completions')
  }

  protected contentTypeFor(req: IncomingRequest): { contentType: string; streaming: boolean } {
    let streaming = false
    try {
      streaming = (JSON.parse(req.rawBody) as { stream?: unknown }).stream === true
    } catch {}
    return { contentType: streaming ? 'text/event-stream' : 'application/json', streaming }
  }

  /** Unloads every model, so the next request pays `loadMs` again. */
  unloadAll(): void {
    this.#loaded.clear()
  }

  protected route(req: IncomingRequest, fault: FaultSpec | null): Action {
    const { method, path } = req
    if (
      this.flavor === 'llamacpp' &&
      Date.now() < this.#readyAt &&
      method !== 'OPTIONS' &&
      path !== '/v1/models'
    ) {
      return this.errors.error(503, 'Loading model')
    }
    if (method === 'OPTIONS') {
      return emptyReply(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, POST, OPTIONS',
        'access-control-allow-headers': 'Content-Type, Authorization',
      })
    }
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/health' || (this.flavor === 'llamacpp' && path === '/v1/health')) {
        // mlx_lm.server writes json.dumps() output (with the space); llama-server its compact JSON.
        return bodyReply(
          200,
          'application/json',
          this.flavor === 'mlx' ? '{"status": "ok"}' : '{"status":"ok"}',
        )
      }
      if (path === '/v1/models') return this.#models()
      return bodyReply(404, 'application/json', 'Not Found')
    }
    if (method === 'POST' && path === '/v1/completions') return this.#complete(req, fault)
    return bodyReply(404, 'application/json', 'Not Found')
  }

  #models(): Reply {
    const created = Math.floor(Date.now() / 1000)
    const id = this.options.modelId ?? DEFAULT_MODEL_ID
    const entry =
      this.flavor === 'llamacpp'
        ? { id, object: 'model', created, owned_by: 'llamacpp' }
        : { id, object: 'model', created }
    return jsonReply(200, { object: 'list', data: [entry] })
  }

  /** mlx_lm.server raises outside any try on invalid parameters: the socket closes without a response. */
  #invalid(status: number, message: string): Action {
    return this.flavor === 'mlx' ? { kind: 'drop' } : this.errors.error(status, message)
  }

  #complete(req: IncomingRequest, fault: FaultSpec | null): Action {
    const mlx = this.flavor === 'mlx'
    if (mlx && req.checkContentLength === true && req.headers['content-length'] === undefined) {
      return this.errors.error(411, 'Content-Length header is required')
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(req.rawBody)
    } catch (e) {
      return mlx
        ? this.errors.error(400, `Invalid JSON in request body: ${(e as Error).message}`)
        : this.errors.error(500, `Failed to parse input: ${(e as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return this.errors.error(400, 'Request should be a JSON dictionary')
    }
    const body = parsed as Record<string, unknown>
    if (body.prompt === undefined) return this.#invalid(500, '"prompt" must be provided')
    if (typeof body.prompt !== 'string') return this.#invalid(400, '"prompt" must be a string')
    if (body.stream !== undefined && typeof body.stream !== 'boolean') {
      return this.#invalid(400, 'stream must be a boolean')
    }
    const maxField = body.max_completion_tokens ?? body.max_tokens
    if (
      maxField !== undefined &&
      (typeof maxField !== 'number' || !Number.isInteger(maxField) || maxField < -1)
    ) {
      return this.#invalid(400, 'max_tokens must be a non-negative integer')
    }
    if (body.temperature !== undefined && (typeof body.temperature !== 'number' || body.temperature < 0)) {
      return this.#invalid(400, 'temperature must be a non-negative float')
    }
    if (mlx && body.logprobs !== undefined && typeof body.logprobs !== 'boolean') {
      return { kind: 'drop' }
    }
    const requested = typeof body.model === 'string' ? body.model : undefined
    const model = requested ?? (mlx ? 'default_model' : 'gpt-3.5-turbo')
    const list = this.options.models
    const known =
      requested === undefined ||
      requested === 'default_model' ||
      requested === this.options.modelId ||
      list === undefined ||
      list.includes(requested)
    if (!known || fault?.type === '404-model') {
      const msg =
        fault?.message ?? (mlx ? `Repository Not Found for model '${model}'` : `model '${model}' not found`)
      return this.errors.error(404, msg)
    }

    const stop = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop : []
    const maxTokens =
      typeof maxField === 'number' ? maxField : (this.options.defaultMaxTokens ?? (mlx ? 512 : -1))
    const gen = generate({
      prompt: body.prompt,
      maxTokens,
      stop: stop.filter((s): s is string => typeof s === 'string'),
      respond: this.options.respond,
      context: { model, server: 'openai', body },
    })
    const cold = !this.#loaded.has(model)
    this.#loaded.add(model)
    const loadMs = cold ? (this.options.loadMs ?? 0) : 0
    const tps = this.options.tokensPerSecond ?? 0
    const perTokenMs = tps > 0 ? 1000 / tps : 0
    const ttftMs = this.options.timeToFirstTokenMs ?? 0
    const reportedTps = this.options.reportedTokensPerSecond ?? (tps > 0 ? tps : 100)
    const n = gen.tokens.length
    const P = gen.promptTokens
    const limit = this.options.contextSize
    if (!mlx && limit !== undefined && P > limit) {
      if (body.stream !== true) return this.errors.error(400, CONTEXT_EXCEEDED)
      const error = { error: { code: 400, message: CONTEXT_EXCEEDED, type: 'invalid_request_error' } }
      return streamReply(200, SSE_HEADERS, [
        { data: sseField('error', error), delayMs: 0, role: 'final' },
        { data: SSE_DONE, delayMs: 0, role: 'final' },
      ])
    }
    const id = mlx ? `cmpl-${randomUUID()}` : `chatcmpl-${randomUUID().replaceAll('-', '')}`
    const created = Math.floor(Date.now() / 1000)
    const fingerprint = mlx ? MLX_FINGERPRINT : LLAMACPP_FINGERPRINT
    const usage = mlx
      ? {
          prompt_tokens: P,
          completion_tokens: n,
          total_tokens: P + n,
          prompt_tokens_details: { cached_tokens: 0 },
        }
      : { completion_tokens: n, prompt_tokens: P, total_tokens: P + n }
    const promptMs = ttftMs > 0 ? ttftMs : P
    const predictedMs = n > 0 ? (n / reportedTps) * 1000 : 0
    const timings = {
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
    const envelope = (choices: unknown[], object = 'text_completion') =>
      mlx
        ? { id, system_fingerprint: fingerprint, object, model, created, choices }
        : { choices, created, model, system_fingerprint: fingerprint, object, id }
    const choice = (text: string, finish: string | null) =>
      mlx
        ? { index: 0, finish_reason: finish, text }
        : { text, index: 0, logprobs: null, finish_reason: finish }

    const streaming = body.stream === true
    if (fault?.type === 'invalid-json') {
      const text = JSON.stringify(envelope([choice(gen.text, gen.doneReason)]))
      const cut = text.slice(0, Math.max(1, Math.floor(text.length / 2)))
      return streaming
        ? streamReply(200, SSE_HEADERS, [
            { data: `data: ${cut}\n\n`, delayMs: 0, role: 'content' },
            { data: SSE_DONE, delayMs: 0, role: 'final' },
          ])
        : bodyReply(200, 'application/json', cut)
    }
    if (!streaming) {
      if (fault?.type === 'error-mid-stream') {
        return mlx ? { kind: 'drop' } : this.errors.error(500, fault.message ?? 'generation failed')
      }
      const value = mlx
        ? { ...envelope([choice(gen.text, gen.doneReason)]), usage }
        : { ...envelope([choice(gen.text, gen.doneReason)]), usage, timings }
      return { ...jsonReply(200, value), delayMs: loadMs + ttftMs + perTokenMs * n }
    }

    const frames: Frame[] = []
    if (mlx) {
      if (ttftMs > 0)
        frames.push({
          data: sseComment(`keepalive ${Math.floor(P / 2)}/${P}`),
          delayMs: ttftMs / 2,
          role: 'meta',
        })
      frames.push({
        data: sseComment(`keepalive ${P}/${P}`),
        delayMs: ttftMs > 0 ? ttftMs / 2 : 0,
        role: 'meta',
      })
    }
    gen.tokens.forEach((t, i) => {
      frames.push({
        data: sseData(envelope([choice(t, null)])),
        delayMs: i === 0 ? 0 : perTokenMs,
        role: 'content',
      })
    })
    const last = envelope([choice('', gen.doneReason)])
    frames.push({
      data: sseData(mlx ? last : { ...last, usage, timings }),
      delayMs: n > 0 ? perTokenMs : 0,
      role: 'final',
    })
    const so = body.stream_options
    let terminate = true
    if (mlx && typeof so === 'object' && so !== null) {
      const includeUsage = (so as Record<string, unknown>).include_usage
      // mlx_lm.server indexes include_usage directly: without the key the stream dies with a KeyError.
      if (includeUsage === undefined) terminate = false
      else if (includeUsage === true) {
        frames.push({
          data: sseData({ ...envelope([], 'chat.completion'), usage }),
          delayMs: 0,
          role: 'final',
        })
      }
    }
    if (terminate) frames.push({ data: SSE_DONE, delayMs: 0, role: 'final' })
    const midStreamError: Frame[] = mlx
      ? []
      : [
          {
            data: sseField('error', {
              error: { code: 500, message: fault?.message ?? 'generation failed', type: 'server_error' },
            }),
            delayMs: 0,
            role: 'final',
          },
          { data: SSE_DONE, delayMs: 0, role: 'final' },
        ]
    return streamReply(200, SSE_HEADERS, frames, { delayMs: mlx ? loadMs : loadMs + ttftMs, midStreamError })
  }
}
