import { build } from 'esbuild'
import { describe, expect, it, vi } from 'vitest'
import { createCallbackSink, createStatsCollector, fanoutSinks } from '../src/metrics/index.js'
import { makeMetricRecord } from '../src/testing/core/metrics.js'
import type { MetricRecord, MetricsSink } from '../src/types.js'

/** The kit's fixture, with the fields these tests assert on pinned. */
function rec(over: Partial<MetricRecord> = {}): MetricRecord {
  return makeMetricRecord({
    timestamp: 1_700_000_000,
    model: 'llama3',
    endpoint: 'http://ollama.test:11434',
    latency_seconds: 0.5,
    tokens: 10,
    tokens_per_second: 20,
    prompt_tokens: 5,
    request_id: 'req-1',
    session_id: 'sess-1',
    user_id: 'user-1',
    ...over,
  })
}

describe('callback sink', () => {
  it('catches sync throws and async rejections and reports them through onError', async () => {
    const errors: [unknown, string | null][] = []
    let calls = 0
    const sink = createCallbackSink(
      (r) => {
        calls++
        if (r.request_id === 'sync') throw new Error('sync boom')
        if (r.request_id === 'async') return Promise.reject(new Error('async boom'))
        return undefined
      },
      { onError: (e, r) => errors.push([e, r.request_id]) },
    )
    expect(() => sink.write(rec({ request_id: 'sync' }))).not.toThrow()
    expect(() => sink.write(rec({ request_id: 'async' }))).not.toThrow()
    sink.write(rec({ request_id: 'ok' }))
    await sink.flush()
    expect(calls).toBe(3)
    expect(errors.map(([e, id]) => [(e as Error).message, id])).toEqual([
      ['sync boom', 'sync'],
      ['async boom', 'async'],
    ])
  })

  it('survives a throwing onError and unhandled rejections never escape', async () => {
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    try {
      const sink = createCallbackSink(() => Promise.reject(new Error('x')), {
        onError: () => {
          throw new Error('onError bug')
        },
      })
      sink.write(rec())
      await sink.flush()
      const quiet = createCallbackSink(() => Promise.reject(new Error('no handler')))
      quiet.write(rec())
      await quiet.close()
      await new Promise((r) => setTimeout(r, 10))
      expect(unhandled).not.toHaveBeenCalled()
    } finally {
      process.off('unhandledRejection', unhandled)
    }
  })

  it('flush() and close() wait for pending async callbacks; writes after close are ignored', async () => {
    const done: string[] = []
    const sink = createCallbackSink(async (r) => {
      await new Promise((res) => setTimeout(res, 5))
      done.push(r.request_id ?? '')
    })
    sink.write(rec({ request_id: 'a' }))
    await sink.flush()
    expect(done).toEqual(['a'])
    sink.write(rec({ request_id: 'b' }))
    const c = sink.close()
    expect(sink.close()).toBe(c)
    await c
    expect(done).toEqual(['a', 'b'])
    sink.write(rec({ request_id: 'late' }))
    await new Promise((r) => setTimeout(r, 10))
    expect(done).toEqual(['a', 'b'])
  })
})

describe('fanout', () => {
  function recording(): MetricsSink & { seen: string[]; flushed: number; closed: number } {
    const s = {
      seen: [] as string[],
      flushed: 0,
      closed: 0,
      write: (r: MetricRecord) => {
        s.seen.push(r.request_id ?? '')
      },
      flush: async () => {
        s.flushed++
      },
      close: async () => {
        s.closed++
      },
    }
    return s
  }

  it('a throwing sink does not keep the record from the others; the error surfaces after all were written', () => {
    const a = recording()
    const c = recording()
    const bad: MetricsSink = {
      write: () => {
        throw new Error('bad sink')
      },
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
    }
    const fan = fanoutSinks(a, bad, c)
    expect(() => fan.write(rec({ request_id: 'x' }))).toThrow('bad sink')
    expect(a.seen).toEqual(['x'])
    expect(c.seen).toEqual(['x'])
    const twoBad = fanoutSinks(bad, bad, a)
    expect(() => twoBad.write(rec({ request_id: 'y' }))).toThrow(AggregateError)
    expect(a.seen).toEqual(['x', 'y'])
  })

  it('flushes and closes every sink even when one rejects or throws synchronously', async () => {
    const a = recording()
    const c = recording()
    const bad: MetricsSink = {
      write: () => {},
      flush: () => Promise.reject(new Error('flush failed')),
      close: () => {
        throw new Error('close threw')
      },
    }
    const fan = fanoutSinks(a, bad, c)
    await expect(fan.flush()).rejects.toThrow('flush failed')
    expect([a.flushed, c.flushed]).toEqual([1, 1])
    const closing = fan.close()
    expect(fan.close()).toBe(closing)
    await expect(closing).rejects.toThrow('close threw')
    expect([a.closed, c.closed]).toEqual([1, 1])
  })

  it('with healthy sinks, write does not throw and flush resolves', async () => {
    const a = recording()
    const fan = fanoutSinks(
      a,
      createCallbackSink(() => undefined),
    )
    fan.write(rec())
    await expect(fan.flush()).resolves.toBeUndefined()
    expect(a.seen).toHaveLength(1)
  })
})

