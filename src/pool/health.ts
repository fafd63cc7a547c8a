/**
 * Member health: who gets traffic. Three inputs, one state per member (endpoint):
 * - drain marks (`router.drain()` / `undrain()`): operator intent, kept for the router's life;
 * - active probes (`healthCheck`, off by default): a failing member leaves rotation; after a probe
 *   succeeds it is let back in, and counts as up again once one real request succeeds there
 *   (`reportOutcome`), so a server that answers `/api/version` but fails generations stays out;
 * - the circuit (passive health, dispatch/circuit.ts), shown as `cooling-down`; it keeps skipping
 *   failing endpoints on its own, with or without probes.
 * Warmth (Ollama `/api/ps`, warmth.ts) is read for members of pools: a lone endpoint has no choice
 * to make, so it gets no background traffic (with probes on, each probe also refreshes its list).
 *
 * Members are the endpoints of the route table in use; `sync()` is called when that table changes
 * (the router's route lookup) and before every probe, so admin changes add and remove members.
 */
import type { Candidate, RouteTable, Target } from '../dispatch/routes.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { BackendKind, MemberHealth, MemberState, RouterEvents } from '../types.js'
import type { HealthCheckSettings, WarmthSettings } from './health-options.js'
import {
  fetchLoadedModels,
  type OpenAIProbePath,
  type ProbeContext,
  type ProbeResult,
  type ProbeTarget,
  probeMember,
} from './probe.js'
import type { ProbeLeader } from './probe-leader.js'
import type { MemberLoad, MemberSignals } from './signals.js'
import { WarmthCache } from './warmth.js'

export interface HealthMonitorOptions {
  clock: Clock
  healthCheck: HealthCheckSettings | null
  warmth: WarmthSettings | null
  /** The route table of the config in use, or null before the first load. */
  currentTable(): RouteTable | null
  /** Headers of a request to `target` (static + auth from the env); throws when a credential is missing. */
  headersFor(target: Target): Record<string, string>
  /** Pool for probes and `/api/ps`, apart from the request pool. */
  probeDispatcher: ProbeContext['dispatcher']
  /** A fleet (Redis): one instance probes each endpoint and the others read its results. */
  leader?: ProbeLeader | null
  emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void
  /** A member came back into rotation (undrained, a probe passed): requests waiting for a slot pick again. */
  backInRotation?(): void
}

/** What the dispatcher calls around each attempt (DispatchCore.members). */
export interface MemberHooks {
  /** The error to record when the endpoint is out of rotation (drained, down by probes); null: go ahead. */
  skip(where: { model: string; backend: BackendKind; endpoint: string }): RouterError | null
  /** An attempt to `endpoint` starts. */
  started(endpoint: string): void
  /** It ended: `ok` true/false for a verdict on the member (a failure that charges the circuit), null for none. */
  ended(endpoint: string, ok: boolean | null): void
}

type ProbeState = 'unknown' | 'up' | 'down' | 'recovering'

interface Member {
  endpoint: string
  kind: BackendKind
  target: Target
  models: Set<string>
  /** An Ollama member of a pool (same model and priority as another record): warmth is fetched. */
  pooled: boolean
  probe: ProbeState
  failures: number
  probeReason: string | null
  /** When the member went down (probe), for `member:up`'s `downMs`. */
  downAt: number | null
  state: MemberState
  since: number
  lastProbe: MemberHealth['lastProbe']
  openaiPath: OpenAIProbePath
  timer: unknown
  probing: boolean
  /** `at` of the fleet leader's result applied last (each is applied once). */
  sharedAt: number
}

const DRAINED_REASON = 'drained with router.drain(); undrain() puts it back'
const RECOVERING_REASON = 'a probe succeeded: back in rotation, up again once one request succeeds there'

function normalizeEndpoint(endpoint: string): string | null {
  try {
    const u = new URL(endpoint)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null
    const path = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname
    return `${u.origin}${path}`
  } catch {
    return null
  }
}

/** Whether a candidate shares its pool with another member (a pool of one has no choice to make). */
const pooled = (c: Candidate): boolean => (c.pool?.members.length ?? 0) > 1

export class HealthMonitor implements MemberSignals, MemberHooks {
  readonly #members = new Map<string, Member>()
  /** Drained endpoints (normalized), kept across config changes until undrain(). */
  readonly #drained = new Map<string, number>()
  readonly #warmth: WarmthCache | null
  readonly #abort = new AbortController()
  #table: RouteTable | null = null
  #wildcards = 0
  #closed = false
  /**
   * What `health()` reads for load: the router sets its LoadRegistry, which already counts every
   * attempt (the dispatcher holds a slot there around each one), so nothing here counts them again.
   */
  load: MemberLoad = { inFlight: () => 0, recentLatencyMs: () => null }

