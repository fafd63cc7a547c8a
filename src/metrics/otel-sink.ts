/**
 * OpenTelemetry metrics sink, following the GenAI semantic conventions (semantic-conventions v1.41,
 * docs/gen-ai/gen-ai-metrics.md) so stock GenAI dashboards read it. `@opentelemetry/api` is an optional
 * peer dependency: this module only imports its types, so loading the package never requires it. The
 * instruments come from a `Meter` the user passes (from their own copy of the api), or from the globally
 * registered MeterProvider.
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { MetricRecord, MetricsSink, SinkContext } from '../types.js'

/*
 * The few shapes of `@opentelemetry/api` this sink uses, declared structurally so the published
 * `.d.ts` never references the optional peer dependency (users without it would get type errors).
 * A real `Meter`/`MeterProvider` from the api is assignable to these.
 */
type Attributes = Record<string, string | number | boolean>
interface Counter {
  add(value: number, attributes?: Attributes): void
}
interface Histogram {
  record(value: number, attributes?: Attributes): void
}
interface InstrumentOptions {
  description?: string
  unit?: string
  advice?: { explicitBucketBoundaries?: number[] }
}
/** Structural subset of `Meter` from `@opentelemetry/api`. */
export interface OtelMeter {
  createHistogram(name: string, options?: InstrumentOptions): Histogram
  createCounter(name: string, options?: InstrumentOptions): Counter
}
/** Structural subset of `MeterProvider` from `@opentelemetry/api`. */
export interface OtelMeterProvider {
  getMeter(name: string, version?: string): OtelMeter
}
type Meter = OtelMeter
type MeterProvider = OtelMeterProvider

export interface OpenTelemetrySinkOptions {
  /** Preferred: `metrics.getMeter('llm-backend-router')` from your `@opentelemetry/api`. */
  meter?: Meter
  /** Used when no `meter` is given. Default: the provider registered globally with `@opentelemetry/api` 1.x. */
  meterProvider?: MeterProvider
  /** Prefix of the router's own instruments (the ones the conventions have no name for). @default 'llm_router' */
  prefix?: string
  /**
   * `gen_ai.provider.name` per backend kind, e.g. `{ mlx: 'vllm' }`. Default: the kind itself (`ollama`, `mlx`, `openai`;
   * `none` for a call that reached no backend). The conventions list no value for local servers.
   */
  providerNames?: Readonly<Record<string, string>>
  /**
   * Model names reported as they are; any other is reported as `_OTHER`. Default: every model with a backend
   * record of its own in the router's config, plus the first `maxModels` distinct other names (models sent to
   * the default backend), then `_OTHER`: request-supplied model names cannot create unbounded series.
   */
  models?: readonly string[]
  /** Distinct names of models without a record of their own kept as they are, when `models` is not given. @default 20 */
  maxModels?: number
}

/** Advised boundaries of `gen_ai.client.operation.duration` and `..time_to_first_chunk` (seconds). */
const DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
/** Advised boundaries of `gen_ai.client.token.usage`. */
const TOKEN_BUCKETS = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]

/** The conventions' fallback value for `error.type`, also used for model names past the cardinality bound. */
const OTHER = '_OTHER'

/** `gen_ai.operation.name` for the router's operations (records without `operation` are generate()s). */
const OPERATION_NAMES: Readonly<Record<string, string>> = {
  generate: 'text_completion',
  chat: 'chat',
  embed: 'embeddings',
}

/**
 * The api keeps its global registry on this symbol (major version 1), shared by every copy of the package;
 * reading it avoids importing `@opentelemetry/api` at runtime.
 */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

function globalMeterProvider(): MeterProvider | undefined {
  const api = (globalThis as Record<symbol, { metrics?: MeterProvider } | undefined>)[OTEL_GLOBAL]
  return api?.metrics
}

/** `server.address` and `server.port` of an endpoint URL, cached: endpoints are few (one per configured backend). */
function serverAttributes(cache: Map<string, Attributes>, endpoint: string): Attributes | null {
  let attrs = cache.get(endpoint)
  if (attrs === undefined) {
    let url: URL
    try {
      url = new URL(endpoint)
    } catch {
      return null
    }
    const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
    // IPv6 hosts come bracketed from URL; the attribute holds the bare address.
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    attrs = { 'server.address': host, 'server.port': port }
    if (cache.size < 1000) cache.set(endpoint, attrs)
  }
  return attrs
}

