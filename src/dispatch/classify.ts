/**
 * One table decides what every failure means. The dispatcher reads only `FailurePolicy`, so a
 * rule changes here and nowhere else.
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'

export interface FailurePolicy {
  /** Try the same endpoint again (after backoff) while attempts remain. */
  retry: boolean
  /** Move on to the next candidate once retries are exhausted (or at once when `retry` is false). */
  fallover: boolean
  /** Counts as an endpoint health failure for the circuit breaker. */
  unhealthy: boolean
}

const POLICIES: Record<ErrorCode, FailurePolicy> = {
  // Refused/DNS: nothing listens there; retrying within milliseconds cannot help, so fall over at once.
  BACKEND_UNREACHABLE: { retry: false, fallover: true, unhealthy: true },
  BACKEND_ERROR: { retry: true, fallover: true, unhealthy: true },
  BACKEND_BUSY: { retry: true, fallover: true, unhealthy: true },
  // A rate-limited server is alive: wait as asked (up to the cap), but do not trip its circuit.
  RATE_LIMITED: { retry: true, fallover: true, unhealthy: false },
  // The model is not on this server; another backend may have it.
  MODEL_NOT_FOUND: { retry: false, fallover: true, unhealthy: false },
  UNAUTHORIZED: { retry: false, fallover: true, unhealthy: false },
  // The server is fine, it just has no such route or model kind (embeddings on mlx_lm.server).
  UNSUPPORTED_OPERATION: { retry: false, fallover: true, unhealthy: false },
  MALFORMED_RESPONSE: { retry: false, fallover: true, unhealthy: true },
  RESPONSE_TOO_LARGE: { retry: false, fallover: true, unhealthy: false },
  STREAM_ERROR: { retry: false, fallover: true, unhealthy: true },
  CIRCUIT_OPEN: { retry: false, fallover: true, unhealthy: false },
  MEMBER_DRAINED: { retry: false, fallover: true, unhealthy: false },
  MEMBER_DOWN: { retry: false, fallover: true, unhealthy: false },
  MISSING_CREDENTIAL: { retry: false, fallover: true, unhealthy: false },
  // A per-attempt limit (the record's timeout_seconds, first token, headers, idle) fired: this
  // backend is stuck, another may answer. The request's own deadline never gets here: a stopped
  // request fails at once and charges nobody (policy.ts).
  TIMEOUT: { retry: false, fallover: true, unhealthy: true },
  // The caller's own fault or the caller's decision: stop here.
  BAD_REQUEST: { retry: false, fallover: false, unhealthy: false },
  ABORTED: { retry: false, fallover: false, unhealthy: false },
  STREAM_INTERRUPTED: { retry: false, fallover: false, unhealthy: true },
  INVALID_OPTIONS: { retry: false, fallover: false, unhealthy: false },
  INVALID_REQUEST: { retry: false, fallover: false, unhealthy: false },
  CONFIG_FETCH_FAILED: { retry: false, fallover: false, unhealthy: false },
  CONFIG_INVALID: { retry: false, fallover: false, unhealthy: false },
  CONFIG_TOO_LARGE: { retry: false, fallover: false, unhealthy: false },
  MODEL_NOT_CONFIGURED: { retry: false, fallover: false, unhealthy: false },
  ALL_BACKENDS_FAILED: { retry: false, fallover: false, unhealthy: false },
  CLOSED: { retry: false, fallover: false, unhealthy: false },
  // Decided before sending (a record lacks a capability the request needs): never an attempt's failure.
  NO_CAPABLE_BACKEND: { retry: false, fallover: false, unhealthy: false },
  // The model's own output (a tool call with broken JSON arguments): the server is healthy, and the
  // caller decides whether to ask again; falling over would hide which model produced it.
  INVALID_TOOL_ARGUMENTS: { retry: false, fallover: false, unhealthy: false },
  // Pools: decided before sending (full, too long for the window, out of rotation): never an attempt's failure.
  POOL_BUSY: { retry: false, fallover: false, unhealthy: false },
  CONTEXT_TOO_LONG: { retry: false, fallover: false, unhealthy: false },
}

export function policyOf(code: ErrorCode): FailurePolicy {
  return POLICIES[code]
}

