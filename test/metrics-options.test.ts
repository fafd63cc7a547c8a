/**
 * `createLLMRouter({ metrics: {...} })` accepts every option `createHttpSink()` accepts: both read ONE
 * zod schema (src/metrics/options.ts), so a new sink option cannot be forgotten on the router side.
 */
import { Agent } from 'undici'
import { describe, expect, expectTypeOf, it, vi } from 'vitest'
import type { z } from 'zod'
import { createHttpSink, createLLMRouter, type HttpSinkOptions, type RouterError } from '../src/index.js'
import { systemClock } from '../src/internal/clock.js'
import { httpSinkOptionsSchema } from '../src/metrics/options.js'
import { resolveOptions } from '../src/options.js'

const agent = new Agent()

/** A valid value for every sink option but `url`. A new option without a sample fails the first test. */
const samples: Omit<Required<HttpSinkOptions>, 'url'> = {
  mode: 'single',
  batchSize: 10,
  flushIntervalMs: 1000,
  maxQueueSize: 100,
  timeoutMs: 2000,
  maxRetries: 1,
  retryBaseMs: 50,
  retryMaxDelayMs: 400,
  maxRetryAfterMs: 1000,
  concurrency: 2,
  closeTimeoutMs: 500,
  headers: { authorization: 'Bearer x' },
  dispatcher: agent,
  clock: systemClock,
  onDropped: () => {},
  onFlushFailed: () => {},
}

describe('one schema for createHttpSink() and createLLMRouter({ metrics })', () => {
  it('the samples cover every option of the schema, and the public type has exactly those keys', () => {
    expect(Object.keys(samples).sort()).toEqual(
      Object.keys(httpSinkOptionsSchema.shape)
        .filter((k) => k !== 'url')
        .sort(),
    )
    expectTypeOf<keyof HttpSinkOptions>().toEqualTypeOf<keyof z.input<typeof httpSinkOptionsSchema>>()
  })

  it('every sink option is accepted by both, one at a time and all together', async () => {
    for (const [key, value] of Object.entries(samples)) {
      const sink = createHttpSink({ url: 'http://127.0.0.1:9/m', [key]: value })
      await sink.close()
      const router = createLLMRouter({ adminUrl: 'http://127.0.0.1:9', env: {}, metrics: { [key]: value } })
      await router.close()
    }
    await createHttpSink({ url: 'http://127.0.0.1:9/m', ...samples }).close()
    await createLLMRouter({ adminUrl: 'http://127.0.0.1:9', env: {}, metrics: { ...samples } }).close()
    const resolved = resolveOptions({ adminUrl: 'http://127.0.0.1:9', env: {}, metrics: { ...samples } })
    expect(resolved.metrics).toMatchObject({ ...samples, url: 'http://127.0.0.1:9/api/llm-backends/metrics' })
  })

  it('the same value is rejected by both, naming the option', () => {
    const codeAndPaths = (fn: () => unknown): [string, string[]] => {
      try {
        fn()
      } catch (err) {
        const e = err as RouterError
        return [e.code, e.issues.map((i) => i.path)]
      }
      return ['no error', []]
    }
    expect(codeAndPaths(() => createHttpSink({ url: 'http://127.0.0.1:9/m', retryBaseMs: -1 }))).toEqual([
      'INVALID_OPTIONS',
      ['retryBaseMs'],
    ])
    expect(
      codeAndPaths(() =>
        createLLMRouter({
          adminUrl: 'http://127.0.0.1:9',
          env: {},
          metrics: { retryBaseMs: -1, colour: 1 } as never,
        }),
      ),
    ).toEqual(['INVALID_OPTIONS', ['metrics.retryBaseMs', 'metrics']])
  })

  it("the router calls the user's onDropped / onFlushFailed as well as emitting its events", async () => {
    const onDropped = vi.fn()
    const onFlushFailed = vi.fn()
    const router = createLLMRouter({
      adminUrl: 'http://127.0.0.1:9',
      env: { OLLAMA_HOST: 'http://127.0.0.1:9' },
      metrics: { onDropped, onFlushFailed, closeTimeoutMs: 0 },
    })
    const events: string[] = []
    router.on('metrics:dropped', () => events.push('dropped'))
    router.on('metrics:flush-failed', () => events.push('flush-failed'))
    // A request that fails fast (nothing listens on port 9) leaves one record; nothing can take it.
    await router.generate({ model: 'm', prompt: 'x' }).catch(() => {})
    await router.close()
    await vi.waitFor(() => expect(onDropped).toHaveBeenCalledWith(1, 1))
    expect(onFlushFailed).toHaveBeenCalledTimes(1)
    expect(onFlushFailed.mock.calls[0]?.[2]).toBe(false)
    expect(events).toContain('flush-failed')
  })
})
