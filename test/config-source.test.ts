import { HttpResponse, http } from 'msw'
import { Agent } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { AdminOptions, ConfigSnapshot, ConfigSource } from '../src/config/contract.js'
import { createConfigSource } from '../src/config/source.js'
import { isRouterError, type RouterError } from '../src/errors.js'
import type { Env } from '../src/internal/env.js'
import type { RouterEvents } from '../src/types.js'
import { ManualClock } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

/** The production payload from issue 2, verbatim. */
const PRODUCTION_PAYLOAD = `[{"id":1,"model_name":"phi3:mini","backend_type":"ollama","endpoint_url":"http://192.168.10.167:11434",
  "enabled":true,"priority":100,"max_tokens":2048,"temperature_default":0.7,"timeout_seconds":60,
  "description":"Phi-3 Mini (Q4) - Fast classification and quick responses"},
 {"id":2,"model_name":"llama3.1:8b-q4","backend_type":"ollama","endpoint_url":"http://192.168.10.167:11434",
  "enabled":true,"priority":200,"max_tokens":4096,"temperature_default":0.7,"timeout_seconds":90,
  "description":"Llama 3.1 8B (Q4) - Complex reasoning and detailed responses"}]`

const net = setupMockNetwork()
const ADMIN = 'http://admin.test'
const LIST_URL = `${ADMIN}/api/llm-backends/public`
const TTL = 60_000

let agent: Agent
beforeAll(() => {
  agent = new Agent()
})
afterAll(async () => {
  await agent.close()
})

const open: ConfigSource[] = []
const releases: (() => void)[] = []
afterEach(() => {
  for (const s of open.splice(0)) s.close()
  for (const r of releases.splice(0)) r()
})

type Event = { [K in keyof RouterEvents]: { name: K; payload: RouterEvents[K] } }[keyof RouterEvents]

function rec(model: string, extra: Record<string, unknown> = {}) {
  return { model_name: model, backend_type: 'ollama', endpoint_url: 'http://127.0.0.1:11434', ...extra }
}

function setup(opts: { admin?: Partial<AdminOptions>; env?: Env; ttlMs?: number } = {}) {
  const clock = new ManualClock()
  const events: Event[] = []
  const admin: AdminOptions = {
    url: ADMIN,
    listPath: '/api/llm-backends/public',
    modelPath: '/api/llm-backends/model/{model}',
    lookup: 'list',
    headers: {},
    timeoutMs: 5_000,
    maxPayloadBytes: 1024 * 1024,
    mapPayload: undefined,
    retryBaseMs: 1_000,
    retryMaxMs: 30_000,
    ...opts.admin,
  }
  const source = createConfigSource({
    admin,
    ttlMs: opts.ttlMs ?? TTL,
    env: opts.env ?? {},
    clock,
    dispatcher: agent,
    emit: (name, payload) => events.push({ name, payload } as Event),
  })
  open.push(source)
  function of<K extends keyof RouterEvents>(name: K): RouterEvents[K][] {
    return events.filter((e) => e.name === name).map((e) => e.payload as RouterEvents[K])
  }
  async function waitFor<K extends keyof RouterEvents>(name: K, count = 1): Promise<RouterEvents[K][]> {
    await vi.waitFor(() => expect(of(name).length).toBeGreaterThanOrEqual(count), {
      interval: 2,
      timeout: 5_000,
    })
    return of(name)
  }
  return { source, clock, events, of, waitFor }
}

/** Serves the list endpoint; `respond` may change between calls. Returns the received requests. */
function serveList(respond: (req: Request, n: number) => Response | Promise<Response>) {
  const calls: Request[] = []
  net.use(
    http.get(LIST_URL, ({ request }) => {
      calls.push(request)
      return respond(request, calls.length)
    }),
  )
  return calls
}

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  releases.push(resolve)
  return { promise, resolve }
}

async function load(source: ConfigSource, model?: string): Promise<ConfigSnapshot> {
  return await source.get(model)
}

/** Lets any request a bug might have started reach the mock admin before counting requests. */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 25))
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown })?.then === 'function'
}

