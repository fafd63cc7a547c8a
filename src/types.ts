/**
 * Public types shared by the router, the config source, the backends and the metrics sinks.
 * Wire-level names (admin records, metric records) stay snake_case as the admin API has them.
 */
import type { AttemptInfo, ErrorCode, RouterError } from './errors.js'
import type { PickReason } from './pool/select.js'

export type BackendType = 'ollama' | 'mlx' | 'auto' | 'openai'
/**
 * The protocol actually spoken on one attempt. `mlx` means a local OpenAI-compatible server
 * (`/v1/completions`); `openai` a hosted OpenAI-compatible API (`backend_type: 'openai'`: chat completions,
 * `model` and key always sent).
 */
export type BackendKind = 'ollama' | 'mlx' | 'openai'

/**
 * Credentials are referenced by environment variable name, never by value; or, for seed 003's
 * `api_key_encrypted`, a Fernet token decrypted per request with the key in `key_env`.
 */
export type BackendAuth =
  | { bearer_env: string }
  | { header: string; value_env: string }
  | { bearer_encrypted: string; key_env: string }

/** One validated backend record, as the admin API sends it (unknown fields dropped). */
export interface BackendRecord {
  id?: number | string
  model_name: string
  backend_type: BackendType
  endpoint_url: string
  enabled: boolean
  /** Lower is tried first. */
  priority: number
  max_tokens?: number
  temperature_default?: number
  timeout_seconds?: number
  description?: string
  /** Model id sent to the backend when it differs from `model_name` (e.g. an MLX repo id). */
  backend_model?: string
  /** Ollama server an `auto` record falls back to. */
  fallback_url?: string
  auth?: BackendAuth
  // --- Fields the `llms` and `providers` admin schemas set (src/config/schemas/) ---
  /**
   * Environment variable holding the base URL, read per request. Unset: `endpoint_url` is used, or,
   * when that is '' (no default), the request fails with MISSING_CREDENTIAL naming the variable.
   */
  endpoint_url_env?: string
  /** Path appended to the base URL read from `endpoint_url_env` (Azure: `/openai/v1`). */
  endpoint_path?: string
  /** Environment variable holding the model id sent to the backend (Azure's deployment name), read per request. */
  backend_model_env?: string
  /** The model a request without `model` uses (the first enabled one in priority order). */
  is_default?: boolean
  /** Provider the record belongs to: `fallbackModels: 'priority'` tries the same provider's records first. */
  provider?: string
  /** Price per million prompt tokens; with `output_cost_per_million`, results and metrics carry `cost`. */
  input_cost_per_million?: number
  /** Price per million completion tokens. */
  output_cost_per_million?: number
  /**
   * What the record's model can do. A request that needs one (tools, images, a JSON schema, `think`,
   * embeddings) skips records that declare capabilities without it. Absent: assumed able (any request).
   */
  capabilities?: Capability[]
  /** Requests per minute this endpoint accepts (fleet-wide with a Redis store). */
  rpm?: number
  /** Tokens per minute (prompt + completion), reserved from an estimate and reconciled with real usage. */
  tpm?: number
  /** Tokens this endpoint may spend per `budget_period_seconds`; past it the endpoint is skipped until the period rolls over. */
  token_budget?: number
  /** @default 86400 (a day) */
  budget_period_seconds?: number
  /** Share of traffic within its pool (records of one model_name and priority). Default 1. */
  weight?: number
  /** Most requests this router has in flight to the endpoint; beyond it the pool's next member takes the request. */
  max_concurrency?: number
  /** Ollama: `keep_alive` sent with every request to the endpoint (seconds, or a duration such as "10m"). */
  keep_alive?: number | string
  /** The endpoint's context window in tokens: prompts that clearly cannot fit are not sent there; Ollama gets it as `num_ctx`. */
  context_length?: number
}

/** What a backend record can declare it supports (`capabilities` in the admin record). */
export type Capability = 'tools' | 'vision' | 'json_schema' | 'thinking' | 'embeddings'

/**
 * Where the records in use came from: `admin` (fetched, or cached within the TTL), `stale` (the last
 * good admin records, past the TTL or after a failed refresh), `env` (LLM_ROUTER_BACKENDS, OLLAMA_HOST,
 * MLX_HOST), `default` (Ollama on localhost:11434).
 */
export type ConfigOrigin = 'admin' | 'stale' | 'env' | 'default'

export interface RequestMetadata {
  requestId?: string
  sessionId?: string
  userId?: string
  zone?: string
  intent?: string
}

