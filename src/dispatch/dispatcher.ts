/**
 * Runs a request through its candidates (records of the model, then the `auto` record's second
 * backend, then fallback models). What to do after a failure is decided in policy.ts, circuit
 * bookkeeping is a CircuitGuard per target, results and metrics are assembled in outcome.ts.
 */
import type { ProtocolAdapter, StreamDecoder } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import { type AttemptInfo, ErrorCode, isRouterError, RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { Env } from '../internal/env.js'
import { gateHost, LimitGate } from '../limits/gate.js'
import type { Limiter } from '../limits/limiter.js'
import type { ResolvedOptions } from '../options.js'
import type { SessionPins } from '../pool/affinity.js'
import type { MemberHooks } from '../pool/health.js'
import type { LoadRegistry, MemberState } from '../pool/load.js'
import { type PickReason, type Pool, type PoolMember, promptTokensAtLeast } from '../pool/select.js'
import type { MemberSignals } from '../pool/signals.js'
import { type PoolHost, walkPool } from '../pool/walk.js'
import type { Capability, MetricRecord, RouterEvents } from '../types.js'
import {
  type AttemptContext,
  type AttemptLimits,
  attemptLimits,
  RequestControl,
  sendAttempt,
} from './attempt.js'
import { unableFor } from './capabilities.js'
import { type CircuitEvents, CircuitGuard, type CircuitRegistry } from './circuit.js'
import { costOf } from './cost.js'
import type { DispatchRequest, DispatchResult, Operation } from './operation.js'
import { type AttemptWhere, attemptInfo, type MetricContext, metricFrom, type Timings } from './outcome.js'
import { chargesCircuit, classifyFailure, type Decision, decide, type Failure } from './policy.js'
import { type Candidate, defaultCandidates, type RouteTable, type Target } from './routes.js'

export interface DispatchCore {
  options: ResolvedOptions
  /** Endpoint limits through the store; null when no router-level limiter exists (tests of the bare core). */
  limiter?: Limiter | null
  env: Env
  clock: Clock
  circuits: CircuitRegistry
  attemptContext: AttemptContext
  routes(snapshot: ConfigSnapshot): RouteTable
  /** Emits only when someone listens, so unobserved events cost one check. */
  emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void
  listens(event: keyof RouterEvents): boolean
  recordMetric(metric: MetricRecord): void
  /** Where circuit guards report open/close (the router's events). */
  circuitEvents: CircuitEvents
  /** Decoders may use the learned frame-shape fast path (bench switch; default true). */
  fastFrames: boolean
  /** Requests in flight, so `close()` can stop the ones that outlive its grace period. */
  active: Set<RequestControl>
  /** Pools: requests in flight and recent latency per endpoint, the wait queues (src/pool/load.ts). */
  load: LoadRegistry
  /** Pools: health and warmth of members (src/pool/signals.ts). */
  signals: MemberSignals
  /** Pools: where each session went (src/pool/affinity.ts). */
  pins: SessionPins
  /** Member health (drain, probes): skips endpoints out of rotation, counts attempts, hears outcomes. */
  members?: MemberHooks
  /** The route table of the config in use now (pools: a request waiting for a slot takes joined members). */
  currentRoutes?(): RouteTable | null
}

/** Hooks a streaming run passes in; a plain (one-answer) run passes none. */
export interface StreamHooks<Out = unknown, Delta = string> {
  createDecoder(adapter: ProtocolAdapter<Out, Delta>): StreamDecoder<Out, Delta>
  onText: (delta: Delta) => void
  /** True once this run has delivered any text: from then on a failure is STREAM_INTERRUPTED. */
  delivered(): number
  /** Called when an attempt starts, so the stream knows which backend answers. */
  onAttempt(candidate: Candidate, target: Target): void
  /** performance.now() of the first text, for time to first token. */
  firstTextAt(): number | null
  /** performance.now() of the latest text, for decode speed. */
  lastTextAt(): number | null
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
      ? table.byModel.get(table.defaultModel ?? (table.ordered[0]?.model as string))
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

function resolveCandidates(core: DispatchCore, snapshot: ConfigSnapshot, req: DispatchRequest): Candidate[] {
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
  if (fb === 'priority') {
    // Seed 003: a provider's models are tried in fallback_priority order before other providers'.
    const provider = primary[0]?.record.provider
    if (provider !== undefined) add(table.ordered.filter((c) => c.record.provider === provider))
    add(table.ordered)
  } else
    for (const name of fb)
      add(table.byModel.get(name) ?? defaultCandidates(table, name, core.env, core.circuits))
  return chain
}

/** The error of a request that ran out of candidates: the one place its message is built. */
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

function asRouterError(caught: unknown): RouterError {
  return isRouterError(caught)
    ? caught
    : new RouterError(ErrorCode.BACKEND_ERROR, 'Unexpected failure while talking to the backend', {
        cause: caught,
      })
}

/** One request's state while it walks its candidates. */
class RequestRun<Req extends DispatchRequest, Out, Res extends DispatchResult, Delta>
  implements PoolHost<Res>
{
  readonly attempts: AttemptInfo[] = []
  /** The last failure that moved the request on, and where it happened (for events and the final error). */
  last: RouterError | null = null
  previous: AttemptWhere | null = null
  fallback = false
  /** Endpoint limits of this request (null: no limiter). */
  readonly gate: LimitGate | null
  /** What the request needs from a record's declared capabilities (read once, checked per candidate). */
  readonly needs: readonly Capability[]
  /** Whether the current pass sent anything (false: every target was skipped by a limit, circuit or rotation). */
  private sent = false

  constructor(
    readonly core: DispatchCore,
    readonly op: Operation<Req, Out, Res, Delta>,
    readonly req: Req,
    readonly stream: StreamHooks<Out, Delta> | null,
    readonly control: RequestControl,
    readonly t0: number,
  ) {
    this.gate = core.limiter ? new LimitGate(core.limiter, req, gateHost(core, control)) : null
    this.needs = op.needs(req)
  }

  /** Why `candidate` cannot serve this request (a capability its record lacks), or null. */
  unable(candidate: Candidate): string | null {
    return unableFor(candidate, this.needs)
  }

  delivered(): number {
    return this.stream?.delivered() ?? 0
  }

  decide(failure: Failure, attempt: number, where: AttemptWhere): Decision {
    const { core, control } = this
    return decide({
      failure,
      attempt,
      timeLeftMs: control.deadline - core.clock.now(),
      delivered: this.delivered(),
      retry: core.options.retry,
      random: () => core.clock.random(),
      where,
      deadlineMs: control.timeoutMs,
    })
  }

  /** The error for a request that stopped (deadline, abort, close) while at `where`. */
  stoppedError(where: AttemptWhere): RouterError {
    const stopped = this.control.stopped as RouterError
    const d = this.decide({ error: stopped, stopped: true, staleSocket: false }, 1, where)
    return (d.action === 'fail' ? d.error : stopped).withDetails({ attempts: this.attempts })
  }

  guard(target: Target): CircuitGuard {
    const { core } = this
    return new CircuitGuard(target.circuit, core.circuits.options, core.clock, core.circuitEvents)
  }

  /**
   * Walks the candidates; resolves with the first success, throws the request's one error. When
   * targets were refused by their limits (rpm, tpm, token_budget, fleet-wide max_concurrency), waits
   * within the deadline and the wait bound, and walks again, trying only those.
   */
  async walk(candidates: Candidate[]): Promise<Res> {
    for (;;) {
      this.sent = false
      const out = await this.walkOnce(candidates)
      if (out !== null) return out
      const wait = this.gate?.nextWait(this.req.model, this.attempts, !this.sent) ?? null
      if (wait === null)
        throw allFailed(this.req.model, this.attempts, this.last, candidates[0]?.defaultReason)
      await (this.gate as LimitGate)
        .sleep((ms) => this.control.sleep(ms), wait)
        .catch(() => {
          throw this.stoppedError(this.previous ?? (this.attempts.at(-1) as AttemptWhere))
        })
    }
  }

  private async walkOnce(candidates: Candidate[]): Promise<Res | null> {
    const tokens = this.promptTokens(candidates)
    let pools: Pool[] | null = null
    for (const candidate of candidates) {
      // A pool's members are chosen among themselves (src/pool/walk.ts), once per request.
      const pool = candidate.pool
      if (pool) {
        if (pools?.includes(pool)) continue
        if (pools === null) pools = [pool]
        else pools.push(pool)
        const out = await walkPool(pool, tokens, this)
        if (out !== null) return out
        continue
      }
      const unable = this.unable(candidate)
      if (unable !== null) {
        this.skip(candidate, unable)
        continue
      }
      const window = candidate.record.context_length
      if (tokens > 0 && window !== undefined && tokens > window) {
        this.skipTooLong(candidate, tokens)
        continue
      }
      const out = await this.walkCandidate(candidate, false, undefined)
      if (out !== null) return out
    }
    return null
  }

  /**
   * Walks one candidate's targets (an `auto` record has two). `heldFirst`: a pool already holds the
   * first target's slot; every other target takes one here, released when it is done.
   */
  private async walkCandidate(
    candidate: Candidate,
    heldFirst: boolean,
    selectedBy: PickReason | undefined,
  ): Promise<Res | null> {
    const { core } = this
    const limits = attemptLimits(
      core.options,
      this.req,
      candidate.record.timeout_seconds,
      this.stream !== null,
    )
    const targets = candidate.targets
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i] as Target
      const where: AttemptWhere = {
        model: candidate.model,
        backend: target.kind,
        endpoint: target.endpoint,
      }
      if (this.control.stopped) throw this.stoppedError(this.previous ?? where)
      const gate = this.gate
      if (gate !== null && !gate.includes(target)) continue
      const skipped = core.members?.skip(where) ?? null
      if (skipped !== null) {
        this.last = skipped
        this.attempts.push(attemptInfo(where, 0, performance.now(), skipped))
        continue
      }
      const guard = this.guard(target)
      if (!guard.allow()) {
        this.last = new RouterError(
          ErrorCode.CIRCUIT_OPEN,
          `${target.kind} at ${target.endpoint} is cooling down after repeated failures; skipped without connecting`,
          where,
        )
        this.attempts.push(attemptInfo(where, 0, performance.now(), this.last))
        continue
      }
      const admitted = gate === null ? null : await gate.admit(candidate, target, where)
      if (admitted instanceof RouterError) {
        guard.release()
        this.last = admitted
        this.attempts.push(attemptInfo(where, 0, performance.now(), admitted))
        continue
      }
      if (this.previous !== null && this.last !== null) this.announceFallback(where, this.last)
      this.sent = true
      let load = target.load
      if (load === undefined) {
        load = core.load.member(target.endpoint)
        target.load = load
      }
      const held = i === 0 && heldFirst
      if (!held) load.inFlight++
      let out: Res | null = null
      try {
        out = await this.tryTarget(candidate, target, where, guard, limits, selectedBy)
      } finally {
        if (!held) load.release()
        admitted?.done(out)
      }
      if (out !== null) return out
      this.previous = where
    }
    return null
  }

  /** Attempts one target until it answers (result), the policy moves on (null) or fails (throws). */
  private async tryTarget(
    candidate: Candidate,
    target: Target,
    where: AttemptWhere,
    guard: CircuitGuard,
    limits: AttemptLimits,
    selectedBy: PickReason | undefined,
  ): Promise<Res | null> {
    const { core, control, stream, op } = this
    const adapter = op.adapter(target.kind)
    const path = target.basePath + adapter.path
    const body = op.encode(this.req, candidate, target, stream !== null)
    for (let n = 1; ; n++) {
      const startedAt = performance.now()
      stream?.onAttempt(candidate, target)
      const decoder = stream === null ? null : stream.createDecoder(adapter)
      core.members?.started(target.endpoint)
      try {
        const out = await sendAttempt(
          core.attemptContext,
          target,
          adapter,
          path,
          candidate.model,
          body,
          control,
          decoder,
          stream?.onText ?? null,
          limits,
        )
        core.members?.ended(target.endpoint, true)
        guard.success()
        const info = attemptInfo(where, n, startedAt, null)
        if (selectedBy !== undefined) info.selectedBy = selectedBy
        this.attempts.push(info)
        ;(target.load as MemberState).observe(info.latencyMs)
        const result = op.result(out, where, this.attempts, this.timings())
        const cost = costOf(candidate.record, result.usage)
        if (cost !== undefined) result.cost = cost
        return result
      } catch (caught) {
        const error = asRouterError(caught)
        const info = attemptInfo(where, n, startedAt, error)
        if (selectedBy !== undefined) info.selectedBy = selectedBy
        this.attempts.push(info)
        // Wall time, not the injected clock: "fast" is a round trip on the wire (policy.ts).
        const failure = classifyFailure(error, control.stopped, n, performance.now() - startedAt)
        const charged = chargesCircuit(failure)
        core.members?.ended(target.endpoint, charged ? false : null)
        if (charged) guard.failure(error.code)
        else guard.release()
        const decision = this.decide(failure, n, where)
        if (decision.action === 'fail') throw decision.error.withDetails({ attempts: this.attempts })
        this.last = error
        if (decision.action === 'next') return null
        // A stale keep-alive socket is replayed silently; every other retry is announced.
        if (!failure.staleSocket) this.announceRetry(where, n, decision.delayMs, error)
        if (decision.delayMs > 0) {
          try {
            await control.sleep(decision.delayMs)
          } catch {
            throw this.stoppedError(where)
          }
        }
        if (!guard.allow()) return null
      }
    }
  }

  timings(): Timings {
    const stream = this.stream
    return {
      t0: this.t0,
      firstTextAt: stream?.firstTextAt() ?? null,
      lastTextAt: stream?.lastTextAt() ?? null,
    }
  }

  /**
   * Before anything is sent: when no candidate can serve the request (each lacks a capability it
   * needs), fail with NO_CAPABLE_BACKEND, listing every skipped target in the attempts.
   */
  checkCapable(candidates: readonly Candidate[]): void {
    if (candidates.length === 0) return
    const reasons: string[] = []
    for (const candidate of candidates) {
      const why = this.unable(candidate)
      if (why === null) return
      reasons.push(why)
    }
    for (let i = 0; i < candidates.length; i++) this.skip(candidates[i]!, reasons[i]!)
    const model = this.req.model
    throw new RouterError(
      ErrorCode.NO_CAPABLE_BACKEND,
      `No backend for model "${model ?? '(default)'}" can serve this ${this.op.name} request: ${reasons.join('; ')}. Declare the capability on a record that has it (capabilities in the admin config) or drop that part of the request; nothing was sent`,
      { attempts: this.attempts, ...(model === undefined ? {} : { model }) },
    )
  }

  /**
   * Lower bound of the prompt's tokens when some candidate declares a `context_length`, else 0 (no
   * check). When none can hold it, fails with CONTEXT_TOO_LONG before anything is sent.
   */
  private promptTokens(candidates: readonly Candidate[]): number {
    let largest = 0
    let unlimited = false
    for (const c of candidates) {
      const window = c.record.context_length
      if (window === undefined) unlimited = true
      else if (window > largest) largest = window
    }
    if (largest === 0) return 0
    const tokens = this.countTokens()
    if (unlimited || tokens <= largest) return tokens
    for (const c of candidates) this.skipTooLong(c, tokens)
    const model = this.req.model
    throw new RouterError(
      ErrorCode.CONTEXT_TOO_LONG,
      `The prompt is too long for every backend of model "${model ?? '(default)'}": at least ${tokens} tokens, and the largest context_length is ${largest}. Shorten the prompt, or add a record with a larger context_length; nothing was sent`,
      { attempts: this.attempts, ...(model === undefined ? {} : { model }) },
    )
  }

  private countTokens(): number {
    const chars = this.op.promptChars?.(this.req)
    return chars === undefined ? 0 : promptTokensAtLeast(chars)
  }

  private skipTooLong(candidate: Candidate, tokens: number): void {
    for (const target of candidate.targets) {
      const where = { model: candidate.model, backend: target.kind, endpoint: target.endpoint }
      this.note(
        where,
        new RouterError(
          ErrorCode.CONTEXT_TOO_LONG,
          `The prompt (at least ${tokens} tokens) does not fit the context_length ${candidate.record.context_length} of ${target.endpoint}; skipped without connecting`,
          where,
        ),
      )
    }
  }

  /** Lists a target that was left out (never connected to) in the attempts. */
  private note(where: AttemptWhere, error: RouterError): void {
    this.last ??= error
    this.attempts.push(attemptInfo(where, 0, performance.now(), error))
  }

  // ---- PoolHost: what src/pool/walk.ts reads from this run ----

  get load(): LoadRegistry {
    return this.core.load
  }
  get signals(): MemberSignals {
    return this.core.signals
  }
  get pins(): SessionPins {
    return this.core.pins
  }
  get clock(): Clock {
    return this.core.clock
  }
  get maxQueued(): number {
    return this.core.options.pool.maxQueued
  }
  get model(): string | undefined {
    return this.req.model
  }
  get sessionId(): string | undefined {
    return this.req.metadata?.sessionId
  }
  currentRoutes(): RouteTable | null {
    return this.core.currentRoutes?.() ?? null
  }

  poolUnable(candidate: Candidate): string | null {
    return this.unable(candidate)
  }
  poolSkipUnable(candidate: Candidate, why: string): void {
    this.skip(candidate, why)
  }
  poolOutOfRotation(where: AttemptWhere): RouterError {
    return (
      this.core.members?.skip(where) ??
      new RouterError(
        ErrorCode.MEMBER_DOWN,
        `${where.backend} at ${where.endpoint} is out of rotation; skipped without connecting. router.health() shows why`,
        where,
      )
    )
  }
  poolNote(member: PoolMember, error: RouterError): void {
    this.note(
      { model: member.candidate.model, backend: error.backend ?? 'ollama', endpoint: member.endpoint },
      error,
    )
  }
  poolAttempt(member: PoolMember, reason: PickReason): Promise<Res | null> {
    return this.walkCandidate(member.candidate, true, reason)
  }
  poolStopped(member: PoolMember): RouterError {
    return this.stoppedError(
      this.previous ?? {
        model: member.candidate.model,
        backend: member.candidate.targets[0]?.kind ?? 'ollama',
        endpoint: member.endpoint,
      },
    )
  }

  /** A candidate whose record lacks a capability the request needs: listed in the attempts, never sent. */
  private skip(candidate: Candidate, why: string): void {
    const startedAt = performance.now()
    for (const target of candidate.targets) {
      const where = { model: candidate.model, backend: target.kind, endpoint: target.endpoint }
      const error = new RouterError(ErrorCode.NO_CAPABLE_BACKEND, why, where)
      this.attempts.push(attemptInfo(where, 0, startedAt, error))
    }
  }

  private announceFallback(to: AttemptWhere, last: RouterError): void {
    this.fallback = true
    if (this.core.listens('request:fallback')) {
      this.core.emit('request:fallback', { from: this.previous as AttemptWhere, to, code: last.code })
    }
  }

  private announceRetry(where: AttemptWhere, attempt: number, delayMs: number, error: RouterError): void {
    if (this.core.listens('request:retry'))
      this.core.emit('request:retry', { ...where, attempt, delayMs, code: error.code })
  }
}

