/**
 * A process that uses the HTTP sink must exit by itself: timers are unref'd and close() has a deadline.
 * And `await router.close()` must settle within that deadline whatever the metrics endpoint does, with
 * the process kept alive until then (ESM top-level await and CommonJS alike).
 * The package is not built during tests, so the child runs an esbuild bundle of the TypeScript source.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { bundleForChild, type ChildBundle } from './helpers/child-bundle.js'

let childBundle: ChildBundle | undefined
let bundle = ''

const entry = (sinkPath: string) => `
import { createHttpSink } from ${JSON.stringify(sinkPath)}
const n = Number(process.env.RECORDS)
const sink = createHttpSink({
  url: process.env.SINK_URL,
  batchSize: 100,
  closeTimeoutMs: Number(process.env.CLOSE_MS),
})
for (let i = 0; i < n; i++) {
  sink.write({
    timestamp: Date.now() / 1000, model: 'm', backend: 'ollama', endpoint: 'http://127.0.0.1:1', latency_seconds: 0.1,
    tokens: 1, tokens_per_second: 10, prompt_tokens: 1, request_id: 'r' + i, session_id: null, user_id: null,
    zone: null, intent: null, outcome: 'success', error_code: null, attempts: 1, fallback: false, streamed: false,
    time_to_first_token_seconds: null, load_seconds: null, config_origin: 'admin',
  })
}
if (process.env.CALL_CLOSE === '1') {
  const started = Date.now()
  await sink.close()
  process.stdout.write(JSON.stringify({ closeMs: Date.now() - started, stats: sink.stats() }))
}
`

/**
 * One request (it fails fast: its backend refuses), so the router holds one metric record, then
 * `await router.close()`. Prints how long close took, from the line after it. CommonJS has no top-level
 * await, so there the same code runs in an async main().
 */
const routerEntry = (format: 'esm' | 'cjs') => {
  const body = `
  const router = createLLMRouter({
    ...(process.env.ADMIN_URL ? { adminUrl: process.env.ADMIN_URL } : {}),
    env: { OLLAMA_HOST: 'http://127.0.0.1:9' },
    admin: { timeoutMs: 300 },
    metrics: {
      ...(process.env.SINK_URL ? { url: process.env.SINK_URL } : {}),
      closeTimeoutMs: Number(process.env.CLOSE_MS),
      timeoutMs: 5000,
    },
  })
  let dropped = 0
  router.on('metrics:dropped', (e) => { dropped = e.totalDropped })
  await router.generate({ model: 'm', prompt: 'x' }).catch(() => {})
  const started = Date.now()
  await router.close()
  process.stdout.write(JSON.stringify({ closeMs: Date.now() - started, dropped }))`
  const imp = `import { createLLMRouter } from ${JSON.stringify(resolve('src/index.ts'))}`
  return format === 'esm' ? `${imp}\n${body}\n` : `${imp}\nasync function main() {${body}\n}\nmain()\n`
}

const routerBundles: Partial<Record<'esm' | 'cjs', ChildBundle>> = {}

beforeAll(async () => {
  childBundle = await bundleForChild('metrics-exit-', entry(resolve('src/metrics/http-sink.ts')))
  bundle = childBundle.file
  routerBundles.esm = await bundleForChild('router-close-esm-', routerEntry('esm'), 'esm')
  routerBundles.cjs = await bundleForChild('router-close-cjs-', routerEntry('cjs'), 'cjs')
}, 30_000)

afterAll(async () => {
  await childBundle?.remove()
  await routerBundles.esm?.remove()
  await routerBundles.cjs?.remove()
})

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