export interface GenerateRequest {
  /** Model name as configured in the admin records. Omitted: the highest-priority enabled record. */
  model?: string
  prompt: string
  system?: string
  /** Default: the record's `temperature_default`. */
  temperature?: number
  /** Default: the record's `max_tokens`. */
  maxTokens?: number
  stop?: string[]
  signal?: AbortSignal
  /**
   * Overall deadline for all attempts, retries and waits (also the first config load). Yours: when it
   * passes the request fails with TIMEOUT, nothing falls over and no circuit is charged.
   * Default: `defaultTimeoutMs`, stretched to the first record's `timeout_seconds` when that is longer.
   */
  timeoutMs?: number
  /** Limit of one attempt; a timed-out attempt falls over. Default: the record's `timeout_seconds`, else `attemptTimeoutMs`. */
  attemptTimeoutMs?: number
  /** Non-streams: limit until the response headers; falls over. Default: option `headersTimeoutMs`. */
  headersTimeoutMs?: number
  /** Streams: limit until the first text; falls over. Default: option `firstTokenTimeoutMs`. */
  firstTokenTimeoutMs?: number
  /** Streams: longest silence between chunks; falls over before the first text, else STREAM_INTERRUPTED. */
  idleTimeoutMs?: number
  /** Opt-in cross-model fallback: a list of model names, or `'priority'` to walk enabled records by priority. */
  fallbackModels?: string[] | 'priority'
  metadata?: RequestMetadata
  /** Backend-specific extras merged into the request (Ollama: `options` keys such as `top_k`, `num_ctx`; `keep_alive`). */
  options?: Record<string, unknown>
}

export interface Usage {
  promptTokens: number
  completionTokens: number
}

export interface GenerateResult {
  response: string
  /** The configured model name that answered (may differ from the requested one after a model fallback). */
  model: string
  backend: BackendKind
  /** Base URL of the backend that answered (no credentials, no path). */
  endpoint: string
  /** `stop`, `length`, or what the backend said; `null` when it said nothing. */
  doneReason: string | null
  usage: Usage
  latencyMs: number
  /** Decode speed: Ollama's eval_count/eval_duration, else completion tokens over wall time. */
  tokensPerSecond: number
  /** Streams only: milliseconds from request start to the first text. */
  timeToFirstTokenMs?: number
  /** Ollama's `load_duration`, in milliseconds, when reported. */
  loadMs?: number
  attempts: AttemptInfo[]
  /** From the answering record's prices per million tokens; absent when it has none for these tokens. */
  cost?: number
}

export interface StreamChunk {
  /** Text delta. */
  text: string
  /** Which backend/model is producing this stream (fixed once the first chunk is yielded). */
  model: string
  backend: BackendKind
}

/** What `router.stream()` returns: iterate for chunks; `result` resolves after the stream ends. */
export interface GenerateStream extends AsyncIterable<StreamChunk> {
  /** Resolves with the final result once the stream has ended; rejects like the iterator does. */
  readonly result: Promise<GenerateResult>
  /** Stops the stream and closes the connection. */
  abort(reason?: unknown): void
}

/** One metric record, in the wire format the admin API stores (`POST /api/llm-backends/metrics`). */
export interface MetricRecord {
  /** Unix seconds (float) at request start. */
  timestamp: number
  model: string
  backend: BackendKind | 'none'
  endpoint: string | null
  latency_seconds: number
  /** Completion tokens. */
  tokens: number
  tokens_per_second: number
  prompt_tokens: number
  request_id: string | null
  session_id: string | null
  user_id: string | null
  zone: string | null
  intent: string | null
  outcome: 'success' | 'error' | 'aborted'
  error_code: ErrorCode | null
  attempts: number
  fallback: boolean
  streamed: boolean
  time_to_first_token_seconds: number | null
  load_seconds: number | null
  /** Where the config in use came from; null when the request was stopped before the first config load finished. */
  config_origin: ConfigOrigin | null
  /**
   * Cost of the call from the record's prices per million tokens; null when unpriced or failed. Not a
   * seed field; the router always sets it (optional for records built elsewhere).
   */
  cost?: number | null
  /** Which call made the record: `generate` (generate()/stream()), `chat` (chat()/streamChat()), `embed`. */
  operation: 'generate' | 'chat' | 'embed'
  /** Pools only: why the member that answered (or failed last) was chosen (`affinity`, `warm`, `least-loaded`, ...). */
  selected_by?: PickReason
}

/** A destination for metric records. `write` must not throw or block; the router guards it anyway. */
export interface MetricsSink {
  write(record: MetricRecord): void
  flush(): Promise<void>
  close(): Promise<void>
  /**
   * Optional: called once by each router that is given this sink (`metrics: sink`), with what a sink may ask
   * that router. The OpenTelemetry sink uses it to keep the names of configured models while bounding the rest.
   */
  attach?(router: SinkContext): void
}

/** What a router tells the sinks it was given (see `MetricsSink.attach`). */
export interface SinkContext {
  /** True when `model` has a backend record of its own in the config in use (not the default backend). */
  hasRecord(model: string): boolean
}

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitInfo {
  endpoint: string
  state: CircuitState
  failures: number
  /** Epoch ms when an open circuit lets a probe through. */
  openUntil: number | null
  lastError: ErrorCode | null
}

