/**
 * Pools through the whole router, against the testing kit's Ollama stand-ins on 127.0.0.1: which
 * member each request reaches (the stand-ins' own request logs), why (attempts' `selectedBy`, the
 * metric's `selected_by`), the max_concurrency limit and its bounded wait queue, sessions and a
 * canary split, the context-length check, and the record fields on the wire.
 *
 * Deadlines run on a ManualClock; real time only bounds how long a test waits for the router to get
 * somewhere. The fast/slow split uses a real 500 ms delay (the figure), well under a second.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter, hasErrorCode, type LLMRouter, type RouterError } from '../src/index.js'
import type { Clock } from '../src/internal/clock.js'
import { hashString, rendezvousScore } from '../src/pool/affinity.js'
import { type MemberSignals, NO_MEMBER_SIGNALS } from '../src/pool/signals.js'
import { type OllamaServer, startAdminServer, startOllamaServer } from '../src/testing/index.js'
import type { MetricRecord } from '../src/types.js'
import { ManualClock, until } from './helpers/manual-clock.js'
import { seeded } from './helpers/random.js'

let servers: OllamaServer[] = []
let routers: LLMRouter[] = []

afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  await Promise.all(servers.map((s) => s.stop()))
  routers = []
  servers = []
})

async function ollamas(n: number): Promise<OllamaServer[]> {
  const started = await Promise.all(Array.from({ length: n }, () => startOllamaServer()))
  servers.push(...started)
  return started
}

function routerFor(
  records: Record<string, unknown>[],
  opts: { clock?: Clock; signals?: MemberSignals; options?: Record<string, unknown> } = {},
) {
  const full = records.map((r) => ({ model_name: 'm', backend_type: 'ollama', ...r }))
  const clock = opts.clock ?? new ManualClock(Date.now())
  // Power of two choices draws with clock.random: a seeded generator, not ManualClock's constant.
  if (clock instanceof ManualClock) clock.random = seeded(42)
  const router = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(full) }, metrics: false, ...opts.options },
    { clock, ...(opts.signals ? { signals: opts.signals } : {}) },
  )
  routers.push(router)
  const metrics: MetricRecord[] = []
  router.on('metric', (m) => metrics.push(m))
  return { router, metrics }
}

const generated = (s: OllamaServer) => s.requests.filter((r) => r.path === '/api/generate')

/** A session id whose rendezvous first choice among `endpoints` (equal weights) is `endpoints[want]`. */
function sessionHomedAt(endpoints: string[], want: number): string {
  for (let i = 0; ; i++) {
    const id = `s-${i}`
    const h = hashString(id)
    const scores = endpoints.map((e) => rendezvousScore(h, hashString(e), 1))
    if (scores.indexOf(Math.max(...scores)) === want) return id
  }
}

async function inBatches<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n)
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++
        out[i] = await fn(i)
      }
    }),
  )
  return out
}

