/**
 * Protocol logic of the OpenAI-compatible stand-in: mlx_lm.server by default (shared/notes/protocols.md
 * §2 and §5), llama.cpp's llama-server (`flavor: 'llamacpp'`, §4 and §6) or vLLM (`flavor: 'vllm'`,
 * core/vllm.ts).
 * @module
 */
import { randomUUID } from 'node:crypto'
import type { FaultSpec, GenerationOptions, RecordingOptions } from '../types.js'
import type { ConversationOptions } from './conversation.js'
import type { HostedOptions } from './hosted.js'
import {
  checkSampling,
  LLAMACPP_FINGERPRINT,
  llamaContextExceeded,
  llamaTimings,
  MLX_FINGERPRINT,
  maxTokensOf,
  mlxKeepalives,
  modelNotFound,
  type OpenAIChatHost,
  openAIChat,
  openAIEmbeddings,
  openAIGenerationFailed,
  openAIInvalidJson,
  openAIPacing,
  openAIStreamEnd,
  openAIUsage,
  readOpenAIBody,
} from './openai-chat.js'
import {
  type Action,
  bodyReply,
  emptyReply,
  type Frame,
  type IncomingRequest,
  jsonReply,
  type Reply,
} from './reply.js'
import { type ErrorShape, ServiceCore } from './service.js'
import { generate } from './text.js'
import { vllmCompletion, vllmError } from './vllm.js'
import { sseData } from './wire.js'

/** Which OpenAI-compatible server to imitate. */
export type OpenAIFlavor = 'mlx' | 'llamacpp' | 'vllm'

/** Options of the OpenAI-compatible stand-in. */
export interface OpenAIOptions
  extends GenerationOptions,
    ConversationOptions,
    RecordingOptions,
    HostedOptions {
  /**
   * `mlx` (default): mlx_lm.server: flat `{"error":"…"}` bodies, `: keepalive` comments, usage only with
   * `stream_options.include_usage`, dropped socket on invalid parameters, 411 without Content-Length.
   * `llamacpp`: llama-server: nested `{"error":{code,message,type}}` bodies, usage and `timings` in the
   * final chunk, an SSE `error:` field for mid-stream errors.
   * `vllm`: vLLM's server: nested `{"error":{message,type,param,code}}` bodies, only the served model
   * name (`modelId`, or one of `models`) is accepted, usage only with `include_usage`, `delta.reasoning`,
   * a `data: {"error":…}` event then `[DONE]` mid-stream, default `max_tokens` 16 on completions.
   * `hosted`: a hosted API (OpenAI, Groq, ...): `apiKey` and `model` required, paths under `prefix`,
   * OpenAI's error bodies, answers in the vLLM shapes (core/hosted.ts).
   */
  flavor?: OpenAIFlavor | 'hosted'
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
  /**
   * llama.cpp only: tool call ids. `empty` (default): what llama-server sends when the model's template
   * makes none: `"id": ""` in a whole answer, no `id`/`type` in the streamed fragments. `generated`:
   * random 32-character ids, as newer builds make up. mlx_lm.server always sends a uuid4.
   */
  toolCallIds?: 'empty' | 'generated'
  /**
   * Whether `POST /v1/embeddings` works: llama-server started with `--embeddings` (false: 501
   * `not_supported_error`), vLLM serving an embedding model (false: 400
   * `BadRequestError` `The model does not support Embeddings API`). Default true. mlx_lm.server has no
   * embeddings route at all (404).
   */
  embeddings?: boolean
}

const DEFAULT_MODEL_ID = 'mlx-community/Llama-3.2-3B-Instruct-4bit'
/** The routes that run a model: faults apply to them by default. */
const MODEL_ROUTES = new Set([
  '/v1/completions',
  '/v1/chat/completions',
  '/chat/completions',
  '/v1/embeddings',
])