  constructor(private readonly o: HealthMonitorOptions) {
    this.#warmth =
      o.warmth === null
        ? null
        : new WarmthCache((endpoint) => this.#fetchPs(endpoint), o.clock, o.warmth.ttlMs)
  }

  // ---- MemberSignals (selection reads these on the request path: Map lookups only) ----

  inRotation(endpoint: string): boolean {
    if (this.#drained.size > 0 && this.#drained.has(endpoint)) return false
    return this.#members.get(endpoint)?.probe !== 'down'
  }

  isWarm(endpoint: string, model: string, now?: number): boolean | undefined {
    const m = this.#members.get(endpoint)
    if (this.#warmth === null || m === undefined || m.kind !== 'ollama') return undefined
    if (!m.pooled && this.o.healthCheck === null) return undefined
    return this.#warmth.isWarm(endpoint, model, now)
  }

  reportOutcome(endpoint: string, ok: boolean): void {
    const m = this.#members.get(endpoint)
    if (m === undefined || m.probe !== 'recovering') return
    if (ok) {
      const downMs = m.downAt === null ? 0 : this.o.clock.now() - m.downAt
      m.probe = 'up'
      m.probeReason = null
      m.downAt = null
      this.#touch(m)
      this.o.emit('member:up', { endpoint, backend: m.kind, downMs })
    } else {
      m.probe = 'down'
      m.probeReason = 'a probe succeeded, but the next request there failed: waiting for the next probe'
      this.#touch(m)
    }
  }

  // ---- MemberHooks (the dispatcher, around each attempt) ----

  skip(where: { model: string; backend: BackendKind; endpoint: string }): RouterError | null {
    const endpoint = where.endpoint
    if (this.#drained.size > 0 && this.#drained.has(endpoint)) {
      return new RouterError(
        ErrorCode.MEMBER_DRAINED,
        `${where.backend} at ${endpoint} is drained (router.drain()); skipped without connecting. router.undrain() puts it back`,
        where,
      )
    }
    const m = this.#members.get(endpoint)
    if (m?.probe === 'down') {
      return new RouterError(
        ErrorCode.MEMBER_DOWN,
        `${where.backend} at ${endpoint} is out of rotation because its health probes fail (${m.probeReason ?? 'no answer'}); skipped without connecting. It is tried again after a probe succeeds; router.health() shows it`,
        where,
      )
    }
    return null
  }

  /** Nothing to do: the in-flight count is the load registry's (see `load`). */
  started(_endpoint: string): void {}

  ended(endpoint: string, ok: boolean | null): void {
    if (ok !== null) this.reportOutcome(endpoint, ok)
  }

  // ---- membership ----

  /** Takes the members of `table` (the route table in use). Cheap when the table is unchanged. */
  sync(table: RouteTable | null): void {
    if (table === null || this.#closed) return
    // Default-backend candidates are compiled on first use into the table's wildcard cache.
    if (table === this.#table && table.wildcardCache.size === this.#wildcards) return
    this.#table = table
    this.#wildcards = table.wildcardCache.size
    // Endpoint -> its target, the models served there, and whether it is an Ollama member of a pool.
    const seen = new Map<string, { target: Target; models: Set<string>; pooled: boolean }>()
    const add = (target: Target, model: string, inPool: boolean) => {
      const entry = seen.get(target.endpoint)
      if (entry === undefined) {
        const p = inPool && target.kind === 'ollama'
        seen.set(target.endpoint, { target, models: new Set([model]), pooled: p })
      } else {
        entry.models.add(model)
        if (inPool && target.kind === 'ollama') entry.pooled = true
      }
    }
    for (const c of table.ordered) for (const t of c.targets) add(t, c.model, pooled(c))
    for (const list of table.wildcardCache.values())
      for (const c of list) for (const t of c.targets) add(t, c.model, pooled(c))
    for (const [endpoint, m] of this.#members) {
      if (seen.has(endpoint)) continue
      // Left the config: stop probing it; a drain mark stays (it may come back).
      if (m.timer !== null) this.o.clock.clearTimeout(m.timer)
      this.#members.delete(endpoint)
      this.#warmth?.forget(endpoint)
    }
    for (const [endpoint, { target, models, pooled: inPool }] of seen) {
      const m = this.#members.get(endpoint)
      if (m === undefined) {
        const fresh = this.#newMember(target)
        fresh.models = models
        fresh.pooled = inPool
        this.#members.set(endpoint, fresh)
        this.#started(fresh)
        continue
      }
      m.target = target
      m.models = models
      // Joined a pool: its warmth matters from now on.
      if (inPool && !m.pooled && this.#warmth !== null) void this.#warmth.refresh(endpoint)
      m.pooled = inPool
    }
  }

  #newMember(target: Target): Member {
    const now = this.o.clock.now()
    const m: Member = {
      endpoint: target.endpoint,
      kind: target.kind,
      target,
      models: new Set(),
      pooled: false,
      probe: 'unknown',
      failures: 0,
      probeReason: null,
      downAt: null,
      state: 'up',
      since: now,
      lastProbe: null,
      openaiPath: '/health',
      timer: null,
      probing: false,
      sharedAt: 0,
    }
    m.state = this.#stateOf(m).state
    return m
  }

  /** A new member: first probe now (so a dead one leaves rotation at once), warmth if pooled. */
  #started(m: Member): void {
    if (this.o.healthCheck !== null) void this.#probe(m)
    else if (m.pooled && this.#warmth !== null) void this.#warmth.refresh(m.endpoint)
  }

  // ---- probes ----

  #schedule(m: Member): void {
    const hc = this.o.healthCheck
    if (hc === null || this.#closed || this.#members.get(m.endpoint) !== m) return
    const spread = hc.jitter * (2 * this.o.clock.random() - 1)
    m.timer = this.o.clock.setTimeout(
      () => {
        m.timer = null
        this.sync(this.o.currentTable())
        if (this.#members.get(m.endpoint) === m) void this.#probe(m)
      },
      Math.max(0, Math.round(hc.intervalMs * (1 + spread))),
    )
  }

  #probeTarget(target: Target): ProbeTarget {
    try {
      return { kind: target.kind, endpoint: target.endpoint, headers: this.o.headersFor(target) }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      return { kind: target.kind, endpoint: target.endpoint, headers: null, headersError: reason }
    }
  }

  #ctx(timeoutMs: number): ProbeContext {
    return { dispatcher: this.o.probeDispatcher, clock: this.o.clock, timeoutMs, signal: this.#abort.signal }
  }

  async #probe(m: Member): Promise<void> {
    const hc = this.o.healthCheck
    if (hc === null || m.probing || this.#closed) return
    m.probing = true
    try {
      const leader = this.o.leader ?? null
      // The leader's claim outlives a missed renewal or two; then another instance takes over.
      const ttlMs = hc.intervalMs * 3
      let result: ProbeResult | null = null
      if (leader !== null && !(await leader.lead(m.endpoint, ttlMs).catch(() => true))) {
        const seen = await leader.read(m.endpoint).catch(() => null)
        if (this.#closed || (seen !== null && seen.at === m.sharedAt)) return
        if (seen !== null) {
          m.sharedAt = seen.at
          result = seen.result
        }
      }
      if (result === null) {
        const probed = await probeMember(this.#probeTarget(m.target), this.#ctx(hc.timeoutMs), m.openaiPath)
        if (this.#closed) return
        result = probed.result
        m.openaiPath = probed.openaiPath
        leader?.publish(m.endpoint, { result, at: this.o.clock.now() }, ttlMs)
      }
      const at = this.o.clock.now()
      if (result.ok) {
        m.lastProbe = { at, ok: true, latencyMs: Math.round(result.latencyMs), error: null }
        m.failures = 0
        if (m.probe === 'down') {
          m.probe = 'recovering'
          m.probeReason = null
          this.o.backInRotation?.()
        } else if (m.probe === 'unknown') m.probe = 'up'
        // In the background: the next probe is scheduled now, whatever /api/ps does.
        if (m.kind === 'ollama' && this.#warmth !== null) void this.#warmth.refreshIfStale(m.endpoint)
      } else {
        m.lastProbe = { at, ok: false, latencyMs: null, error: result.reason }
        m.failures++
        m.probeReason = result.reason
        if (m.probe === 'recovering') {
          m.probe = 'down'
        } else if (m.probe !== 'down' && m.failures >= hc.failuresBeforeDown) {
          m.probe = 'down'
          m.downAt = at
          this.o.emit('member:down', {
            endpoint: m.endpoint,
            backend: m.kind,
            reason: result.reason,
            failures: m.failures,
          })
        }
      }
      this.#touch(m)
    } finally {
      m.probing = false
      this.#schedule(m)
    }
  }

  async #fetchPs(endpoint: string): Promise<string[] | null> {
    const m = this.#members.get(endpoint)
    if (m === undefined || this.#closed) return null
    return fetchLoadedModels(this.#probeTarget(m.target), this.#ctx(this.o.warmth?.timeoutMs ?? 2000))
  }

  // ---- drain ----

  /**
   * Marks `endpoint` drained: selection skips it, requests in flight there finish. Returns whether it
   * is a member of the config in use; the mark is kept either way (and applies if it joins later).
   */
  drain(endpoint: string): boolean {
    const key = this.#key(endpoint, 'drain')
    // `known` is about the config in use now, not the table the monitor saw last.
    this.sync(this.o.currentTable())
    const m = this.#members.get(key)
    if (!this.#drained.has(key)) {
      this.#drained.set(key, this.o.clock.now())
      if (m !== undefined) this.#touch(m)
      this.o.emit('member:drained', {
        endpoint: key,
        known: m !== undefined,
        inFlight: this.load.inFlight(key),
      })
    }
    return m !== undefined
  }

  /** Removes the drain mark. Returns whether there was one. */
  undrain(endpoint: string): boolean {
    const key = this.#key(endpoint, 'undrain')
    if (!this.#drained.delete(key)) return false
    const m = this.#members.get(key)
    if (m !== undefined) this.#touch(m)
    this.o.emit('member:undrained', { endpoint: key })
    this.o.backInRotation?.()
    return true
  }

  #key(endpoint: string, method: string): string {
    const key = typeof endpoint === 'string' ? normalizeEndpoint(endpoint) : null
    if (key === null) {
      throw new RouterError(
        ErrorCode.INVALID_REQUEST,
        `router.${method}() needs an endpoint URL such as "http://127.0.0.1:11434" (a record's endpoint_url, as results and attempts show it)`,
        { issues: [{ path: 'endpoint', message: 'must be an http(s) URL' }] },
      )
    }
    return key
  }

  // ---- reporting ----

  #stateOf(m: Member): { state: MemberState; reason: string | null } {
    if (this.#drained.has(m.endpoint)) return { state: 'draining', reason: DRAINED_REASON }
    if (m.probe === 'down') return { state: 'down', reason: m.probeReason }
    if (m.probe === 'recovering') return { state: 'down', reason: RECOVERING_REASON }
    const circuit = m.target.circuit
    if (circuit !== null && circuit.state !== 'closed') {
      const last = circuit.lastError === null ? '' : ` (last: ${circuit.lastError})`
      const reason =
        circuit.state === 'open'
          ? `circuit open after ${circuit.failures} failures${last}: skipped until ${new Date(circuit.openUntil).toISOString()}`
          : `circuit half-open after ${circuit.failures} failures${last}: the next request is a trial`
      return { state: 'cooling-down', reason }
    }
    return { state: 'up', reason: null }
  }

  /** Recomputes a member's state; a change restarts `since`. */
  #touch(m: Member): { state: MemberState; reason: string | null } {
    const s = this.#stateOf(m)
    if (s.state !== m.state) {
      m.state = s.state
      m.since = this.o.clock.now()
    }
    return s
  }

  /** A circuit opened or closed (the router's circuit events): restarts `since` of its member. */
  circuitChanged(circuitKey: string): void {
    const space = circuitKey.indexOf(' ')
    const m = this.#members.get(space < 0 ? circuitKey : circuitKey.slice(space + 1))
    if (m !== undefined) this.#touch(m)
  }

  /** Every member of the config in use, in the order they joined it. */
  list(): MemberHealth[] {
    this.sync(this.o.currentTable())
    const out: MemberHealth[] = []
    for (const m of this.#members.values()) {
      const { state, reason } = this.#touch(m)
      out.push({
        endpoint: m.endpoint,
        backend: m.kind,
        models: [...m.models],
        state,
        inRotation: this.inRotation(m.endpoint),
        reason,
        since: m.since,
        inFlight: this.load.inFlight(m.endpoint),
        recentLatencyMs: this.load.recentLatencyMs(m.endpoint),
        warmModels: m.kind === 'ollama' ? (this.#warmth?.models(m.endpoint) ?? null) : null,
        lastProbe: m.lastProbe,
        // Filled in by the router from its limiter (src/limits/).
        limited: null,
      })
    }
    return out
  }

  /** Stops probes and background fetches; idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const m of this.#members.values()) if (m.timer !== null) this.o.clock.clearTimeout(m.timer)
    this.#abort.abort(new RouterError(ErrorCode.CLOSED, 'The router was closed'))
  }
}
