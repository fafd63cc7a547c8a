import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { HttpResponse, http } from 'msw'
import { Agent } from 'undici'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { ErrorCode, type RouterError } from '../src/errors.js'
import type { Clock } from '../src/internal/clock.js'
import { createHttpSink, type HttpSinkOptions } from '../src/metrics/http-sink.js'
import { makeMetricRecord } from '../src/testing/core/metrics.js'
import type { MetricRecord } from '../src/types.js'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()
const URL_ = 'http://admin.test/api/llm-backends/metrics'
const agent = new Agent()
afterAll(() => agent.close())

/** Timers fire only when the test advances time; `delays` records every requested delay. */
class ManualClock implements Clock {
  t = 1_700_000_000_000
  private seq = 0
  private readonly timers = new Map<number, { at: number; fn: () => void; ms: number }>()
  readonly delays: number[] = []
  now(): number {
    return this.t
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { at: this.t + ms, fn, ms })
    this.delays.push(ms)
    return id
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number)
  }
  random(): number {
    return 0.5
  }
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.ms)
  }
  /** ms until the next timer fires, or undefined when none is pending. */
  nextDue(): number | undefined {
    let at: number | undefined
    for (const t of this.timers.values()) if (at === undefined || t.at < at) at = t.at
    return at === undefined ? undefined : at - this.t
  }
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined
      for (const e of this.timers)
        if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e
      if (next === undefined) break
      this.timers.delete(next[0])
      this.t = next[1].at
      next[1].fn()
    }
    this.t = end
  }
}

/** The kit's fixture, with the fields these tests assert on pinned. */
function rec(i: number): MetricRecord {
  return makeMetricRecord({
    timestamp: 1_700_000_000 + i / 1000,
    model: 'llama3',
    endpoint: 'http://ollama.test:11434',
    latency_seconds: 0.5,
    tokens: 10,
    tokens_per_second: 20,
    prompt_tokens: 5,
    request_id: `r${i}`,
  })
}

const ids = (records: readonly unknown[]): string[] =>
  records.map((r) => (r as MetricRecord).request_id ?? '')
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)
const tick = (ms = 15) => new Promise((r) => setTimeout(r, ms))

/**
 * Drives the manual clock until `done()` holds: lets I/O settle, then jumps to the next timer. Timers
 * further away than `maxJumpMs` are POST timeouts of requests still in flight (the tests set timeoutMs
 * above it): then it waits for the I/O instead, so a slow machine cannot time a POST out.
 */
async function runClockUntil(clock: ManualClock, done: () => boolean, maxJumpMs = 10_000): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    await tick(5)
    if (done()) return
    const due = clock.nextDue()
    if (due !== undefined && due <= maxJumpMs) clock.advance(due)
  }
  expect.fail('condition not reached')
}

/** Waits until the sink has asked the clock for `ms`, then advances by it. */
async function advanceWhenPending(clock: ManualClock, ms: number): Promise<void> {
  await vi.waitFor(() => expect(clock.pending()).toContain(ms))
  clock.advance(ms)
}

function sinkWith(clock: ManualClock, extra: Partial<HttpSinkOptions> = {}) {
  const failures: { error: RouterError; records: readonly MetricRecord[]; requeued: boolean }[] = []
  const drops: [number, number][] = []
  const sink = createHttpSink({
    url: URL_,
    clock,
    dispatcher: agent,
    onFlushFailed: (error, records, requeued) => failures.push({ error, records, requeued }),
    onDropped: (n, total) => drops.push([n, total]),
    ...extra,
  })
  return { sink, failures, drops }
}

/** Collects what the admin endpoint received; `respond` picks the answer per POST. */
function adminEndpoint(
  respond: (body: unknown, n: number) => Response | Promise<Response> = () =>
    new Response(null, { status: 204 }),
) {
  const state = { posts: 0, bodies: [] as unknown[], records: [] as unknown[], headers: [] as Headers[] }
  net.use(
    http.post(URL_, async ({ request }) => {
      const body = (await request.json()) as unknown
      state.posts++
      state.bodies.push(body)
      state.headers.push(request.headers)
      const res = await respond(body, state.posts)
      if (res.status < 300) state.records.push(...(Array.isArray(body) ? body : [body]))
      return res
    }),
  )
  return state
}

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

