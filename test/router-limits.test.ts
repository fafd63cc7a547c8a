/**
 * Endpoint limits through the router (in-memory store, msw backends, manual clock): rpm, tpm with
 * reconciliation, token budgets, the next candidate at a limit, the bounded wait, RATE_LIMITED.
 */
import { HttpResponse, http } from 'msw'
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter, hasErrorCode, type LLMRouter, type RouterError } from '../src/index.js'
import { collect } from './helpers/events.js'
import { ManualClock, until } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()
const A = 'http://a.test:11434'
const B = 'http://b.test:11434'

function ollamaOk(prompt = 7, completion = 20) {
  return {
    model: 'm',
    created_at: '2026-01-01T00:00:00Z',
    response: 'ok',
    done: true,
    done_reason: 'stop',
    prompt_eval_count: prompt,
    eval_count: completion,
    eval_duration: 500_000_000,
  }
}

/** Counts requests per endpoint; `hold` keeps answers back until released. */
function backends(...urls: string[]) {
  const hits = new Map<string, number>()
  const held: (() => void)[] = []
  let hold = false
  for (const url of urls) {
    net.use(
      http.post(`${url}/api/generate`, async () => {
        hits.set(url, (hits.get(url) ?? 0) + 1)
        if (hold) await new Promise<void>((r) => held.push(r))
        return HttpResponse.json(ollamaOk())
      }),
    )
  }
  return {
    hits: (url: string) => hits.get(url) ?? 0,
    hold(on: boolean) {
      hold = on
    },
    release() {
      for (const r of held.splice(0)) r()
    },
    get held() {
      return held.length
    },
  }
}

let routers: LLMRouter[] = []
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
})

function makeRouter(
  records: Record<string, unknown>[],
  clock: ManualClock,
  extra: Record<string, unknown> = {},
) {
  const router = createLLMRouter(
    {
      env: {
        LLM_ROUTER_BACKENDS: JSON.stringify(
          records.map((r) => ({ backend_type: 'ollama', model_name: 'm', enabled: true, ...r })),
        ),
      },
      metrics: false,
      ...extra,
    },
    { clock },
  )
  routers.push(router)
  return router
}