async function rejection(promise: Promise<unknown>): Promise<RouterError> {
  try {
    await promise
  } catch (error) {
    if (isRouterError(error)) return error
    throw error
  }
  throw new Error('expected a rejection')
}

describe('loading from the admin', () => {
  it('loads the production payload, sorted by priority, with provenance', async () => {
    const calls = serveList(
      () => new HttpResponse(PRODUCTION_PAYLOAD, { headers: { 'content-type': 'application/json' } }),
    )
    const { source, clock, of } = setup({ admin: { headers: { 'X-Client': 'tests' } } })
    const pending = source.get()
    expect(isPromise(pending)).toBe(true)
    const snap = await pending
    expect(snap.origin).toBe('admin')
    expect(snap.records.map((r) => r.model_name)).toEqual(['phi3:mini', 'llama3.1:8b-q4'])
    expect(snap.allRecords).toHaveLength(2)
    expect(snap.fetchedAt).toBe(clock.now())
    expect(snap.version).toBe(1)
    expect(Object.isFrozen(snap.records)).toBe(true)
    expect(calls).toHaveLength(1)
    expect(calls[0]?.headers.get('accept')).toBe('application/json')
    expect(calls[0]?.headers.get('x-client')).toBe('tests')
    expect(of('config:loaded')).toEqual([{ origin: 'admin', records: 2, etag: null }])
    expect(source.current()).toBe(snap)
  })

  it('200 concurrent cold lookups make exactly one admin request; then get() is synchronous', async () => {
    const gate = deferred()
    const calls = serveList(async () => {
      await gate.promise
      return HttpResponse.json([rec('a')])
    })
    const { source } = setup()
    const pending = Array.from({ length: 200 }, () => source.get())
    expect(pending.every(isPromise)).toBe(true)
    gate.resolve()
    const snaps = await Promise.all(pending)
    expect(calls).toHaveLength(1)
    expect(new Set(snaps).size).toBe(1)
    const sync = source.get()
    expect(isPromise(sync)).toBe(false)
    expect(sync).toBe(snaps[0])
    expect(source.get()).toBe(sync)
  })

  it('uses only enabled records, ordered by priority (stable), and keeps all in allRecords', async () => {
    serveList(() =>
      HttpResponse.json([
        rec('late', { priority: 300 }),
        rec('off', { priority: 1, enabled: false }),
        rec('first', { priority: 10 }),
        rec('tie-a'),
        rec('tie-b'),
      ]),
    )
    const { source } = setup()
    const snap = await load(source)
    expect(snap.records.map((r) => r.model_name)).toEqual(['first', 'tie-a', 'tie-b', 'late'])
    expect(snap.allRecords.map((r) => r.model_name)).toEqual(['late', 'off', 'first', 'tie-a', 'tie-b'])
  })

  it('accepts {data: [...]} and a custom mapPayload for other shapes', async () => {
    serveList(() => HttpResponse.json({ data: [rec('wrapped')] }))
    const a = setup()
    expect((await load(a.source)).records[0]?.model_name).toBe('wrapped')

    net.resetHandlers()
    serveList(() =>
      HttpResponse.json({
        llms: [{ name: 'qwen', provider: 'mlx', config: { url: 'http://127.0.0.1:8080' } }],
      }),
    )
    const b = setup({
      admin: {
        mapPayload: (p) =>
          (p as { llms: { name: string; provider: string; config: { url: string } }[] }).llms.map((l) => ({
            model_name: l.name,
            backend_type: l.provider,
            endpoint_url: l.config.url,
          })),
      },
    })
    const snap = await load(b.source)
    expect(snap.records).toEqual([
      {
        model_name: 'qwen',
        backend_type: 'mlx',
        endpoint_url: 'http://127.0.0.1:8080',
        enabled: true,
        priority: 100,
      },
    ])
  })

  it('skips one bad record, reports it once per distinct record, not on every refresh', async () => {
    let payload: unknown[] = [rec('good'), rec('bad', { endpoint_url: 'ftp://x' }), rec('good2')]
    serveList(() => HttpResponse.json(payload))
    const { source, of } = setup()
    const snap = await load(source)
    expect(snap.records.map((r) => r.model_name)).toEqual(['good', 'good2'])
    expect(of('config:invalid-record')).toEqual([
      { index: 1, modelName: 'bad', field: 'endpoint_url', message: expect.stringContaining('http') },
    ])
    await source.refresh()
    await source.refresh()
    expect(of('config:invalid-record')).toHaveLength(1)
    payload = [...payload, rec('worse', { backend_type: 'gpt4all' })]
    await source.refresh()
    expect(of('config:invalid-record')).toHaveLength(2)
    expect(of('config:invalid-record')[1]).toMatchObject({
      index: 3,
      modelName: 'worse',
      field: 'backend_type',
    })
  })

  it('version moves only when the records change', async () => {
    let payload = [rec('a')]
    serveList(() => HttpResponse.json(payload))
    const { source, of } = setup()
    const v1 = await load(source)
    const same = await source.refresh()
    expect(same.version).toBe(v1.version)
    expect(of('config:refreshed').at(-1)).toMatchObject({ changed: false, origin: 'admin' })
    payload = [rec('a'), rec('b')]
    const v2 = await source.refresh()
    expect(v2.version).toBe(v1.version + 1)
    expect(of('config:refreshed').at(-1)).toMatchObject({ changed: true, records: 2 })
  })

  it('refresh() forces a fetch within the TTL and shares an in-flight one', async () => {
    const calls = serveList(() => HttpResponse.json([rec('a')]))
    const { source } = setup()
    await load(source)
    const [a, b] = await Promise.all([source.refresh(), source.refresh()])
    expect(a).toBe(b)
    expect(calls).toHaveLength(2)
  })
})

