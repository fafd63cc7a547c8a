/**
 * The stateless admin HTTP client (src/http/client.ts) and the config source on top of it, against
 * real node:http servers on 127.0.0.1 and an undici Agent whose TCP connect never completes.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AdminOptions } from '../src/config/contract.js'
import { createConfigSource } from '../src/config/source.js'
import { isRouterError } from '../src/errors.js'
import { createAdminAgent } from '../src/http/agent.js'
import { getJson, postJson } from '../src/http/client.js'
import { parseRetryAfter } from '../src/http/retry-after.js'
import { joinUrl, redactUrl } from '../src/http/url.js'
import { createHttpSink } from '../src/metrics/http-sink.js'
import { makeMetricRecord } from '../src/testing/core/metrics.js'
import { ManualClock } from './helpers/manual-clock.js'

let server: Server
let base: string
const posted: { body: string; type: string | undefined }[] = []
/** Client port of each request to /reuse: fewer ports than requests means kept-alive sockets were reused. */
const reusePorts: number[] = []
const agent = new Agent()

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const url = req.url ?? '/'
      if (url === '/etag') {
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"' }).end()
          return
        }
        res.writeHead(200, { 'content-type': 'application/json', etag: '"v1"' }).end('[1,2]')
      } else if (url === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write(`[${'1,'.repeat(600)}`)
        res.end('1]')
      } else if (url === '/busy') {
        res
          .writeHead(503, { 'retry-after': '7', 'content-type': 'application/json' })
          .end('{"detail":"busy"}')
      } else if (url.startsWith('/reuse')) {
        reusePorts.push(req.socket.remotePort ?? -1)
        // 204, a stored-record echo, and a FastAPI 422: each answer must leave the socket reusable.
        if (url === '/reuse/422') {
          res
            .writeHead(422, { 'content-type': 'application/json' })
            .end('{"detail":[{"msg":"value is not a valid dict"}]}')
        } else if (url === '/reuse/201') {
          // The body ends a little later: a client that returned before reading it to the end
          // would find this socket still busy and open another for its next request.
          res.writeHead(201, { 'content-type': 'application/json' }).write(Buffer.concat(chunks))
          setTimeout(() => res.end(), 10)
        } else res.writeHead(204).end()
      } else if (url === '/post') {
        posted.push({ body: Buffer.concat(chunks).toString(), type: req.headers['content-type'] })
        res
          .writeHead(422, { 'content-type': 'application/json' })
          .end('{"detail":[{"msg":"value is not a valid dict"}]}')
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('\ufeff{"ok":true}')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await agent.close()
  await new Promise((r) => server.close(r))
})

const common = () => ({ dispatcher: agent, clock: new ManualClock(), timeoutMs: 5_000, maxBodyBytes: 1_000 })

/** An Agent whose connect never calls back: a SYN that is never answered. */
function hangingAgent(): Agent {
  return new Agent({ connect: () => undefined as never })
}

describe('getJson / postJson', () => {
  it('parses JSON (BOM ignored), revalidates with If-None-Match, reads Retry-After', async () => {
    expect(await getJson({ ...common(), url: `${base}/plain` })).toMatchObject({
      kind: 'json',
      value: { ok: true },
    })
    const first = await getJson({ ...common(), url: `${base}/etag` })
    expect(first).toMatchObject({ kind: 'json', value: [1, 2], etag: '"v1"' })
    expect(await getJson({ ...common(), url: `${base}/etag`, etag: '"v1"' })).toMatchObject({
      kind: 'not-modified',
    })
    expect(await getJson({ ...common(), url: `${base}/busy` })).toMatchObject({
      kind: 'status',
      status: 503,
      retryAfterMs: 7_000,
      text: '{"detail":"busy"}',
    })
  })

  it('caps the body while it streams', async () => {
    const outcome = await getJson({ ...common(), url: `${base}/big` })
    expect(outcome).toMatchObject({ kind: 'too-large', detail: 'more than 1000 bytes received' })
  })

  it('postJson sends JSON and returns the error body for the caller', async () => {
    const outcome = await postJson({ ...common(), url: `${base}/post`, body: '{"a":1}' })
    expect(outcome).toMatchObject({
      kind: 'status',
      status: 422,
      text: expect.stringContaining('valid dict'),
    })
    expect(posted.at(-1)).toEqual({ body: '{"a":1}', type: 'application/json' })
  })

  it('a timeout settles at once even while the TCP connect hangs', async () => {
    const dispatcher = hangingAgent()
    const clock = new ManualClock()
    let settled = false
    const pending = getJson({
      dispatcher,
      clock,
      timeoutMs: 2_000,
      maxBodyBytes: 100,
      url: 'http://127.0.0.1:9/x',
    })
    void pending.then(() => {
      settled = true
    })
    await new Promise((r) => setTimeout(r, 20))
    expect(settled).toBe(false)
    clock.advance(2_000)
    expect(await pending).toEqual({ kind: 'timeout', timeoutMs: 2_000 })
    await dispatcher.destroy()
  })

  it('an abort signal settles at once even while the TCP connect hangs', async () => {
    const dispatcher = hangingAgent()
    const controller = new AbortController()
    const pending = getJson({
      ...common(),
      dispatcher,
      url: 'http://127.0.0.1:9/x',
      signal: controller.signal,
    })
    await new Promise((r) => setTimeout(r, 20))
    controller.abort('closed')
    expect(await pending).toEqual({ kind: 'aborted', reason: 'closed' })
    await dispatcher.destroy()
  })
})

