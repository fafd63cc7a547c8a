/**
 * Fault matrix, admin API: every wire fault of the testing kit (and two bad payloads) on the admin
 * stand-in. Whatever the admin does, requests never fail because of it: before any good load the
 * router uses the env records, after one it keeps serving the last good config (origin 'stale'),
 * and each failed fetch is reported once as 'config:failed' with a code saying why.
 *
 * Time is a ManualClock: admin.timeoutMs passes only when a row whose fault is about time advances
 * it, once the fetch has set that timer, and the TTL only when a test advances past it. Real time
 * only bounds how long a test waits, so a loaded CI machine cannot turn a slow fetch into a timeout.
 * The README's "fault -> behaviour" table mirrors the ROWS below.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ErrorCode } from '../src/errors.js'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import {
  type AdminServer,
  type FaultSpec,
  type OllamaServer,
  startAdminServer,
  startOllamaServer,
} from '../src/testing/index.js'
import type { RouterEvents } from '../src/types.js'
import { collect } from './helpers/events.js'
import { LeakCheck } from './helpers/leaks.js'
import { ManualClock, until } from './helpers/manual-clock.js'

const ADMIN_TIMEOUT_MS = 2000
const MAX_PAYLOAD_BYTES = 4096
const TTL_MS = 200

interface Row {
  name: string
  /** The fault to inject, or a change to what the admin serves. */
  fault?: (clock: { now(): number }) => FaultSpec
  payload?: unknown
  /** null: the fetch succeeds. */
  code: ErrorCode | null
  status?: number
  /** A phrase of the error message that says what happened. */
  says?: RegExp
  /** The fetch ends only when admin.timeoutMs passes: the test advances the clock by it. */
  timesOut?: boolean
}