describe('TTL and stale-while-revalidate', () => {
  it('serves from cache within the TTL; after it, returns stale synchronously and refreshes once', async () => {
    let version = 1
    let gate: ReturnType<typeof deferred> | null = null
    const calls = serveList(async () => {
      if (gate) await gate.promise
      return HttpResponse.json([rec(`model-v${version}`)])
    })
    const { source, clock, waitFor } = setup()
    const first = await load(source)
    clock.advance(TTL - 1)
    expect(source.get()).toBe(first)
    await settle()
    expect(calls).toHaveLength(1)

    clock.advance(2)
    version = 2
    gate = deferred()
    const stale = source.get()
    expect(isPromise(stale)).toBe(false)
    const staleSnap = stale as ConfigSnapshot
    expect(staleSnap.origin).toBe('stale')
    expect(staleSnap.records[0]?.model_name).toBe('model-v1')
    expect(staleSnap.version).toBe(first.version)
    for (let i = 0; i < 50; i++) expect(source.get()).toBe(staleSnap)
    await settle()
    expect(calls).toHaveLength(2)
    gate.resolve()
    await waitFor('config:refreshed')
    const fresh = source.get() as ConfigSnapshot
    expect(fresh.origin).toBe('admin')
    expect(fresh.records[0]?.model_name).toBe('model-v2')
    expect(fresh.version).toBe(first.version + 1)
    expect(calls).toHaveLength(2)
  })

  it('revalidates with If-None-Match; 304 keeps records and version, updates fetchedAt', async () => {
    const calls = serveList((req) =>
      req.headers.get('if-none-match') === '"v1"'
        ? new HttpResponse(null, { status: 304, headers: { etag: '"v1"' } })
        : HttpResponse.json([rec('a')], { headers: { etag: '"v1"' } }),
    )
    const { source, clock, waitFor } = setup()
    const first = await load(source)
    expect(first.etag).toBe('"v1"')
    expect(calls[0]?.headers.get('if-none-match')).toBeNull()
    clock.advance(TTL + 1)
    source.get()
    const [refreshed] = await waitFor('config:refreshed')
    expect(calls[1]?.headers.get('if-none-match')).toBe('"v1"')
    expect(refreshed).toEqual({ origin: 'admin', records: 1, changed: false, etag: '"v1"' })
    const after = source.get() as ConfigSnapshot
    expect(after.origin).toBe('admin')
    expect(after.records).toEqual(first.records)
    expect(after.version).toBe(first.version)
    expect(after.fetchedAt).toBe(clock.now())
    // Fresh again: no more requests within the new TTL.
    clock.advance(TTL - 1)
    source.get()
    await settle()
    expect(calls).toHaveLength(2)
  })
})