/**
 * Runs one request of operation `op` through the candidate chain. `stream` is null for a one-answer
 * call. Resolves with the result, or rejects with exactly one RouterError; records exactly one metric
 * either way.
 */
export async function runRequest<Req extends DispatchRequest, Out, Res extends DispatchResult, Delta>(
  core: DispatchCore,
  op: Operation<Req, Out, Res, Delta>,
  req: Req,
  snapshotOrPromise: ConfigSnapshot | Promise<ConfigSnapshot>,
  stream: StreamHooks<Out, Delta> | null,
  t0: number,
  onControl?: (control: RequestControl) => void,
): Promise<Res> {
  const timestampSec = core.clock.now() / 1000
  // The control exists before the config does: the deadline and the caller's signal also bound the
  // wait for the first config load.
  const control = new RequestControl(core.clock, req.timeoutMs ?? core.options.defaultTimeoutMs, req.signal)
  core.active.add(control)
  onControl?.(control)
  const run = new RequestRun(core, op, req, stream, control, t0)
  // origin stays null when the request is stopped (deadline, abort, close) before the config arrives:
  // it still records its one metric, saying no config was in use.
  const mctx: MetricContext = {
    timestampSec,
    operation: op.name,
    streamed: stream !== null,
    origin: null,
    fallback: false,
  }
  try {
    try {
      const snapshot = await waitForConfig(control, snapshotOrPromise)
      mctx.origin = snapshot.origin
      const candidates = resolveCandidates(core, snapshot, req)
      run.checkCapable(candidates)
      // A record whose timeout_seconds is longer than the default deadline still gets its attempt.
      const first = candidates[0]?.record.timeout_seconds
      if (req.timeoutMs === undefined && first !== undefined) control.extendTo(first * 1000)
      const result = await run.walk(candidates)
      mctx.fallback = run.fallback
      core.recordMetric(metricFrom(req, mctx, run.attempts, result, null, run.timings()))
      return result
    } catch (caught) {
      const error = asRouterError(caught)
      mctx.fallback = run.fallback
      core.recordMetric(metricFrom(req, mctx, run.attempts, null, error, run.timings()))
      throw error
    }
  } finally {
    control.dispose()
    core.active.delete(control)
  }
}

async function waitForConfig(
  control: RequestControl,
  snapshot: ConfigSnapshot | Promise<ConfigSnapshot>,
): Promise<ConfigSnapshot> {
  if (!(snapshot instanceof Promise)) return snapshot
  try {
    return await control.wait(snapshot)
  } catch (error) {
    const stopped = control.stopped as RouterError | null
    if (stopped !== null && error === stopped && stopped.code === ErrorCode.TIMEOUT) {
      throw new RouterError(
        ErrorCode.TIMEOUT,
        `The request exceeded its ${control.timeoutMs} ms deadline while the router was still loading its config from the admin API; raise timeoutMs or admin.timeoutMs`,
      )
    }
    throw error
  }
}