describe('max_concurrency', () => {
  it('with 4 in flight on a member (its max_concurrency), the next request goes to another member', async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    await a.setFault('hang')
    const { router, metrics } = routerFor([
      { endpoint_url: a.url, max_concurrency: 4 },
      { endpoint_url: b.url },
    ])
    const session = sessionHomedAt([a.url, b.url], 0)
    const ac = new AbortController()
    const hanging = Array.from({ length: 4 }, () =>
      router
        .generate({ model: 'm', prompt: 'hold', signal: ac.signal, metadata: { sessionId: session } })
        .catch((e: unknown) => e as RouterError),
    )
    await until(() => generated(a).length === 4, 'four requests held by the first member')
    const overflow = await router.generate({ model: 'm', prompt: 'next', metadata: { sessionId: session } })
    expect(overflow.endpoint).toBe(b.url)
    expect(overflow.attempts.map((x) => [x.endpoint, x.selectedBy])).toEqual([[b.url, 'overflow']])
    const plain = await router.generate({ model: 'm', prompt: 'no session' })
    expect([plain.endpoint, plain.attempts[0]?.selectedBy]).toEqual([b.url, 'only'])
    expect(generated(a)).toHaveLength(4)
    ac.abort()
    const stopped = await Promise.all(hanging)
    expect(stopped.map((e) => (e as RouterError).code)).toEqual(['ABORTED', 'ABORTED', 'ABORTED', 'ABORTED'])
    expect(metrics.map((m) => m.selected_by).sort()).toEqual([
      'affinity',
      'affinity',
      'affinity',
      'affinity',
      'only',
      'overflow',
    ])
  })

  it('every member full: the request waits for the first free slot (FIFO), then runs there', async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    await a.setFault({ type: 'hang', times: 1 })
    await b.setFault({ type: 'hang', times: 1 })
    const { router } = routerFor([
      { endpoint_url: a.url, max_concurrency: 1 },
      { endpoint_url: b.url, max_concurrency: 1 },
    ])
    const ac1 = new AbortController()
    const ac2 = new AbortController()
    const first = router.generate({ model: 'm', prompt: '1', signal: ac1.signal }).catch((e: unknown) => e)
    await until(() => generated(a).length + generated(b).length === 1, 'the first request to arrive')
    const firstOn = generated(a).length === 1 ? a : b
    const secondOn = firstOn === a ? b : a
    const second = router.generate({ model: 'm', prompt: '2', signal: ac2.signal }).catch((e: unknown) => e)
    await until(() => generated(secondOn).length === 1, 'the second request on the other member')
    // Both full: these two wait, in order.
    const third = router.generate({ model: 'm', prompt: '3' })
    const fourth = router.generate({ model: 'm', prompt: '4' })
    await new Promise((r) => setTimeout(r, 50))
    expect(generated(a).length + generated(b).length).toBe(2)
    ac1.abort()
    const r3 = await third
    expect([r3.endpoint, r3.attempts.map((x) => x.selectedBy)]).toEqual([firstOn.url, ['queued']])
    ac2.abort()
    const r4 = await fourth
    expect(r4.attempts.map((x) => x.selectedBy)).toEqual(['queued'])
    // The third got the first freed slot; the fourth the next one (on either member: the third may be done first).
    const at = (prompt: string) =>
      [...generated(a), ...generated(b)].find((r) => (r.body as { prompt: string }).prompt === prompt)
        ?.receivedAt as number
    expect(at('3')).toBeLessThanOrEqual(at('4'))
    expect(generated(a).length + generated(b).length).toBe(4)
    expect(await first).toMatchObject({ code: 'ABORTED' })
    expect(await second).toMatchObject({ code: 'ABORTED' })
  })

  it('no slot frees before the deadline: POOL_BUSY, with one metric; a full queue fails fast', async () => {
    const [a] = (await ollamas(1)) as [OllamaServer]
    await a.setFault('hang')
    const clock = new ManualClock(Date.now())
    const { router, metrics } = routerFor([{ endpoint_url: a.url, max_concurrency: 1 }], {
      clock,
      options: { pool: { maxQueued: 1 } },
    })
    const ac = new AbortController()
    const holder = router.generate({ model: 'm', prompt: 'hold', signal: ac.signal }).catch((e: unknown) => e)
    await until(() => generated(a).length === 1, 'the held request')
    const waiting = router.generate({ model: 'm', prompt: 'wait', timeoutMs: 5000 }).catch((e: unknown) => e)
    await until(() => clock.pendingDelays().includes(5000), 'the waiting request to arm its deadline')
    // The queue holds one: a third request is refused at once (ALL_BACKENDS_FAILED, every attempt POOL_BUSY).
    const refused = (await router
      .generate({ model: 'm', prompt: 'third' })
      .catch((e: unknown) => e)) as RouterError
    expect(refused.code).toBe('ALL_BACKENDS_FAILED')
    expect(hasErrorCode(refused, 'POOL_BUSY')).toBe(true)
    expect(refused.attempts.map((x) => [x.endpoint, x.code, x.attempt])).toEqual([[a.url, 'POOL_BUSY', 0]])
    clock.advance(5000)
    const busy = (await waiting) as RouterError
    expect(busy.code).toBe('POOL_BUSY')
    expect(busy.message).toContain('max_concurrency')
    expect(busy.message).toContain(`${a.url} (1)`)
    expect((busy.cause as RouterError).code).toBe('TIMEOUT')
    expect(generated(a)).toHaveLength(1)
    ac.abort()
    await holder
    expect(metrics.map((m) => m.error_code).sort()).toEqual(['ABORTED', 'ALL_BACKENDS_FAILED', 'POOL_BUSY'])
  })
})

