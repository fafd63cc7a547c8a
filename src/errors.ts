/**
 * Every failure a user can see is a `RouterError` with a stable string `code`, a message that says
 * what to do, and the underlying `cause`. Guards check a brand property rather than `instanceof`,
 * so they work across the ESM and CJS copies of this package (and across realms).
 */
import type { PickReason } from './pool/select.js'

/** Stable error codes. Documented in README.md ("Error codes"); never renamed once released. */
export const ErrorCode = {
  /** `createLLMRouter()` options failed validation. */
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  /** A `generate()`/`stream()` request failed validation. */
  INVALID_REQUEST: 'INVALID_REQUEST',
  /** The admin API could not be reached or answered with an error (only thrown when nothing else is known). */
  CONFIG_FETCH_FAILED: 'CONFIG_FETCH_FAILED',
  /** The admin API answered with something that is not a list of backend records. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** The admin payload exceeded `admin.maxPayloadBytes`. */
  CONFIG_TOO_LARGE: 'CONFIG_TOO_LARGE',
  /** `strictModels` is on and no enabled record exists for the requested model. */
  MODEL_NOT_CONFIGURED: 'MODEL_NOT_CONFIGURED',
  /** A record's `auth` names an environment variable that is not set. */
  MISSING_CREDENTIAL: 'MISSING_CREDENTIAL',
  /** Connection refused, reset, DNS failure or other socket-level error. */
  BACKEND_UNREACHABLE: 'BACKEND_UNREACHABLE',
  /** The request deadline (`timeoutMs` or the record's `timeout_seconds`) elapsed. */
  TIMEOUT: 'TIMEOUT',
  /** The backend answered 5xx (other than 503). */
  BACKEND_ERROR: 'BACKEND_ERROR',
  /** The backend answered 503: busy or still loading. */
  BACKEND_BUSY: 'BACKEND_BUSY',
  /** The backend answered 429. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The backend answered 404: the model is not present there. */
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  /** The backend answered 400/422: the request itself is wrong; not retried. */
  BAD_REQUEST: 'BAD_REQUEST',
  /** The backend answered 401/403: credentials are missing or wrong. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The backend's body was not the protocol it should speak. */
  MALFORMED_RESPONSE: 'MALFORMED_RESPONSE',
  /** The backend's response exceeded `maxResponseBytes`. */
  RESPONSE_TOO_LARGE: 'RESPONSE_TOO_LARGE',
  /** The backend reported an error inside a stream, or the stream ended without its final line. */
  STREAM_ERROR: 'STREAM_ERROR',
  /** A stream failed after chunks were delivered; `delivered` says how much. */
  STREAM_INTERRUPTED: 'STREAM_INTERRUPTED',
  /** The endpoint's circuit is open (cooling down after repeated failures); no connection was attempted. */
  CIRCUIT_OPEN: 'CIRCUIT_OPEN',
  // Pool member health (src/pool/health.ts): skipped without connecting; seen in attempts.
  /** The endpoint was drained with `router.drain()`; no connection was attempted. */
  MEMBER_DRAINED: 'MEMBER_DRAINED',
  /** Active health probes (`healthCheck`) took the endpoint out of rotation; no connection was attempted. */
  MEMBER_DOWN: 'MEMBER_DOWN',
  /** The caller's AbortSignal fired. */
  ABORTED: 'ABORTED',
  /** Every candidate failed; `attempts` lists what was tried. */
  ALL_BACKENDS_FAILED: 'ALL_BACKENDS_FAILED',
  /** The router was closed. */
  CLOSED: 'CLOSED',
  /**
   * The backend cannot serve this operation at all (mlx_lm.server has no embeddings route; a model that is
   * not an embedding model): falls over to the next candidate, never retried, never charged to the circuit.
   */
  UNSUPPORTED_OPERATION: 'UNSUPPORTED_OPERATION',
  /** No candidate record declares a capability the request needs (tools, vision, json_schema, thinking, embeddings); nothing was sent. Also the code of a skipped record in `attempts`. */
  NO_CAPABLE_BACKEND: 'NO_CAPABLE_BACKEND',
  /** A backend returned a tool call whose arguments are not a JSON object (the model produced malformed JSON). */
  INVALID_TOOL_ARGUMENTS: 'INVALID_TOOL_ARGUMENTS',
  // Pools (src/pool/).
  /** Every member that could take the request is at its `max_concurrency`, and no slot freed within the request's deadline (or the wait queue is full). */
  POOL_BUSY: 'POOL_BUSY',
  /** The prompt clearly cannot fit the `context_length` of any candidate; nothing was sent. Also the code of a skipped member in `attempts`. */
  CONTEXT_TOO_LONG: 'CONTEXT_TOO_LONG',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** One attempt at one backend, as reported on results and on `ALL_BACKENDS_FAILED` errors. */
export interface AttemptInfo {
  model: string
  backend: 'ollama' | 'mlx' | 'openai'
  endpoint: string
  /** 1-based attempt number against this endpoint. */
  attempt: number
  ok: boolean
  latencyMs: number
  code?: ErrorCode
  status?: number
  message?: string
  /** Pools: why this member was chosen (`affinity`, `warm`, `least-loaded`, ...; README "Pools"). */
  selectedBy?: PickReason
}

export interface RouterErrorDetails {
  cause?: unknown
  status?: number | undefined
  backend?: 'ollama' | 'mlx' | 'openai' | undefined
  endpoint?: string | undefined
  model?: string | undefined
  attempts?: readonly AttemptInfo[] | undefined
  /** Characters delivered before a stream was interrupted. */
  delivered?: number | undefined
  /** Milliseconds the server asked us to wait (429/503 Retry-After). */
  retryAfterMs?: number | undefined
  /** For `INVALID_OPTIONS`/`INVALID_REQUEST`: one entry per bad field. */
  issues?: readonly { path: string; message: string }[] | undefined
}

const BRAND = Symbol.for('llm-backend-router.RouterError')

export class RouterError extends Error {
  override readonly name: string = 'RouterError'
  readonly code: ErrorCode
  readonly status: number | undefined
  readonly backend: 'ollama' | 'mlx' | 'openai' | undefined
  readonly endpoint: string | undefined
  readonly model: string | undefined
  readonly attempts: readonly AttemptInfo[]
  readonly delivered: number | undefined
  readonly retryAfterMs: number | undefined
  readonly issues: readonly { path: string; message: string }[]
  /** Cross-copy brand: `isRouterError` checks this, not `instanceof`. */
  readonly [BRAND] = true

  constructor(code: ErrorCode, message: string, details: RouterErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    this.status = details.status
    this.backend = details.backend
    this.endpoint = details.endpoint
    this.model = details.model
    this.attempts = details.attempts ?? []
    this.delivered = details.delivered
    this.retryAfterMs = details.retryAfterMs
    this.issues = details.issues ?? []
  }

  /**
   * A copy of this error with some details replaced (and optionally a new message): the one way to
   * add attempts, location or `delivered` to an error. A `cause` key, even undefined, replaces the cause.
   */
  withDetails(details: RouterErrorDetails & { message?: string }): RouterError {
    const { message, ...rest } = details
    return new RouterError(this.code, message ?? this.message, {
      cause: this.cause,
      status: this.status,
      backend: this.backend,
      endpoint: this.endpoint,
      model: this.model,
      attempts: this.attempts,
      delivered: this.delivered,
      retryAfterMs: this.retryAfterMs,
      issues: this.issues,
      ...rest,
    })
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      status: this.status,
      backend: this.backend,
      endpoint: this.endpoint,
      model: this.model,
      attempts: this.attempts,
    }
  }
}

/** True for any error thrown by this package, from any copy of it. */
export function isRouterError(value: unknown): value is RouterError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
}

/**
 * True when `value` is a RouterError with the given code. An `ALL_BACKENDS_FAILED` error also matches
 * the code its attempts failed with when they all failed the same way, or when only one backend was
 * tried (then its last failure, the error's `cause`, decides): `hasErrorCode(e, 'MODEL_NOT_FOUND')`
 * holds for a model missing on its only server.
 */
export function hasErrorCode(value: unknown, code: ErrorCode): value is RouterError {
  if (!isRouterError(value)) return false
  if (value.code === code) return true
  if (value.code !== ErrorCode.ALL_BACKENDS_FAILED || value.attempts.length === 0) return false
  const failed = value.attempts
  if (failed.every((a) => a.code === code)) return true
  const first = failed[0]!
  const oneTarget = failed.every((a) => a.endpoint === first.endpoint && a.model === first.model)
  return oneTarget && isRouterError(value.cause) && value.cause.code === code
}