/** A real server on 127.0.0.1 that accepts requests and never answers. */
async function hangingServer() {
  const seen: IncomingMessage[] = []
  const closed: number[] = []
  const server = createServer((req) => {
    seen.push(req)
    req.socket.on('close', () => closed.push(seen.indexOf(req)))
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/llm-backends/metrics`
  return { url, seen, closed }
}

describe('batching', () => {
  it('sends N records in at most ceil(N/batch)+1 posts, full batches at once and the rest on the interval', async () => {
    const admin = adminEndpoint()
    const clock = new ManualClock()
    const { sink } = sinkWith(clock, { batchSize: 100 })
    const written = range(0, 250).map(rec)
    for (const r of written) sink.write(r)
    // Nothing leaves inside write()'s call stack.
    expect(admin.posts).toBe(0)
    expect(sink.stats()).toMatchObject({ queued: 250, sent: 0 })

    await vi.waitFor(() => expect(admin.records).toHaveLength(200))
    expect(admin.posts).toBe(2)
    await advanceWhenPending(clock, 5000)
    await vi.waitFor(() => expect(admin.records).toHaveLength(250))

    expect(admin.posts).toBeLessThanOrEqual(Math.ceil(250 / 100) + 1)
    // The wire format is the record itself, snake_case names untouched, in order.
    expect(admin.records).toEqual(written)
    expect(Array.isArray(admin.bodies[0])).toBe(true)
    expect(admin.headers[0]?.get('content-type')).toBe('application/json')
    await vi.waitFor(() =>
      expect(sink.stats()).toEqual({
        queued: 0,
        inFlight: 0,
        sent: 250,
        dropped: 0,
        failedPosts: 0,
        posts: 3,
        // auto mode: the first answer (2xx to an array) taught the sink that this admin takes batches.
        mode: 'batch',
      }),
    )
    // The interval timer is cleared once the queue is empty.
    expect(clock.pending()).toEqual([])
  })

  it('flushes a partial batch only when the interval elapses; the timer starts on the first write', async () => {
    const admin = adminEndpoint()
    const clock = new ManualClock()
    const { sink } = sinkWith(clock, { flushIntervalMs: 2000 })
    expect(clock.pending()).toEqual([])
    sink.write(rec(1))
    expect(clock.pending()).toEqual([2000])
    clock.advance(1000)
    sink.write(rec(2))
    sink.write(rec(3))
    // Later writes do not restart or add timers.
    expect(clock.pending()).toEqual([2000])
    clock.advance(999)
    await tick()
    expect(admin.posts).toBe(0)
    clock.advance(1)
    await vi.waitFor(() => expect(admin.records).toHaveLength(3))
    expect(admin.posts).toBe(1)
    await vi.waitFor(() => expect(clock.pending()).toEqual([]))

    // The next write starts a new interval.
    sink.write(rec(4))
    expect(clock.pending()).toEqual([2000])
    await sink.flush()
    expect(ids(admin.records)).toEqual(['r1', 'r2', 'r3', 'r4'])
    expect(clock.pending()).toEqual([])
  })

  it('flush() sends everything queued now, in batches', async () => {
    const admin = adminEndpoint()
    const { sink } = sinkWith(new ManualClock(), { batchSize: 10 })
    for (const i of range(0, 25)) sink.write(rec(i))
    await sink.flush()
    expect(ids(admin.records)).toEqual(range(0, 25).map((i) => `r${i}`))
    expect(admin.bodies.map((b) => (b as unknown[]).length)).toEqual([10, 10, 5])
  })

  it('halves the batch on 413 and delivers everything', async () => {
    const admin = adminEndpoint((body) =>
      (body as unknown[]).length > 30
        ? new Response('too large', { status: 413 })
        : new Response(null, { status: 200 }),
    )
    const { sink, failures } = sinkWith(new ManualClock(), { batchSize: 100 })
    for (const i of range(0, 100)) sink.write(rec(i))
    await sink.flush()
    expect(admin.records).toHaveLength(100)
    expect(new Set(ids(admin.records)).size).toBe(100)
    expect(failures).toEqual([])
    // Later batches use the smaller size straight away.
    const before = admin.posts
    for (const i of range(100, 150)) sink.write(rec(i))
    await sink.flush()
    expect(admin.posts - before).toBe(2)
    expect(admin.records).toHaveLength(150)
  })
})

describe('failures never reach the caller', () => {
  it('retries 5xx with jittered exponential backoff, then keeps the batch queued for the next pass, without secrets', async () => {
    const admin = adminEndpoint((_b, n) =>
      n <= 4 ? HttpResponse.json({ error: 'db down' }, { status: 500 }) : new Response(null, { status: 204 }),
    )
    const clock = new ManualClock()
    const { sink, failures, drops } = sinkWith(clock, {
      batchSize: 5,
      headers: { authorization: 'Bearer sekrit-token' },
    })
    for (const i of range(0, 5)) sink.write(rec(i))
    // random() = 0.5 -> 87.5 % of 500, 1000, 2000 ms (the tree's one backoff, dispatch/backoff.ts).
    for (const delay of [438, 875, 1750]) await advanceWhenPending(clock, delay)
    await vi.waitFor(() => expect(failures).toHaveLength(1))
    expect(admin.posts).toBe(4)
    expect(admin.headers[0]?.get('authorization')).toBe('Bearer sekrit-token')
    const { error, records, requeued } = failures[0]!
    expect(error.code).toBe(ErrorCode.BACKEND_ERROR)
    expect(error.status).toBe(500)
    expect(error.message).toContain('HTTP 500')
    expect(ids(records)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4'])
    expect(requeued).toBe(true)
    const everything = `${error.message} ${JSON.stringify(error)} ${String(error.cause)}`
    expect(everything).not.toContain('sekrit')
    // Nothing is dropped: the batch waits in the queue for the interval, then goes out again.
    await vi.waitFor(() => expect(sink.stats()).toMatchObject({ queued: 5, inFlight: 0, dropped: 0 }))
    await advanceWhenPending(clock, 5000)
    await vi.waitFor(() => expect(ids(admin.records)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']))
    expect(drops).toEqual([])
    expect(sink.stats()).toMatchObject({ sent: 5, dropped: 0, failedPosts: 1, queued: 0, posts: 1 })
  })

  it('does not retry other 4xx', async () => {
    const admin = adminEndpoint(() => HttpResponse.json({ detail: 'bad' }, { status: 400 }))
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, { mode: 'batch' })
    sink.write(rec(1))
    await sink.flush()
    expect(admin.posts).toBe(1)
    expect(failures.map((f) => [f.error.code, f.requeued])).toEqual([[ErrorCode.BAD_REQUEST, false]])
    expect(sink.stats()).toMatchObject({ dropped: 1, queued: 0 })
    expect(clock.pending()).toEqual([])
  })

  it('honours Retry-After on 429, clamped to maxRetryAfterMs', async () => {
    const admin = adminEndpoint((_b, n) =>
      n === 1
        ? new Response(null, { status: 429, headers: { 'retry-after': '7' } })
        : n === 2
          ? new Response(null, { status: 429, headers: { 'retry-after': '3600' } })
          : new Response(null, { status: 204 }),
    )
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, { maxRetryAfterMs: 20_000 })
    sink.write(rec(1))
    const flushed = sink.flush()
    await advanceWhenPending(clock, 7000)
    await advanceWhenPending(clock, 20_000)
    await flushed
    expect(admin.posts).toBe(3)
    expect(ids(admin.records)).toEqual(['r1'])
    expect(failures).toEqual([])
  })

  it('retries a refused connection, then reports BACKEND_UNREACHABLE', async () => {
    const server = createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    await new Promise((r) => server.close(r))
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, { url: `http://127.0.0.1:${port}/m`, maxRetries: 1 })
    sink.write(rec(1))
    void sink.flush()
    await advanceWhenPending(clock, 438)
    await vi.waitFor(() => expect(failures).toHaveLength(1))
    expect(failures[0]?.error.code).toBe(ErrorCode.BACKEND_UNREACHABLE)
    expect(failures[0]?.requeued).toBe(true)
    expect(sink.stats()).toMatchObject({ dropped: 0, queued: 1, failedPosts: 1 })
  })

  it('times out a POST that gets no answer and retries it', async () => {
    const hang = await hangingServer()
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, { url: hang.url, timeoutMs: 2000, maxRetries: 1 })
    sink.write(rec(1))
    void sink.flush()
    await vi.waitFor(() => expect(hang.seen).toHaveLength(1))
    await advanceWhenPending(clock, 2000)
    await advanceWhenPending(clock, 438)
    await vi.waitFor(() => expect(hang.seen).toHaveLength(2))
    await advanceWhenPending(clock, 2000)
    await vi.waitFor(() => expect(failures).toHaveLength(1))
    expect(failures[0]?.error.code).toBe(ErrorCode.TIMEOUT)
    // Timed-out requests are really cancelled, not left open.
    await vi.waitFor(() => expect(hang.closed).toHaveLength(2))
  })

  it('while the endpoint is slow, write() stays fast and the queue stays bounded, dropping the oldest', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => {
      release = r
    })
    const admin = adminEndpoint(async (_b, n) => {
      if (n === 1) await gate
      return new Response(null, { status: 204 })
    })
    const clock = new ManualClock()
    const { sink, drops } = sinkWith(clock, {
      batchSize: 5,
      maxQueueSize: 10,
      onDropped: (n, total) => {
        drops.push([n, total])
        throw new Error('listener bug')
      },
    })
    for (const i of range(0, 5)) sink.write(rec(i))
    await vi.waitFor(() => expect(admin.posts).toBe(1))
    expect(sink.stats()).toMatchObject({ inFlight: 5, queued: 0 })

    const started = performance.now()
    for (const i of range(5, 1005)) sink.write(rec(i))
    expect(performance.now() - started).toBeLessThan(200)
    expect(sink.stats()).toMatchObject({ queued: 10, dropped: 990 })
    // Drop reports are coalesced and delivered after write() returned.
    expect(drops).toEqual([])
    await tick()
    expect(drops).toEqual([[990, 990]])

    release()
    await sink.flush()
    expect(ids(admin.records)).toEqual([...range(0, 5), ...range(995, 1005)].map((i) => `r${i}`))
    expect(sink.stats()).toMatchObject({ sent: 15, dropped: 990, queued: 0 })
  })
})

