/**
 * Public types of `router.embed()`. Kept next to the embeddings code rather than in src/types.ts so the
 * operation's shape lives in one place; src/index.ts re-exports them.
 */
import type { AttemptInfo } from '../errors.js'
import type { BackendKind, RequestMetadata, Usage } from '../types.js'

export interface EmbedRequest {
  /** Model name as configured in the admin records. Omitted: the highest-priority enabled record. */
  model?: string
  /** One text, or a list of texts; `embeddings` comes back in the same order. No empty strings. */
  input: string | string[]
  /** Output dimensions, for models that can shorten their vectors (Ollama `dimensions`, OpenAI `dimensions`). */
  dimensions?: number
  /** Ollama only: how long the model stays loaded after the call (`keep_alive`, e.g. `'10m'` or seconds). */
  keepAlive?: string | number
  /** Most inputs sent in one backend request; longer lists are split. Default: option `embedBatchSize` (64). */
  batchSize?: number
  /** Most batch requests in flight at once. Default: option `embedConcurrency` (4). */
  concurrency?: number
  signal?: AbortSignal
  /** Overall deadline of the whole call, every batch included (like `generate()`'s). */
  timeoutMs?: number
  /** Limit of one attempt (one batch request); falls over. Default: the record's `timeout_seconds`. */
  attemptTimeoutMs?: number
  /** Limit until a batch request's response headers; falls over. Default: option `headersTimeoutMs`. */
  headersTimeoutMs?: number
  /**
   * Opt-in cross-model fallback. Vectors of different models are not comparable, so every batch of one
   * call is answered by the same model: the one that answered the first batch (`result.model`).
   */
  fallbackModels?: string[] | 'priority'
  metadata?: RequestMetadata
  /**
   * Backend-specific extras. Ollama: `truncate`, `keep_alive`, `dimensions` go top-level, every other key into
   * `options` (e.g. `num_ctx`). OpenAI-compatible: top-level body fields (e.g. `encoding_format`, `user`).
   */
  options?: Record<string, unknown>
}

export interface EmbedResult {
  /** One vector per input, in input order. */
  embeddings: number[][]
  /** The configured model name that answered every batch. */
  model: string
  backend: BackendKind
  /** Base URL of the backend that answered the last batch (no credentials, no path). */
  endpoint: string
  /** Input tokens the backend counted (Ollama `prompt_eval_count`, OpenAI `usage.prompt_tokens`); completion is 0. */
  usage: Usage
  latencyMs: number
  /** Backend requests sent with success, one per batch. */
  batches: number
  /** Every attempt of every batch, in the order they finished. */
  attempts: AttemptInfo[]
  /** Ollama's `load_duration` of the slowest batch, in milliseconds, when reported. */
  loadMs?: number
}
