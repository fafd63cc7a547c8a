/**
 * Pieces both embeddings adapters share: vector checks, base64 vectors, and which non-2xx answers mean
 * "this server or model cannot embed" rather than a failure worth retrying.
 */
import { ErrorCode } from '../errors.js'
import type { BackendKind } from '../types.js'
import { errorMessage, malformed, preview } from './common.js'

/**
 * A vector as the server sent it: an array of finite numbers, or (OpenAI `encoding_format: "base64"`)
 * little-endian float32 bytes in base64. Anything else is MALFORMED_RESPONSE naming the input's position.
 */
export function readVector(backend: BackendKind, label: string, value: unknown, position: number): number[] {
  if (typeof value === 'string') return base64Floats(backend, label, value, position)
  if (!Array.isArray(value) || value.length === 0) {
    throw malformed(
      backend,
      `${label} sent no vector for input ${position} (${preview(String(JSON.stringify(value)))}); check that the model is an embedding model`,
    )
  }
  for (let i = 0; i < value.length; i++) {
    const x = value[i]
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw malformed(
        backend,
        `${label} sent a vector for input ${position} with a non-number at [${i}] (${preview(String(JSON.stringify(x)))})`,
      )
    }
  }
  return value as number[]
}

function base64Floats(backend: BackendKind, label: string, text: string, position: number): number[] {
  const bytes = Buffer.from(text, 'base64')
  if (bytes.length === 0 || bytes.length % 4 !== 0) {
    throw malformed(
      backend,
      `${label} sent a base64 vector for input ${position} that is not whole float32 values (${bytes.length} bytes)`,
    )
  }
  const out = new Array<number>(bytes.length / 4)
  for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4)
  return out
}

/** The count check both dialects need: one vector per input sent, no more, no fewer. */
export function expectCount(backend: BackendKind, label: string, got: number, expected: number): void {
  if (got !== expected) {
    throw malformed(
      backend,
      `${label} sent ${got} embeddings for ${expected} inputs; the answer cannot be matched to the inputs`,
    )
  }
}

/** Messages servers send when the loaded model is not an embedding model (Ollama's runner, llama.cpp, vLLM). */
const CANNOT_EMBED = /does not support embeddings|does not support embeddings api|not an embedding model/i

/**
 * UNSUPPORTED_OPERATION for answers that say the server or model cannot embed at all:
 * - 501: llama-server without `--embeddings` ("This server does not support embeddings. Start it with
 *   `--embeddings`", also what Ollama relays for a chat model), newer vLLM's NotImplementedError;
 * - 404 with a non-JSON body: the route does not exist (mlx_lm.server answers unknown paths with a plain
 *   `Not Found`; old Ollama builds without /api/embed answer `404 page not found`). A JSON 404 is the model
 *   missing (`{"error":"model 'x' not found"}`) and keeps its usual MODEL_NOT_FOUND;
 * - 400 whose message says so (vLLM serving a generation model: "The model does not support Embeddings API").
 */
export function embedStatusCode(status: number, body: string): ErrorCode | undefined {
  if (status === 501) return ErrorCode.UNSUPPORTED_OPERATION
  if (status === 404) {
    const first = body.trimStart().charCodeAt(0)
    return first === 0x7b /* { */ ? undefined : ErrorCode.UNSUPPORTED_OPERATION
  }
  // The body's message is read (a JSON parse) only for the statuses whose meaning depends on it.
  if ((status === 400 || status === 500) && CANNOT_EMBED.test(errorMessage(status, body))) {
    return ErrorCode.UNSUPPORTED_OPERATION
  }
  return undefined
}