describe('single mode', () => {
  it('posts one object per request with bounded concurrency, where arrays are rejected', async () => {
    let inFlight = 0
    let maxInFlight = 0
    const admin = adminEndpoint(async (body) => {
      if (Array.isArray(body)) return HttpResponse.json({ detail: 'expected an object' }, { status: 422 })
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await tick(5)
      inFlight--
      return HttpResponse.json({ id: 1 }, { status: 201 })
    })
    const clock = new ManualClock()

    // The same handler refuses the batch format, so this test would catch single mode sending arrays.
    const batch = sinkWith(clock, { mode: 'batch' })
    batch.sink.write(rec(0))
    await batch.sink.flush()
    expect(batch.failures.map((f) => f.error.status)).toEqual([422])

    const { sink, failures } = sinkWith(clock, { mode: 'single', concurrency: 3, batchSize: 50 })
    for (const i of range(1, 21)) sink.write(rec(i))
    await sink.flush()
    expect(failures).toEqual([])
    expect(admin.records).toHaveLength(20)
    expect(admin.records.every((r) => !Array.isArray(r))).toBe(true)
    expect(new Set(ids(admin.records))).toEqual(new Set(range(1, 21).map((i) => `r${i}`)))
    expect(maxInFlight).toBeLessThanOrEqual(3)
    expect(maxInFlight).toBeGreaterThan(1)
    expect(sink.stats()).toMatchObject({ sent: 20, posts: 20 })
  })

  it('stops a pass once the endpoint is down instead of retrying every record, and keeps them all queued', async () => {
    const admin = adminEndpoint(() => new Response(null, { status: 503 }))
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, { mode: 'single', concurrency: 1, maxRetries: 0 })
    for (const i of range(0, 10)) sink.write(rec(i))
    await sink.flush()
    expect(admin.posts).toBe(1)
    expect(failures).toHaveLength(1)
    expect(failures[0]?.error.code).toBe(ErrorCode.BACKEND_BUSY)
    expect(failures[0]?.requeued).toBe(true)
    expect(sink.stats()).toMatchObject({ queued: 10, dropped: 0, failedPosts: 1 })
    // While paused, writes that fill a batch do not start a pass of their own: the interval does.
    expect(clock.pending()).toEqual([5000])
  })
})