describe('a request waiting for a slot', () => {
  it('is woken when a drained member is undrained, and runs there at once', async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    await a.setFault('hang')
    const clock = new ManualClock(Date.now())
    const { router } = routerFor(
      [
        { endpoint_url: a.url, max_concurrency: 1 },
        { endpoint_url: b.url, max_concurrency: 1 },
      ],
      { clock },
    )
    await router.resolve('m')
    router.drain(b.url)
    const ac = new AbortController()
    const holder = router.generate({ model: 'm', prompt: 'hold', signal: ac.signal }).catch((e: unknown) => e)
    await until(() => generated(a).length === 1, 'the held request')
    const waiting = router.generate({ model: 'm', prompt: 'wait', timeoutMs: 60_000 })
    await until(() => clock.pendingDelays().includes(60_000), 'the waiting request to arm its deadline')
    await new Promise((r) => setTimeout(r, 30))
    expect(generated(b)).toHaveLength(0)
    // No slot frees on a; b comes back: the waiter picks again (no clock advance: not the deadline).
    router.undrain(b.url)
    const r = await waiting
    expect(r.endpoint).toBe(b.url)
    expect(r.attempts.map((x) => [x.endpoint, x.code ?? null])).toEqual([
      [b.url, 'MEMBER_DRAINED'],
      [b.url, null],
    ])
    expect(generated(b)).toHaveLength(1)
    expect(generated(a)).toHaveLength(1)
    ac.abort()
    expect(await holder).toMatchObject({ code: 'ABORTED' })
  })

  it('is woken when a member joins through an admin change, and runs on it', async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    await a.setFault('hang')
    const rec = (url: string, extra: Record<string, unknown> = {}) => ({
      model_name: 'm',
      backend_type: 'ollama',
      endpoint_url: url,
      enabled: true,
      priority: 1,
      ...extra,
    })
    const admin = await startAdminServer({ records: [rec(a.url, { max_concurrency: 1 })] })
    const clock = new ManualClock(Date.now())
    const router = createLLMRouter({ adminUrl: admin.url, metrics: false }, { clock })
    routers.push(router)
    try {
      const ac = new AbortController()
      const holder = router
        .generate({ model: 'm', prompt: 'hold', signal: ac.signal })
        .catch((e: unknown) => e)
      await until(() => generated(a).length === 1, 'the held request')
      const waiting = router.generate({ model: 'm', prompt: 'wait', timeoutMs: 60_000 })
      await until(() => clock.pendingDelays().includes(60_000), 'the waiting request to arm its deadline')
      admin.setRecords([rec(a.url, { max_concurrency: 1 }), rec(b.url)])
      await router.refresh()
      const r = await waiting
      expect([r.endpoint, r.attempts.map((x) => x.endpoint)]).toEqual([b.url, [b.url]])
      expect(generated(a)).toHaveLength(1)
      ac.abort()
      expect(await holder).toMatchObject({ code: 'ABORTED' })
    } finally {
      await router.close()
      await admin.stop()
    }
  })
})