describe('admin outages', () => {
  it('keeps the last good config through 500, connection error, garbage and non-list, with backoff', async () => {
    let mode: 'ok' | '500' | 'error' | 'garbage' | 'object' = 'ok'
    const calls = serveList(() => {
      switch (mode) {
        case 'ok':
          return HttpResponse.json([rec('good')])
        case '500':
          return new HttpResponse('<html>oops</html>', { status: 500 })
        case 'error':
          return HttpResponse.error()
        case 'garbage':
          return new HttpResponse('{"not json', { headers: { 'content-type': 'application/json' } })
        case 'object':
          return HttpResponse.json({ message: 'maintenance' })
      }
    })
    const { source, clock, of, waitFor } = setup({ admin: { retryBaseMs: 1_000, retryMaxMs: 4_000 } })
    clock.randomValue = 0.5 // jittered delay = 87.5 % of the exponential step (the dispatcher's backoff)
    const good = await load(source)
    clock.advance(TTL + 1)

    const expectStale = () => {
      const s = source.get()
      expect(isPromise(s)).toBe(false)
      expect((s as ConfigSnapshot).origin).toBe('stale')
      expect((s as ConfigSnapshot).records).toEqual(good.records)
    }

    mode = '500'
    expectStale() // triggers the background refresh
    let failed = await waitFor('config:failed', 1)
    expect(failed[0]).toMatchObject({ consecutiveFailures: 1, nextRetryMs: 875, servingStale: true })
    expect(failed[0]?.error.code).toBe('CONFIG_FETCH_FAILED')
    expect(failed[0]?.error.status).toBe(500)
    expect(calls).toHaveLength(2)

    // While backing off, lookups do not reach the admin.
    for (let i = 0; i < 20; i++) expectStale()
    clock.advance(874)
    expectStale()
    await settle()
    expect(calls).toHaveLength(2)

    mode = 'error'
    clock.advance(1) // retry timer fires
    failed = await waitFor('config:failed', 2)
    expect(failed[1]).toMatchObject({ consecutiveFailures: 2, nextRetryMs: 1_750, servingStale: true })
    expect(failed[1]?.error.code).toBe('CONFIG_FETCH_FAILED')
    expectStale()

    mode = 'garbage'
    clock.advance(1_750)
    failed = await waitFor('config:failed', 3)
    expect(failed[2]).toMatchObject({ consecutiveFailures: 3, nextRetryMs: 3_500 })
    expect(failed[2]?.error.code).toBe('CONFIG_INVALID')
    expectStale()

    mode = 'object'
    clock.advance(3_500)
    failed = await waitFor('config:failed', 4)
    // Capped at retryMaxMs (4 000) before jitter.
    expect(failed[3]).toMatchObject({ consecutiveFailures: 4, nextRetryMs: 3_500 })
    expect(failed[3]?.error.code).toBe('CONFIG_INVALID')
    expectStale()
    expect(calls).toHaveLength(5)
    expect(of('config:fallback')).toEqual([])

    mode = 'ok'
    clock.advance(3_500)
    await waitFor('config:refreshed')
    const back = source.get() as ConfigSnapshot
    expect(back.origin).toBe('admin')
    expect(back.version).toBe(good.version)
    expect(clock.pendingTimers).toBe(0)
  })

  it('a failed manual refresh rejects with a RouterError but keeps serving the last good config', async () => {
    let fail = false
    serveList(() => (fail ? new HttpResponse('nope', { status: 503 }) : HttpResponse.json([rec('a')])))
    const { source, of } = setup()
    const good = await load(source)
    fail = true
    const error = await rejection(source.refresh())
    expect(error.code).toBe('CONFIG_FETCH_FAILED')
    expect(error.message).toContain('503')
    const now = source.get() as ConfigSnapshot
    expect(now.origin).toBe('stale')
    expect(now.records).toEqual(good.records)
    expect(of('config:failed')[0]?.servingStale).toBe(true)
  })

  it('times out a slow admin with the injected clock', async () => {
    serveList(async () => {
      await deferred().promise
      return HttpResponse.json([])
    })
    const { source, clock, of } = setup({ admin: { timeoutMs: 2_000 } })
    const pending = source.refresh()
    await new Promise((r) => setTimeout(r, 5))
    clock.advance(2_000)
    const error = await rejection(pending)
    expect(error.code).toBe('CONFIG_FETCH_FAILED')
    expect(error.message).toContain('2000 ms')
    expect(of('config:failed')).toHaveLength(1)
    expect(source.current()?.origin).toBe('default')
  })
})