function errorType(status: number): string {
  if (status === 404) return 'not_found_error'
  if (status === 503) return 'unavailable_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

export class OpenAICore extends ServiceCore implements OpenAIChatHost {
  readonly flavor: OpenAIFlavor
  protected readonly errors: ErrorShape
  readonly #loaded = new Set<string>()
  /** Epoch ms when llama.cpp's startup load is over. */
  readonly #readyAt: number

  constructor(readonly options: OpenAIOptions = {}) {
    super(options)
    // The hosted flavor answers in the OpenAI shapes vLLM uses (core/hosted.ts adds its checks).
    this.flavor = options.flavor === 'hosted' ? 'vllm' : (options.flavor ?? 'mlx')
    this.#readyAt = Date.now() + (options.loadingMs ?? 0)
    const nested = this.flavor === 'llamacpp'
    const vllm = this.flavor === 'vllm'
    this.errors = {
      error: (status, message) =>
        vllm
          ? vllmError(status, message)
          : jsonReply(
              status,
              nested ? { error: { code: status, message, type: errorType(status) } } : { error: message },
            ),
      busyMessage: 'Loading model',
      rateLimitMessage: 'Rate limit exceeded',
      badRequestMessage: nested || vllm ? 'Invalid request' : 'Request should be a JSON dictionary',
    }
  }

  protected isPrimary(req: IncomingRequest): boolean {
    return req.method === 'POST' && MODEL_ROUTES.has(req.path)
  }

  errorReply(status: number, message: string): Reply {
    return this.errors.error(status, message)
  }

  invalidReply(status: number, message: string): Action {
    return this.#invalid(status, message)
  }

  resolveModel(requested: string | undefined): { known: boolean; model: string } {
    const list = this.options.models
    if (this.flavor === 'vllm') {
      // vLLM serves the names it was started with and nothing else; no model means the first one.
      const served = this.options.modelId ?? DEFAULT_MODEL_ID
      const model = requested ?? served
      return { known: model === served || (list?.includes(model) ?? false), model }
    }
    const model = requested ?? (this.flavor === 'mlx' ? 'default_model' : 'gpt-3.5-turbo')
    const known =
      requested === undefined ||
      requested === 'default_model' ||
      requested === this.options.modelId ||
      list === undefined ||
      list.includes(requested)
    return { known, model }
  }

  admit(model: string): number {
    const cold = !this.#loaded.has(model)
    this.#loaded.add(model)
    return cold ? (this.options.loadMs ?? 0) : 0
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
      if (this.flavor === 'vllm' && path === '/health') return emptyReply(200, { 'content-length': '0' })
      if (path === '/health' || (this.flavor === 'llamacpp' && path === '/v1/health')) {
        // mlx_lm.server writes json.dumps() output (with the space); llama-server its compact JSON.
        return bodyReply(
          200,
          'application/json',
          this.flavor === 'mlx' ? '{"status": "ok"}' : '{"status":"ok"}',
        )
      }
      if (path === '/v1/models') return this.#models()
      return this.#notFound()
    }
    if (method === 'POST' && path === '/v1/completions') return this.#complete(req, fault)
    if (
      method === 'POST' &&
      (path === '/v1/chat/completions' || (this.flavor === 'mlx' && path === '/chat/completions'))
    ) {
      return openAIChat(this, req, fault)
    }
    if (method === 'POST' && path === '/v1/embeddings') return openAIEmbeddings(this, req, fault)
    return this.#notFound()
  }

  /** An unknown path: mlx_lm.server's and llama-server's plain text, FastAPI's JSON on vLLM. */
  #notFound(): Reply {
    return this.flavor === 'vllm'
      ? jsonReply(404, { detail: 'Not Found' })
      : bodyReply(404, 'application/json', 'Not Found')
  }

  #models(): Reply {
    const created = Math.floor(Date.now() / 1000)
    const id = this.options.modelId ?? DEFAULT_MODEL_ID
    const entry =
      this.flavor === 'llamacpp'
        ? { id, object: 'model', created, owned_by: 'llamacpp' }
        : this.flavor === 'vllm'
          ? { id, object: 'model', created, owned_by: 'vllm', root: id, parent: null, max_model_len: 4096 }
          : { id, object: 'model', created }
    return jsonReply(200, { object: 'list', data: [entry] })
  }

  /** mlx_lm.server raises outside any try on invalid parameters: the socket closes without a response. */
  #invalid(status: number, message: string): Action {
    if (this.flavor === 'vllm') return this.errors.error(400, message) // pydantic validation: always 400
    return this.flavor === 'mlx' ? { kind: 'drop' } : this.errors.error(status, message)
  }

  #complete(req: IncomingRequest, fault: FaultSpec | null): Action {
    const mlx = this.flavor === 'mlx'
    const read = readOpenAIBody(this, req)
    if ('answer' in read) return read.answer
    const body = read.body
    if (body.prompt === undefined) return this.#invalid(500, '"prompt" must be provided')
    if (typeof body.prompt !== 'string') return this.#invalid(400, '"prompt" must be a string')
    const bad = checkSampling(this, body)
    if (bad !== null) return bad
    const { known, model } = this.resolveModel(typeof body.model === 'string' ? body.model : undefined)
    if (!known || fault?.type === '404-model') return modelNotFound(this, model, fault)

    const stop = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop : []
    const maxTokens = maxTokensOf(this, body, 'completion')
    const gen = generate({
      prompt: body.prompt,
      maxTokens,
      stop: stop.filter((s): s is string => typeof s === 'string'),
      respond: this.options.respond,
      context: { model, server: 'openai', body },
    })
    const loadMs = this.admit(model)
    const { perTokenMs, ttftMs, reportedTps } = openAIPacing(this)
    const n = gen.tokens.length
    const P = gen.promptTokens
    if (this.flavor === 'vllm') {
      return vllmCompletion({
        model,
        promptTokens: P,
        tokens: gen.tokens,
        text: gen.text,
        finish: gen.doneReason,
        streaming: body.stream === true,
        body,
        fault,
        startMs: loadMs + ttftMs,
        perTokenMs,
        invalidJson: openAIInvalidJson,
      })
    }
    const tooLong = llamaContextExceeded(this, P, body.stream === true)
    if (tooLong !== null) return tooLong
    const id = mlx ? `cmpl-${randomUUID()}` : `chatcmpl-${randomUUID().replaceAll('-', '')}`
    const created = Math.floor(Date.now() / 1000)
    const fingerprint = mlx ? MLX_FINGERPRINT : LLAMACPP_FINGERPRINT
    const usage = openAIUsage(mlx, P, n)
    const timings = llamaTimings(P, n, ttftMs, reportedTps)
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
      return openAIInvalidJson(streaming, envelope([choice(gen.text, gen.doneReason)]))
    }
    if (!streaming) {
      if (fault?.type === 'error-mid-stream') return openAIGenerationFailed(this, fault)
      const value = mlx
        ? { ...envelope([choice(gen.text, gen.doneReason)]), usage }
        : { ...envelope([choice(gen.text, gen.doneReason)]), usage, timings }
      return { ...jsonReply(200, value), delayMs: loadMs + ttftMs + perTokenMs * n }
    }

    const frames: Frame[] = mlx ? mlxKeepalives(P, ttftMs) : []
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
    const usageChunk = () => ({ ...envelope([], 'chat.completion'), usage })
    return openAIStreamEnd(this, body, frames, usageChunk, { loadMs, ttftMs }, fault)
  }
}