describe('load balancing', () => {
  it('200 requests at concurrency 16 over a fast and a 500 ms slower member: the slower gets well under half', async () => {
    const [fast, slow] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    await slow.setFault({ type: 'slow', delayMs: 500 })
    const { router } = routerFor([{ endpoint_url: fast.url }, { endpoint_url: slow.url }], {
      options: { connectionsPerEndpoint: 16 },
    })
    const results = await inBatches(200, 16, () => router.generate({ model: 'm', prompt: 'hi' }))
    const onSlow = results.filter((r) => r.endpoint === slow.url).length
    expect(generated(fast).length + generated(slow).length).toBe(200)
    expect(generated(slow)).toHaveLength(onSlow)
    // Least in flight keeps the slow member at about half the concurrency for 500 ms: ~8-16 of 200.
    expect(onSlow / 200).toBeLessThan(0.2)
    expect(new Set(results.map((r) => r.attempts[0]?.selectedBy))).toContain('least-loaded')
  })

  it('prefers the warm member (its /api/ps lists the model): 20 sequential requests with one warm of three', async () => {
    const cold = await Promise.all([startOllamaServer({ loadMs: 50 }), startOllamaServer({ loadMs: 50 })])
    const warm = await startOllamaServer({ loaded: ['m'] })
    servers.push(...cold, warm)
    const { router, metrics } = routerFor([cold[0], warm, cold[1]].map((s) => ({ endpoint_url: s?.url })))
    await router.resolve('m')
    // Warmth is fetched in the background when the pool appears, never on the request path.
    await until(() => router.health().every((m) => m.warmModels !== null), "every member's /api/ps")
    for (let i = 0; i < 20; i++) await router.generate({ model: 'm', prompt: `q${i}` })
    expect(generated(warm).length).toBeGreaterThanOrEqual(18)
    expect(generated(warm)).toHaveLength(20)
    expect(new Set(metrics.map((m) => m.selected_by))).toEqual(new Set(['warm']))
    // The same with a test double of the signals: the choice reads only MemberSignals.isWarm.
    const three = await ollamas(3)
    const signals: MemberSignals = { ...NO_MEMBER_SIGNALS, isWarm: (endpoint) => endpoint === three[1]?.url }
    const other = routerFor(
      three.map((s) => ({ endpoint_url: s.url })),
      { signals },
    )
    for (let i = 0; i < 20; i++) await other.router.generate({ model: 'm', prompt: `q${i}` })
    expect(generated(three[1] as OllamaServer)).toHaveLength(20)
  })

  it('a member whose probe fails gets no traffic within two probe intervals; the attempts say why', async () => {
    const three = await ollamas(3)
    const sick = three[1] as OllamaServer
    const clock = new ManualClock(Date.now())
    const { router } = routerFor(
      three.map((s) => ({ endpoint_url: s.url })),
      { clock, options: { healthCheck: { intervalMs: 1000, jitter: 0 } } },
    )
    await router.resolve('m')
    await until(() => router.health().every((m) => m.lastProbe?.ok === true), 'first probes')
    await sick.setFault({ type: '500-html', path: '/api/version' })
    await clock.advanceWhenSet(1000)
    await until(
      () => router.health().find((m) => m.endpoint === sick.url)?.state === 'down',
      'the sick one down',
    )
    const before = generated(sick).length
    const results = await inBatches(30, 4, (i) => router.generate({ model: 'm', prompt: `q${i}` }))
    expect(generated(sick)).toHaveLength(before)
    for (const r of results) {
      expect(r.endpoint).not.toBe(sick.url)
      expect(r.attempts.filter((a) => a.endpoint === sick.url).map((a) => [a.code, a.attempt])).toEqual([
        ['MEMBER_DOWN', 0],
      ])
    }
  })

  it('a drained member gets no new traffic; undrained it takes its share again', async () => {
    const three = await ollamas(3)
    const drained = three[0] as OllamaServer
    const { router } = routerFor(three.map((s) => ({ endpoint_url: s.url })))
    await router.resolve('m')
    expect(router.drain(drained.url)).toBe(true)
    const results = await inBatches(30, 4, (i) => router.generate({ model: 'm', prompt: `q${i}` }))
    expect(generated(drained)).toHaveLength(0)
    expect(results.every((r) => r.attempts[0]?.code === 'MEMBER_DRAINED')).toBe(true)
    router.undrain(drained.url)
    await inBatches(30, 4, (i) => router.generate({ model: 'm', prompt: `r${i}` }))
    expect(generated(drained).length).toBeGreaterThan(0)
  })

  it('a pool that fails as a whole falls to the next priority; attempts show each member', async () => {
    const [a, b, c] = (await ollamas(3)) as [OllamaServer, OllamaServer, OllamaServer]
    await a.setFault('down')
    await b.setFault('down')
    const { router, metrics } = routerFor([
      { endpoint_url: a.url, priority: 1 },
      { endpoint_url: b.url, priority: 1 },
      { endpoint_url: c.url, priority: 2 },
    ])
    const result = await router.generate({ model: 'm', prompt: 'x' })
    expect(result.endpoint).toBe(c.url)
    expect(result.attempts.map((x) => x.code ?? 'ok')).toEqual([
      'BACKEND_UNREACHABLE',
      'BACKEND_UNREACHABLE',
      'ok',
    ])
    expect(new Set(result.attempts.slice(0, 2).map((x) => x.endpoint))).toEqual(new Set([a.url, b.url]))
    expect(result.attempts[2]?.selectedBy).toBeUndefined()
    expect(metrics[0]?.fallback).toBe(true)
    expect(metrics[0]).not.toHaveProperty('selected_by')
  })
})

