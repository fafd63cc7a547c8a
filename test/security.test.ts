/**
 * Bad input and security: validation that names the field, credentials referenced by environment
 * variable name and never echoed anywhere, size caps, and close() semantics. Real node:http servers
 * on 127.0.0.1 (the testing kit, plus a few hand-written ones for shapes the kit does not make).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import type { Clock } from '../src/internal/clock.js'
import type { RouterOptions } from '../src/options.js'
import {
  type AdminServer,
  type OllamaServer,
  type OpenAIServer,
  startAdminServer,
  startOllamaServer,
  startOpenAIServer,
} from '../src/testing/index.js'
import { collect, ROUTER_EVENTS } from './helpers/events.js'
import { LeakCheck } from './helpers/leaks.js'
import { ManualClock, until } from './helpers/manual-clock.js'

const EVENTS = ROUTER_EVENTS

let ollama: OllamaServer
let mlx: OpenAIServer
let admin: AdminServer
beforeAll(async () => {
  ollama = await startOllamaServer()
  mlx = await startOpenAIServer()
  admin = await startAdminServer()
})
afterAll(async () => {
  await Promise.all([ollama.stop(), mlx.stop(), admin.stop()])
})

let routers: LLMRouter[] = []
let servers: Server[] = []
afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
  for (const s of servers) s.closeAllConnections()
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  servers = []
  await Promise.all([ollama.clearFault(), mlx.clearFault(), admin.clearFault()])
  for (const s of [ollama, mlx, admin]) s.reset()
  admin.setRecords([])
})

// By default a ManualClock nobody advances: these tests are not about time, so no retry wait,
// attempt limit or refresh may fire on its own when the machine is busy.
function router(options: RouterOptions, clock: Clock = new ManualClock(Date.now())): LLMRouter {
  const r = createLLMRouter(options, { clock })
  routers.push(r)
  return r
}

function envRecords(records: Record<string, unknown>[], extra: Record<string, string> = {}) {
  return { LLM_ROUTER_BACKENDS: JSON.stringify(records), ...extra }
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function caught(p: Promise<unknown> | (() => unknown)): Promise<Record<string, unknown>> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (error) {
    return error as Record<string, unknown>
  }
  throw new Error('expected a rejection')
}

describe('validation names the field', () => {
  it.each([
    [{ cacheTtlMs: -1 }, 'cacheTtlMs'],
    [{ adminUrl: 'ftp://admin.example' }, 'adminUrl'],
    [{ retry: { maxRetries: 'x' } }, 'retry.maxRetries'],
    [{ admin: { maxPayloadBytes: 0 } }, 'admin.maxPayloadBytes'],
    [{ maxResponseBytes: 1.5 }, 'maxResponseBytes'],
    [{ circuitBreaker: { threshold: 0 } }, 'circuitBreaker.threshold'],
    [{ metrics: { url: 'file:///tmp/x' } }, 'metrics.url'],
    [{ timeoutMs: 5 }, '(options)'],
  ])('options %j -> INVALID_OPTIONS naming %s', (options, path) => {
    let error: unknown
    try {
      createLLMRouter(options as RouterOptions)
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({ name: 'RouterError', code: 'INVALID_OPTIONS' })
    const e = error as { message: string; issues: { path: string }[] }
    expect(e.issues.map((i) => i.path)).toContain(path)
    expect(e.message).toContain(path === '(options)' ? 'timeoutMs' : path)
  })

  it('an admin URL from the environment that is not http(s) names the variable', () => {
    expect(() => createLLMRouter({ env: { LLM_ROUTER_ADMIN_URL: 'ftp://x' } })).toThrow(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringContaining('LLM_ROUTER_ADMIN_URL'),
      }),
    )
  })

  it('admin records: non-http endpoint_url and unknown backend_type are reported, not used or guessed', async () => {
    admin.setRecords([
      { model_name: 'good', backend_type: 'ollama', endpoint_url: ollama.url },
      { model_name: 'ftp', backend_type: 'ollama', endpoint_url: 'ftp://127.0.0.1/models' },
      { model_name: 'js', backend_type: 'mlx', endpoint_url: 'javascript:alert(1)' },
      { model_name: 'vllm', backend_type: 'vllm', endpoint_url: mlx.url },
      { backend_type: 'ollama', endpoint_url: ollama.url },
    ])
    const r = router({ adminUrl: admin.url, metrics: false, strictModels: true })
    const invalid = collect(r, 'config:invalid-record')
    const info = await r.refresh()
    expect(info.allRecords.map((x) => x.model_name)).toEqual(['good'])
    expect(invalid).toEqual([
      { index: 1, modelName: 'ftp', field: 'endpoint_url', message: expect.stringMatching(/http or https/) },
      { index: 2, modelName: 'js', field: 'endpoint_url', message: expect.stringMatching(/http or https/) },
      {
        index: 3,
        modelName: 'vllm',
        field: 'backend_type',
        message: expect.stringMatching(/unknown backend_type "vllm"; expected ollama, mlx or auto/),
      },
      { index: 4, modelName: null, field: 'model_name', message: expect.any(String) },
    ])
    // Not guessed: the model has no record, so strict routing refuses it and nothing is sent.
    await expect(r.generate({ model: 'vllm', prompt: 'x' })).rejects.toMatchObject({
      code: 'MODEL_NOT_CONFIGURED',
    })
    await expect(r.resolve('ftp')).rejects.toMatchObject({ code: 'MODEL_NOT_CONFIGURED' })
    expect(mlx.requestCount + ollama.requestCount).toBe(0)
  })

  it('env records (LLM_ROUTER_BACKENDS) are validated and reported the same way', async () => {
    const r = router({
      metrics: false,
      env: envRecords([
        { model_name: 'ok', backend_type: 'ollama', endpoint_url: ollama.url },
        { model_name: 'bad', backend_type: 'ollama', endpoint_url: 'file:///etc/passwd' },
      ]),
    })
    const invalid = collect(r, 'config:invalid-record')
    const route = await r.resolve('bad')
    expect(invalid).toMatchObject([{ modelName: 'bad', field: 'LLM_ROUTER_BACKENDS[1].endpoint_url' }])
    expect(route.usesDefault).toBe(true)
    expect(route.targets.map((t) => t.endpoint)).not.toContain('file:///etc/passwd')
  })

  it.each([
    [{ prompt: 5 }, 'prompt'],
    [{ prompt: 'x', model: '' }, 'model'],
    [{ prompt: 'x', maxTokens: -1 }, 'maxTokens'],
    [{ prompt: 'x', temperature: Number.NaN }, 'temperature'],
    [{ prompt: 'x', stop: ['a', 1] }, 'stop[1]'],
    [{ prompt: 'x', timeoutMs: 0 }, 'timeoutMs'],
    [{ prompt: 'x', signal: {} }, 'signal'],
    [{ prompt: 'x', fallbackModels: 'all' }, 'fallbackModels'],
    [{ prompt: 'x', metadata: { requestId: 7 } }, 'metadata.requestId'],
    [{ prompt: 'x', options: [] }, 'options'],
  ])('request %j -> INVALID_REQUEST naming %s, nothing sent, no metric', async (req, path) => {
    const r = router({
      metrics: false,
      env: envRecords([{ model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url }]),
    })
    const metrics = collect(r, 'metric')
    const bad = req as unknown as Parameters<LLMRouter['generate']>[0]
    const error = await caught(r.generate(bad))
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', issues: [{ path }] })
    expect(error.message).toContain(path)
    await expect(r.stream(bad)[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    })
    expect(ollama.requestCount).toBe(0)
    expect(metrics).toEqual([])
  })
})

describe('credentials are referenced by environment variable name', () => {
  it('bearer_env sends Authorization: Bearer <value>; header/value_env sends that header', async () => {
    const env = envRecords(
      [
        {
          model_name: 'o',
          backend_type: 'ollama',
          endpoint_url: ollama.url,
          auth: { bearer_env: 'OLLAMA_TOKEN' },
        },
        {
          model_name: 'x',
          backend_type: 'mlx',
          endpoint_url: mlx.url,
          auth: { header: 'X-Api-Key', value_env: 'MLX_KEY' },
        },
      ],
      { OLLAMA_TOKEN: 'tok-ollama-1', MLX_KEY: 'key-mlx-1' },
    )
    const r = router({ metrics: false, env })
    await r.generate({ model: 'o', prompt: 'a' })
    await r.generate({ model: 'x', prompt: 'b' })
    expect(ollama.requests[0]!.headers.authorization).toBe('Bearer tok-ollama-1')
    expect(mlx.requests[0]!.headers['x-api-key']).toBe('key-mlx-1')
    expect(mlx.requests[0]!.headers.authorization).toBeUndefined()
  })

  it('an auto record sends its credential to the explicit fallback_url too', async () => {
    await mlx.setFault('503')
    const r = router({
      metrics: false,
      retry: { maxRetries: 0 },
      env: envRecords(
        [
          {
            model_name: 'a',
            backend_type: 'auto',
            endpoint_url: mlx.url,
            fallback_url: ollama.url,
            auth: { bearer_env: 'TOKEN' },
          },
        ],
        { TOKEN: 'auto-token' },
      ),
    })
    const result = await r.generate({ model: 'a', prompt: 'x' })
    expect(result.backend).toBe('ollama')
    expect(mlx.requests[0]!.headers.authorization).toBe('Bearer auto-token')
    expect(ollama.requests[0]!.headers.authorization).toBe('Bearer auto-token')
  })

  it('is read at request time, so a rotated credential is used by the next request', async () => {
    const env: Record<string, string> = {
      ...envRecords([
        { model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url, auth: { bearer_env: 'TOKEN' } },
      ]),
      TOKEN: 'first',
    }
    const r = router({ metrics: false, env })
    await r.generate({ model: 'o', prompt: 'a' })
    env.TOKEN = 'second'
    await r.generate({ model: 'o', prompt: 'b' })
    expect(ollama.requests.map((q) => q.headers.authorization)).toEqual(['Bearer first', 'Bearer second'])
  })

  it('a missing variable is MISSING_CREDENTIAL naming the variable; nothing is sent', async () => {
    const r = router({
      metrics: false,
      env: envRecords([
        {
          model_name: 'o',
          backend_type: 'ollama',
          endpoint_url: ollama.url,
          auth: { bearer_env: 'NOT_SET_VAR' },
        },
      ]),
    })
    const metrics = collect(r, 'metric')
    const error = await caught(r.generate({ model: 'o', prompt: 'x' }))
    // One candidate: the policy falls over (another backend may not need it), so the caller sees
    // ALL_BACKENDS_FAILED whose cause and attempt are the MISSING_CREDENTIAL.
    expect(error.code).toBe('ALL_BACKENDS_FAILED')
    const cause = error.cause as { code: string; message: string }
    expect(cause.code).toBe('MISSING_CREDENTIAL')
    expect(cause.message).toContain('NOT_SET_VAR')
    expect(error.attempts).toMatchObject([
      { code: 'MISSING_CREDENTIAL', message: expect.stringContaining('NOT_SET_VAR') },
    ])
    expect(ollama.requestCount).toBe(0)
    expect(metrics).toMatchObject([{ outcome: 'error', error_code: 'ALL_BACKENDS_FAILED' }])
    // Not an endpoint health failure: the circuit stays closed.
    expect(r.circuits().every((c) => c.state === 'closed')).toBe(true)
  })

  it('admin.bearerTokenEnv: sent to the admin (config and metrics); a missing one fails at creation', async () => {
    expect(() =>
      createLLMRouter({ adminUrl: admin.url, admin: { bearerTokenEnv: 'ADMIN_TOKEN' }, env: {} }),
    ).toThrow(
      expect.objectContaining({
        code: 'MISSING_CREDENTIAL',
        message: expect.stringContaining('ADMIN_TOKEN'),
      }),
    )
    admin.setRecords([{ model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url }])
    const r = router({
      adminUrl: admin.url,
      admin: { bearerTokenEnv: 'ADMIN_TOKEN' },
      env: { ADMIN_TOKEN: 'adm-1' },
      metrics: { flushIntervalMs: 10 },
    })
    await r.generate({ model: 'o', prompt: 'x' })
    await r.close()
    // The seed-like admin answers the sink's first (array) POST with 422; the record is resent alone.
    expect(admin.requests.map((q) => [q.method, q.headers.authorization])).toEqual([
      ['GET', 'Bearer adm-1'],
      ['POST', 'Bearer adm-1'],
      ['POST', 'Bearer adm-1'],
    ])
    expect(admin.metrics).toHaveLength(1)
  })
})

/** Everything reachable from `value` as text: own properties, error messages, stacks and causes. */
function dump(value: unknown, seen = new WeakSet<object>()): string {
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'string') return value
  if (typeof value !== 'object' && typeof value !== 'function') return String(value)
  if (typeof value === 'function') return ''
  if (seen.has(value)) return ''
  seen.add(value)
  const parts: string[] = []
  if (value instanceof Error) {
    parts.push(value.name, value.message, value.stack ?? '', dump(value.cause, seen))
    try {
      parts.push(JSON.stringify(value))
    } catch {}
  }
  if (value instanceof Map || value instanceof Set) {
    for (const v of value) parts.push(dump(v, seen))
  }
  for (const key of Reflect.ownKeys(value)) {
    parts.push(String(key))
    try {
      parts.push(dump((value as Record<PropertyKey, unknown>)[key], seen))
    } catch {}
  }
  return parts.join('\n')
}

