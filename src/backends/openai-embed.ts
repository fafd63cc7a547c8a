/**
 * OpenAI-compatible `POST /v1/embeddings`: llama-server (started with `--embeddings`), vLLM (an embedding
 * model), LM Studio, Ollama's `/v1`. Backend kind `mlx`; mlx_lm.server itself has no such route and answers a
 * plain 404 `Not Found`, which is UNSUPPORTED_OPERATION and falls over (see embed-common.ts).
 *
 * Request: `{model?, input: [texts], dimensions?, <extras>}`. `model` only when the record names a backend
 * model, as for completions. No `encoding_format`: the API's default is `float`, and older llama-server builds
 * reject values they do not know; a caller may still ask for `base64` through `options`, which is decoded.
 *
 * Response: `{object:"list", data:[{object:"embedding", index, embedding}], model, usage:{prompt_tokens,
 * total_tokens}}`. Items are placed by `index` (servers may answer out of order); every index from 0 to n-1
 * exactly once, else MALFORMED_RESPONSE. Items without an index are taken in order. Errors: llama.cpp
 * `{"error":{"code","message","type"}}`, vLLM `{"error":{...}}` or the older flat `{"object":"error",...}`.
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

const LABEL = 'OpenAI-compatible /v1/embeddings'

const RESERVED: ReadonlySet<string> = new Set(['model', 'input'])

function encode(request: EmbedWireRequest): string {
  const body: JsonObject = {}
  if (request.model !== undefined) body.model = request.model
  body.input = request.inputs
  if (request.dimensions !== undefined) body.dimensions = request.dimensions
  const extras = request.options
  if (extras !== undefined) {
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value !== undefined && !RESERVED.has(key) && body[key] === undefined) body[key] = value
    }
  }
  return JSON.stringify(body)
}

function decode(body: string, expected: number): EmbedOutput {
  const parsed = parseBody('mlx', LABEL, body)
  if (!isObject(parsed)) {
    throw malformed('mlx', `${LABEL} answered 2xx with JSON that is not an object: ${preview(body)}`)
  }
  if ((parsed.error !== undefined && parsed.error !== null) || parsed.object === 'error')
    throw inBandError('mlx', LABEL, parsed.error ?? parsed)
  const data = parsed.data
  if (!Array.isArray(data)) {
    throw malformed(
      'mlx',
      `${LABEL} answered 2xx without a "data" list (${preview(body)}); check that the endpoint serves OpenAI-compatible embeddings`,
    )
  }
  expectCount('mlx', LABEL, data.length, expected)
  const embeddings = new Array<number[] | undefined>(data.length)
  for (let i = 0; i < data.length; i++) {
    const item = data[i]
    if (!isObject(item)) throw malformed('mlx', `${LABEL} sent a data item that is not an object at [${i}]`)
    const index = item.index === undefined ? i : item.index
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= data.length) {
      throw malformed(
        'mlx',
        `${LABEL} sent data[${i}] with index ${JSON.stringify(index)} for ${expected} inputs`,
      )
    }
    if (embeddings[index] !== undefined) {
      throw malformed('mlx', `${LABEL} sent index ${index} twice; the answer cannot be matched to the inputs`)
    }
    embeddings[index] = readVector('mlx', LABEL, item.embedding, index)
  }
  const usage = parsed.usage
  return {
    embeddings: embeddings as number[][],
    promptTokens:
      isObject(usage) && typeof usage.prompt_tokens === 'number' ? Math.max(0, usage.prompt_tokens) : 0,
  }
}

export const openaiEmbedAdapter: EmbedAdapter = {
  kind: 'mlx',
  path: '/v1/embeddings',
  encode,
  decode,
  errorMessage,
  statusCode: embedStatusCode,
}