describe('sessions', () => {
  it('40 sessions x 5 requests stay on one member each; stopping one member moves only its sessions, for good', async () => {
    const four = await ollamas(4)
    const { router } = routerFor(four.map((s) => ({ endpoint_url: s.url })))
    const ids = Array.from({ length: 40 }, (_, i) => `conversation-${i}`)
    const round = async (tag: string) => {
      const where = new Map<string, Set<string>>()
      // Concurrency 4 over 4 members: a member can never be over the load cap, so nothing overflows.
      await inBatches(ids.length * 5, 4, async (i) => {
        const id = ids[i % ids.length] as string
        const r = await router.generate({ model: 'm', prompt: `${tag} ${i}`, metadata: { sessionId: id } })
        if (!where.has(id)) where.set(id, new Set())
        where.get(id)?.add(r.endpoint)
      })
      return new Map([...where].map(([id, set]) => [id, [...set]]))
    }
    const before = await round('a')
    for (const id of ids) expect(before.get(id)).toHaveLength(1)
    const stopped = four[2] as OllamaServer
    const movers = ids.filter((id) => before.get(id)?.[0] === stopped.url)
    expect(movers.length).toBeGreaterThan(0)
    await stopped.setFault('down')
    const during = await round('b')
    for (const id of ids) {
      const now = during.get(id) as string[]
      expect(now).toHaveLength(1)
      if (movers.includes(id)) expect(now[0]).not.toBe(stopped.url)
      else expect(now).toEqual(before.get(id))
    }
    await stopped.clearFault()
    // Back again: the moved sessions stay where they went (their prompt caches are there now).
    expect(await round('c')).toEqual(during)
  })

  it('a 10 % canary gets near 10 % of 1,000 sessions; one session always lands on the same side', async () => {
    const [main, canary] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    const { router, metrics } = routerFor(
      [
        { endpoint_url: main.url, weight: 9 },
        { endpoint_url: canary.url, weight: 1 },
      ],
      { options: { connectionsPerEndpoint: 16 } },
    )
    // (test/pool-select.test.ts places 2,000 sessions with the same code, without the sockets.)
    await inBatches(1000, 16, (i) =>
      router.generate({ model: 'm', prompt: 'c', metadata: { sessionId: `user-${i}` } }),
    )
    const share = generated(canary).length / 1000
    expect(share).toBeGreaterThan(0.065)
    expect(share).toBeLessThan(0.135)
    // At 16 in flight the canary's share is 1.6: a burst past 1.5x + 2 spills (rarely) to the main side.
    const spilled = metrics.filter((m) => m.selected_by === 'overflow').length
    expect(metrics.filter((m) => m.selected_by === 'affinity').length + spilled).toBe(1000)
    expect(spilled).toBeLessThan(50)
    // A conversation (one request after the other) never leaves its side.
    const one: string[] = []
    for (let i = 0; i < 30; i++)
      one.push(
        (await router.generate({ model: 'm', prompt: 'same', metadata: { sessionId: 'user-one' } })).endpoint,
      )
    expect(new Set(one).size).toBe(1)
  })
})

describe('streams', () => {
  it('a stream goes to its session member like generate(); a failed member moves the session before any text', async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    const { router, metrics } = routerFor([{ endpoint_url: a.url }, { endpoint_url: b.url }])
    const session = sessionHomedAt([a.url, b.url], 0)
    const read = async () => {
      const stream = router.stream({ model: 'm', prompt: 'tell me', metadata: { sessionId: session } })
      let text = ''
      for await (const chunk of stream) text += chunk.text
      const result = await stream.result
      expect(text).toBe(result.response)
      return result
    }
    const first = await read()
    expect([first.endpoint, first.attempts.map((x) => x.selectedBy)]).toEqual([a.url, ['affinity']])
    // A failure that falls over at once (no retry backoff on this test's unmoved clock).
    await a.setFault({ type: '404-model', times: 1 })
    const moved = await read()
    expect(moved.endpoint).toBe(b.url)
    expect(moved.attempts.map((x) => [x.endpoint, x.code ?? 'ok', x.selectedBy])).toEqual([
      [a.url, 'MODEL_NOT_FOUND', 'affinity'],
      [b.url, 'ok', 'affinity-moved'],
    ])
    // It stays on b now, a being healthy again.
    expect((await read()).endpoint).toBe(b.url)
    expect(metrics.map((m) => [m.streamed, m.selected_by])).toEqual([
      [true, 'affinity'],
      [true, 'affinity-moved'],
      [true, 'affinity'],
    ])
  })
})

