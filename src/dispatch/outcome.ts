/**
 * What a request leaves behind: its `AttemptInfo` entries, the `GenerateResult` of a success, and
 * exactly one `MetricRecord` whichever way it ended. Pure assembly; the dispatcher decides when.
 */
import type { BackendOutput } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import type { AttemptInfo, RouterError } from '../errors.js'
import type { BackendKind, GenerateRequest, GenerateResult, MetricRecord } from '../types.js'

export interface AttemptWhere {
  model: string
  backend: BackendKind
  endpoint: string
}

export function attemptInfo(
  where: AttemptWhere,
  n: number,
  startedAt: number,
  error: RouterError | null,
): AttemptInfo {
  const info: AttemptInfo = {
    model: where.model,
    backend: where.backend,
    endpoint: where.endpoint,
    attempt: n,
    ok: error === null,
    latencyMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
  }
  if (error !== null) {
    info.code = error.code
    if (error.status !== undefined) info.status = error.status
    info.message = error.message
  }
  return info
}

/** Timings of a request, in performance.now() milliseconds; text times are null for generate(). */
export interface Timings {
  t0: number
  firstTextAt: number | null
  lastTextAt: number | null
}

function tokensPerSecond(out: BackendOutput, latencyMs: number, t: Timings): number {
  if (out.evalDurationNs !== undefined && out.evalDurationNs > 0)
    return (out.completionTokens / out.evalDurationNs) * 1e9
  // Streams: decode speed between first and last text; else completion tokens over wall time.
  const { firstTextAt, lastTextAt } = t
  if (firstTextAt !== null && lastTextAt !== null && lastTextAt > firstTextAt && out.completionTokens > 1) {
    return ((out.completionTokens - 1) * 1000) / (lastTextAt - firstTextAt)
  }
  return latencyMs > 0 ? (out.completionTokens * 1000) / latencyMs : 0
}

export function buildResult(
  out: BackendOutput,
  where: AttemptWhere,
  attempts: AttemptInfo[],
  t: Timings,
): GenerateResult {
  const latencyMs = performance.now() - t.t0
  const result: GenerateResult = {
    response: out.text,
    model: where.model,
    backend: where.backend,
    endpoint: where.endpoint,
    doneReason: out.doneReason,
    usage: { promptTokens: out.promptTokens, completionTokens: out.completionTokens },
    latencyMs,
    tokensPerSecond: tokensPerSecond(out, latencyMs, t),
    attempts,
  }
  if (t.firstTextAt !== null) result.timeToFirstTokenMs = t.firstTextAt - t.t0
  if (out.loadDurationNs !== undefined && out.loadDurationNs > 0) result.loadMs = out.loadDurationNs / 1e6
  return result
}

export interface MetricContext {
  timestampSec: number
  streamed: boolean
  /** null: stopped before the first config load finished. */
  origin: ConfigSnapshot['origin'] | null
  fallback: boolean
}

export function metricFrom(
  req: GenerateRequest,
  ctx: MetricContext,
  attempts: readonly AttemptInfo[],
  result: GenerateResult | null,
  error: RouterError | null,
  t: Timings,
): MetricRecord {
  const md = req.metadata
  const last = attempts[attempts.length - 1]
  const latencyMs = result?.latencyMs ?? performance.now() - t.t0
  return {
    timestamp: ctx.timestampSec,
    model: result?.model ?? last?.model ?? req.model ?? 'default',
    backend: result?.backend ?? last?.backend ?? 'none',
    endpoint: result?.endpoint ?? last?.endpoint ?? null,
    latency_seconds: latencyMs / 1000,
    tokens: result?.usage.completionTokens ?? 0,
    tokens_per_second: result?.tokensPerSecond ?? 0,
    prompt_tokens: result?.usage.promptTokens ?? 0,
    request_id: md?.requestId ?? null,
    session_id: md?.sessionId ?? null,
    user_id: md?.userId ?? null,
    zone: md?.zone ?? null,
    intent: md?.intent ?? null,
    outcome: result !== null ? 'success' : error?.code === 'ABORTED' ? 'aborted' : 'error',
    error_code: error?.code ?? null,
    attempts: attempts.length,
    fallback: ctx.fallback,
    streamed: ctx.streamed,
    time_to_first_token_seconds: t.firstTextAt === null ? null : (t.firstTextAt - t.t0) / 1000,
    load_seconds: result?.loadMs === undefined ? null : result.loadMs / 1000,
    config_origin: ctx.origin,
  }
}