const ROWS: Row[] = [
  {
    name: 'refused port',
    fault: () => ({ type: 'down' }),
    code: 'CONFIG_FETCH_FAILED',
    says: /ECONNREFUSED/,
  },
  {
    name: 'accepts and never answers',
    timesOut: true,
    fault: () => ({ type: 'hang' }),
    code: 'CONFIG_FETCH_FAILED',
    says: /did not answer within 2000 ms/,
  },
  {
    name: 'headers, then a stalled body',
    timesOut: true,
    fault: () => ({ type: 'stall-body' }),
    code: 'CONFIG_FETCH_FAILED',
    says: /did not answer within 2000 ms/,
  },
  {
    name: 'reset mid-body',
    fault: () => ({ type: 'reset-mid-body' }),
    code: 'CONFIG_FETCH_FAILED',
    says: /broke off/,
  },
  {
    name: '500 with an HTML body',
    fault: () => ({ type: '500-html' }),
    code: 'CONFIG_FETCH_FAILED',
    status: 500,
  },
  { name: '503 busy', fault: () => ({ type: '503' }), code: 'CONFIG_FETCH_FAILED', status: 503 },
  {
    name: '429, Retry-After in seconds',
    fault: () => ({ type: '429', retryAfter: 2 }),
    code: 'CONFIG_FETCH_FAILED',
    status: 429,
  },
  {
    name: '429, Retry-After as an HTTP-date',
    fault: (clock) => ({ type: '429', retryAfter: new Date(clock.now() + 4000).toUTCString() }),
    code: 'CONFIG_FETCH_FAILED',
    status: 429,
  },
  { name: '404', fault: () => ({ type: '404-model' }), code: 'CONFIG_FETCH_FAILED', status: 404 },
  { name: '400', fault: () => ({ type: '400' }), code: 'CONFIG_FETCH_FAILED', status: 400 },
  { name: 'invalid JSON', fault: () => ({ type: 'invalid-json' }), code: 'CONFIG_INVALID', says: /not JSON/ },
  {
    name: 'body far over admin.maxPayloadBytes',
    fault: () => ({ type: 'oversize', bytes: 1024 * 1024 }),
    code: 'CONFIG_TOO_LARGE',
    says: /maxPayloadBytes \(4096 bytes/,
  },
  {
    name: 'body cut short (Content-Length matches the cut)',
    fault: () => ({ type: 'cut-stream' }),
    code: 'CONFIG_INVALID',
  },
  {
    name: 'server error instead of the payload',
    fault: () => ({ type: 'error-mid-stream' }),
    code: 'CONFIG_FETCH_FAILED',
    status: 500,
  },
  {
    name: 'very slow trickle, past admin.timeoutMs',
    timesOut: true,
    fault: () => ({ type: 'trickle', chunkBytes: 8, delayMs: 40 }),
    code: 'CONFIG_FETCH_FAILED',
    says: /did not answer within/,
  },
  {
    name: 'slow trickle within admin.timeoutMs',
    fault: () => ({ type: 'trickle', chunkBytes: 64, delayMs: 1 }),
    code: null,
  },
  {
    name: 'headers later than admin.timeoutMs',
    timesOut: true,
    fault: () => ({ type: 'slow', delayMs: 1000 }),
    code: 'CONFIG_FETCH_FAILED',
  },
  {
    name: 'socket dropped without a response',
    fault: () => ({ type: 'drop-socket' }),
    code: 'CONFIG_FETCH_FAILED',
  },
  { name: 'payload that is not a list', payload: 'garbage', code: 'CONFIG_INVALID' },
  {
    name: 'list without one valid record',
    payload: [{ model_name: 'm', backend_type: 'tpu', endpoint_url: 'ftp://x' }],
    code: 'CONFIG_INVALID',
    says: /None of the 1 records/,
  },
]

let admin: AdminServer
let ollama: OllamaServer
beforeAll(async () => {
  ollama = await startOllamaServer()
  admin = await startAdminServer({
    records: [
      { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url, enabled: true, priority: 1 },
    ],
  })
})
afterAll(async () => {
  await Promise.all([admin.stop(), ollama.stop()])
})

let router: LLMRouter | null = null
afterEach(async () => {
  await router?.close()
  router = null
  await admin.clearFault()
  admin.setRecords([
    { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url, enabled: true, priority: 1 },
  ])
  admin.reset()
  ollama.reset()
})

/**
 * Awaits `pending`; for a row whose fault is about time, first advances the clock by admin.timeoutMs
 * once the fetch has set that timer, checking that `pending` was still waiting on it.
 */
async function afterAdminTimeout<T>(row: Row, clock: ManualClock, pending: Promise<T>): Promise<T> {
  if (row.timesOut) {
    let settled = false
    const watched = pending.finally(() => {
      settled = true
    })
    await until(() => admin.connections > 0, 'the admin to hold the fetch')
    await clock.untilTimer(ADMIN_TIMEOUT_MS)
    expect(settled).toBe(false)
    clock.advance(ADMIN_TIMEOUT_MS)
    return watched
  }
  return pending
}

async function inject(row: Row, clock: { now(): number }): Promise<void> {
  if (row.fault) await admin.setFault(row.fault(clock))
  if (row.payload !== undefined) admin.setPayload(row.payload)
}

function expectFailed(events: RouterEvents['config:failed'][], row: Row, servingStale: boolean): void {
  expect(events.length).toBeGreaterThanOrEqual(1)
  const first = events[0]!
  expect(first.error).toMatchObject({ name: 'RouterError', code: row.code })
  if (row.status !== undefined) expect(first.error.status).toBe(row.status)
  if (row.says) expect(first.error.message).toMatch(row.says)
  expect(first).toMatchObject({ consecutiveFailures: 1, servingStale })
  expect(first.nextRetryMs).toBeGreaterThan(0)
}

describe.each(ROWS)('admin: $name', (row) => {
  const makeRouter = (clock: ManualClock) =>
    createLLMRouter(
      {
        adminUrl: admin.url,
        admin: { timeoutMs: ADMIN_TIMEOUT_MS, maxPayloadBytes: MAX_PAYLOAD_BYTES, retryBaseMs: 30_000 },
        cacheTtlMs: TTL_MS,
        // The env records the router falls back to before any good admin load.
        env: {
          LLM_ROUTER_BACKENDS: JSON.stringify([
            { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url },
          ]),
        },
        metrics: false,
      },
      { clock },
    )

  it('on the first load: the request is served from env records', async () => {
    const clock = new ManualClock()
    await inject(row, clock)
    const leaks = new LeakCheck([admin, ollama], clock)
    router = makeRouter(clock)
    const failed = collect(router, 'config:failed')
    const fallback = collect(router, 'config:fallback')
    const loaded = collect(router, 'config:loaded')
    const metrics = collect(router, 'metric')

    const t0 = clock.now()
    const result = await afterAdminTimeout(
      row,
      clock,
      router.generate({ model: 'm', prompt: 'hi', timeoutMs: 60_000 }),
    )
    expect(result.response.length).toBeGreaterThan(0)
    // The request waits on the first load for admin.timeoutMs at most, and only if the fault is about time.
    expect(clock.now() - t0).toBe(row.timesOut ? ADMIN_TIMEOUT_MS : 0)
    expect(metrics).toHaveLength(1)
    expect(metrics[0]).toMatchObject({ outcome: 'success' })

    if (row.code === null) {
      expect(failed).toEqual([])
      expect(loaded).toHaveLength(1)
      expect(metrics[0]!.config_origin).toBe('admin')
    } else {
      expectFailed(failed, row, false)
      expect(fallback).toEqual([{ origin: 'env', reason: expect.stringContaining(row.code) }])
      expect(metrics[0]!.config_origin).toBe('env')
      expect(router.config()?.origin).toBe('env')
    }
    await router.close()
    router = null
    await leaks.expectClean()
  })

  it('after a good load: the last good config keeps serving', async () => {
    const clock = new ManualClock()
    const leaks = new LeakCheck([admin, ollama], clock)
    router = makeRouter(clock)
    const failed = collect(router, 'config:failed')
    const refreshed = collect(router, 'config:refreshed')
    const metrics = collect(router, 'metric')
    const good = await router.refresh()
    expect(good.origin).toBe('admin')

    // The admin changes its records (so the answer is a body, not a 304) and then misbehaves.
    admin.setRecords([
      { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url, enabled: true, priority: 2 },
    ])
    await inject(row, clock)
    // Past the TTL: the next request revalidates in the background and is served meanwhile.
    clock.advance(TTL_MS * 2)
    // Served from the cache: no wait on the admin, however it misbehaves. The clock stands still, so a
    // request waiting on a hanging admin would never resolve: the bounded wait below fails instead.
    let served: Awaited<ReturnType<LLMRouter['generate']>> | null = null
    void router.generate({ model: 'm', prompt: 'hi', timeoutMs: 60_000 }).then((r) => {
      served = r
    })
    await until(() => served !== null, 'the request to be served while the admin misbehaves')
    const result = served!
    expect(result.response.length).toBeGreaterThan(0)
    expect(metrics).toHaveLength(1)
    expect(metrics[0]).toMatchObject({ outcome: 'success', config_origin: 'stale' })
    // ...while the revalidation still waits on the admin.
    if (row.timesOut) expect(clock.pendingDelays()).toContain(ADMIN_TIMEOUT_MS)

    await afterAdminTimeout(
      row,
      clock,
      until(() => failed.length > 0 || refreshed.length > 0, 'the background revalidation to end'),
    )
    if (row.code === null) {
      expect(failed).toEqual([])
      expect(refreshed).toMatchObject([{ changed: true }])
      expect(router.config()?.origin).toBe('admin')
      expect(router.config()?.records[0]?.priority).toBe(2)
    } else {
      expectFailed(failed, row, true)
      const info = router.config()
      expect(info?.origin).toBe('stale')
      expect(info?.records).toEqual(good.records)
      await expect(afterAdminTimeout(row, clock, router.refresh())).rejects.toMatchObject({ code: row.code })
      // Still served, still from the last good config.
      await router.generate({ model: 'm', prompt: 'again', timeoutMs: 60_000 })
      expect(metrics.map((m) => m.config_origin)).toEqual(['stale', 'stale'])
    }
    await router.close()
    router = null
    await leaks.expectClean()
  })
})