describe('secret values never leak', () => {
  const SECRETS = {
    OLLAMA_TOKEN: 'S3CRET-ollama-bearer-7d1f',
    MLX_KEY: 'S3CRET-mlx-apikey-92ab',
    ADMIN_TOKEN: 'S3CRET-admin-bearer-c0de',
  }

  it('not in errors, events, metrics, config(), resolve(), circuits(), stats(), admin metric posts or logs', async () => {
    // A backend that echoes the credential it received, the worst case for error messages.
    const echo = await serve((req, res) => {
      req.resume()
      req.on('end', () => {
        const seen = `${req.headers.authorization ?? ''} ${req.headers['x-api-key'] ?? ''}`
        if (req.url?.includes('stream')) return
        res.writeHead(401, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: `invalid credentials: ${seen}` }))
      })
    })
    const echoStream = await serve((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        res.write(`${JSON.stringify({ model: 'e', response: 'hi', done: false })}\n`)
        res.end(`${JSON.stringify({ error: `token ${req.headers.authorization} expired` })}\n`)
      })
    })
    const ollamaAuth = { bearer_env: 'OLLAMA_TOKEN' }
    const mlxAuth = { header: 'X-Api-Key', value_env: 'MLX_KEY' }
    admin.setRecords([
      { model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url, auth: ollamaAuth },
      { model_name: 'x', backend_type: 'mlx', endpoint_url: mlx.url, auth: mlxAuth },
      {
        model_name: 'a',
        backend_type: 'auto',
        endpoint_url: mlx.url,
        fallback_url: ollama.url,
        auth: mlxAuth,
      },
      { model_name: 'echo', backend_type: 'ollama', endpoint_url: echo, auth: ollamaAuth },
      { model_name: 'echo-mlx', backend_type: 'mlx', endpoint_url: echo, auth: mlxAuth },
      { model_name: 'echo-stream', backend_type: 'ollama', endpoint_url: echoStream, auth: ollamaAuth },
      {
        model_name: 'missing',
        backend_type: 'ollama',
        endpoint_url: ollama.url,
        auth: { bearer_env: 'UNSET' },
      },
      // A URL with an inline credential is rejected without repeating the URL.
      {
        model_name: 'inline',
        backend_type: 'ollama',
        endpoint_url: `http://user:${SECRETS.OLLAMA_TOKEN}@127.0.0.1:1`,
      },
    ])
    const logs: unknown[] = []
    const spies = (['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
        logs.push(args)
      }),
    )
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      logs.push(String(chunk))
      return true
    })
    // Virtual time moves only where the test moves it: 20 ms before each operation (the 1 ms config
    // TTL lapses, the 10 ms metric flush runs), and by a client's limit once a server holds a request
    // it will never answer. Retries do not wait (baseDelayMs 0).
    const clock = new ManualClock(Date.now())
    try {
      const r = router(
        {
          adminUrl: admin.url,
          admin: { bearerTokenEnv: 'ADMIN_TOKEN', timeoutMs: 2000 },
          env: { ...SECRETS },
          cacheTtlMs: 1,
          retry: { maxRetries: 1, baseDelayMs: 0 },
          circuitBreaker: { threshold: 2, cooldownMs: 60_000 },
          metrics: { flushIntervalMs: 10, maxRetries: 0, timeoutMs: 2000 },
        },
        clock,
      )
      const seen: unknown[] = []
      for (const event of EVENTS) r.on(event, (payload) => seen.push({ event, payload }))
      const outcomes: unknown[] = []
      const attempt = async (fn: () => Promise<unknown>) => {
        clock.advance(20)
        try {
          outcomes.push(await fn())
        } catch (error) {
          outcomes.push(error)
        }
      }
      /**
       * Runs `fn` while `server` hangs its next `hangs` requests: each time it holds one more, the
       * clock moves by `limitMs` so the client's limit ends it. Returns the hangs not yet used.
       */
      const whileHanging = async (
        server: { readonly requestCount: number },
        hangs: number,
        limitMs: number,
        fn: () => Promise<unknown>,
      ): Promise<number> => {
        let done = false
        const run = fn().finally(() => {
          done = true
        })
        let seen = server.requestCount
        while (hangs > 0) {
          await until(() => done || server.requestCount > seen, 'the operation or a hung request')
          if (done) break
          seen++
          hangs--
          clock.advance(limitMs)
        }
        await run
        return hangs
      }
      const gen = (model: string, extra: Record<string, unknown> = {}) =>
        attempt(() => r.generate({ model, prompt: 'p', timeoutMs: 2000, ...extra }))
      const stream = (model: string) =>
        attempt(async () => {
          const s = r.stream({ model, prompt: 'p', timeoutMs: 2000 })
          for await (const _ of s) {
          }
          return s.result
        })

      await gen('o')
      await gen('x')
      await stream('o')
      await stream('x')
      await gen('echo')
      await gen('echo-mlx')
      await stream('echo-stream')
      await gen('missing')
      await gen('inline')
      for (const type of ['500-html', '503', '400', '404-model', 'reset-mid-body', 'invalid-json'] as const) {
        await ollama.setFault(type)
        await gen('o')
        await stream('o')
      }
      await ollama.setFault('hang')
      await whileHanging(ollama, 1, 200, () => gen('o', { timeoutMs: 200 }))
      await ollama.clearFault()
      await mlx.setFault('503')
      await gen('a')
      await mlx.clearFault()
      // The admin fails: config refreshes and metric posts fail and are reported.
      for (const type of ['503', 'reset-mid-body', 'hang', 'invalid-json'] as const) {
        await admin.setFault({ type, times: 2 })
        if (type === 'hang') {
          const hangs = await whileHanging(admin, 2, 2000, () => attempt(() => r.refresh()))
          await whileHanging(admin, hangs, 2000, () => gen('o'))
        } else {
          await attempt(() => r.refresh())
          await gen('o')
        }
      }
      await admin.clearFault()
      outcomes.push(r.config(), await r.resolve('o'), await r.resolve('a'), r.circuits(), r.stats())
      // A metric post the hanging admin still holds ends at its own 2 s limit.
      clock.advance(2000)
      await r.close()

      const everything = dump({ outcomes, seen, logs, posts: admin.metricPosts, metrics: admin.metrics })
      // The run did exercise what it claims: errors of many kinds, events, metrics posted.
      for (const word of [
        'UNAUTHORIZED',
        'MISSING_CREDENTIAL',
        'STREAM_INTERRUPTED',
        'TIMEOUT',
        'config:failed',
      ]) {
        expect(everything).toContain(word)
      }
      expect(everything).toContain('UNSET')
      // The echoing servers were reached: what they sent back is in the errors, minus the value.
      expect(everything).toContain('invalid credentials: Bearer [redacted]')
      expect(everything).toContain('token Bearer [redacted] expired')
      expect(seen.filter((e) => (e as { event: string }).event === 'config:failed').length).toBeGreaterThan(0)
      expect(seen.filter((e) => (e as { event: string }).event === 'config:invalid-record').length).toBe(1)
      expect(admin.metricsReceived).toBeGreaterThan(10)
      // ... and the servers did receive the credentials, so they were in play.
      expect(ollama.requests.some((q) => q.headers.authorization === `Bearer ${SECRETS.OLLAMA_TOKEN}`)).toBe(
        true,
      )
      expect(mlx.requests.some((q) => q.headers['x-api-key'] === SECRETS.MLX_KEY)).toBe(true)
      expect(admin.requests.some((q) => q.headers.authorization === `Bearer ${SECRETS.ADMIN_TOKEN}`)).toBe(
        true,
      )
      for (const [name, secret] of Object.entries(SECRETS)) {
        expect(everything.includes(secret), `${name} leaked`).toBe(false)
        // Not even a recognisable piece of it.
        expect(everything.includes(secret.slice(-8)), `${name} leaked in part`).toBe(false)
      }
    } finally {
      for (const s of spies) s.mockRestore()
      stderr.mockRestore()
    }
  })
})

