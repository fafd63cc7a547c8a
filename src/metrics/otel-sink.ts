/**
 * OpenTelemetry metrics sink. `@opentelemetry/api` is an optional peer dependency: this module only imports
 * its types, so loading the package never requires it. The instruments come from a `Meter` the user passes
 * (from their own copy of the api), or from the globally registered MeterProvider.
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { MetricRecord, MetricsSink } from '../types.js'

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
  /** Instrument name prefix. @default 'llm_router' */
  prefix?: string
  /** Add the backend base URL as an `endpoint` attribute (one series per configured backend). @default false */
  includeEndpoint?: boolean
}

/** Latency buckets (seconds) for local LLM calls: sub-second cache hits up to multi-minute generations. */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]

/**
 * The api keeps its global registry on this symbol (major version 1), shared by every copy of the package;
 * reading it avoids importing `@opentelemetry/api` at runtime.
 */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

function globalMeterProvider(): MeterProvider | undefined {
  const api = (globalThis as Record<symbol, { metrics?: MeterProvider } | undefined>)[OTEL_GLOBAL]
  return api?.metrics
}

/**
 * Creates a sink that records each metric into OpenTelemetry instruments:
 * - `{prefix}.request.duration` histogram, unit `s` (attributes model, backend, outcome)
 * - `{prefix}.time_to_first_token` histogram, unit `s` (streams that produced text)
 * - `{prefix}.requests` counter (model, backend, outcome)
 * - `{prefix}.tokens` counter (model, backend, outcome, token_type `prompt`|`completion`)
 * - `{prefix}.errors` counter (model, backend, error_code), only for `outcome: 'error'`
 * No per-request ids are used as attributes, to keep cardinality low.
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
  const includeEndpoint = options.includeEndpoint ?? false

  const duration: Histogram = meter.createHistogram(`${prefix}.request.duration`, {
    unit: 's',
    description: 'Duration of LLM router requests, all attempts included.',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const ttft: Histogram = meter.createHistogram(`${prefix}.time_to_first_token`, {
    unit: 's',
    description: 'Time from request start to the first streamed text.',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  })
  const requests: Counter = meter.createCounter(`${prefix}.requests`, {
    unit: '{request}',
    description: 'Finished LLM router requests.',
  })
  const tokens: Counter = meter.createCounter(`${prefix}.tokens`, {
    unit: '{token}',
    description: 'Tokens processed, by token_type (prompt or completion).',
  })
  const errors: Counter = meter.createCounter(`${prefix}.errors`, {
    unit: '{error}',
    description: 'Failed LLM router requests, by error_code.',
  })

  let closed = false

  return {
    write(record: MetricRecord): void {
      if (closed) return
      try {
        const attrs: Attributes = { model: record.model, backend: record.backend, outcome: record.outcome }
        if (includeEndpoint && record.endpoint !== null) attrs.endpoint = record.endpoint
        duration.record(record.latency_seconds, attrs)
        requests.add(1, attrs)
        if (record.time_to_first_token_seconds !== null)
          ttft.record(record.time_to_first_token_seconds, attrs)
        if (record.prompt_tokens > 0) tokens.add(record.prompt_tokens, { ...attrs, token_type: 'prompt' })
        if (record.tokens > 0) tokens.add(record.tokens, { ...attrs, token_type: 'completion' })
        if (record.outcome === 'error') {
          const errAttrs: Attributes = {
            model: record.model,
            backend: record.backend,
            error_code: record.error_code ?? 'UNKNOWN',
          }
          if (includeEndpoint && record.endpoint !== null) errAttrs.endpoint = record.endpoint
          errors.add(1, errAttrs)
        }
      } catch {
        // An SDK bug must not reach the request; OTel's own diag logger reports its problems.
      }
    },
    // Export timing belongs to the user's MeterProvider/reader; nothing is buffered here.
    flush: () => Promise.resolve(),
    close(): Promise<void> {
      closed = true
      return Promise.resolve()
    },
  }
}