describe('limits', () => {
  it('takes the next candidate when an endpoint is at its rpm, and says so in an event', async () => {
    const net2 = backends(A, B)
    const clock = new ManualClock()
    const router = makeRouter(
      [
        { endpoint_url: A, priority: 1, rpm: 2 },
        { endpoint_url: B, priority: 2 },
      ],
      clock,
    )
    const refused = collect(router, 'limit:refused')
    for (let i = 0; i < 3; i++) await router.generate({ model: 'm', prompt: 'hi' })
    expect(net2.hits(A)).toBe(2)
    expect(net2.hits(B)).toBe(1)
    expect(refused).toEqual([
      { model: 'm', backend: 'ollama', endpoint: A, limit: 'rpm', retryAfterMs: 60_000 },
    ])
    // The window slides: a minute later A takes requests again.
    clock.advance(60_000)
    const r = await router.generate({ model: 'm', prompt: 'hi' })
    expect(r.endpoint).toBe(A)
  })

  it('waits within the deadline when every candidate is at its limit, then sends', async () => {
    const net2 = backends(A)
    const clock = new ManualClock()
    const router = makeRouter([{ endpoint_url: A, rpm: 1 }], clock)
    const waits = collect(router, 'limit:wait')
    await router.generate({ model: 'm', prompt: 'hi' })
    clock.advance(30_000)
    let done = false
    const second = router.generate({ model: 'm', prompt: 'hi', timeoutMs: 120_000 }).finally(() => {
      done = true
    })
    await until(() => waits.length === 1, 'the wait')
    expect(waits[0]).toEqual({ model: 'm', waitMs: 30_000, waiting: 1 })
    clock.advance(29_999)
    await new Promise((r) => setTimeout(r, 5))
    expect(done).toBe(false)
    expect(net2.hits(A)).toBe(1)
    clock.advance(1)
    const result = await second
    expect(result.endpoint).toBe(A)
    expect(net2.hits(A)).toBe(2)
  })

  it('fails with RATE_LIMITED and retryAfterMs when the wait does not fit the deadline, sending nothing', async () => {
    const net2 = backends(A)
    const clock = new ManualClock()
    const router = makeRouter([{ endpoint_url: A, rpm: 1 }], clock)
    await router.generate({ model: 'm', prompt: 'hi' })
    const error = (await router
      .generate({ model: 'm', prompt: 'hi', timeoutMs: 5000 })
      .catch((e) => e)) as RouterError
    expect(error.code).toBe('RATE_LIMITED')
    expect(error.retryAfterMs).toBe(60_000)
    expect(error.message).toContain('rpm')
    expect(error.attempts).toMatchObject([{ endpoint: A, attempt: 0, ok: false, code: 'RATE_LIMITED' }])
    expect(net2.hits(A)).toBe(1)
  })

  it('bounds the total wait (limits.maxWaitMs) and the queue (limits.maxQueue)', async () => {
    backends(A)
    const clock = new ManualClock()
    const r1 = makeRouter([{ endpoint_url: A, rpm: 1 }], clock, { limits: { maxWaitMs: 10_000 } })
    await r1.generate({ model: 'm', prompt: 'hi' })
    expect(
      hasErrorCode(await r1.generate({ model: 'm', prompt: 'hi' }).catch((e) => e), 'RATE_LIMITED'),
    ).toBe(true)
    const r2 = makeRouter([{ endpoint_url: A, rpm: 1, model_name: 'n' }], clock, { limits: { maxQueue: 0 } })
    await r2.generate({ model: 'n', prompt: 'hi' })
    const e = (await r2.generate({ model: 'n', prompt: 'hi' }).catch((x) => x)) as RouterError
    expect(e.code).toBe('RATE_LIMITED')
  })

  it('reserves tokens from the estimate and reconciles them with the real usage (tpm)', async () => {
    const net2 = backends(A)
    const clock = new ManualClock()
    // Estimate per request: 1 prompt token ("hi") + max_tokens 80 = 81; real usage 7 + 20 = 27.
    const router = makeRouter([{ endpoint_url: A, tpm: 120, max_tokens: 80 }], clock)
    const refused = collect(router, 'limit:refused')
    net2.hold(true)
    const first = router.generate({ model: 'm', prompt: 'hi' })
    await until(() => net2.held === 1, 'the first request at the backend')
    // 81 reserved + 81 > 120: the second waits while the first is in flight.
    const second = router.generate({ model: 'm', prompt: 'hi', timeoutMs: 120_000 })
    await until(() => refused.length === 1, 'the refusal')
    expect(refused[0]).toMatchObject({ limit: 'tpm', endpoint: A })
    net2.hold(false)
    net2.release()
    await first
    // Reconciled to 27: 27 + 81 <= 120, so the check after one poll interval goes through.
    await until(() => clock.pendingDelays().includes(200), 'the poll timer')
    clock.advance(200)
    await second
    expect(net2.hits(A)).toBe(2)
    // Without reconciliation 81 + 81 would be refused again; with it 27 + 27 + 81 = 135 > 120 is refused.
    // It polls every 200 ms until its 1 s deadline no longer fits another wait, then fails.
    const third = router.generate({ model: 'm', prompt: 'hi', timeoutMs: 1000 }).catch((e) => e)
    let settled = false
    void third.then(() => {
      settled = true
    })
    for (let i = 0; i < 10 && !settled; i++) {
      await until(() => settled || clock.pendingDelays().includes(200), 'a poll timer')
      if (!settled) clock.advance(200)
    }
    const error = (await third) as RouterError
    expect(error.code).toBe('RATE_LIMITED')
    expect(error.retryAfterMs).toBeGreaterThan(58_000)
    expect(net2.hits(A)).toBe(2)
  })

  it('skips an endpoint past its token budget until the period rolls over', async () => {
    const net2 = backends(A, B)
    const clock = new ManualClock(3_600_000 * 500_000)
    const router = makeRouter(
      [
        { endpoint_url: A, priority: 1, token_budget: 50, budget_period_seconds: 3600, max_tokens: 80 },
        { endpoint_url: B, priority: 2 },
      ],
      clock,
    )
    const refused = collect(router, 'limit:refused')
    // Each request really uses 27: 0 -> 27 -> 54 (past 50) -> skipped.
    await router.generate({ model: 'm', prompt: 'hi' })
    await router.generate({ model: 'm', prompt: 'hi' })
    await until(() => true, '')
    const third = await router.generate({ model: 'm', prompt: 'hi' })
    expect(third.endpoint).toBe(B)
    expect(refused[0]).toMatchObject({ limit: 'token_budget', endpoint: A, retryAfterMs: 3_600_000 })
    clock.advance(3_600_000)
    expect((await router.generate({ model: 'm', prompt: 'hi' })).endpoint).toBe(A)
    expect(net2.hits(A)).toBe(3)
  })

  it('router.health() shows a limit that refused a member until it lifts', async () => {
    backends(A, B)
    const clock = new ManualClock()
    const router = makeRouter(
      [
        { endpoint_url: A, priority: 1, rpm: 1 },
        { endpoint_url: B, priority: 2 },
      ],
      clock,
    )
    await router.generate({ model: 'm', prompt: 'hi' })
    expect(router.health().find((h) => h.endpoint === A)?.limited).toBeNull()
    await router.generate({ model: 'm', prompt: 'hi' })
    expect(router.health().find((h) => h.endpoint === A)?.limited).toEqual({
      limit: 'rpm',
      until: clock.now() + 60_000,
      model: 'm',
    })
    expect(router.health().find((h) => h.endpoint === B)?.limited).toBeNull()
    clock.advance(60_000)
    expect(router.health().find((h) => h.endpoint === A)?.limited).toBeNull()
  })

  it('records without limits never reach the store', async () => {
    backends(A)
    const clock = new ManualClock()
    const router = makeRouter([{ endpoint_url: A }], clock)
    const refused = collect(router, 'limit:refused')
    for (let i = 0; i < 5; i++) await router.generate({ model: 'm', prompt: 'hi' })
    expect(refused).toEqual([])
  })
})

