/**
 * A process that uses the HTTP sink must exit by itself: timers are unref'd and close() has a deadline.
 * The package is not built during tests, so the child runs an esbuild bundle of the TypeScript source.
 */
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
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

beforeAll(async () => {
  childBundle = await bundleForChild('metrics-exit-', entry(resolve('src/metrics/http-sink.ts')))
  bundle = childBundle.file
})

afterAll(async () => {
  await childBundle?.remove()
})

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    await new Promise((r) => s.close(r))
  }
})

/** Real metrics endpoint on 127.0.0.1: collects records, or accepts and never answers when `hang`. */
async function metricsServer(hang: boolean) {
  const records: unknown[] = []
  let requests = 0
  const server = createServer((req, res) => {
    requests++
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (hang) return
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
function runChild(env: Record<string, string>, limitMs = 8000) {
  return new Promise<{
    code: number | null
    signal: string | null
    ms: number
    stdout: string
    stderr: string
    killed: boolean
  }>((done) => {
    const started = performance.now()
    const child = spawn(process.execPath, [bundle], {
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