describe('env fallback', () => {
  it('no admin URL: env records synchronously, fallback event once, no requests', () => {
    const calls = serveList(() => HttpResponse.json([rec('never')]))
    const { source, of } = setup({ admin: { url: null }, env: { OLLAMA_HOST: '0.0.0.0:11434' } })
    const snap = source.get()
    expect(isPromise(snap)).toBe(false)
    expect((snap as ConfigSnapshot).origin).toBe('env')
    expect((snap as ConfigSnapshot).records).toEqual([
      expect.objectContaining({ model_name: '*', endpoint_url: 'http://127.0.0.1:11434' }),
    ])
    expect((snap as ConfigSnapshot).fetchedAt).toBeNull()
    expect(source.get()).toBe(snap)
    expect(of('config:fallback')).toEqual([
      { origin: 'env', reason: expect.stringContaining('no admin URL') },
    ])
    expect(calls).toHaveLength(0)
  })

  it('an empty admin list means env records (LLM_ROUTER_BACKENDS first)', async () => {
    serveList(() => HttpResponse.json([]))
    const env = { LLM_ROUTER_BACKENDS: JSON.stringify([rec('from-env')]) }
    const { source, of } = setup({ env })
    const snap = await load(source)
    expect(snap.origin).toBe('env')
    expect(snap.records.map((r) => r.model_name)).toEqual(['from-env'])
    expect(snap.fetchedAt).toBeNull()
    expect(of('config:fallback')).toEqual([{ origin: 'env', reason: expect.stringContaining('empty list') }])
    expect(of('config:loaded')).toEqual([])
    await source.refresh()
    expect(of('config:fallback')).toHaveLength(1)
  })

  it('admin records, then an empty list: switches to env once', async () => {
    let payload: unknown[] = [rec('a')]
    serveList(() => HttpResponse.json(payload))
    const { source, of } = setup()
    const first = await load(source)
    payload = []
    const env = await source.refresh()
    expect(env.origin).toBe('default')
    expect(env.version).toBe(first.version + 1)
    expect(of('config:fallback')).toHaveLength(1)
    expect(of('config:refreshed').at(-1)).toMatchObject({ origin: 'default', changed: true })
  })

  it('unreachable admin on first load: env records, then admin once it recovers', async () => {
    let up = false
    const calls = serveList(() => (up ? HttpResponse.json([rec('admin-model')]) : HttpResponse.error()))
    const { source, clock, of, waitFor } = setup({
      env: { MLX_HOST: 'mlx.local', OLLAMA_HOST: 'ollama.local' },
    })
    clock.randomValue = 0
    const snap = await load(source)
    expect(snap.origin).toBe('env')
    expect(snap.records).toEqual([
      expect.objectContaining({
        backend_type: 'auto',
        endpoint_url: 'http://mlx.local:8080',
        fallback_url: 'http://ollama.local:11434',
      }),
    ])
    expect(of('config:failed')).toEqual([
      expect.objectContaining({ consecutiveFailures: 1, servingStale: false }),
    ])
    expect(of('config:fallback')).toEqual([{ origin: 'env', reason: expect.stringContaining('first load') }])
    const delay = of('config:failed')[0]!.nextRetryMs
    expect(delay).toBe(1000) // random 0: the full first step

    // Known config: synchronous, and no request before the backoff allows one.
    expect(source.get()).toBe(snap)
    clock.advance(delay - 1)
    expect(source.get()).toBe(snap)
    await settle()
    expect(calls).toHaveLength(1)

    up = true
    clock.advance(1)
    await waitFor('config:refreshed')
    const admin = source.get() as ConfigSnapshot
    expect(admin.origin).toBe('admin')
    expect(admin.records.map((r) => r.model_name)).toEqual(['admin-model'])
    expect(admin.version).toBe(snap.version + 1)
    expect(of('config:loaded')).toHaveLength(1)
    expect(of('config:refreshed')).toEqual([{ origin: 'admin', records: 1, changed: true, etag: null }])
    expect(of('config:fallback')).toHaveLength(1)
  })

  it('a garbage first payload is an error for that refresh: env records, refresh() rejects CONFIG_INVALID', async () => {
    serveList(
      () => new HttpResponse('<!doctype html><p>login</p>', { headers: { 'content-type': 'text/html' } }),
    )
    const { source, of } = setup()
    const snap = await load(source)
    expect(snap.origin).toBe('default')
    expect(of('config:failed')[0]?.error.code).toBe('CONFIG_INVALID')
    const error = await rejection(source.refresh())
    expect(error.code).toBe('CONFIG_INVALID')
    expect(error.cause).toBeInstanceOf(SyntaxError)
  })

  it('a non-empty list with no valid record is an error, not an empty config', async () => {
    serveList(() => HttpResponse.json([rec('x', { backend_type: 'nope' })]))
    const { source, of } = setup()
    const snap = await load(source)
    expect(snap.origin).toBe('default')
    expect(of('config:invalid-record')).toHaveLength(1)
    expect(of('config:failed')[0]?.error.code).toBe('CONFIG_INVALID')
  })
})

