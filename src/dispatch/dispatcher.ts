/**
 * The failure policy: walk the candidates (records of the model, then the `auto` record's second
 * backend, then fallback models), retry transient failures with backoff, honour Retry-After, skip
 * open circuits, and stop at once on the caller's own errors, aborts and the deadline.
 */
import type { BackendOutput, StreamDecoder, WireRequest } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import { type AttemptInfo, ErrorCode, isRouterError, RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { Env } from '../internal/env.js'
import type { ResolvedOptions } from '../options.js'
import type { BackendKind, GenerateRequest, GenerateResult, MetricRecord, RouterEvents } from '../types.js'
import { type AttemptContext, RequestControl, sendAttempt } from './attempt.js'
import { backoffDelay } from './backoff.js'
import type { CircuitRegistry } from './circuit.js'
import { policyOf } from './classify.js'
import { type Candidate, defaultCandidates, type RouteTable, type Target } from './routes.js'

export interface DispatchCore {
  options: ResolvedOptions
  env: Env
  clock: Clock
  circuits: CircuitRegistry
  attemptContext: AttemptContext
  routes(snapshot: ConfigSnapshot): RouteTable
  /** Emits only when someone listens, so unobserved events cost one check. */
  emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void
  listens(event: keyof RouterEvents): boolean
  recordMetric(metric: MetricRecord): void
  /** Requests in flight, so `close()` can stop the ones that outlive its grace period. */
  active: Set<RequestControl>
}

/** Hooks a streaming run passes in; a plain generate passes none. */
export interface StreamHooks {
  createDecoder(target: Target): StreamDecoder
  onText: (text: string) => void
  /** True once this run has delivered any text: from then on a failure is STREAM_INTERRUPTED. */
  delivered(): number
  /** Called when an attempt starts, so the stream knows which backend answers. */
  onAttempt(candidate: Candidate, target: Target): void
  /** performance.now() of the first text, for time to first token. */
  firstTextAt(): number | null
}

/**
 * The candidates a model resolves to before any fallback models: its own records by priority; no model
 * means the highest-priority record; a model without records goes to the default backend unless
 * `strictModels`. Shared by requests and `router.resolve()`.
 */
export function primaryCandidates(
  core: Pick<DispatchCore, 'options' | 'env' | 'circuits'>,
  table: RouteTable,
  model: string | undefined,
): { list: Candidate[]; usesDefault: boolean } {
  const own =
    model === undefined
      ? table.ordered[0] && table.byModel.get(table.ordered[0].model)
      : table.byModel.get(model)
  if (own) return { list: own, usesDefault: false }
  if (model !== undefined && core.options.strictModels) {
    throw new RouterError(
      ErrorCode.MODEL_NOT_CONFIGURED,
      `No enabled backend record for model "${model}" (strictModels is on); add a record in the admin API or request a configured model`,
      { model },
    )
  }
  return { list: defaultCandidates(table, model, core.env, core.circuits), usesDefault: true }
}

function resolveCandidates(core: DispatchCore, snapshot: ConfigSnapshot, req: GenerateRequest): Candidate[] {
  const table = core.routes(snapshot)
  const primary = primaryCandidates(core, table, req.model).list
  const fb = req.fallbackModels
  if (fb === undefined) return primary
  const chain = primary.slice()
  const seen = new Set(chain.map((c) => c.record))
  const add = (list: readonly Candidate[] | undefined) => {
    if (!list) return
    for (const c of list) {
      if (!seen.has(c.record)) {
        seen.add(c.record)
        chain.push(c)
      }
    }
  }
  if (fb === 'priority') add(table.ordered)
  else
    for (const name of fb)
      add(table.byModel.get(name) ?? defaultCandidates(table, name, core.env, core.circuits))
  return chain
}

function toWire(req: GenerateRequest, candidate: Candidate, target: Target, stream: boolean): WireRequest {
  const record = candidate.record
  const wire: WireRequest = { prompt: req.prompt, stream }
  if (req.system !== undefined) wire.system = req.system
  const temperature = req.temperature ?? record.temperature_default
  if (temperature !== undefined) wire.temperature = temperature
  const maxTokens = req.maxTokens ?? record.max_tokens
  if (maxTokens !== undefined) wire.maxTokens = maxTokens
  if (req.stop !== undefined) wire.stop = req.stop
  if (req.options !== undefined) wire.options = req.options
  if (target.sendModel !== undefined) wire.model = target.sendModel
  return wire
}

function attemptInfo(
  candidate: Candidate,
  target: Target,
  n: number,
  startedAt: number,
  error: RouterError | null,
): AttemptInfo {
  const info: AttemptInfo = {
    model: candidate.model,
    backend: target.kind,
    endpoint: target.endpoint,
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

function withAttempts(error: RouterError, attempts: AttemptInfo[], delivered?: number): RouterError {
  return new RouterError(error.code, error.message, {
    cause: error.cause ?? undefined,
    ...(error.status === undefined ? {} : { status: error.status }),
    ...(error.backend === undefined ? {} : { backend: error.backend }),
    ...(error.endpoint === undefined ? {} : { endpoint: error.endpoint }),
    ...(error.model === undefined ? {} : { model: error.model }),
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
    ...(delivered === undefined
      ? error.delivered === undefined
        ? {}
        : { delivered: error.delivered }
      : { delivered }),
    attempts,
  })
}

function allFailed(
  model: string | undefined,
  attempts: AttemptInfo[],
  last: RouterError | null,
  defaultReason?: string,
): RouterError {
  const summary = attempts
    .map(
      (a) => `${a.backend} ${a.endpoint} (${a.model}) -> ${a.code ?? 'ok'}${a.status ? ` ${a.status}` : ''}`,
    )
    .join('; ')
  return new RouterError(
    ErrorCode.ALL_BACKENDS_FAILED,
    `Every backend for model "${model ?? '(default)'}" failed: ${summary || 'no candidates'}.${defaultReason === undefined ? '' : ` The default backend was used because ${defaultReason}.`} See error.attempts; the last error is the cause`,
    { cause: last ?? undefined, attempts, ...(model === undefined ? {} : { model }) },
  )
}

export interface MetricContext {
  timestampSec: number
  streamed: boolean
  origin: ConfigSnapshot['origin']
}

function metricFrom(
  req: GenerateRequest,
  ctx: MetricContext,
  latencyMs: number,
  outcome: MetricRecord['outcome'],
  attempts: AttemptInfo[],
  result: GenerateResult | null,
  error: RouterError | null,
  ttftMs: number | null,
  fallback: boolean,
): MetricRecord {
  const md = req.metadata
  const last = attempts[attempts.length - 1]
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
    outcome,
    error_code: error?.code ?? null,
    attempts: attempts.length,
    fallback,
    streamed: ctx.streamed,
    time_to_first_token_seconds: ttftMs === null ? null : ttftMs / 1000,
    load_seconds: result?.loadMs === undefined ? null : result.loadMs / 1000,
    config_origin: ctx.origin,
  }
}

function tokensPerSecond(
  out: BackendOutput,
  latencyMs: number,
  ttftMs: number | null,
  lastTextMs: number | null,
): number {
  if (out.evalDurationNs !== undefined && out.evalDurationNs > 0)
    return (out.completionTokens / out.evalDurationNs) * 1e9
  // Streams: decode speed between first and last text; else completion tokens over wall time.
  if (ttftMs !== null && lastTextMs !== null && lastTextMs > ttftMs && out.completionTokens > 1) {
    return ((out.completionTokens - 1) * 1000) / (lastTextMs - ttftMs)
  }
  return latencyMs > 0 ? (out.completionTokens * 1000) / latencyMs : 0
}

/**
 * Runs one request through the candidate chain. `stream` is null for generate(). Resolves with the
 * result, or rejects with exactly one RouterError; always records exactly one metric.
 */
export async function runRequest(
  core: DispatchCore,
  req: GenerateRequest,
  snapshotOrPromise: ConfigSnapshot | Promise<ConfigSnapshot>,
  stream: StreamHooks | null,
  t0: number,
  lastTextAt: () => number | null,
  onControl?: (control: RequestControl) => void,
): Promise<GenerateResult> {
  const timestampSec = core.clock.now() / 1000
  const snapshot = snapshotOrPromise instanceof Promise ? await snapshotOrPromise : snapshotOrPromise
  const mctx: MetricContext = { timestampSec, streamed: stream !== null, origin: snapshot.origin }
  const attempts: AttemptInfo[] = []
  let fallback = false
  let control: RequestControl | null = null
  try {
    const candidates = resolveCandidates(core, snapshot, req)
    const first = candidates[0]
    const recordTimeout = first?.record.timeout_seconds
    const timeoutMs =
      req.timeoutMs ?? (recordTimeout !== undefined ? recordTimeout * 1000 : core.options.defaultTimeoutMs)
    control = new RequestControl(core.clock, core.clock.now() + timeoutMs, timeoutMs, req.signal)
    core.active.add(control)
    onControl?.(control)
    if (req.signal?.aborted) {
      control.stop(
        new RouterError(ErrorCode.ABORTED, 'The request was aborted by its AbortSignal', {
          cause: req.signal.reason,
        }),
      )
    }
    const retry = core.options.retry
    const circuitOpts = core.circuits.options
    let last: RouterError | null = null
    let previous: { model: string; backend: BackendKind; endpoint: string } | null = null

    for (const candidate of candidates) {
      for (const target of candidate.targets) {
        if (control.stopped) throw control.stopped
        const circuit = target.circuit
        if (circuit !== null && !circuit.allow(core.clock.now())) {
          last = new RouterError(
            ErrorCode.CIRCUIT_OPEN,
            `${target.kind} at ${target.endpoint} is cooling down after repeated failures; skipped without connecting`,
            { backend: target.kind, endpoint: target.endpoint, model: candidate.model },
          )
          attempts.push(attemptInfo(candidate, target, 0, performance.now(), last))
          continue
        }
        if (previous !== null && last !== null) {
          fallback = true
          if (core.listens('request:fallback')) {
            core.emit('request:fallback', {
              from: previous,
              to: { model: candidate.model, backend: target.kind, endpoint: target.endpoint },
              code: last.code,
            })
          }
        }
        const body = target.adapter.encode(toWire(req, candidate, target, stream !== null))
        for (let n = 1; ; n++) {
          const startedAt = performance.now()
          stream?.onAttempt(candidate, target)
          const decoder = stream === null ? null : stream.createDecoder(target)
          let out: BackendOutput
          try {
            out = await sendAttempt(
              core.attemptContext,
              target,
              candidate.model,
              body,
              control,
              decoder,
              stream?.onText ?? null,
            )
          } catch (caught) {
            const error = isRouterError(caught)
              ? caught
              : new RouterError(ErrorCode.BACKEND_ERROR, 'Unexpected failure while talking to the backend', {
                  cause: caught,
                })
            attempts.push(attemptInfo(candidate, target, n, startedAt, error))
            last = error
            const policy = policyOf(error.code)
            // A reset before any response on the first try is most likely a pooled socket the server
            // had just closed: replay once at once, and do not hold it against the endpoint.
            const resetRetry =
              (error as { resetBeforeResponse?: boolean }).resetBeforeResponse === true && n === 1
            if (circuit !== null && circuitOpts !== null && !resetRetry) {
              if (policy.unhealthy) {
                if (
                  circuit.failure(error.code, core.clock.now(), circuitOpts) &&
                  core.listens('circuit:open')
                ) {
                  core.emit('circuit:open', circuit.info())
                }
              } else circuit.release()
            }
            // sendAttempt may have stopped the control; TS narrowed it at the loop head.
            const stopped = control.stopped as RouterError | null
            if (stopped !== null) {
              const delivered = stream?.delivered() ?? 0
              if (stopped.code === ErrorCode.TIMEOUT) {
                throw new RouterError(
                  ErrorCode.TIMEOUT,
                  `The request for model "${candidate.model}" exceeded its ${timeoutMs} ms deadline (last tried ${target.kind} at ${target.endpoint}); raise timeoutMs or the record's timeout_seconds`,
                  {
                    attempts,
                    model: candidate.model,
                    backend: target.kind,
                    endpoint: target.endpoint,
                    ...(delivered > 0 ? { delivered } : {}),
                  },
                )
              }
              throw withAttempts(stopped, attempts, delivered > 0 ? delivered : undefined)
            }
            const delivered = stream?.delivered() ?? 0
            if (delivered > 0) {
              throw new RouterError(
                ErrorCode.STREAM_INTERRUPTED,
                `The stream from ${target.kind} at ${target.endpoint} failed after ${delivered} characters were delivered (${error.code}: ${error.message}); the partial answer cannot be resumed elsewhere`,
                {
                  cause: error,
                  attempts,
                  delivered,
                  backend: target.kind,
                  endpoint: target.endpoint,
                  model: candidate.model,
                },
              )
            }
            if (!policy.retry && !policy.fallover) throw withAttempts(error, attempts)
            if (resetRetry && !control.stopped) continue
            if (policy.retry && n <= retry.maxRetries) {
              const asked = error.retryAfterMs
              if (asked !== undefined && asked > retry.maxRetryAfterMs) break
              const delay = asked ?? backoffDelay(n, retry.baseDelayMs, retry.maxDelayMs, core.clock.random)
              if (core.clock.now() + delay >= control.deadline) break
              if (core.listens('request:retry')) {
                core.emit('request:retry', {
                  model: candidate.model,
                  backend: target.kind,
                  endpoint: target.endpoint,
                  attempt: n,
                  delayMs: delay,
                  code: error.code,
                })
              }
              await control.sleep(delay)
              if (circuit !== null && !circuit.allow(core.clock.now())) break
              continue
            }
            break
          }
          // Success.
          if (circuit?.success() && core.listens('circuit:close')) core.emit('circuit:close', circuit.info())
          attempts.push(attemptInfo(candidate, target, n, startedAt, null))
          const latencyMs = performance.now() - t0
          const firstText = stream?.firstTextAt() ?? null
          const ttftMs = firstText === null ? null : firstText - t0
          const lastText = lastTextAt()
          const result: GenerateResult = {
            response: out.text,
            model: candidate.model,
            backend: target.kind,
            endpoint: target.endpoint,
            doneReason: out.doneReason,
            usage: { promptTokens: out.promptTokens, completionTokens: out.completionTokens },
            latencyMs,
            tokensPerSecond: tokensPerSecond(
              out,
              latencyMs,
              ttftMs,
              lastText === null ? null : lastText - t0,
            ),
            attempts,
          }
          if (ttftMs !== null) result.timeToFirstTokenMs = ttftMs
          if (out.loadDurationNs !== undefined && out.loadDurationNs > 0)
            result.loadMs = out.loadDurationNs / 1e6
          core.recordMetric(
            metricFrom(req, mctx, latencyMs, 'success', attempts, result, null, ttftMs, fallback),
          )
          return result
        }
        previous = { model: candidate.model, backend: target.kind, endpoint: target.endpoint }
      }
    }
    throw allFailed(req.model, attempts, last, candidates[0]?.defaultReason)
  } catch (caught) {
    const error = isRouterError(caught)
      ? caught
      : new RouterError(ErrorCode.BACKEND_ERROR, 'Unexpected internal failure', { cause: caught })
    const latencyMs = performance.now() - t0
    const firstText = stream?.firstTextAt() ?? null
    core.recordMetric(
      metricFrom(
        req,
        mctx,
        latencyMs,
        error.code === ErrorCode.ABORTED ? 'aborted' : 'error',
        attempts,
        null,
        error,
        firstText === null ? null : firstText - t0,
        fallback,
      ),
    )
    throw error
  } finally {
    if (control !== null) {
      control.dispose()
      core.active.delete(control)
    }
  }
}