describe('connection reuse (the metrics sink POSTs through this client)', () => {
  it('postJson on the admin agent reuses one keep-alive socket across 2xx and error answers', async () => {
    reusePorts.length = 0
    const own = createAdminAgent(5_000)
    const call = (path: string) =>
      postJson({ ...common(), dispatcher: own.dispatcher, url: `${base}${path}`, body: '{"a":1}' })
    for (let i = 0; i < 2; i++) {
      expect(await call('/reuse/204')).toMatchObject({ kind: 'not-json', status: 204 })
      expect(await call('/reuse/201')).toMatchObject({ kind: 'json', status: 201, value: { a: 1 } })
      expect(await call('/reuse/422')).toMatchObject({ kind: 'status', status: 422 })
    }
    expect(reusePorts).toHaveLength(6)
    // undici may open a second socket while the first is being released; never one per request.
    expect(new Set(reusePorts).size).toBeLessThanOrEqual(2)
    await own.destroy()
  })

  it('the HTTP sink on its own pool reuses its sockets while it reads the answers it ignores', async () => {
    reusePorts.length = 0
    const sink = createHttpSink({ url: `${base}/reuse/201`, mode: 'single', batchSize: 6, concurrency: 1 })
    for (let i = 0; i < 6; i++) sink.write(makeMetricRecord({ request_id: `r${i}` }))
    await sink.close()
    expect(sink.stats()).toMatchObject({ sent: 6, posts: 6, dropped: 0, failedPosts: 0 })
    expect(reusePorts).toHaveLength(6)
    expect(new Set(reusePorts).size).toBeLessThanOrEqual(2)
  })
})

describe('the config source on a hanging connect', () => {
  const admin: AdminOptions = {
    url: 'http://127.0.0.1:9',
    listPath: '/api/llm-backends/public',
    modelPath: '/api/llm-backends/model/{model}',
    lookup: 'list',
    headers: {},
    timeoutMs: 2_000,
    maxPayloadBytes: 1024,
    mapPayload: undefined,
    retryBaseMs: 1_000,
    retryMaxMs: 10_000,
  }

  it('admin.timeoutMs ends the fetch (CONFIG_FETCH_FAILED) and close() ends a cold lookup with env records', async () => {
    const dispatcher = hangingAgent()
    const clock = new ManualClock()
    const source = createConfigSource({ admin, ttlMs: 60_000, env: {}, clock, dispatcher, emit: () => {} })
    const refresh = source.refresh().catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 20))
    clock.advance(2_000)
    const error = await refresh
    expect(isRouterError(error) && error.code).toBe('CONFIG_FETCH_FAILED')
    expect((error as Error).message).toContain('did not answer within 2000 ms')

    // A second source: close() while the first load is stuck in connect.
    const other = createConfigSource({ admin, ttlMs: 60_000, env: {}, clock, dispatcher, emit: () => {} })
    const cold = other.get()
    await new Promise((r) => setTimeout(r, 20))
    other.close()
    expect((await cold).origin).toBe('default')
    source.close()
    await dispatcher.destroy()
  })
})

describe('URL helpers and Retry-After', () => {
  it('joinUrl keeps the base query after the path; redactUrl drops credentials and query', () => {
    expect(joinUrl('http://a.test/x/?t=1', '/p')).toBe('http://a.test/x/p?t=1')
    expect(joinUrl('http://a.test', 'p')).toBe('http://a.test/p')
    expect(redactUrl('http://u:pw@a.test:81/x?token=s')).toBe('http://a.test:81/x')
    expect(redactUrl('not a url with secret')).not.toContain('secret')
  })

  it('parseRetryAfter reads seconds and HTTP-dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(parseRetryAfter('3', now)).toBe(3_000)
    expect(parseRetryAfter(['1.5'], now)).toBe(1_500)
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000)
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:10 GMT', now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
  })
})
