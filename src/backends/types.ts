/**
 * Contract between the dispatcher (which owns HTTP, deadlines, retries) and the protocol adapters
 * (which own request bodies and response parsing). Adapters are pure: no I/O, no timers.
 */
import type { ErrorCode } from '../errors.js'
import type { BackendKind } from '../types.js'

/** What the dispatcher asks an adapter to encode, after defaults from the record were applied. */
export interface WireRequest {
  prompt: string
  system?: string
  temperature?: number
  maxTokens?: number
  stop?: readonly string[]
  /** Backend-specific extras from the caller (GenerateRequest.options). */
  options?: Readonly<Record<string, unknown>>
  /**
   * Model id to put in the body. Ollama: always set (backend_model ?? model_name).
   * OpenAI-compatible: `backend_model` only; undefined means "omit `model`" (mlx_lm.server would
   * otherwise try to load `model_name` from disk or the hub and evict the loaded model).
   */
  model?: string
  stream: boolean
}

/** Everything the router reads from a finished generation. */
export interface BackendOutput {
  text: string
  /** `stop`, `length`, ... or null when the backend said nothing. */
  doneReason: string | null
  promptTokens: number
  completionTokens: number
  /** Ollama eval_duration (ns), when reported: tokens/sec = completionTokens / evalDurationNs * 1e9. */
  evalDurationNs?: number
  /** Ollama load_duration (ns), when reported. */
  loadDurationNs?: number
}

/**
 * Incremental stream decoder. Correct at any chunk boundary, including split UTF-8 sequences.
 * `Out` is what the operation reads from a finished stream; `Delta` what it hands out as it goes
 * (generate: text strings; chat: text, reasoning and tool-call parts).
 */
export interface StreamDecoder<Out = BackendOutput, Delta = string> {
  /**
   * Feed raw bytes. Calls `onText` for every non-empty delta, in order.
   * Throws RouterError(STREAM_ERROR) on an error frame, RouterError(MALFORMED_RESPONSE) on an unparseable frame.
   */
  push(chunk: Uint8Array, onText: (delta: Delta) => void): void
  /**
   * The body ended. Returns the final output (text = everything delivered, concatenated).
   * Throws RouterError(STREAM_ERROR) if the stream ended without its final frame (Ollama `done:true`,
   * OpenAI `[DONE]` after a chunk with `finish_reason`).
   */
  end(onText: (delta: Delta) => void): Out
  /** True once the final frame was seen (further bytes are ignored). */
  readonly done: boolean
}

/**
 * What the dispatcher needs from a protocol adapter to run one attempt of an operation: where to
 * send it and how to read the answer. Encoding is the operation's (it knows the request type).
 */
export interface ProtocolAdapter<Out = BackendOutput, Delta = string> {
  readonly kind: BackendKind
  /** Path appended to the endpoint base URL, e.g. `/api/generate`. */
  readonly path: string
  /** Parse a complete 2xx non-streaming body. Throws RouterError(MALFORMED_RESPONSE). */
  decode(body: string): Out
  /** Human-readable message from a non-2xx body (both `{"error":"..."}` and `{"error":{"message":...}}` shapes, or text). */
  errorMessage(status: number, body: string): string
  /** `fastFrames` false turns off the learned frame-shape fast path (bench comparison); default on. */
  createStreamDecoder(fastFrames?: boolean): StreamDecoder<Out, Delta>
  /**
   * The code of a non-2xx answer when the status alone misleads (embeddings: a 404 route or a 501 means
   * UNSUPPORTED_OPERATION); undefined, or no method: the status mapping in dispatch/classify.ts.
   */
  statusCode?(status: number, body: string): ErrorCode | undefined
}

/** A generation (`/api/generate`, `/v1/completions`) adapter. */
export interface BackendAdapter extends ProtocolAdapter<BackendOutput, string> {
  /** JSON request body. */
  encode(request: WireRequest): string
}
