/**
 * Ollama `POST /api/embed` (server/routes.go `EmbedHandler`, api/types.go `EmbedRequest`/`EmbedResponse`).
 *
 * Request: `{model, input: [texts], dimensions?, keep_alive?, truncate?, options?}`. `input` is always sent as
 * a list, so one shape serves one text and a batch; Ollama embeds the items of one request in parallel and
 * answers them in order. There is no `stream` field. Caller extras that the handler reads at the top level
 * (`truncate`, `keep_alive`, `dimensions`) go there, every other key into `options` (`num_ctx`, ...).
 *
 * Response: `{model, embeddings: [[...]], total_duration?, load_duration?, prompt_eval_count?}` (durations
 * and the count are `omitempty`). The vectors are already L2-normalised by the server. A count that does not
 * match the inputs, or a vector that is not numbers, is MALFORMED_RESPONSE. Errors are `{"error":"..."}`:
 * 404 for an unknown model, 400 for a non-string input item or an over-long input with `truncate:false`,
 * 501 relayed from the runner when the model cannot embed (see embed-common.ts).
 */
import {
  errorMessage,
  inBandError,
  isObject,
  type JsonObject,
  malformed,
  parseBody,
  preview,
} from './common.js'
import { embedStatusCode, expectCount, readVector } from './embed-common.js'
import type { EmbedAdapter, EmbedOutput, EmbedWireRequest } from './embed-types.js'

const LABEL = 'Ollama /api/embed'

/** Caller extras `/api/embed` reads at the top level of the body. */
export const OLLAMA_EMBED_TOP_LEVEL: ReadonlySet<string> = new Set(['truncate', 'keep_alive', 'dimensions'])
/** Keys the adapter controls. */
const RESERVED: ReadonlySet<string> = new Set(['model', 'input', 'options'])

function encode(request: EmbedWireRequest): string {
  const body: JsonObject = { model: request.model, input: request.inputs }
  if (request.dimensions !== undefined) body.dimensions = request.dimensions
  if (request.keepAlive !== undefined) body.keep_alive = request.keepAlive
  const extras = request.options
  if (extras !== undefined) {
    let options: JsonObject | undefined
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value === undefined || RESERVED.has(key)) continue
      if (OLLAMA_EMBED_TOP_LEVEL.has(key)) {
        // The typed fields win over the same key in the escape hatch.
        if (body[key] === undefined) body[key] = value
      } else {
        options ??= {}
        options[key] = value
      }
    }
    if (options !== undefined) body.options = options
  }
  return JSON.stringify(body)
}

function decode(body: string, expected: number): EmbedOutput {
  const parsed = parseBody('ollama', LABEL, body)
  if (!isObject(parsed)) {
    throw malformed('ollama', `${LABEL} answered 2xx with JSON that is not an object: ${preview(body)}`)
  }
  if (parsed.error !== undefined && parsed.error !== null) throw inBandError('ollama', LABEL, parsed.error)
  const list = parsed.embeddings
  if (!Array.isArray(list)) {
    throw malformed(
      'ollama',
      `${LABEL} answered 2xx without an "embeddings" list (${preview(body)}); check that the endpoint is an Ollama server recent enough to serve /api/embed (0.3 or later)`,
    )
  }
  expectCount('ollama', LABEL, list.length, expected)
  const embeddings = new Array<number[]>(list.length)
  for (let i = 0; i < list.length; i++) embeddings[i] = readVector('ollama', LABEL, list[i], i)
  const out: EmbedOutput = {
    embeddings,
    promptTokens: typeof parsed.prompt_eval_count === 'number' ? Math.max(0, parsed.prompt_eval_count) : 0,
  }
  if (typeof parsed.load_duration === 'number' && parsed.load_duration > 0)
    out.loadDurationNs = parsed.load_duration
  return out
}

export const ollamaEmbedAdapter: EmbedAdapter = {
  kind: 'ollama',
  path: '/api/embed',
  encode,
  decode,
  errorMessage,
  statusCode: embedStatusCode,
}