describe('size caps', () => {
  it('admin payload with a Content-Length over admin.maxPayloadBytes: CONFIG_TOO_LARGE, nothing read', async () => {
    admin.setRecords(
      Array.from({ length: 200 }, (_, i) => ({
        model_name: `m${i}`,
        backend_type: 'ollama',
        endpoint_url: ollama.url,
      })),
    )
    const r = router({ adminUrl: admin.url, admin: { maxPayloadBytes: 2048 }, metrics: false })
    const failed = collect(r, 'config:failed')
    const error = await caught(r.refresh())
    expect(error).toMatchObject({ code: 'CONFIG_TOO_LARGE' })
    expect(error.message).toMatch(/admin\.maxPayloadBytes \(2048 bytes; content-length \d+\)/)
    expect(failed).toMatchObject([{ error: { code: 'CONFIG_TOO_LARGE' } }])
  })

  it('admin payload streamed without Content-Length: cut off at the cap, connection closed', async () => {
    let closed = false
    const url = await serve((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('[')
      const timer = setInterval(() => res.write(`${JSON.stringify({ model_name: 'x'.repeat(200) })},`), 1)
      res.on('close', () => {
        closed = true
        clearInterval(timer)
      })
    })
    const r = router({ adminUrl: url, admin: { maxPayloadBytes: 4096 }, metrics: false })
    const error = await caught(r.refresh())
    expect(error).toMatchObject({ code: 'CONFIG_TOO_LARGE' })
    expect(error.message).toContain('more than 4096 bytes received')
    for (let i = 0; i < 100 && !closed; i++) await new Promise((res) => setTimeout(res, 5))
    expect(closed).toBe(true)
  })

  it('backend JSON answer over maxResponseBytes: RESPONSE_TOO_LARGE', async () => {
    await ollama.setFault({ type: 'oversize', bytes: 256 * 1024 })
    const r = router({
      metrics: false,
      maxResponseBytes: 8192,
      env: envRecords([{ model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url }]),
    })
    const error = await caught(r.generate({ model: 'o', prompt: 'x' }))
    expect(error).toMatchObject({ code: 'ALL_BACKENDS_FAILED', attempts: [{ code: 'RESPONSE_TOO_LARGE' }] })
    expect((error.cause as Error).message).toContain('maxResponseBytes (8192)')
  })

  it('backend stream that never ends: cut at the cap, the caller is told how much arrived, socket closed', async () => {
    let closed = false
    let sent = 0
    const url = await serve((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      const timer = setInterval(() => {
        for (let i = 0; i < 20; i++) {
          sent++
          res.write(`${JSON.stringify({ model: 'o', response: 'token ', done: false })}\n`)
        }
      }, 1)
      res.on('close', () => {
        closed = true
        clearInterval(timer)
      })
    })
    const clock = new ManualClock(Date.now())
    const leaks = new LeakCheck([], clock)
    const r = router(
      {
        metrics: false,
        maxResponseBytes: 16 * 1024,
        env: envRecords([{ model_name: 'o', backend_type: 'ollama', endpoint_url: url }]),
      },
      clock,
    )
    const s = r.stream({ model: 'o', prompt: 'x' })
    let text = ''
    const t0 = performance.now()
    const error = await caught(async () => {
      for await (const c of s) text += c.text
    })
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(error).toMatchObject({ code: 'STREAM_INTERRUPTED' })
    expect((error.cause as { code: string }).code).toBe('RESPONSE_TOO_LARGE')
    expect(error.delivered).toBe(text.length)
    expect(text.length).toBeGreaterThan(0)
    expect(text.length).toBeLessThan(16 * 1024)
    // The rejected body is drained for a grace period, then the connection is cut.
    for (let i = 0; i < 400 && !closed; i++) await new Promise((res) => setTimeout(res, 5))
    expect(closed).toBe(true)
    const sentAtClose = sent
    await r.close()
    await leaks.expectClean()
    expect(sentAtClose).toBeGreaterThan(0)
  })
})