describe('chat', () => {
  it("chat() is chosen the same way; the record's keep_alive and context_length reach /api/chat", async () => {
    const [a, b] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    const fields = { keep_alive: '10m', context_length: 8192 }
    const { router } = routerFor([
      { endpoint_url: a.url, ...fields },
      { endpoint_url: b.url, ...fields },
    ])
    const session = sessionHomedAt([a.url, b.url], 1)
    for (let turn = 0; turn < 3; turn++) {
      const r = await router.chat({
        model: 'm',
        messages: [{ role: 'user', content: `turn ${turn}` }],
        metadata: { sessionId: session },
      })
      expect([r.endpoint, r.attempts.map((x) => x.selectedBy)]).toEqual([b.url, ['affinity']])
    }
    const chats = b.requests.filter((q) => q.path === '/api/chat')
    expect(chats).toHaveLength(3)
    expect(chats[0]?.body).toMatchObject({ keep_alive: '10m', options: { num_ctx: 8192 } })
    // The request's own numCtx wins; a conversation too long for every member is refused before sending.
    await router.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], numCtx: 2048 })
    const last = [...a.requests, ...b.requests].filter((q) => q.path === '/api/chat').at(-1)
    expect(last?.body).toMatchObject({ options: { num_ctx: 2048 } })
    const error = (await router
      .chat({ model: 'm', messages: [{ role: 'user', content: 'word '.repeat(12_000) }] })
      .catch((e: unknown) => e)) as RouterError
    expect(error.code).toBe('CONTEXT_TOO_LONG')
  })
})

describe('record fields on the wire', () => {
  it('keep_alive and num_ctx (context_length) go with every Ollama request; the request options win', async () => {
    const [a] = (await ollamas(1)) as [OllamaServer]
    const { router } = routerFor([{ endpoint_url: a.url, keep_alive: '30m', context_length: 16384 }])
    await router.generate({ model: 'm', prompt: 'x', maxTokens: 8 })
    await router.generate({ model: 'm', prompt: 'x', options: { num_ctx: 2048, keep_alive: -1, top_k: 5 } })
    const [first, second] = generated(a).map((r) => r.body as Record<string, unknown>)
    expect(first).toMatchObject({ keep_alive: '30m', options: { num_ctx: 16384, num_predict: 8 } })
    expect(second).toMatchObject({ keep_alive: -1, options: { num_ctx: 2048, top_k: 5 } })
  })

  it('a prompt too long for a member goes to one that fits; too long for all: CONTEXT_TOO_LONG before sending', async () => {
    const [small, large] = (await ollamas(2)) as [OllamaServer, OllamaServer]
    const { router, metrics } = routerFor([
      { endpoint_url: small.url, context_length: 1000 },
      { endpoint_url: large.url, context_length: 4000 },
    ])
    // 12,000 characters: at least 2,000 tokens (6 characters per token at most).
    const long = 'word '.repeat(2400)
    for (let i = 0; i < 5; i++) {
      const r = await router.generate({ model: 'm', prompt: long })
      expect(r.endpoint).toBe(large.url)
    }
    expect(generated(small)).toHaveLength(0)
    const huge = 'word '.repeat(6000)
    const error = (await router
      .generate({ model: 'm', prompt: huge })
      .catch((e: unknown) => e)) as RouterError
    expect(error.code).toBe('CONTEXT_TOO_LONG')
    expect(error.message).toContain('at least 5000 tokens')
    expect(error.message).toContain('largest context_length is 4000')
    expect(error.attempts.map((x) => [x.code, x.attempt])).toEqual([
      ['CONTEXT_TOO_LONG', 0],
      ['CONTEXT_TOO_LONG', 0],
    ])
    expect(generated(small).length + generated(large).length).toBe(5)
    expect(metrics.at(-1)?.error_code).toBe('CONTEXT_TOO_LONG')
    expect(metrics).toHaveLength(6)
  })
})