/**
 * Creates a sink that records each metric record into the GenAI semantic-convention instruments:
 * - `gen_ai.client.operation.duration` histogram (s), every call, `error.type` set on failures;
 * - `gen_ai.client.token.usage` histogram (`{token}`), `gen_ai.token.type` `input` / `output`, for calls
 *   whose backend reported the counts (embeddings have input tokens only);
 * - `gen_ai.client.operation.time_to_first_chunk` histogram (s), streamed calls that produced text;
 * - `{prefix}.fallbacks` counter: calls answered (or failed) after moving on from their first backend.
 * Attributes: `gen_ai.operation.name` (`text_completion`, `chat`, `embeddings`), `gen_ai.provider.name`,
 * `gen_ai.request.model` and `gen_ai.response.model` (the configured model name that answered; bounded, see
 * `models`), `server.address` + `server.port` (one per configured backend), and `error.type` (the
 * RouterError code, e.g. `TIMEOUT`, `ALL_BACKENDS_FAILED`, `ABORTED`). No per-request ids.
 *
 * Throws `INVALID_OPTIONS` when neither `meter` nor `meterProvider` is given and no global provider is registered.
 */
export function createOpenTelemetrySink(options: OpenTelemetrySinkOptions = {}): MetricsSink {
  const provider = options.meterProvider ?? globalMeterProvider()
  const meter = options.meter ?? provider?.getMeter('llm-backend-router')
  if (meter === undefined) {
    throw new RouterError(
      ErrorCode.INVALID_OPTIONS,
      "OpenTelemetry sink needs a meter: pass { meter: metrics.getMeter('llm-backend-router') } from @opentelemetry/api, or register a MeterProvider before creating the sink.",
      { issues: [{ path: 'meter', message: 'no meter, meterProvider or global MeterProvider' }] },
    )
  }
  const prefix = options.prefix ?? 'llm_router'
  const providerNames = options.providerNames ?? {}
  const allowed = options.models === undefined ? null : new Set(options.models)
  const maxModels = options.maxModels ?? 20
  const seenModels = new Set<string>()
  const servers = new Map<string, Attributes>()
  /** The routers this sink serves (usually one): they know which model names have records. */
  const routers: SinkContext[] = []

  const modelName = (model: string): string => {
    if (allowed !== null) return allowed.has(model) ? model : OTHER
    if (seenModels.has(model)) return model
    for (const router of routers) if (router.hasRecord(model)) return model
    if (seenModels.size >= maxModels) return OTHER
    seenModels.add(model)
    return model
  }

  const duration: Histogram = meter.createHistogram('gen_ai.client.operation.duration', {
    unit: 's',
    description: 'GenAI operation duration.',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const tokenUsage: Histogram = meter.createHistogram('gen_ai.client.token.usage', {
    unit: '{token}',
    description: 'Number of input and output tokens used.',
    advice: { explicitBucketBoundaries: TOKEN_BUCKETS },
  })
  const firstChunk: Histogram = meter.createHistogram('gen_ai.client.operation.time_to_first_chunk', {
    unit: 's',
    description: 'Time from issuing the request to receiving the first chunk of the response stream.',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const fallbacks: Counter = meter.createCounter(`${prefix}.fallbacks`, {
    unit: '{call}',
    description:
      'Calls that moved on from their first backend (another endpoint, the auto fallback, or another model).',
  })

  let closed = false

  return {
    write(record: MetricRecord): void {
      if (closed) return
      try {
        // Records from sinks written before `operation` existed count as generate() calls.
        const operation = OPERATION_NAMES[record.operation ?? 'generate']
        const model = modelName(record.model)
        const attrs: Attributes = {
          'gen_ai.operation.name': operation ?? OTHER,
          'gen_ai.provider.name': providerNames[record.backend] ?? record.backend,
          'gen_ai.request.model': model,
        }
        const ok = record.outcome === 'success'
        if (ok) attrs['gen_ai.response.model'] = model
        if (record.endpoint !== null) {
          const server = serverAttributes(servers, record.endpoint)
          if (server !== null) Object.assign(attrs, server)
        }
        const base = ok ? attrs : { ...attrs, 'error.type': record.error_code ?? OTHER }
        duration.record(record.latency_seconds, base)
        if (ok) {
          if (record.prompt_tokens > 0)
            tokenUsage.record(record.prompt_tokens, { ...attrs, 'gen_ai.token.type': 'input' })
          if (record.tokens > 0 && operation !== 'embeddings')
            tokenUsage.record(record.tokens, { ...attrs, 'gen_ai.token.type': 'output' })
        }
        // The conventions list no error.type on this one: a stream that failed after its first chunk still had one.
        if (record.streamed && record.time_to_first_token_seconds !== null)
          firstChunk.record(record.time_to_first_token_seconds, attrs)
        if (record.fallback) fallbacks.add(1, base)
      } catch {
        // An SDK bug must not reach the request; OTel's own diag logger reports its problems.
      }
    },
    attach(router: SinkContext): void {
      routers.push(router)
    },
    // Export timing belongs to the user's MeterProvider/reader; nothing is buffered here.
    flush: () => Promise.resolve(),
    close(): Promise<void> {
      closed = true
      return Promise.resolve()
    },
  }
}