describe('OpenTelemetry sink module', () => {
  it('the metrics module loads without @opentelemetry/api (type-only import)', async () => {
    const out = await build({
      entryPoints: ['src/metrics/index.ts'],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      packages: 'external',
      logLevel: 'silent',
    })
    const code = out.outputFiles[0]?.text ?? ''
    expect(code).toContain('createOpenTelemetrySink')
    expect(code).not.toMatch(/(from\s*|require\(\s*|import\(\s*)["']@opentelemetry\/api/)
    expect(code).toMatch(/from\s*["']undici["']/)
  })
})

describe('stats collector', () => {
  it('computes count, errors, p50/p95 latency and tokens/sec per model/backend/endpoint', () => {
    const stats = createStatsCollector()
    // Latencies 1..100 ms, shuffled: percentiles must not depend on arrival order.
    const lat = Array.from({ length: 100 }, (_, i) => i + 1).sort(
      (a, b) => ((a * 37) % 101) - ((b * 37) % 101),
    )
    for (const ms of lat)
      stats.record(rec({ latency_seconds: ms / 1000, tokens_per_second: ms % 2 === 0 ? 10 : 30 }))
    stats.record(rec({ outcome: 'error', error_code: 'BACKEND_ERROR', latency_seconds: 9, tokens: 0 }))
    stats.record(rec({ outcome: 'aborted', latency_seconds: 0.001, tokens: 0 }))
    stats.record(
      rec({ backend: 'mlx', endpoint: 'http://mlx.test:8080', latency_seconds: 2, tokens_per_second: 50 }),
    )
    stats.record(
      rec({
        model: 'ghost',
        backend: 'none',
        endpoint: null,
        outcome: 'error',
        error_code: 'MODEL_NOT_CONFIGURED',
        timestamp: 1_700_000_100,
        latency_seconds: 0,
      }),
    )

    const snap = stats.snapshot()
    expect(snap.map((s) => [s.model, s.backend, s.endpoint])).toEqual([
      ['ghost', 'none', null],
      ['llama3', 'mlx', 'http://mlx.test:8080'],
      ['llama3', 'ollama', 'http://ollama.test:11434'],
    ])
    const ollama = snap[2]!
    expect(ollama).toMatchObject({ count: 102, errors: 1, samples: 100, p50LatencyMs: 50, p95LatencyMs: 95 })
    expect(ollama.avgTokensPerSecond).toBeCloseTo(20)
    expect(ollama.lastAt).toBe(1_700_000_009_000)
    expect(snap[1]).toMatchObject({
      count: 1,
      errors: 0,
      p50LatencyMs: 2000,
      p95LatencyMs: 2000,
      avgTokensPerSecond: 50,
    })
    expect(snap[0]).toMatchObject({
      count: 1,
      errors: 1,
      samples: 0,
      p50LatencyMs: null,
      p95LatencyMs: null,
      avgTokensPerSecond: null,
      lastAt: 1_700_000_100_000,
    })
  })

  it('keeps a rolling window per key and a bounded number of keys', () => {
    const stats = createStatsCollector({ windowSize: 10, maxKeys: 2 })
    for (let i = 0; i < 10; i++) stats.record(rec({ latency_seconds: 5 }))
    for (let i = 0; i < 10; i++) stats.record(rec({ latency_seconds: 0.1, tokens_per_second: 99 }))
    const [only] = stats.snapshot()
    expect(only).toMatchObject({
      count: 20,
      samples: 10,
      p50LatencyMs: 100,
      p95LatencyMs: 100,
      avgTokensPerSecond: 99,
    })

    stats.record(rec({ model: 'b' }))
    stats.record(rec({ model: 'llama3' }))
    stats.record(rec({ model: 'c' }))
    // 'b' was least recently updated, so it went first.
    expect(stats.snapshot().map((s) => s.model)).toEqual(['c', 'llama3'])
    stats.reset()
    expect(stats.snapshot()).toEqual([])
  })

  it('snapshots are copies: later records do not change an earlier snapshot', () => {
    const stats = createStatsCollector()
    stats.record(rec())
    const before = stats.snapshot()
    stats.record(rec({ latency_seconds: 10 }))
    expect(before[0]?.count).toBe(1)
    expect(stats.snapshot()[0]?.count).toBe(2)
  })

  it('repeats of the last route keep the LRU order and counts of a per-key lookup', () => {
    const stats = createStatsCollector({ maxKeys: 2 })
    stats.record(rec({ model: 'a' }))
    stats.record(rec({ model: 'b' }))
    stats.record(rec({ model: 'a' }))
    stats.record(rec({ model: 'a' }))
    stats.record(rec({ model: 'c' }))
    // 'a' was updated after 'b', so 'c' evicts 'b'.
    expect(stats.snapshot().map((s) => [s.model, s.endpoint, s.count])).toEqual([
      ['a', 'http://ollama.test:11434', 3],
      ['c', 'http://ollama.test:11434', 1],
    ])
    stats.reset()
    stats.record(rec({ model: 'c' }))
    expect(stats.snapshot().map((s) => [s.model, s.count])).toEqual([['c', 1]])
  })
})
