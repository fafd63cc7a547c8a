/**
 * `createLLMRouter()`: wires the config source, the dispatcher and the metrics sink, and returns
 * the small public interface. Everything per-request lives in dispatch/; route tables are compiled
 * once per config snapshot and cached by its identity (dispatch/routes.ts).
 */
import { EventEmitter } from 'eventemitter3'
import { validateChatRequest } from './chat/request.js'
import type { ChatRequest, ChatResult, ChatStream } from './chat/types.js'
import type { ConfigSnapshot } from './config/contract.js'
import { createConfigSource } from './config/source.js'
import { type AttemptContext, requestHeaders } from './dispatch/attempt.js'
import { chatChunks, chatOperation } from './dispatch/chat.js'
import { CircuitRegistry } from './dispatch/circuit.js'
import { type DispatchCore, primaryCandidates, runRequest } from './dispatch/dispatcher.js'
import { generateOperation } from './dispatch/generate.js'
import type { DispatchRequest, DispatchResult, Operation } from './dispatch/operation.js'
import { validateRequest } from './dispatch/request.js'
import { RouteCache } from './dispatch/routes.js'
import { type ChunkShape, StreamRun, textChunks } from './dispatch/stream.js'
import { validateEmbedRequest } from './embed/request.js'
import { runEmbed } from './embed/run.js'
import type { EmbedRequest, EmbedResult } from './embed/types.js'
import { ErrorCode, isRouterError, RouterError } from './errors.js'
import { createAdminAgent } from './http/agent.js'
import { type Clock, systemClock } from './internal/clock.js'
import { createHttpSink } from './metrics/http-sink.js'
import { createStatsCollector, type StatsEntry } from './metrics/stats.js'
import { type ResolvedOptions, type RouterOptions, resolveOptions } from './options.js'
import { SessionPins } from './pool/affinity.js'
import { HealthMonitor } from './pool/health.js'
import { LoadRegistry } from './pool/load.js'
import { storeProbeLeader } from './pool/probe-leader.js'
import type { MemberSignals } from './pool/signals.js'
import { createFleet, type FleetInternals } from './store/fleet.js'
import { createAgent, dispatchTransport, requestTransport } from './transport/http.js'
import type {
  BackendKind,
  BackendRecord,
  CircuitInfo,
  ConfigOrigin,
  GenerateRequest,
  GenerateResult,
  GenerateStream,
  MemberHealth,
  MetricRecord,
  MetricsSink,
  RouterEvents,
} from './types.js'

/** What `router.config()` shows: the records in use and where they came from. */
export interface ConfigInfo {
  origin: ConfigOrigin
  /** Enabled records in priority order (what routing uses). */
  records: readonly BackendRecord[]
  /** Every valid record, including disabled ones. */
  allRecords: readonly BackendRecord[]
  etag: string | null
  /** Epoch ms of the last successful admin fetch or revalidation; null for env/default. */
  fetchedAt: number | null
  version: number
}

/** What a model resolves to: the ordered list of backends a request would try. */
export interface ResolvedRoute {
  model: string
  /** True when the model has no record of its own and goes to the default backend. */
  usesDefault: boolean
  /** When `usesDefault`: why (no record for the model, its record is invalid or disabled, the admin is unavailable). */
  defaultReason?: string
  targets: {
    model: string
    backend: BackendKind
    endpoint: string
    sendModel: string | null
    circuit: CircuitInfo | null
  }[]
}

type Listener<K extends keyof RouterEvents> = (payload: RouterEvents[K]) => void