/** Error code for a non-2xx backend status. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 429) return ErrorCode.RATE_LIMITED
  if (status === 503) return ErrorCode.BACKEND_BUSY
  if (status === 404) return ErrorCode.MODEL_NOT_FOUND
  if (status === 401 || status === 403 || status === 407) return ErrorCode.UNAUTHORIZED
  if (status === 408) return ErrorCode.BACKEND_ERROR
  if (status >= 500) return ErrorCode.BACKEND_ERROR
  return ErrorCode.BAD_REQUEST
}

const NEXT_STEP: Partial<Record<ErrorCode, string>> = {
  RATE_LIMITED: 'the backend is rate limiting; slow down or add capacity',
  BACKEND_BUSY: 'the backend is busy or still loading the model; retry later or raise its queue size',
  MODEL_NOT_FOUND: 'pull or load the model on that server, or fix the record (model_name / backend_model)',
  UNAUTHORIZED: "check the record's auth settings and the credential's environment variable",
  BAD_REQUEST: 'the request was rejected as invalid; check prompt, stop, maxTokens and options',
  BACKEND_ERROR: 'the backend failed; check its logs',
  UNSUPPORTED_OPERATION:
    'this server or model cannot serve the operation; point the record at one that can, or declare its capabilities',
}

export function statusError(
  status: number,
  backendMessage: string,
  where: { backend: BackendKind; endpoint: string; model: string },
  retryAfterMs: number | undefined,
  /** The adapter's reading of this answer, when it knows better than the status (ProtocolAdapter.statusCode). */
  override?: ErrorCode,
): RouterError {
  const code = override ?? codeForStatus(status)
  const message = `${where.backend} at ${where.endpoint} answered ${status} for model "${where.model}": ${backendMessage} (${NEXT_STEP[code] ?? 'see the backend logs'})`
  return new RouterError(code, message, {
    status,
    ...where,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  })
}

function networkCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; errors?: unknown[]; cause?: unknown }
  if (typeof e?.code === 'string') return e.code
  // Happy-eyeballs connects (e.g. `localhost` -> ::1 and 127.0.0.1) fail with an AggregateError.
  if (Array.isArray(e?.errors) && e.errors.length > 0) return networkCode(e.errors[0])
  if (e?.cause) return networkCode(e.cause)
  return undefined
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/**
 * Whether the failed socket had carried an earlier response: undici's SocketError reports the socket's
 * byte counts. undefined when the error does not say (a bare ECONNRESET, a mocked network).
 */
function socketReused(error: unknown): boolean | undefined {
  const socket = (error as { socket?: { bytesRead?: unknown } } | null)?.socket
  return typeof socket?.bytesRead === 'number' ? socket.bytesRead > 0 : undefined
}

/**
 * A socket-level failure. `resetBeforeResponse` (with `socketReused`) lets the policy replay a stale
 * keep-alive socket once at once: keep-alive servers (llama.cpp, nginx) close idle sockets, and the
 * first write can meet a closed one (policy.ts `classifyFailure`).
 */
export function networkError(
  error: unknown,
  responseStarted: boolean,
  where: { backend: BackendKind; endpoint: string; model: string },
): RouterError & { resetBeforeResponse?: boolean; socketReused?: boolean } {
  const code = networkCode(error)
  if (code !== undefined && UNREACHABLE.has(code)) {
    return new RouterError(
      ErrorCode.BACKEND_UNREACHABLE,
      `${where.backend} at ${where.endpoint} is unreachable (${code}); is the server running and the endpoint_url right?`,
      { cause: error, ...where },
    )
  }
  const err = new RouterError(
    ErrorCode.BACKEND_UNREACHABLE,
    responseStarted
      ? `${where.backend} at ${where.endpoint} closed the connection mid-response (${code ?? 'socket error'})`
      : `${where.backend} at ${where.endpoint} dropped the connection before answering (${code ?? 'socket error'})`,
    { cause: error, ...where },
  ) as RouterError & { resetBeforeResponse?: boolean; socketReused?: boolean }
  if (!responseStarted) {
    err.resetBeforeResponse = true
    const reused = socketReused(error)
    if (reused !== undefined) err.socketReused = reused
  }
  return err
}