/** Seed 004's FastAPI endpoint: one record per body; an array gets pydantic's 422. */
const fastApiAnswer = (body: unknown, n: number): Response =>
  Array.isArray(body)
    ? HttpResponse.json(
        { detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }] },
        { status: 422 },
      )
    : HttpResponse.json({ id: n, status: 'created' })

describe("auto mode (the default): learns the admin's shape from its first answer", () => {
  it('a one-record-per-POST admin gets every record: the rejected array is resent one record per POST', async () => {
    const admin = adminEndpoint(fastApiAnswer)
    const { sink, failures, drops } = sinkWith(new ManualClock())
    expect(sink.stats().mode).toBe('auto')
    const written = range(0, 20).map(rec)
    for (const r of written) sink.write(r)
    await sink.flush()
    // One array (422), then 20 single records; none lost, nothing reported as failed.
    expect(admin.posts).toBe(21)
    expect(Array.isArray(admin.bodies[0])).toBe(true)
    expect(admin.bodies.slice(1).every((b) => !Array.isArray(b))).toBe(true)
    expect(new Set(ids(admin.records))).toEqual(new Set(ids(written)))
    expect(admin.records).toHaveLength(20)
    expect(failures).toEqual([])
    await tick()
    expect(drops).toEqual([])
    expect(sink.stats()).toMatchObject({ mode: 'single', sent: 20, dropped: 0, queued: 0, posts: 20 })
    // Learned for good: later records go one per POST straight away.
    for (const i of range(20, 25)) sink.write(rec(i))
    await sink.flush()
    expect(admin.posts).toBe(26)
    expect(admin.records).toHaveLength(25)
  })

  it('an admin that takes the first array keeps getting batches; a later 422 drops that batch only', async () => {
    const admin = adminEndpoint((_body, n) =>
      n === 2
        ? HttpResponse.json({ detail: 'bad row' }, { status: 422 })
        : new Response(null, { status: 201 }),
    )
    const { sink, failures } = sinkWith(new ManualClock(), { batchSize: 10 })
    for (const i of range(0, 30)) sink.write(rec(i))
    await sink.flush()
    expect(admin.posts).toBe(3)
    expect(admin.bodies.every((b) => Array.isArray(b))).toBe(true)
    expect(failures.map((f) => [f.error.status, f.records.length, f.requeued])).toEqual([[422, 10, false]])
    expect(sink.stats()).toMatchObject({ mode: 'batch', sent: 20, dropped: 10 })
  })

  it('an explicit mode is never changed by the answers', async () => {
    adminEndpoint(fastApiAnswer)
    const { sink, failures } = sinkWith(new ManualClock(), { mode: 'batch' })
    sink.write(rec(1))
    await sink.flush()
    expect(failures.map((f) => f.error.status)).toEqual([422])
    expect(sink.stats()).toMatchObject({ mode: 'batch', dropped: 1 })
  })
})