describe('close()', () => {
  const records = () => envRecords([{ model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url }])

  it('is idempotent', async () => {
    const r = router({ metrics: false, env: records() })
    await r.generate({ model: 'o', prompt: 'x' })
    const a = r.close()
    const b = r.close()
    expect(a).toBe(b)
    await Promise.all([a, b])
    expect(r.closed).toBe(true)
    await expect(r.close()).resolves.toBeUndefined()
  })

  it('calls after close fail fast with CLOSED and send nothing', async () => {
    const r = router({ metrics: false, env: records() })
    const metrics = collect(r, 'metric')
    await r.close()
    const t0 = performance.now()
    await expect(r.generate({ model: 'o', prompt: 'x' })).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(r.stream({ model: 'o', prompt: 'x' })[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: 'CLOSED',
    })
    await expect(r.refresh()).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(r.resolve('o')).rejects.toMatchObject({ code: 'CLOSED' })
    expect(performance.now() - t0).toBeLessThan(50)
    expect(ollama.requestCount).toBe(0)
    expect(metrics).toEqual([])
  })

  it('a stream created before close and first read after it fails with CLOSED', async () => {
    const r = router({ metrics: false, env: records() })
    const s = r.stream({ model: 'o', prompt: 'x' })
    await r.close()
    const error = await caught(async () => {
      for await (const _ of s) {
      }
    })
    expect(error).toMatchObject({ code: 'CLOSED' })
    expect(ollama.requestCount).toBe(0)
  })

  it('in-flight requests finish, and their metrics reach the admin before close() resolves', async () => {
    admin.setRecords([{ model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url }])
    await ollama.setFault({ type: 'slow', delayMs: 50, times: 1 })
    const clock = new ManualClock(Date.now())
    const leaks = new LeakCheck([ollama, admin], clock)
    const r = router({ adminUrl: admin.url, metrics: { flushIntervalMs: 60_000 } }, clock)
    await r.refresh()
    const slow = r.generate({ model: 'o', prompt: 'slow', metadata: { requestId: 'slow-1' } })
    const s = r.stream({ model: 'o', prompt: 'stream', metadata: { requestId: 'stream-1' } })
    const it = s[Symbol.asyncIterator]()
    const first = await it.next()
    expect(first.done).toBe(false)
    const closing = r.close()
    let rest = ''
    for (let n = await it.next(); !n.done; n = await it.next()) rest += n.value.text
    await closing
    await expect(slow).resolves.toMatchObject({ backend: 'ollama' })
    expect(rest.length).toBeGreaterThan(0)
    expect((await s.result).response).toBe(first.value!.text + rest)
    expect(admin.metrics.map((m) => m.request_id).sort()).toEqual(['slow-1', 'stream-1'])
    await leaks.expectClean()
  })

  it('an in-flight request to a server that never answers fails at its deadline; close() waits for it', async () => {
    await ollama.setFault('hang')
    const clock = new ManualClock(Date.now())
    const leaks = new LeakCheck([ollama], clock)
    const r = router({ metrics: false, env: records() }, clock)
    const pending = r.generate({ model: 'o', prompt: 'x', timeoutMs: 2000 })
    let settledYet = false
    const settled = caught(pending).finally(() => {
      settledYet = true
    })
    await until(() => ollama.requestCount === 1, 'the request at the hanging server')
    const t0 = performance.now()
    let closedYet = false
    const closing = r.close().then(() => {
      closedYet = true
    })
    // close() waits for the request (its 10 s grace is far off) until the 2 s deadline passes.
    await clock.untilTimer(2000)
    await new Promise((res) => setImmediate(res))
    expect([settledYet, closedYet]).toEqual([false, false])
    clock.advance(2000)
    await closing
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(await settled).toMatchObject({ code: 'TIMEOUT' })
    await leaks.expectClean()
  })

  it('an in-flight request that outlives closeTimeoutMs is stopped with CLOSED, its metric recorded', async () => {
    await ollama.setFault('hang')
    const clock = new ManualClock(Date.now())
    const leaks = new LeakCheck([ollama], clock)
    const r = router({ metrics: false, env: records(), closeTimeoutMs: 50 }, clock)
    const metrics = collect(r, 'metric')
    const s = r.stream({ model: 'o', prompt: 'x', timeoutMs: 3_600_000 })
    const settled = caught(async () => {
      for await (const _ of s) {
      }
    })
    const pending = caught(r.generate({ model: 'o', prompt: 'x', timeoutMs: 3_600_000 }))
    await until(() => ollama.requestCount === 2, 'both requests at the hanging server')
    const t0 = performance.now()
    // The 50 ms grace is real time (router.close() does not use the injected clock); the
    // hour-long deadlines are on the clock, which does not move.
    await r.close()
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(await pending).toMatchObject({ code: 'CLOSED' })
    expect(await settled).toMatchObject({ code: 'CLOSED' })
    expect(metrics.map((m) => m.error_code)).toEqual(['CLOSED', 'CLOSED'])
    await leaks.expectClean()
  })
})
