import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type MetricOptions,
  metrics,
} from '@opentelemetry/api'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { createLLMRouter } from '../src/index.js'
import { createOpenTelemetrySink, fanoutSinks } from '../src/metrics/sinks.js'
import { makeMetricRecord } from '../src/testing/core/metrics.js'
import type { MetricRecord } from '../src/types.js'

/** The kit's fixture, with the fields these tests assert on pinned. */
function rec(over: Partial<MetricRecord> & { operation?: string } = {}): MetricRecord {
  return makeMetricRecord({
    timestamp: 1_700_000_000,
    model: 'llama3',
    backend: 'ollama',
    endpoint: 'http://ollama.test:11434',
    latency_seconds: 0.5,
    tokens: 10,
    tokens_per_second: 20,
    prompt_tokens: 5,
    request_id: 'req-1',
    session_id: 'sess-1',
    user_id: 'user-1',
    outcome: 'success',
    error_code: null,
    fallback: false,
    streamed: false,
    time_to_first_token_seconds: null,
    ...over,
  })
}

interface Recorded {
  kind: 'histogram' | 'counter'
  name: string
  value: number
  attrs: Attributes
}

/** A Meter built on the api's noop meter that records what the sink does with its instruments. */
function recordingMeter() {
  const calls: Recorded[] = []
  const created: { kind: string; name: string; options: MetricOptions | undefined }[] = []
  const meter = Object.create(createNoopMeter()) as Meter
  meter.createHistogram = (name: string, options?: MetricOptions) => {
    created.push({ kind: 'histogram', name, options })
    return {
      record: (value, attrs = {}) => calls.push({ kind: 'histogram', name, value, attrs }),
    } as Histogram
  }
  meter.createCounter = (name: string, options?: MetricOptions) => {
    created.push({ kind: 'counter', name, options })
    return { add: (value, attrs = {}) => calls.push({ kind: 'counter', name, value, attrs }) } as Counter
  }
  return { meter, calls, created }
}

// semantic-conventions v1.41 docs/gen-ai/gen-ai-metrics.md
const DURATION_ADVICE = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
const TOKEN_ADVICE = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]

const OLLAMA = {
  'gen_ai.operation.name': 'text_completion',
  'gen_ai.provider.name': 'ollama',
  'gen_ai.request.model': 'llama3',
  'server.address': 'ollama.test',
  'server.port': 11434,
}