describe('an outage never drops records that were not tried (single mode)', () => {
  for (const concurrency of [1, 4]) {
    it(`a 6 s database outage: every record arrives once, none dropped (concurrency ${concurrency})`, async () => {
      const clock = new ManualClock()
      const outageEnds = clock.now() + 6000
      const admin = adminEndpoint((body, n) =>
        clock.now() < outageEnds
          ? HttpResponse.json({ detail: 'database unavailable' }, { status: 503 })
          : fastApiAnswer(body, n),
      )
      const { sink, failures, drops } = sinkWith(clock, {
        mode: 'single',
        concurrency,
        flushIntervalMs: 1000,
        timeoutMs: 60_000,
      })
      const written = range(0, 10).map(rec)
      for (const r of written) sink.write(r)
      void sink.flush()
      await runClockUntil(clock, () => admin.records.length === 10)
      expect(ids(admin.records).sort()).toEqual(ids(written).sort())
      // With one POST at a time they also arrive in order.
      if (concurrency === 1) expect(ids(admin.records)).toEqual(ids(written))
      expect(failures.length).toBeGreaterThan(0)
      expect(failures.every((f) => f.requeued && f.records.length === 1)).toBe(true)
      await tick()
      expect(drops).toEqual([])
      expect(sink.stats()).toMatchObject({ sent: 10, dropped: 0, queued: 0, inFlight: 0 })
      // The outage was not hammered: one record's retries per pass, then a pause for the interval.
      expect(admin.posts).toBeLessThan(40)
    })
  }

  it('during an outage only the queue bound drops records, the oldest first, and every drop is counted', async () => {
    const clock = new ManualClock()
    let down = true
    const admin = adminEndpoint((body, n) =>
      down ? new Response(null, { status: 500 }) : fastApiAnswer(body, n),
    )
    const { sink, drops } = sinkWith(clock, {
      mode: 'single',
      maxQueueSize: 5,
      maxRetries: 0,
      batchSize: 5,
      timeoutMs: 60_000,
    })
    for (const i of range(0, 5)) sink.write(rec(i))
    await sink.flush()
    expect(sink.stats()).toMatchObject({ queued: 5, dropped: 0 })
    for (const i of range(5, 8)) sink.write(rec(i))
    expect(sink.stats()).toMatchObject({ queued: 5, dropped: 3 })
    await tick()
    expect(drops).toEqual([[3, 3]])
    down = false
    await runClockUntil(clock, () => admin.records.length === 5)
    expect(ids(admin.records)).toEqual(['r3', 'r4', 'r5', 'r6', 'r7'])
    expect(sink.stats()).toMatchObject({ sent: 5, dropped: 3, queued: 0 })
  })
})