export interface LLMRouter {
  /** Sends one generation request and resolves with the whole answer. */
  generate(request: GenerateRequest): Promise<GenerateResult>
  /** Streams the answer: `for await (const chunk of router.stream(req)) chunk.text`; `.result` has the totals. */
  stream(request: GenerateRequest): GenerateStream
  /** Sends a conversation and resolves with the assistant's message (text, reasoning, tool calls) and the totals. */
  chat(request: ChatRequest): Promise<ChatResult>
  /** Streams the assistant's answer: chunks with `text`, `reasoning` and complete `toolCalls`; `.result` has the whole answer. */
  streamChat(request: ChatRequest): ChatStream
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof RouterEvents>(event: K, listener: Listener<K>): () => void
  once<K extends keyof RouterEvents>(event: K, listener: Listener<K>): () => void
  off<K extends keyof RouterEvents>(event: K, listener: Listener<K>): void
  /** Fetches the admin config now (shares an in-flight fetch). Rejects if the admin fails; the last good config stays in use. */
  refresh(): Promise<ConfigInfo>
  /** The config in use, or null before the first load. */
  config(): ConfigInfo | null
  /** Which backends a request for `model` would try, in order (loads the config if needed). */
  resolve(model?: string): Promise<ResolvedRoute>
  /** Embeds one text or a list: `e.embeddings[i]` is the vector of `input[i]`. Long lists go in batches. */
  embed(request: EmbedRequest): Promise<EmbedResult>
  /** Circuit-breaker state of every endpoint seen so far. */
  circuits(): CircuitInfo[]
  /** Rolling per model/backend/endpoint numbers computed locally. */
  stats(): StatsEntry[]
  /** Every endpoint of the config in use: up / down / draining / cooling-down, why, since when, load, warm models. */
  health(): MemberHealth[]
  /**
   * Stops sending new requests to `endpoint` (a record's endpoint_url, as results show it); requests
   * in flight there finish. Returns whether it is in the config in use (the mark is kept either way).
   */
  drain(endpoint: string): boolean
  /** Puts a drained endpoint back in rotation. Returns whether it was drained. */
  undrain(endpoint: string): boolean
  /** Flushes metrics (within the sink's deadline), stops timers and closes connections. Idempotent. */
  close(): Promise<void>
  readonly closed: boolean
}

function toInfo(s: ConfigSnapshot): ConfigInfo {
  return {
    origin: s.origin,
    records: s.records,
    allRecords: s.allRecords,
    etag: s.etag,
    fetchedAt: s.fetchedAt,
    version: s.version,
  }
}

/** @internal Test and bench seam: a clock for TTLs, backoff and deadlines; the speed paths on/off. */
export interface RouterInternals {
  clock?: Clock
  /** `request`: plain undici.request() instead of the dispatch-handler transport (bench comparison). */
  transport?: 'dispatch' | 'request'
  /** false: decoders never take the learned frame-shape fast path (bench comparison). */
  fastFrames?: boolean
  /** Shared-state seams (limit window, lease TTL). */
  fleet?: FleetInternals
  /** Member health and warmth for pools (tests: a stand-in for the health checks). */
  signals?: MemberSignals
}