describe('OpenTelemetry sink (GenAI semantic conventions)', () => {
  afterEach(() => {
    metrics.disable()
  })

  it('creates the conventions’ instruments with their units and advised buckets', () => {
    const { meter, created } = recordingMeter()
    createOpenTelemetrySink({ meter })
    const byName = new Map(created.map((c) => [c.name, c]))
    expect(byName.get('gen_ai.client.operation.duration')).toMatchObject({
      kind: 'histogram',
      options: { unit: 's', advice: { explicitBucketBoundaries: DURATION_ADVICE } },
    })
    expect(byName.get('gen_ai.client.token.usage')).toMatchObject({
      kind: 'histogram',
      options: { unit: '{token}', advice: { explicitBucketBoundaries: TOKEN_ADVICE } },
    })
    expect(byName.get('gen_ai.client.operation.time_to_first_chunk')).toMatchObject({
      kind: 'histogram',
      options: { unit: 's', advice: { explicitBucketBoundaries: DURATION_ADVICE } },
    })
    expect(byName.get('llm_router.fallbacks')?.kind).toBe('counter')
    expect(created).toHaveLength(4)
  })

  it('records a generate() call: duration and input/output token usage with the required attributes', () => {
    const { meter, calls } = recordingMeter()
    const sink = createOpenTelemetrySink({ meter })
    sink.write(rec({ latency_seconds: 1.25, prompt_tokens: 7, tokens: 42 }))
    const ok = { ...OLLAMA, 'gen_ai.response.model': 'llama3' }
    expect(calls).toEqual([
      { kind: 'histogram', name: 'gen_ai.client.operation.duration', value: 1.25, attrs: ok },
      {
        kind: 'histogram',
        name: 'gen_ai.client.token.usage',
        value: 7,
        attrs: { ...ok, 'gen_ai.token.type': 'input' },
      },
      {
        kind: 'histogram',
        name: 'gen_ai.client.token.usage',
        value: 42,
        attrs: { ...ok, 'gen_ai.token.type': 'output' },
      },
    ])
    const keys = new Set(calls.flatMap((c) => Object.keys(c.attrs)))
    for (const forbidden of ['request_id', 'session_id', 'user_id', 'gen_ai.system', 'endpoint'])
      expect(keys.has(forbidden)).toBe(false)
  })

  it('names the operation: chat, embeddings (input tokens only), text_completion by default', () => {
    const { meter, calls } = recordingMeter()
    const sink = createOpenTelemetrySink({ meter })
    sink.write(rec({ operation: 'chat' }))
    sink.write(rec({ operation: 'embed', backend: 'mlx', endpoint: 'https://gpu.lan/v1', tokens: 0 }))
    sink.write(rec({ operation: 'generate' }))
    const durations = calls.filter((c) => c.name === 'gen_ai.client.operation.duration')
    expect(durations.map((c) => c.attrs['gen_ai.operation.name'])).toEqual([
      'chat',
      'embeddings',
      'text_completion',
    ])
    const embed = calls.filter((c) => c.attrs['gen_ai.operation.name'] === 'embeddings')
    expect(embed.map((c) => [c.name, c.attrs['gen_ai.token.type']])).toEqual([
      ['gen_ai.client.operation.duration', undefined],
      ['gen_ai.client.token.usage', 'input'],
    ])
    // The port defaults by scheme; the path is not part of the address.
    expect(embed[0]?.attrs).toMatchObject({
      'gen_ai.provider.name': 'mlx',
      'server.address': 'gpu.lan',
      'server.port': 443,
    })
  })

  it('a failed call: error.type is the RouterError code, no response model, no token usage', () => {
    const { meter, calls } = recordingMeter()
    const sink = createOpenTelemetrySink({ meter })
    sink.write(
      rec({
        outcome: 'error',
        error_code: ErrorCode.ALL_BACKENDS_FAILED,
        tokens: 0,
        prompt_tokens: 0,
        latency_seconds: 30,
        fallback: true,
      }),
    )
    sink.write(rec({ outcome: 'aborted', error_code: ErrorCode.ABORTED, endpoint: null, backend: 'none' }))
    expect(calls).toEqual([
      {
        kind: 'histogram',
        name: 'gen_ai.client.operation.duration',
        value: 30,
        attrs: { ...OLLAMA, 'error.type': 'ALL_BACKENDS_FAILED' },
      },
      {
        kind: 'counter',
        name: 'llm_router.fallbacks',
        value: 1,
        attrs: { ...OLLAMA, 'error.type': 'ALL_BACKENDS_FAILED' },
      },
      {
        kind: 'histogram',
        name: 'gen_ai.client.operation.duration',
        value: 0.5,
        attrs: {
          'gen_ai.operation.name': 'text_completion',
          'gen_ai.provider.name': 'none',
          'gen_ai.request.model': 'llama3',
          'error.type': 'ABORTED',
        },
      },
    ])
  })

  it('time to first chunk for streams, fallbacks under the prefix, provider names mapped', () => {
    const { meter, calls } = recordingMeter()
    const sink = createOpenTelemetrySink({ meter, prefix: 'myapp.llm', providerNames: { mlx: 'vllm' } })
    sink.write(
      rec({
        streamed: true,
        time_to_first_token_seconds: 0.2,
        fallback: true,
        backend: 'mlx',
        endpoint: 'http://127.0.0.1:8080',
      }),
    )
    sink.write(rec({ streamed: true, time_to_first_token_seconds: null }))
    sink.write(
      rec({
        streamed: true,
        time_to_first_token_seconds: 0.4,
        outcome: 'error',
        error_code: ErrorCode.STREAM_INTERRUPTED,
      }),
    )
    const ttft = calls.filter((c) => c.name === 'gen_ai.client.operation.time_to_first_chunk')
    expect(ttft.map((c) => c.value)).toEqual([0.2, 0.4])
    // The interrupted stream had its first chunk; its duration carries the error, this one does not.
    expect(ttft[1]?.attrs['error.type']).toBeUndefined()
    expect(ttft[0]?.attrs).toMatchObject({
      'gen_ai.provider.name': 'vllm',
      'server.address': '127.0.0.1',
      'server.port': 8080,
    })
    expect(calls.filter((c) => c.name === 'myapp.llm.fallbacks').map((c) => c.value)).toEqual([1])
  })

  it('without a router, bounds model cardinality: names past maxModels, or outside `models`, are _OTHER', () => {
    const capped = recordingMeter()
    const sink = createOpenTelemetrySink({ meter: capped.meter, maxModels: 2 })
    for (const model of ['a', 'b', 'c', 'a', 'user-typed-123', 'b']) sink.write(rec({ model }))
    const models = (calls: Recorded[]) =>
      calls
        .filter((c) => c.name === 'gen_ai.client.operation.duration')
        .map((c) => c.attrs['gen_ai.request.model'])
    expect(models(capped.calls)).toEqual(['a', 'b', '_OTHER', 'a', '_OTHER', 'b'])
    // Request and response model stay the same value, so they stay one series.
    expect(
      capped.calls.every((c) => c.attrs['gen_ai.response.model'] === c.attrs['gen_ai.request.model']),
    ).toBe(true)

    const listed = recordingMeter()
    const only = createOpenTelemetrySink({ meter: listed.meter, models: ['nomic-embed-text'] })
    only.write(rec({ model: 'llama3' }))
    only.write(rec({ model: 'nomic-embed-text' }))
    expect(models(listed.calls)).toEqual(['_OTHER', 'nomic-embed-text'])
  })

  it('with a router attached: configured models always keep their name, default-backend names are capped', async () => {
    const { meter, calls } = recordingMeter()
    const sink = createOpenTelemetrySink({ meter, maxModels: 1 })
    const router = createLLMRouter({
      env: {
        LLM_ROUTER_BACKENDS: JSON.stringify([
          {
            model_name: 'a',
            backend_type: 'ollama',
            endpoint_url: 'http://127.0.0.1:9',
            enabled: true,
            priority: 1,
          },
          {
            model_name: 'b',
            backend_type: 'ollama',
            endpoint_url: 'http://127.0.0.1:9',
            enabled: true,
            priority: 2,
          },
        ]),
      },
      metrics: fanoutSinks(sink),
    })
    try {
      await router.resolve('a') // loads the config
      for (const model of ['typed-1', 'a', 'typed-2', 'b', 'typed-1', 'typed-3']) sink.write(rec({ model }))
      const models = calls
        .filter((c) => c.name === 'gen_ai.client.operation.duration')
        .map((c) => c.attrs['gen_ai.request.model'])
      expect(models).toEqual(['typed-1', 'a', '_OTHER', 'b', 'typed-1', '_OTHER'])
    } finally {
      await router.close()
    }
  })

  it('uses a meterProvider, or the global one registered with @opentelemetry/api', () => {
    const viaProvider = recordingMeter()
    const names: string[] = []
    const provider: MeterProvider = {
      getMeter: (name) => {
        names.push(name)
        return viaProvider.meter
      },
    }
    createOpenTelemetrySink({ meterProvider: provider }).write(rec())
    expect(names).toEqual(['llm-backend-router'])
    expect(viaProvider.calls.length).toBeGreaterThan(0)

    const viaGlobal = recordingMeter()
    expect(metrics.setGlobalMeterProvider({ getMeter: () => viaGlobal.meter })).toBe(true)
    createOpenTelemetrySink().write(rec())
    expect(viaGlobal.calls.map((c) => c.name)).toContain('gen_ai.client.operation.duration')
  })

  it('without any meter, fails fast with INVALID_OPTIONS; a broken instrument never throws into write; closed writes nothing', () => {
    expect(() => createOpenTelemetrySink()).toThrowError(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    const meter = Object.create(createNoopMeter()) as Meter
    meter.createHistogram = () =>
      ({
        record: () => {
          throw new Error('sdk bug')
        },
      }) as unknown as Histogram
    const sink = createOpenTelemetrySink({ meter })
    expect(() => sink.write(rec())).not.toThrow()

    const { meter: m2, calls } = recordingMeter()
    const closing = createOpenTelemetrySink({ meter: m2 })
    return closing.close().then(() => {
      closing.write(rec())
      expect(calls).toEqual([])
    })
  })
})