describe('redis options', () => {
  it('takes redis.url or LLM_ROUTER_REDIS_URL and rejects other schemes, naming the source', async () => {
    const { resolveOptions } = await import('../src/options.js')
    expect(resolveOptions({ env: {} }).redis).toBeNull()
    expect(resolveOptions({ env: { LLM_ROUTER_REDIS_URL: 'redis://127.0.0.1:6380' } }).redis).toEqual({
      url: 'redis://127.0.0.1:6380',
      prefix: 'llm-router:',
      timeoutMs: 100,
    })
    expect(
      resolveOptions({ env: {}, redis: { url: 'rediss://r.internal:6380', prefix: 'svc:', timeoutMs: 20 } })
        .redis,
    ).toMatchObject({ url: 'rediss://r.internal:6380', prefix: 'svc:', timeoutMs: 20 })
    const fromEnv = (() => {
      try {
        resolveOptions({ env: { LLM_ROUTER_REDIS_URL: 'http://127.0.0.1:6379' } })
      } catch (e) {
        return e as RouterError
      }
      return null
    })()
    expect(fromEnv?.code).toBe('INVALID_OPTIONS')
    expect(fromEnv?.message).toContain('LLM_ROUTER_REDIS_URL')
    expect(() => resolveOptions({ env: {}, redis: { url: 'tcp://x:1' } })).toThrow(/redis/)
  })
})