describe('payload size cap', () => {
  it('rejects early on content-length', async () => {
    serveList(
      () =>
        new HttpResponse(JSON.stringify([rec('a', { description: 'x'.repeat(500) })]), {
          headers: { 'content-type': 'application/json', 'content-length': '600' },
        }),
    )
    const { source } = setup({ admin: { maxPayloadBytes: 100 } })
    const error = await rejection(source.refresh())
    expect(error.code).toBe('CONFIG_TOO_LARGE')
    expect(error.message).toContain('content-length 600')
  })

  it('counts bytes of a streamed body without content-length', async () => {
    serveList(() => {
      const chunk = new TextEncoder().encode(`[${JSON.stringify(rec('a'))}`.padEnd(64, ' '))
      let sent = 0
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 100) controller.enqueue(chunk)
          else controller.close()
        },
      })
      return new HttpResponse(body, { headers: { 'content-type': 'application/json' } })
    })
    const { source, of } = setup({ admin: { maxPayloadBytes: 1_000 } })
    const snap = await load(source)
    expect(snap.origin).toBe('default')
    const error = of('config:failed')[0]?.error
    expect(error?.code).toBe('CONFIG_TOO_LARGE')
    expect(error?.message).toContain('more than 1000 bytes')
  })
})

describe('per-model lookup mode', () => {
  it('fetches per model, caches hits and 404 misses for the TTL, shares in-flight lookups', async () => {
    const calls: string[] = []
    net.use(
      http.get(`${ADMIN}/api/llm-backends/model/:model`, ({ params, request }) => {
        calls.push(new URL(request.url).pathname)
        const model = params.model as string
        if (model === 'phi3:mini') return HttpResponse.json(rec('phi3:mini', { priority: 5 }))
        if (model === 'multi')
          return HttpResponse.json([rec('multi', { priority: 9 }), rec('multi', { priority: 1 })])
        return HttpResponse.json({ error: 'not found' }, { status: 404 })
      }),
    )
    const { source, clock } = setup({ admin: { lookup: 'model' }, env: { OLLAMA_HOST: 'box:1' } })
    const [a, b] = await Promise.all([source.get('phi3:mini'), source.get('phi3:mini')])
    expect(a).toBe(b)
    expect(a.origin).toBe('admin')
    expect(a.records).toEqual([expect.objectContaining({ model_name: 'phi3:mini', priority: 5 })])
    expect(calls).toEqual(['/api/llm-backends/model/phi3%3Amini'])

    // One combined snapshot: every model looked up so far, in priority order.
    const multi = await load(source, 'multi')
    expect(multi.records.map((r) => `${r.model_name}:${r.priority}`)).toEqual([
      'multi:1',
      'phi3:mini:5',
      'multi:9',
    ])

    const missing = await load(source, 'nope')
    expect(missing.origin).toBe('admin')
    expect(missing.records).toHaveLength(3)
    expect(missing.modelNotes.get('nope')).toContain('404')
    // Cached: synchronous, the same object, no request.
    expect(source.get('nope')).toBe(missing)
    expect(source.get('phi3:mini')).toBe(missing)
    await settle()
    expect(calls).toHaveLength(3)

    // No model: env/default records, no request.
    const none = source.get() as ConfigSnapshot
    expect(none.origin).toBe('env')
    expect(none.records[0]?.endpoint_url).toBe('http://box:1')

    clock.advance(TTL + 1)
    expect(source.get('nope')).toBe(missing)
    await vi.waitFor(() => expect(calls).toHaveLength(4), { interval: 2 })
    // The re-fetch changed nothing: the snapshot (and its compiled routes) stay.
    await settle()
    expect(source.get('nope')).toBe(missing)
  })

  it('keeps every model through an outage (origin stale), one backoff for all lookups, then recovers', async () => {
    let up = true
    const calls: string[] = []
    net.use(
      http.get(`${ADMIN}/api/llm-backends/model/:model`, ({ params }) => {
        calls.push(params.model as string)
        return up ? HttpResponse.json(rec(params.model as string)) : new HttpResponse('down', { status: 503 })
      }),
    )
    const { source, clock, waitFor } = setup({ admin: { lookup: 'model' } })
    await load(source, 'a')
    const both = await load(source, 'b')
    expect(both.origin).toBe('admin')
    up = false
    clock.advance(TTL + 1)
    expect(source.get('a')).toBe(both) // stale but served; one background lookup
    await waitFor('config:failed')
    const stale = source.get('b') as ConfigSnapshot
    expect(stale.origin).toBe('stale')
    expect(stale.records.map((r) => r.model_name)).toEqual(['a', 'b'])
    await settle()
    expect(calls).toEqual(['a', 'b', 'a']) // b waits for the backoff instead of asking a failing admin
    up = true
    clock.advance(2_000)
    source.get('b')
    await waitFor('config:refreshed')
    await vi.waitFor(() => expect((source.get('a') as ConfigSnapshot).origin).toBe('stale'))
    source.get('a')
    await vi.waitFor(() => expect((source.get('a') as ConfigSnapshot).origin).toBe('admin'))
    expect((source.get('a') as ConfigSnapshot).records).toEqual(both.records)
  })

  it('answers unknown models from env while the admin is failing', async () => {
    let calls = 0
    net.use(
      http.get(`${ADMIN}/api/llm-backends/model/:model`, () => {
        calls++
        return HttpResponse.error()
      }),
    )
    const { source, of } = setup({ admin: { lookup: 'model' } })
    const first = await load(source, 'a')
    expect(first.origin).toBe('default')
    expect(of('config:fallback')).toHaveLength(1)
    const second = source.get('b')
    expect(isPromise(second)).toBe(false)
    await settle()
    expect(calls).toBe(1)
  })
})

