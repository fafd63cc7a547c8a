/**
 * Contract of the embeddings adapters (Ollama `/api/embed`, OpenAI-compatible `/v1/embeddings`). Like the
 * generation adapters they are pure: no I/O, no timers. One adapter call encodes one batch of inputs.
 */
import type { ErrorCode } from '../errors.js'
import type { BackendKind } from '../types.js'

/** One batch request, after the router resolved the model and the record defaults. */
export interface EmbedWireRequest {
  /** The batch's texts, in order; never empty, no empty strings (validated before). */
  inputs: readonly string[]
  /** Model id for the body; undefined: omit (OpenAI-compatible servers serving one model). */
  model?: string
  dimensions?: number
  keepAlive?: string | number
  /** The caller's backend-specific extras. */
  options?: Readonly<Record<string, unknown>>
}

/** What the router reads from one answered batch. */
export interface EmbedOutput {
  /** One vector per input of the batch, in input order. */
  embeddings: number[][]
  promptTokens: number
  /** Ollama `load_duration` (ns), when reported. */
  loadDurationNs?: number
}

export interface EmbedAdapter {
  readonly kind: BackendKind
  /** Path appended to the endpoint base URL. */
  readonly path: string
  encode(request: EmbedWireRequest): string
  /** Parses a 2xx body answering `expected` inputs. Throws RouterError(MALFORMED_RESPONSE) or an in-band error. */
  decode(body: string, expected: number): EmbedOutput
  errorMessage(status: number, body: string): string
  /**
   * The code of a non-2xx answer when it is not the usual status mapping: UNSUPPORTED_OPERATION for a server
   * or model that cannot embed (no such route, 501, "does not support embeddings"), so the request falls over
   * without retrying or charging the circuit. undefined: the usual mapping (dispatch/classify.ts).
   */
  statusCode(status: number, body: string): ErrorCode | undefined
}
