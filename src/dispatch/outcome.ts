/**
 * What a request leaves behind: its `AttemptInfo` entries, the result of a success (the fields every
 * operation shares are filled in here), and exactly one `MetricRecord` whichever way it ended. Pure
 * assembly; the dispatcher decides when.
 */
import type { BackendOutput } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import type { AttemptInfo, RouterError } from '../errors.js'
import type { BackendKind, MetricRecord } from '../types.js'
import type { DispatchRequest, DispatchResult, OperationName } from './operation.js'

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

/** The counters of an adapter output that the shared result fields are computed from. */
export type OutputCounts = Pick<
  BackendOutput,
  'promptTokens' | 'completionTokens' | 'evalDurationNs' | 'loadDurationNs'
>

function tokensPerSecond(out: OutputCounts, latencyMs: number, t: Timings): number {
  if (out.evalDurationNs !== undefined && out.evalDurationNs > 0)
    return (out.completionTokens / out.evalDurationNs) * 1e9
  // Streams: decode speed between first and last text; else completion tokens over wall time.
  const { firstTextAt, lastTextAt } = t
  if (firstTextAt !== null && lastTextAt !== null && lastTextAt > firstTextAt && out.completionTokens > 1) {
    return ((out.completionTokens - 1) * 1000) / (lastTextAt - firstTextAt)
  }
  return latencyMs > 0 ? (out.completionTokens * 1000) / latencyMs : 0
}

/**
 * Completes an operation's result: `head` holds its own fields (generate: `response`; chat: `message`;
 * put first so they lead when printed), this adds where it ran, usage, timings and attempts.
 */
export function buildResult<Head extends object>(
  head: Head,
  out: OutputCounts,
  where: AttemptWhere,
  attempts: AttemptInfo[],
  t: Timings,
): Head & DispatchResult {
  const latencyMs = performance.now() - t.t0
  const result = head as Head & DispatchResult
  result.model = where.model
  result.backend = where.backend
  result.endpoint = where.endpoint
  result.usage = { promptTokens: out.promptTokens, completionTokens: out.completionTokens }
  result.latencyMs = latencyMs
  result.tokensPerSecond = tokensPerSecond(out, latencyMs, t)
  result.attempts = attempts
  if (t.firstTextAt !== null) result.timeToFirstTokenMs = t.firstTextAt - t.t0
  if (out.loadDurationNs !== undefined && out.loadDurationNs > 0) result.loadMs = out.loadDurationNs / 1e6
  return result
}

export interface MetricContext {
  timestampSec: number
  operation: OperationName
  streamed: boolean
  /** null: stopped before the first config load finished. */
  origin: ConfigSnapshot['origin'] | null
  fallback: boolean
}

export function metricFrom(
  req: DispatchRequest,
  ctx: MetricContext,
  attempts: readonly AttemptInfo[],
  result: DispatchResult | null,
  error: RouterError | null,
  t: Timings,
): MetricRecord {
  const md = req.metadata
  const last = attempts[attempts.length - 1]
  const latencyMs = result?.latencyMs ?? performance.now() - t.t0
  const record: MetricRecord = {
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
    operation: ctx.operation,
    cost: result?.cost ?? null,
  }
  // Pools: why the member that answered (or failed last) was chosen.
  if (last?.selectedBy !== undefined) record.selected_by = last.selectedBy
  return record
}