describe('secrets and lifecycle', () => {
  it('never puts admin header values into errors or events', async () => {
    const SECRET = 'SEKRET-token-9f8e7d'
    let mode: 'ok' | '401' | 'error' | 'slow' = 'ok'
    const seen: (string | null)[] = []
    serveList(async (req) => {
      seen.push(req.headers.get('authorization'))
      if (mode === '401')
        return new HttpResponse(`bad token ${req.headers.get('authorization')}`, { status: 401 })
      if (mode === 'error') return HttpResponse.error()
      if (mode === 'slow') await deferred().promise
      return HttpResponse.json([rec('a', { endpoint_url: 'http://backend:1' })])
    })
    const { source, clock, events } = setup({
      admin: { headers: { Authorization: `Bearer ${SECRET}` }, timeoutMs: 100 },
    })
    // An admin URL carrying a token in its query string must not leak either.
    const other = setup({ admin: { url: `${ADMIN}/?token=${SECRET}`, headers: { 'X-Api-Key': SECRET } } })
    const errors: RouterError[] = []
    for (const m of ['401', 'error', 'slow'] as const) {
      mode = m
      const p = rejection(source.refresh())
      if (m === 'slow') {
        await vi.waitFor(() => expect(seen).toHaveLength(3), { interval: 2 })
        clock.advance(100)
      }
      errors.push(await p)
    }
    mode = '401'
    errors.push(await rejection(other.source.refresh()))
    expect(seen).toEqual(Array(3).fill(`Bearer ${SECRET}`).concat([null]))
    expect(errors.map((e) => e.code)).toEqual(Array(4).fill('CONFIG_FETCH_FAILED'))
    expect(errors[0]?.status).toBe(401)
    expect(errors[2]?.message).toContain('did not answer')
    const dump = (value: unknown): string =>
      JSON.stringify(value, (_k, v) =>
        v instanceof Error ? { ...v, message: v.message, stack: v.stack, cause: dump(v.cause) } : v,
      )
    for (const e of errors) {
      expect(dump(e)).not.toContain(SECRET)
      expect(String(e.cause)).not.toContain(SECRET)
    }
    expect(dump(events)).not.toContain(SECRET)
    expect(dump(other.events)).not.toContain(SECRET)
    expect(events.filter((e) => e.name === 'config:failed')).toHaveLength(3)
  })

  it('sends admin headers (e.g. a bearer token) on each request', async () => {
    const calls = serveList(() => HttpResponse.json([rec('a')]))
    const { source } = setup({ admin: { headers: { Authorization: 'Bearer abc' } } })
    await load(source)
    expect(calls[0]?.headers.get('authorization')).toBe('Bearer abc')
  })

  it('close() stops timers and fetches; refresh() after close rejects CLOSED', async () => {
    const calls = serveList(() => HttpResponse.error())
    const { source, clock } = setup()
    await load(source)
    expect(clock.pendingTimers).toBe(1) // retry timer
    source.close()
    source.close()
    expect(clock.pendingTimers).toBe(0)
    clock.advance(TTL * 10)
    expect(isPromise(source.get())).toBe(false)
    await settle()
    expect(calls).toHaveLength(1)
    expect((await rejection(source.refresh())).code).toBe('CLOSED')
  })

  it('a cold lookup in flight at close() resolves with env records', async () => {
    serveList(async () => {
      await deferred().promise
      return HttpResponse.json([rec('a')])
    })
    const { source } = setup()
    const pending = source.get()
    await new Promise((r) => setTimeout(r, 5))
    source.close()
    const snap = await pending
    expect(snap.origin).toBe('default')
  })
})