/** Real metrics endpoint on 127.0.0.1: collects records, accepts and never answers (`hang`), or answers 500. */
async function metricsServer(behaviour: boolean | 'fail') {
  const hang = behaviour === true
  const records: unknown[] = []
  let requests = 0
  const server = createServer((req, res) => {
    requests++
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (hang) return
      if (behaviour === 'fail') {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"detail":"database is down"}')
        return
      }
      records.push(...(JSON.parse(Buffer.concat(chunks).toString()) as unknown[]))
      res.writeHead(204).end()
    })
  })
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/llm-backends/metrics`
  return { url, records, requests: () => requests }
}

/** Runs the bundle; resolves with how it ended, or kills it and reports it still running after `limitMs`. */
function runChild(env: Record<string, string>, limitMs = 8000, file = bundle) {
  return new Promise<{
    code: number | null
    signal: string | null
    ms: number
    stdout: string
    stderr: string
    killed: boolean
  }>((done) => {
    const started = performance.now()
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      child.kill('SIGKILL')
    }, limitMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      done({ code, signal, ms: performance.now() - started, stdout, stderr, killed })
    })
  })
}

it('a process that writes records and calls close() delivers them and exits by itself', async () => {
  const server = await metricsServer(false)
  const r = await runChild({ SINK_URL: server.url, RECORDS: '250', CLOSE_MS: '10000', CALL_CLOSE: '1' })
  expect(r.stderr).toBe('')
  expect(r.killed).toBe(false)
  expect(r.code).toBe(0)
  expect(server.records).toHaveLength(250)
  expect(server.requests()).toBeLessThanOrEqual(4)
  expect(JSON.parse(r.stdout)).toMatchObject({ stats: { sent: 250, dropped: 0, queued: 0 } })
})

it('with a metrics endpoint that never answers, close() gives up at its deadline and the process exits', async () => {
  const server = await metricsServer(true)
  const r = await runChild({ SINK_URL: server.url, RECORDS: '150', CLOSE_MS: '500', CALL_CLOSE: '1' })
  expect(r.killed).toBe(false)
  expect(r.code).toBe(0)
  expect(server.requests()).toBeGreaterThanOrEqual(1)
  const out = JSON.parse(r.stdout) as { closeMs: number; stats: { sent: number; dropped: number } }
  expect(out.stats).toMatchObject({ sent: 0, dropped: 150 })
  expect(out.closeMs).toBeGreaterThanOrEqual(450)
  expect(out.closeMs).toBeLessThan(3000)
})

it('pending records and the flush timer do not keep a process alive that never calls close()', async () => {
  const server = await metricsServer(false)
  // 5 records wait for the 5 s interval timer, which is unref'd: the process must not wait for it.
  const r = await runChild({ SINK_URL: server.url, RECORDS: '5', CLOSE_MS: '10000', CALL_CLOSE: '0' }, 4000)
  expect(r.killed).toBe(false)
  expect(r.code).toBe(0)
  expect(r.ms).toBeLessThan(4000)
  expect(server.requests()).toBe(0)
})

/**
 * A listener whose TCP connects never complete: its process blocks its event loop (so it never
 * accepts), and the accept queue is filled first, so the kernel drops every further SYN.
 */
async function blackhole(): Promise<{ url: string; stop(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer()
s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(String(s.address().port) + '\\n')
  setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0), 50)
})`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const port = await new Promise<number>((r) =>
    child.stdout?.once('data', (d: Buffer) => r(Number(String(d).trim()))),
  )
  await new Promise((r) => setTimeout(r, 150))
  const fillers: Socket[] = []
  let connected = 0
  for (let i = 0; i < 4; i++) {
    const c = connect(port, '127.0.0.1')
    c.on('error', () => {})
    c.on('connect', () => connected++)
    fillers.push(c)
  }
  await new Promise((r) => setTimeout(r, 300))
  // backlog 1: the kernel queues about two, the rest wait for a SYN-ACK that never comes.
  expect(connected).toBeLessThan(4)
  return {
    url: `http://127.0.0.1:${port}/api/llm-backends/metrics`,
    stop() {
      for (const f of fillers) f.destroy()
      child.kill('SIGKILL')
    },
  }
}

describe('await router.close() settles within the sink deadline whatever the metrics endpoint does', () => {
  const CLOSE_MS = 700
  const endpoints: [string, () => Promise<{ env: Record<string, string>; stop?: () => void }>][] = [
    // The case: only adminUrl, and nothing listens there.
    [
      'refuses connections (adminUrl http://127.0.0.1:9)',
      async () => ({ env: { ADMIN_URL: 'http://127.0.0.1:9' } }),
    ],
    ['accepts and never answers', async () => ({ env: { SINK_URL: (await metricsServer(true)).url } })],
    ['answers 500', async () => ({ env: { SINK_URL: (await metricsServer('fail')).url } })],
    [
      'never completes the TCP connect',
      async () => {
        const b = await blackhole()
        return { env: { SINK_URL: b.url }, stop: () => b.stop() }
      },
    ],
  ]
  for (const format of ['esm', 'cjs'] as const) {
    for (const [name, setup] of endpoints) {
      it(`${format}: ${name}`, async () => {
        const { env, stop } = await setup()
        try {
          const file = routerBundles[format]?.file ?? ''
          const r = await runChild({ ...env, CLOSE_MS: String(CLOSE_MS) }, 15_000, file)
          expect(r.stderr).toBe('')
          expect(r.killed).toBe(false)
          // Exit code 13 would be ESM's "unsettled top-level await"; no stdout, that the line after close() never ran.
          expect(r.code).toBe(0)
          const out = JSON.parse(r.stdout) as { closeMs: number; dropped: number }
          expect(out.closeMs).toBeLessThan(CLOSE_MS + 1500)
          // ... and nothing of the router's (a socket still connecting) holds the process afterwards.
          expect(r.ms).toBeLessThan(6000)
          // The one record could not be delivered: it is counted, not silently lost.
          expect(out.dropped).toBe(1)
        } finally {
          stop?.()
        }
      }, 20_000)
    }
  }
})