export function createLLMRouter(options?: RouterOptions, internals: RouterInternals = {}): LLMRouter {
  const opts: ResolvedOptions = resolveOptions(options)
  const clock = internals.clock ?? systemClock
  const emitter = new EventEmitter()
  const agent = createAgent({
    connections: opts.connectionsPerEndpoint,
    connectionsByOrigin: opts.connectionsByOrigin,
    keepAliveTimeoutMs: 4000,
    connectTimeoutMs: opts.connectTimeoutMs,
  })
  const circuits = new CircuitRegistry(opts.circuitBreaker, clock)
  const stats = createStatsCollector({ windowSize: opts.statsWindow })

  const emit = <K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void => {
    try {
      emitter.emit(event, payload)
    } catch {
      // A listener's exception must never break a request or the config loop.
    }
  }
  const listens = (event: keyof RouterEvents): boolean => emitter.listenerCount(event) > 0

  let sink: MetricsSink | null = null
  if (opts.metrics !== false) {
    if ('write' in opts.metrics) sink = opts.metrics
    else {
      const { onDropped, onFlushFailed, ...sinkOptions } = opts.metrics
      // No `dispatcher: agent`: the sink's own pool lets its close() cut a connect that never completes.
      sink = createHttpSink({
        clock,
        ...sinkOptions,
        onDropped: (dropped, totalDropped) => {
          emit('metrics:dropped', { dropped, totalDropped })
          onDropped?.(dropped, totalDropped)
        },
        onFlushFailed: (error, records, requeued) => {
          emit('metrics:flush-failed', { error, records: records.length, requeued })
          onFlushFailed?.(error, records, requeued)
        },
      })
    }
  }

  const fleet = createFleet(opts, clock, emit, internals.fleet)
  // In flight and recent latency per endpoint: the pools' own accounting (src/pool/load.ts).
  const load = new LoadRegistry()

  const config = createConfigSource({
    admin: { ...opts.admin, url: opts.adminUrl },
    ttlMs: opts.cacheTtlMs,
    env: opts.env,
    clock,
    dispatcher: agent,
    // Config events also tell the fleet (a changed config is announced to the other instances).
    emit: (event, payload) => {
      emit(event, payload)
      fleet.configEvent(event, payload)
      // New records may add pool members: requests waiting for a slot pick again.
      if (
        event === 'config:loaded' ||
        (event === 'config:refreshed' && (payload as { changed: boolean }).changed)
      )
        load.nudge()
    },
    lastGood: fleet.lastGood,
  })

  const routeCache = new RouteCache(opts.env, circuits)
  // Probes and /api/ps get their own pool: behind long generations in the request pool they would time out.
  const probeAgent = createAdminAgent(opts.connectTimeoutMs)
  const health = new HealthMonitor({
    clock,
    healthCheck: opts.healthCheck,
    warmth: opts.warmth,
    currentTable: () => {
      const s = config.current()
      return s === null ? null : routeCache.get(s)
    },
    headersFor: (target) => requestHeaders(target, opts.env).headers,
    probeDispatcher: probeAgent.dispatcher,
    leader: opts.redis === null ? null : storeProbeLeader(fleet.store, fleet.instanceId),
    emit,
    backInRotation: () => load.nudge(),
  })
  health.load = load
  // Circuits opened or closed by other instances reach the health view too.
  fleet.attach(config, circuits, (endpoint) => health.circuitChanged(endpoint))
  const routes = (snapshot: ConfigSnapshot) => {
    const table = routeCache.get(snapshot)
    health.sync(table)
    return table
  }

  // A sink that asks (the OpenTelemetry sink) learns which model names have records of their own.
  if (sink?.attach !== undefined) {
    try {
      sink.attach({
        hasRecord: (model) => {
          const snapshot = config.current()
          return snapshot !== null && routes(snapshot).byModel.has(model)
        },
      })
    } catch (error) {
      emit('sink:error', { error })
    }
  }

  const recordMetric = (metric: MetricRecord): void => {
    stats.record(metric)
    if (emitter.listenerCount('metric') > 0) emit('metric', metric)
    if (sink !== null) {
      try {
        sink.write(metric)
      } catch (error) {
        emit('sink:error', { error })
      }
    }
  }

  const attemptContext: AttemptContext = {
    dispatcher: agent,
    env: opts.env,
    maxResponseBytes: opts.maxResponseBytes,
    clock,
    transport: internals.transport === 'request' ? requestTransport : dispatchTransport,
  }

  const core: DispatchCore = {
    options: opts,
    limiter: fleet.limiter,
    env: opts.env,
    clock,
    circuits,
    attemptContext,
    routes,
    emit,
    listens,
    recordMetric,
    circuitEvents: {
      opened: (info) => {
        fleet.circuitChanged(info)
        health.circuitChanged(info.endpoint)
        if (listens('circuit:open')) emit('circuit:open', info)
      },
      closed: (info) => {
        fleet.circuitChanged(info)
        health.circuitChanged(info.endpoint)
        if (listens('circuit:close')) emit('circuit:close', info)
      },
    },
    fastFrames: internals.fastFrames !== false,
    active: new Set(),
    load,
    signals: internals.signals ?? health,
    pins: new SessionPins(
      opts.pool.sessionTtlMs,
      opts.pool.maxSessions,
      opts.redis === null ? null : fleet.store,
    ),
    members: health,
    currentRoutes: () => {
      const s = config.current()
      return s === null ? null : routes(s)
    },
  }

  let closed = false
  let closing: Promise<void> | null = null
  const inflight = new Set<Promise<unknown>>()

  const closedError = () =>
    new RouterError(ErrorCode.CLOSED, 'This router was closed; create a new one with createLLMRouter()')

  const requestStart = (req: DispatchRequest, stream: boolean) => {
    if (listens('request:start'))
      emit('request:start', { requestId: req.metadata?.requestId ?? null, model: req.model, stream })
  }
  const requestEnd = (
    req: DispatchRequest,
    result: Pick<DispatchResult, 'model'> | null,
    error: unknown,
    t0: number,
  ) => {
    if (!listens('request:end')) return
    emit('request:end', {
      requestId: req.metadata?.requestId ?? null,
      model: result?.model ?? req.model ?? 'default',
      ok: result !== null,
      latencyMs: performance.now() - t0,
      code: isRouterError(error) ? error.code : null,
    })
  }

  /** One answer of any operation: validation, events, in-flight tracking for close(). */
  const once = <Req extends DispatchRequest, Out, Res extends DispatchResult, Delta>(
    op: Operation<Req, Out, Res, Delta>,
    validate: (request: unknown) => asserts request is Req,
    request: Req,
  ): Promise<Res> => {
    if (closed) return Promise.reject(closedError())
    try {
      validate(request)
    } catch (error) {
      return Promise.reject(error)
    }
    const t0 = performance.now()
    requestStart(request, false)
    return tracked(
      request,
      t0,
      runRequest(core, op, request, config.get(request.model, request.fallbackModels), null, t0),
    )
  }

  /** A one-answer call in flight: held for close(), request:end when it settles (request:end reads only a result's model). */
  const tracked = <Res extends { model: string }>(
    request: DispatchRequest,
    t0: number,
    p: Promise<Res>,
  ): Promise<Res> => {
    inflight.add(p)
    return p.then(
      (result) => {
        inflight.delete(p)
        requestEnd(request, result, null, t0)
        return result
      },
      (error: unknown) => {
        inflight.delete(p)
        requestEnd(request, null, error, t0)
        throw error
      },
    )
  }

  /** A stream of any operation; it starts on first use (see StreamRun). */
  const streamed = <Req extends DispatchRequest, Out, Res extends DispatchResult, Delta, Chunk>(
    op: Operation<Req, Out, Res, Delta>,
    chunks: ChunkShape<Delta, Chunk>,
    validate: (request: unknown) => asserts request is Req,
    request: Req,
  ): StreamRun<Req, Out, Res, Delta, Chunk> => {
    // Like generate(): a closed router or a bad request fails on first use (next() / result), not here.
    let invalid: RouterError | null = closed ? closedError() : null
    if (invalid === null) {
      try {
        validate(request)
      } catch (error) {
        invalid = error as RouterError
      }
    }
    const t0 = performance.now()
    let tracked: Promise<unknown> | null = null
    return new StreamRun(
      core,
      op,
      chunks,
      request,
      {
        snapshot: () => {
          // A stream made before close() but first read after it: the agent is gone, say so.
          if (closed) throw closedError()
          requestStart(request, true)
          return config.get(request.model, request.fallbackModels)
        },
        started: (p) => {
          tracked = p.catch(() => {})
          inflight.add(tracked)
        },
        settled: (result, error) => {
          if (tracked) inflight.delete(tracked)
          requestEnd(request, result, error, t0)
        },
      },
      invalid,
    )
  }

  const router: LLMRouter = {
    generate(request: GenerateRequest): Promise<GenerateResult> {
      return once(generateOperation, validateRequest, request)
    },

    stream(request: GenerateRequest): GenerateStream {
      return streamed(generateOperation, textChunks, validateRequest, request)
    },

    chat(request: ChatRequest): Promise<ChatResult> {
      return once(chatOperation, validateChatRequest, request)
    },

    streamChat(request: ChatRequest): ChatStream {
      return streamed(chatOperation, chatChunks, validateChatRequest, request)
    },

    on(event, listener) {
      emitter.on(event, listener as (...args: unknown[]) => void)
      return () => {
        emitter.off(event, listener as (...args: unknown[]) => void)
      }
    },
    once(event, listener) {
      emitter.once(event, listener as (...args: unknown[]) => void)
      return () => {
        emitter.off(event, listener as (...args: unknown[]) => void)
      }
    },
    off(event, listener) {
      emitter.off(event, listener as (...args: unknown[]) => void)
    },

    async refresh(): Promise<ConfigInfo> {
      if (closed) throw closedError()
      return toInfo(await config.refresh())
    },

    config(): ConfigInfo | null {
      const s = config.current()
      return s === null ? null : toInfo(s)
    },

    async resolve(model?: string): Promise<ResolvedRoute> {
      if (closed) throw closedError()
      const snapshot = await config.get(model)
      const { list, usesDefault } = primaryCandidates(core, routes(snapshot), model)
      const defaultReason = list[0]?.defaultReason
      return {
        model: list[0]?.model ?? model ?? 'default',
        usesDefault,
        ...(defaultReason === undefined ? {} : { defaultReason }),
        targets: list.flatMap((c) =>
          c.targets.map((target) => ({
            model: c.model,
            backend: target.kind,
            endpoint: target.endpoint,
            sendModel: target.sendModel ?? null,
            circuit: target.circuit?.info() ?? null,
          })),
        ),
      }
    },

    embed(request: EmbedRequest): Promise<EmbedResult> {
      if (closed) return Promise.reject(closedError())
      let inputs: string[]
      try {
        inputs = validateEmbedRequest(request)
      } catch (error) {
        return Promise.reject(error)
      }
      const t0 = performance.now()
      requestStart(request, false)
      return tracked(
        request,
        t0,
        runEmbed(core, request, inputs, (model, fallbackModels) => config.get(model, fallbackModels), t0),
      )
    },

    circuits: () => circuits.list(),
    stats: () => stats.snapshot(),
    health: () => health.list().map((m) => ({ ...m, limited: fleet.limiter.limitedAt(m.endpoint) })),
    drain: (endpoint) => health.drain(endpoint),
    undrain: (endpoint) => health.undrain(endpoint),

    close(): Promise<void> {
      if (closing) return closing
      closed = true
      health.close()
      closing = (async () => {
        config.close()
        // In-flight requests may finish within the grace period; then they are stopped with CLOSED.
        // Metrics are flushed after them, so their records are included.
        if (inflight.size > 0) {
          let timer: ReturnType<typeof setTimeout> | undefined
          const grace = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, opts.closeTimeoutMs)
            timer.unref?.()
          })
          await Promise.race([Promise.allSettled([...inflight]), grace])
          clearTimeout(timer)
          const reason = new RouterError(
            ErrorCode.CLOSED,
            `The router was closed while this request was in flight (after a ${opts.closeTimeoutMs} ms grace period)`,
          )
          for (const control of core.active) control.stop(reason)
          await Promise.allSettled([...inflight])
        }
        if (sink !== null) {
          try {
            await sink.close()
          } catch (error) {
            emit('sink:error', { error })
          }
        }
        // Every request and the sink have settled: nothing useful is left in the agent. destroy(), not
        // close(): close() waits for requests undici still holds, such as an aborted one whose TCP
        // connect hangs (a full listen backlog), for up to connectTimeoutMs.
        await agent.destroy().catch(() => {})
        await probeAgent.destroy()
        await fleet.close().catch(() => {})
        emitter.removeAllListeners()
      })()
      return closing
    },

    get closed() {
      return closed
    },
  }
  return router
}
