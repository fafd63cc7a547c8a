/**
 * The hosted flavor of the OpenAI-compatible stand-in (`flavor: 'hosted'`): a hosted API (OpenAI, Groq,
 * Cerebras, Mistral, Fireworks, Gemini's OpenAI endpoint, Azure's v1 API), as strict as those are where
 * mlx_lm.server is lenient. Everything is checked before a model runs, in the order OpenAI checks it:
 * - the key: `Authorization: Bearer <apiKey>` (or Azure's `api-key: <apiKey>`); none or a wrong one is
 *   401 `invalid_api_key` (a wrong one is echoed masked, as OpenAI does: `sk-abc***xyz`);
 * - the path: only `{prefix}/chat/completions`, `{prefix}/completions`, `{prefix}/embeddings` and
 *   `GET {prefix}/models`; anything else is 404 `Invalid URL (POST /x)`;
 * - `model`: required on every POST (400 `you must provide a model parameter`); with `models`, any
 *   other is 404 `model_not_found` (`The model \`x\` does not exist or you do not have access to it.`).
 * Answers then come in the OpenAI shapes the vLLM flavor already speaks (core/vllm.ts: usage only with
 * `stream_options.include_usage`), at the same paths without the prefix; error bodies are OpenAI's
 * `{"error":{message,type,param,code}}`. Faults (`setFault`) still apply before any check, as an outage would.
 * @module
 */
import type { FaultSpec } from '../types.js'
import { OpenAICore, type OpenAIOptions } from './openai.js'
import { type Action, type IncomingRequest, jsonReply, type Reply } from './reply.js'
import type { ErrorShape } from './service.js'

/** Options of the hosted flavor (`flavor: 'hosted'`). */
export interface HostedOptions {
  /** The key the API accepts. Required with `flavor: 'hosted'`. */
  apiKey?: string
  /** Where the key goes: `bearer` (default, `Authorization: Bearer`) or Azure's `api-key` header. */
  keyHeader?: 'bearer' | 'api-key'
  /**
   * Path prefix the API serves under, as in its base URL: `/v1` (default; OpenAI, Cerebras, Mistral),
   * `/openai/v1` (Groq, Azure), `/inference/v1` (Fireworks), `/v1beta/openai` (Gemini).
   */
  prefix?: string
  /**
   * Quote a wrong key in full in the 401, as some gateways and proxies do (OpenAI masks it), to check
   * that a client redacts it. Default false.
   */
  echoKey?: boolean
}

const ROUTES = new Set(['/chat/completions', '/completions', '/embeddings'])

/** OpenAI's error body. */
function openAIError(
  status: number,
  message: string,
  code: string | null,
  type = 'invalid_request_error',
): Reply {
  return jsonReply(status, { error: { message, type, param: null, code } })
}

/** Every other error (faults, invalid parameters) in OpenAI's body too: 429 `requests`, 5xx `server_error`. */
const HOSTED_ERRORS: ErrorShape = {
  error: (status, message) =>
    status === 429
      ? openAIError(429, message, 'rate_limit_exceeded', 'requests')
      : openAIError(status, message, null, status >= 500 ? 'server_error' : 'invalid_request_error'),
  busyMessage: 'The engine is currently overloaded, please try again later',
  rateLimitMessage: 'Rate limit reached for requests',
  badRequestMessage: 'Invalid request',
}

/** `sk-abc***xyz`: how OpenAI quotes a wrong key back. */
function masked(key: string): string {
  return key.length <= 8 ? '***' : `${key.slice(0, 3)}***${key.slice(-4)}`
}

export class HostedCore extends OpenAICore {
  protected override readonly errors: ErrorShape = HOSTED_ERRORS
  readonly #key: string
  readonly #prefix: string

  constructor(options: OpenAIOptions = {}) {
    super(options)
    if (options.apiKey === undefined || options.apiKey === '') {
      throw new TypeError("flavor 'hosted' needs apiKey: the key the stand-in accepts")
    }
    this.#key = options.apiKey
    this.#prefix = (options.prefix ?? '/v1').replace(/\/+$/, '')
  }

  /** The request at the path the OpenAI-compatible core serves (`/v1/...`), or null when outside the prefix. */
  #inner(req: IncomingRequest): IncomingRequest | null {
    if (!req.path.startsWith(`${this.#prefix}/`)) return null
    const rest = req.path.slice(this.#prefix.length)
    return { ...req, path: `/v1${rest}`, url: `/v1${req.url.slice(this.#prefix.length)}` }
  }

  protected override isPrimary(req: IncomingRequest): boolean {
    const inner = this.#inner(req)
    return inner !== null && super.isPrimary(inner)
  }

  override resolveModel(requested: string | undefined): { known: boolean; model: string } {
    const list = this.options.models
    const model = requested ?? ''
    return { known: list === undefined || list.includes(model), model }
  }

  protected override route(req: IncomingRequest, fault: FaultSpec | null): Action {
    const given =
      this.options.keyHeader === 'api-key'
        ? req.headers['api-key']
        : /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (given !== this.#key) {
      return openAIError(
        401,
        given === undefined
          ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
          : `Incorrect API key provided: ${this.options.echoKey === true ? given : masked(given)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        'invalid_api_key',
      )
    }
    const inner = this.#inner(req)
    const rest = inner === null ? null : inner.path.slice('/v1'.length)
    const known =
      rest !== null && (req.method === 'POST' ? ROUTES.has(rest) : req.method === 'GET' && rest === '/models')
    if (inner === null || !known) {
      return openAIError(404, `Invalid URL (${req.method} ${req.path})`, null)
    }
    if (req.method === 'POST') {
      let model: unknown
      try {
        model = (JSON.parse(req.rawBody) as { model?: unknown }).model
      } catch {
        return openAIError(
          400,
          "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
          null,
        )
      }
      if (typeof model !== 'string' || model === '') {
        return openAIError(400, 'you must provide a model parameter', null)
      }
      if (!this.resolveModel(model).known) {
        return openAIError(
          404,
          `The model \`${model}\` does not exist or you do not have access to it.`,
          'model_not_found',
        )
      }
    }
    return super.route(inner, fault)
  }
}

/** The core of an OpenAI-compatible stand-in: the hosted flavor's, or the local servers'. */
export function openAICoreFor(options: OpenAIOptions): OpenAICore {
  return options.flavor === 'hosted' ? new HostedCore(options) : new OpenAICore(options)
}