describe('admin Retry-After', () => {
  it('waits at least as long as a 429/503 Retry-After asks (capped at retryMaxMs) before the next refresh', async () => {
    let mode: 'ok' | '429' | '503-date' = 'ok'
    const calls = serveList(() => {
      if (mode === '429')
        return HttpResponse.json({ error: 'slow down' }, { status: 429, headers: { 'retry-after': '20' } })
      if (mode === '503-date')
        return HttpResponse.json(
          { error: 'maintenance' },
          { status: 503, headers: { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() } },
        )
      return HttpResponse.json([rec('m')])
    })
    const { source, clock, waitFor } = setup({ admin: { retryBaseMs: 1_000, retryMaxMs: 30_000 } })
    clock.randomValue = 0.5
    await load(source)
    clock.advance(TTL + 1)
    mode = '429'
    source.get()
    const failed = await waitFor('config:failed', 1)
    expect(failed[0]).toMatchObject({ nextRetryMs: 20_000 })
    expect(failed[0]?.error.retryAfterMs).toBe(20_000)
    clock.advance(19_999)
    await settle()
    expect(calls).toHaveLength(2)
    mode = '503-date'
    clock.advance(1)
    const again = await waitFor('config:failed', 2)
    // An hour away: capped at retryMaxMs.
    expect(again[1]).toMatchObject({ nextRetryMs: 30_000 })
    expect(calls).toHaveLength(3)
  })
})