/**
 * A member's state in `router.health()`: `up`; `down` (active probes failing, or back in rotation
 * after a probe succeeded until one request succeeds: `inRotation` tells); `draining`
 * (`router.drain()`); `cooling-down` (its circuit is open or half-open after repeated failures).
 */
export type MemberState = 'up' | 'down' | 'draining' | 'cooling-down'

/** One endpoint of the config in use, as `router.health()` reports it. */
export interface MemberHealth {
  /** Base URL, as in results, attempts and metric records. */
  endpoint: string
  backend: BackendKind
  /** Configured model names served there. */
  models: string[]
  state: MemberState
  /** False when selection skips it (drained, or down by probes). An open circuit skips it on its own. */
  inRotation: boolean
  /** Why it is not `up` (the failing probe's answer, the circuit's last error); null when up. */
  reason: string | null
  /** Epoch ms since which it has been in `state` (or since it joined the config). */
  since: number
  /** Requests this router has in flight there. */
  inFlight: number
  /** Moving average of its successful attempts' latency (ms), as pools use it; null before any. */
  recentLatencyMs: number | null
  /** Ollama: tagged names of the loaded models from its last `/api/ps`; null when not fetched (or not Ollama). */
  warmModels: string[] | null
  /** The last active probe (`healthCheck`), or null. */
  lastProbe: { at: number; ok: boolean; latencyMs: number | null; error: string | null } | null
  /**
   * A limit (`rpm`, `tpm`, `token_budget`, `max_concurrency` with a store) that refused a request here
   * and has not lifted yet by its own estimate (`until`, epoch ms); null when none did.
   */
  limited: { limit: LimitField; until: number; model: string } | null
}

/** Event map of `router.on(...)`. */
export interface RouterEvents {
  'config:loaded': { origin: ConfigOrigin; records: number; etag: string | null }
  'config:refreshed': { origin: ConfigOrigin; records: number; changed: boolean; etag: string | null }
  'config:failed': {
    error: RouterError
    consecutiveFailures: number
    nextRetryMs: number
    servingStale: boolean
  }
  'config:fallback': { origin: 'env' | 'default'; reason: string }
  'config:invalid-record': { index: number; modelName: string | null; field: string; message: string }
  /** The admin was down at start: the last good config (kept in Redis or admin.snapshotFile) is served as `stale`. */
  'config:restored': { from: 'redis' | 'file'; records: number; fetchedAt: number | null }
  'request:start': { requestId: string | null; model: string | undefined; stream: boolean }
  'request:end': {
    requestId: string | null
    model: string
    ok: boolean
    latencyMs: number
    code: ErrorCode | null
  }
  'request:retry': {
    model: string
    backend: BackendKind
    endpoint: string
    attempt: number
    delayMs: number
    code: ErrorCode
  }
  'request:fallback': {
    from: { model: string; backend: BackendKind; endpoint: string }
    to: { model: string; backend: BackendKind; endpoint: string }
    code: ErrorCode
  }
  'circuit:open': CircuitInfo
  'circuit:close': CircuitInfo
  /** Active probes took a member out of rotation (`failures` consecutive failed probes). */
  'member:down': { endpoint: string; backend: BackendKind; reason: string; failures: number }
  /** A member that was down is up again: a probe succeeded, then a request there succeeded. */
  'member:up': { endpoint: string; backend: BackendKind; downMs: number }
  /** `router.drain()`: no new requests go there; `known`: it is in the config in use; `inFlight`: still running there. */
  'member:drained': { endpoint: string; known: boolean; inFlight: number }
  'member:undrained': { endpoint: string }
  metric: MetricRecord
  'metrics:dropped': { dropped: number; totalDropped: number }
  /** A metrics POST failed after its retries; `requeued`: its records stay queued for the next flush (else dropped). */
  'metrics:flush-failed': { error: unknown; records: number; requeued: boolean }
  'sink:error': { error: unknown }
  /** An endpoint's limit (a record field) refused an attempt; the request takes the next candidate or waits. */
  'limit:refused': {
    model: string
    backend: BackendKind
    endpoint: string
    limit: LimitField
    retryAfterMs: number
  }
  /** Every candidate was at a limit: the request waits `waitMs` (within its deadline) and tries them again. */
  'limit:wait': { model: string; waitMs: number; waiting: number }
  /** The shared store (Redis) failed or ran over its time budget: local state is used until it answers again. */
  'store:fallback': { error: unknown; operation: string }
  /** The shared store answers again after a fallback. */
  'store:rejoined': { kind: 'redis' }
}

/** The record field of a limit. */
export type LimitField = 'rpm' | 'tpm' | 'token_budget' | 'max_concurrency'