describe('close()', () => {
  it('flushes everything, is idempotent, and later writes are dropped', async () => {
    const admin = adminEndpoint()
    const clock = new ManualClock()
    const { sink, drops } = sinkWith(clock, { batchSize: 100 })
    for (const i of range(0, 30)) sink.write(rec(i))
    const a = sink.close()
    const b = sink.close()
    expect(b).toBe(a)
    expect(sink.flush()).toBe(a)
    await a
    expect(admin.records).toHaveLength(30)
    expect(clock.pending()).toEqual([])
    sink.write(rec(99))
    await tick()
    expect(admin.records).toHaveLength(30)
    expect(sink.stats()).toMatchObject({ sent: 30, dropped: 1 })
    expect(drops).toEqual([[1, 1]])
  })

  it('returns by closeTimeoutMs when the endpoint hangs, abandoning in-flight and queued records', async () => {
    const hang = await hangingServer()
    const clock = new ManualClock()
    const { sink, failures, drops } = sinkWith(clock, { url: hang.url, batchSize: 5, closeTimeoutMs: 1000 })
    for (const i of range(0, 8)) sink.write(rec(i))
    await vi.waitFor(() => expect(hang.seen).toHaveLength(1))
    let done = false
    const closing = sink.close().then(() => {
      done = true
    })
    await tick()
    expect(done).toBe(false)
    await advanceWhenPending(clock, 1000)
    await Promise.race([
      closing,
      tick(2000).then(() => expect.fail('close() did not return after its deadline')),
    ])
    expect(failures).toHaveLength(1)
    expect(failures[0]?.error.code).toBe(ErrorCode.TIMEOUT)
    expect(failures[0]?.error.message).toContain('closeTimeoutMs')
    expect(sink.stats()).toMatchObject({ sent: 0, dropped: 8, queued: 0, inFlight: 0 })
    await tick()
    expect(drops.at(-1)).toEqual([expect.any(Number), 8])
    // The hanging request was cancelled, so no socket keeps the process alive.
    await vi.waitFor(() => expect(hang.closed).toHaveLength(1))
    expect(clock.pending()).toEqual([])
  })

  it('a close() deadline also cuts a retry backoff short', async () => {
    adminEndpoint(() => new Response(null, { status: 500 }))
    const clock = new ManualClock()
    const { sink, failures } = sinkWith(clock, {
      closeTimeoutMs: 3000,
      retryBaseMs: 60_000,
      retryMaxDelayMs: 60_000,
    })
    sink.write(rec(1))
    const closing = sink.close()
    await vi.waitFor(() => expect(clock.pending()).toContain(52_500))
    clock.advance(3000)
    await closing
    expect(failures.map((f) => f.error.code)).toEqual([ErrorCode.TIMEOUT])
    expect(sink.stats()).toMatchObject({ dropped: 1 })
  })
})

describe('options', () => {
  it('rejects invalid options with INVALID_OPTIONS naming the field', () => {
    expect(() => createHttpSink({ url: 'ftp://admin.test/m' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    )
    try {
      createHttpSink({ url: URL_, batchSize: 0, maxRetries: -1 })
      expect.fail('should throw')
    } catch (err) {
      expect((err as RouterError).issues.map((i) => i.path)).toEqual(['batchSize', 'maxRetries'])
    }
  })
})
