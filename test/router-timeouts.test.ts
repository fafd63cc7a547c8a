/**
 * Timeouts and stops against real node:http servers on 127.0.0.1: a server that accepts and hangs,
 * headers then silence, a stall mid-stream, a llama-server in-band 400, stale and crashed sockets,
 * a hanging TCP connect. Router time runs on a ManualClock: the test moves it once the server has
 * the request, so nothing here waits for real seconds.
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import type { MetricRecord } from '../src/types.js'
import { ManualClock } from './helpers/manual-clock.js'

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void

interface TestServer {
  url: string
  hits: () => number
  /** Sockets open right now, and the most that were open at once. */
  open: () => number
  maxOpen: () => number
  close: () => Promise<void>
}

const servers: TestServer[] = []
const routers: LLMRouter[] = []

afterEach(async () => {
  for (const r of routers.splice(0)) await r.close()
  for (const s of servers.splice(0)) await s.close()
})

async function serve(handler: Handler): Promise<TestServer> {
  let hits = 0
  let max = 0
  const sockets = new Set<import('node:net').Socket>()
  const server = http.createServer((req, res) => {
    hits++
    const n = hits
    // Read the body first, like real servers do, then hand over.
    req.resume()
    req.on('end', () => handler(req, res, n))
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    max = Math.max(max, sockets.size)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const s: TestServer = {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    open: () => sockets.size,
    maxOpen: () => max,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
  servers.push(s)
  return s
}

/** Waits (polling real time briefly) until `check` holds; fails after 2 s. */
async function until(check: () => boolean, what = 'condition'): Promise<void> {
  const end = Date.now() + 2000
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

const OLLAMA_DONE = {
  model: 'm',
  created_at: '2026-01-01T00:00:00Z',
  response: 'from ollama',
  done: true,
  done_reason: 'stop',
  eval_count: 3,
  eval_duration: 1_000_000,
}

function ollamaJson(res: http.ServerResponse, text = 'from ollama'): void {
  const body = JSON.stringify({ ...OLLAMA_DONE, response: text })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function ollamaNdjson(res: http.ServerResponse, tokens: string[]): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  for (const t of tokens) res.write(`${JSON.stringify({ model: 'm', response: t, done: false })}\n`)
  res.end(`${JSON.stringify({ ...OLLAMA_DONE, response: '' })}\n`)
}

const SSE = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }

function sseChunk(text: string, finish: string | null = null): string {
  return `data: ${JSON.stringify({ object: 'text_completion', choices: [{ index: 0, text, finish_reason: finish }] })}\n\n`
}

function makeRouter(
  records: Record<string, unknown>[],
  clock: ManualClock,
  extra: Record<string, unknown> = {},
): LLMRouter {
  const router = createLLMRouter(
    { env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false, ...extra },
    { clock },
  )
  routers.push(router)
  return router
}

function auto(mlxUrl: string, ollamaUrl: string, over: Record<string, unknown> = {}) {
  return {
    model_name: 'm',
    backend_type: 'auto',
    endpoint_url: mlxUrl,
    fallback_url: ollamaUrl,
    enabled: true,
    priority: 1,
    ...over,
  }
}

async function drain(stream: AsyncIterable<{ text: string }>): Promise<{ text: string; error: unknown }> {
  let text = ''
  try {
    for await (const c of stream) text += c.text
    return { text, error: null }
  } catch (error) {
    return { text, error }
  }
}

describe('per-attempt limits fall over', () => {
  it("defect 1: a record's timeout_seconds bounds one attempt; a hung MLX falls over to Ollama", async () => {
    const mlx = await serve(() => {}) // accepts, reads, never answers
    const oll = await serve((_req, res) => ollamaJson(res))
    const clock = new ManualClock()
    const router = makeRouter([auto(mlx.url, oll.url, { timeout_seconds: 2 })], clock)
    const p = router.generate({ model: 'm', prompt: 'x' })
    await until(() => mlx.hits() === 1, 'the MLX request')
    clock.advance(2000)
    const r = await p
    expect(r.backend).toBe('ollama')
    expect(r.response).toBe('from ollama')
    expect(r.attempts.map((a) => a.code ?? 'ok')).toEqual(['TIMEOUT', 'ok'])
    expect(r.attempts[0]!.message).toContain('2000 ms')
    expect(oll.hits()).toBe(1)
  })

  it("a record's timeout_seconds longer than defaultTimeoutMs stretches the default deadline", async () => {
    const oll = await serve(() => {})
    const clock = new ManualClock()
    const router = makeRouter(
      [
        {
          model_name: 'm',
          backend_type: 'ollama',
          endpoint_url: oll.url,
          enabled: true,
          priority: 1,
          timeout_seconds: 300,
        },
      ],
      clock,
    )
    let settled = false
    const p = router.generate({ model: 'm', prompt: 'x' }).catch((e: unknown) => e)
    void p.then(() => {
      settled = true
    })
    await until(() => oll.hits() === 1)
    clock.advance(120_000) // defaultTimeoutMs
    await new Promise((r) => setTimeout(r, 10))
    expect(settled).toBe(false)
    clock.advance(180_000)
    expect(await p).toMatchObject({ code: 'TIMEOUT' })
  })

  it('headersTimeoutMs: a non-stream whose server accepts and hangs falls over', async () => {
    const mlx = await serve(() => {})
    const oll = await serve((_req, res) => ollamaJson(res))
    const clock = new ManualClock()
    const router = makeRouter([auto(mlx.url, oll.url)], clock)
    const p = router.generate({ model: 'm', prompt: 'x', headersTimeoutMs: 3000 })
    await until(() => mlx.hits() === 1)
    clock.advance(2999)
    await new Promise((r) => setTimeout(r, 10))
    expect(oll.hits()).toBe(0)
    clock.advance(1)
    const r = await p
    expect(r.backend).toBe('ollama')
    expect(r.attempts[0]).toMatchObject({ code: 'TIMEOUT', backend: 'mlx' })
    expect(r.attempts[0]!.message).toContain('headersTimeoutMs')
  })

  it('firstTokenTimeoutMs: headers and keepalive comments but no text falls over', async () => {
    const mlx = await serve((_req, res) => {
      res.writeHead(200, SSE)
      res.write(': keepalive 10/3000\n\n')
    })
    const oll = await serve((_req, res) => ollamaNdjson(res, ['from ', 'ollama']))
    const clock = new ManualClock()
    const router = makeRouter([auto(mlx.url, oll.url)], clock)
    const s = router.stream({ model: 'm', prompt: 'x', firstTokenTimeoutMs: 5000 })
    const out = drain(s)
    await until(() => mlx.hits() === 1)
    clock.advance(5000)
    const { text, error } = await out
    expect(error).toBeNull()
    expect(text).toBe('from ollama')
    const r = await s.result
    expect(r.attempts[0]).toMatchObject({ code: 'TIMEOUT', backend: 'mlx' })
    expect(r.attempts[0]!.message).toContain('firstTokenTimeoutMs')
  })

  it('idleTimeoutMs before the first text: headers then silence falls over', async () => {
    const mlx = await serve((_req, res) => {
      res.writeHead(200, SSE)
      res.flushHeaders()
    })
    const oll = await serve((_req, res) => ollamaNdjson(res, ['ok']))
    const clock = new ManualClock()
    const router = makeRouter([auto(mlx.url, oll.url)], clock)
    const s = router.stream({ model: 'm', prompt: 'x', idleTimeoutMs: 1000 })
    const out = drain(s)
    await until(() => mlx.hits() === 1)
    await new Promise((r) => setTimeout(r, 20)) // let the headers arrive
    clock.advance(1000)
    expect((await out).text).toBe('ok')
    expect((await s.result).attempts[0]!.message).toContain('idleTimeoutMs')
  })

  it('idleTimeoutMs after text: a stall mid-stream ends with STREAM_INTERRUPTED and what was delivered', async () => {
    const mlx = await serve((_req, res) => {
      res.writeHead(200, SSE)
      res.write(sseChunk('Hello'))
    })
    const oll = await serve((_req, res) => ollamaNdjson(res, ['never']))
    const clock = new ManualClock()
    const router = makeRouter([auto(mlx.url, oll.url)], clock)
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const s = router.stream({ model: 'm', prompt: 'x', idleTimeoutMs: 1000 })
    const it = s[Symbol.asyncIterator]()
    expect((await it.next()).value?.text).toBe('Hello')
    const rest = it.next()
    // Chunks are noticed by the watchdog's checks (every idleMs / 4), so the stall is caught after
    // idleMs and at most a quarter more.
    clock.advance(1000)
    await new Promise((r) => setTimeout(r, 10))
    expect(oll.hits()).toBe(0)
    clock.advance(250)
    const error = await rest.catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'STREAM_INTERRUPTED', delivered: 5 })
    expect((error as Error).message).toContain('idleTimeoutMs')
    expect(oll.hits()).toBe(0)
    expect(metrics).toHaveLength(1)
  })

  it('a socket paused for a slow consumer is not a stall', async () => {
    const tokens = Array.from({ length: 300 }, (_, i) => `t${i} `)
    let finish: (() => void) | null = null
    const mlx = await serve((_req, res) => {
      res.writeHead(200, SSE)
      for (const t of tokens) res.write(sseChunk(t))
      finish = () => res.end(`${sseChunk('', 'stop')}data: [DONE]\n\n`)
    })
    const clock = new ManualClock()
    const router = makeRouter(
      [{ model_name: 'm', backend_type: 'mlx', endpoint_url: mlx.url, enabled: true, priority: 1 }],
      clock,
    )
    const s = router.stream({ model: 'm', prompt: 'x', idleTimeoutMs: 1000 })
    const it = s[Symbol.asyncIterator]()
    let text = (await it.next()).value!.text
    await until(() => finish !== null)
    await new Promise((r) => setTimeout(r, 30)) // the rest arrives and fills the queue: paused
    clock.advance(5000) // the consumer dawdles far past the idle limit
    ;(finish as unknown as () => void)()
    for (;;) {
      const n = await it.next()
      if (n.done) break
      text += n.value.text
    }
    expect(text).toBe(tokens.join(''))
  })
})

describe("the caller's deadline is the caller's (defect 2)", () => {
  it('three requests timing out on timeoutMs leave a healthy server closed; the next request succeeds', async () => {
    const held: http.ServerResponse[] = []
    let slow = true
    const oll = await serve((_req, res) => {
      if (slow) held.push(res)
      else ollamaJson(res)
    })
    const clock = new ManualClock()
    const router = makeRouter(
      [{ model_name: 'm', backend_type: 'ollama', endpoint_url: oll.url, enabled: true, priority: 1 }],
      clock,
    )
    for (let i = 1; i <= 3; i++) {
      const p = router.generate({ model: 'm', prompt: 'x', timeoutMs: 100 }).catch((e: unknown) => e)
      await until(() => oll.hits() === i)
      clock.advance(100)
      expect(await p).toMatchObject({ code: 'TIMEOUT' })
    }
    expect(router.circuits()[0]).toMatchObject({ state: 'closed', failures: 0 })
    slow = false
    const r = await router.generate({ model: 'm', prompt: 'x' })
    expect(r.response).toBe('from ollama')
    for (const res of held) res.destroy()
  })
})

describe('resets before any response (defect 7)', () => {
  it('a reused keep-alive socket failing at once is replayed once; a crash after a long generation is not', async () => {
    const clock = new ManualClock()
    let mode: 'stale' | 'crash' = 'stale'
    const held: http.ServerResponse[] = []
    const oll = await serve((req, res, n) => {
      const first = (req.socket as { served?: number }).served === undefined
      ;(req.socket as { served?: number }).served = n
      if (first) return ollamaJson(res) // a fresh socket answers
      if (mode === 'stale') return req.socket.destroy() // the server had closed this idle socket
      held.push(res) // crash mode: the server works for a long time, then dies
    })
    const router = makeRouter(
      [{ model_name: 'm', backend_type: 'ollama', endpoint_url: oll.url, enabled: true, priority: 1 }],
      clock,
    )
    await router.generate({ model: 'm', prompt: 'x' }) // opens the keep-alive socket
    await new Promise((r) => setTimeout(r, 20)) // ...which is idle in the pool now
    const stale = await router.generate({ model: 'm', prompt: 'x' })
    expect(stale.attempts.map((a) => a.code ?? 'ok')).toEqual(['BACKEND_UNREACHABLE', 'ok'])
    expect(oll.hits()).toBe(3)

    mode = 'crash'
    await new Promise((r) => setTimeout(r, 20))
    const p = router.generate({ model: 'm', prompt: 'x' }).catch((e: unknown) => e)
    await until(() => held.length === 1)
    // A minute of generation. "Fast" is measured on the wall clock (a round trip on the wire), so the
    // minute is simulated there; the injected clock plays no part in it.
    const realNow = performance.now.bind(performance)
    const later = vi.spyOn(performance, 'now').mockImplementation(() => realNow() + 60_000)
    held[0]!.socket!.destroy()
    const error = (await p) as { code: string; attempts: { code: string }[] }
    expect(error.code).toBe('ALL_BACKENDS_FAILED')
    expect(error.attempts.map((a) => a.code)).toEqual(['BACKEND_UNREACHABLE'])
    later.mockRestore()
    expect(oll.hits()).toBe(4) // not replayed: another minute of GPU time saved
  })
})

describe('in-band errors that reject the request (defect 8)', () => {
  it("llama-server's HTTP 200 + `error: {code:400}` + [DONE] is BAD_REQUEST: no failover, no circuit charge", async () => {
    const message = 'the request exceeds the available context size, try increasing it'
    const llama = await serve((_req, res) => {
      res.writeHead(200, SSE)
      res.end(
        `error: ${JSON.stringify({ code: 400, message, type: 'invalid_request_error' })}\n\ndata: [DONE]\n\n`,
      )
    })
    const oll = await serve((_req, res) => ollamaNdjson(res, ['no']))
    const clock = new ManualClock()
    const router = makeRouter([auto(llama.url, oll.url)], clock)
    for (let i = 0; i < 4; i++) {
      const { error } = await drain(router.stream({ model: 'm', prompt: 'long prompt' }))
      expect(error).toMatchObject({ code: 'BAD_REQUEST' })
      expect((error as Error).message).toContain(message)
    }
    expect(oll.hits()).toBe(0)
    expect(llama.hits()).toBe(4)
    expect(router.circuits().every((c) => c.state === 'closed' && c.failures === 0)).toBe(true)
  })
})

describe('connections per endpoint (defect 9)', () => {
  it('opens at most 4 sockets to one endpoint by default; connectionsByOrigin overrides it', async () => {
    const held: http.ServerResponse[] = []
    const oll = await serve((_req, res) => held.push(res))
    const clock = new ManualClock()
    const record = {
      model_name: 'm',
      backend_type: 'ollama',
      endpoint_url: oll.url,
      enabled: true,
      priority: 1,
    }
    const router = makeRouter([record], clock)
    const all = Array.from({ length: 8 }, () => router.generate({ model: 'm', prompt: 'x' }))
    await until(() => held.length === 4)
    await new Promise((r) => setTimeout(r, 50))
    expect(oll.maxOpen()).toBe(4)
    expect(held).toHaveLength(4)
    while (held.length < 8 || held.some((r) => !r.writableEnded)) {
      for (const res of held) if (!res.writableEnded) ollamaJson(res)
      await new Promise((r) => setTimeout(r, 5))
    }
    expect((await Promise.all(all)).every((r) => r.response === 'from ollama')).toBe(true)
    expect(oll.maxOpen()).toBe(4)

    // Per origin: 8 concurrent requests all reach the server at once.
    const wide = makeRouter([record], clock, { connectionsByOrigin: { [oll.url]: 8 } })
    held.length = 0
    const more = Array.from({ length: 8 }, () => wide.generate({ model: 'm', prompt: 'x' }))
    await until(() => held.length === 8, '8 requests in flight at once')
    for (const res of held) ollamaJson(res)
    await Promise.all(more)
  })
})

describe('streams never hang', () => {
  it('defect 3: `await stream(req).result` without iterating finishes a 200-token answer', async () => {
    const tokens = Array.from({ length: 200 }, (_, i) => `w${i} `)
    const oll = await serve(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      // One packet per token, like a real server, so the client sees 200 separate deltas.
      for (const t of tokens) {
        res.write(`${JSON.stringify({ model: 'm', response: t, done: false })}\n`)
        await new Promise((r) => setImmediate(r))
      }
      res.end(`${JSON.stringify({ ...OLLAMA_DONE, response: '' })}\n`)
    })
    const router = makeRouter(
      [{ model_name: 'm', backend_type: 'ollama', endpoint_url: oll.url, enabled: true, priority: 1 }],
      new ManualClock(),
    )
    const r = await router.stream({ model: 'm', prompt: 'x' }).result
    expect(r.response).toBe(tokens.join(''))
  }, 4000)

  it('defect 4: two concurrent next() calls are both answered, in call order', async () => {
    let send: ((s: string) => void) | null = null
    let end: (() => void) | null = null
    const oll = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      send = (t) => res.write(`${JSON.stringify({ model: 'm', response: t, done: false })}\n`)
      end = () => res.end(`${JSON.stringify({ ...OLLAMA_DONE, response: '' })}\n`)
    })
    const router = makeRouter(
      [{ model_name: 'm', backend_type: 'ollama', endpoint_url: oll.url, enabled: true, priority: 1 }],
      new ManualClock(),
    )
    const it = router.stream({ model: 'm', prompt: 'x' })[Symbol.asyncIterator]()
    const a = it.next()
    const b = it.next()
    await until(() => send !== null)
    ;(send as unknown as (s: string) => void)('one')
    expect((await a).value?.text).toBe('one')
    ;(send as unknown as (s: string) => void)('two')
    expect((await b).value?.text).toBe('two')
    const c = it.next()
    const d = it.next()
    ;(end as unknown as () => void)()
    expect(await c).toEqual({ value: undefined, done: true })
    expect(await d).toEqual({ value: undefined, done: true })
  })
})

describe('stops settle without waiting for undici (defect 5)', () => {
  it('abort and timeoutMs bound the wait for the first config load', async () => {
    const admin = await serve(() => {}) // never answers
    const clock = new ManualClock()
    const router = createLLMRouter({ adminUrl: admin.url, env: {}, metrics: false }, { clock })
    routers.push(router)
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const ac = new AbortController()
    const p = router.generate({ prompt: 'x', signal: ac.signal }).catch((e: unknown) => e)
    await until(() => admin.hits() === 1)
    const t0 = performance.now()
    ac.abort()
    expect(await p).toMatchObject({ code: 'ABORTED' })
    expect(performance.now() - t0).toBeLessThan(100)

    const q = router.generate({ prompt: 'x', timeoutMs: 1000 }).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 10))
    clock.advance(1000)
    const timeout = (await q) as Error & { code: string }
    expect(timeout.code).toBe('TIMEOUT')
    expect(timeout.message).toContain('loading its config')
    // Each stopped request still records its one metric, with no config origin.
    expect(metrics.map((m) => [m.outcome, m.error_code, m.config_origin, m.attempts])).toEqual([
      ['aborted', 'ABORTED', null, 0],
      ['error', 'TIMEOUT', null, 0],
    ])
  })

  it('abort settles while the TCP connect hangs (a listener whose backlog is full)', async () => {
    // A listener that never accepts, its backlog filled by connections that are never served: further
    // SYNs are dropped and connect() hangs. node cannot make such a listener (it always accepts).
    const py = spawn('python3', [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)',
    ])
    try {
      const port = await new Promise<number>((resolve, reject) => {
        py.on('error', reject)
        py.stdout.once('data', (d) => resolve(Number(String(d).trim())))
      })
      const net = await import('node:net')
      const fillers = Array.from({ length: 4 }, () => net.connect(port, '127.0.0.1').on('error', () => {}))
      await new Promise((r) => setTimeout(r, 50))
      const router = makeRouter(
        [
          {
            model_name: 'm',
            backend_type: 'ollama',
            endpoint_url: `http://127.0.0.1:${port}`,
            enabled: true,
            priority: 1,
          },
        ],
        new ManualClock(),
        { connectTimeoutMs: 60_000 },
      )
      const ac = new AbortController()
      const p = router.generate({ model: 'm', prompt: 'x', signal: ac.signal }).catch((e: unknown) => e)
      await new Promise((r) => setTimeout(r, 100))
      const t0 = performance.now()
      ac.abort()
      expect(await p).toMatchObject({ code: 'ABORTED' })
      expect(performance.now() - t0).toBeLessThan(100)
      // close() does not wait for the connect either.
      const t1 = performance.now()
      await router.close()
      expect(performance.now() - t1).toBeLessThan(200)
      for (const f of fillers) f.destroy()
    } finally {
      py.kill()
    }
  })
})
