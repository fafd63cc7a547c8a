/**
 * A pending request keeps its process alive, like a pending fetch would: the router's own timers are
 * unref'd (background work must never hold a process), so the request's deadline and backoff timers
 * are explicitly ref'd. Without that, a script awaiting a request that is waiting out a retry backoff
 * exits early with "unsettled top-level await" (exit code 13).
 */
import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { bundleForChild, type ChildBundle } from './helpers/child-bundle.js'

let childBundle: ChildBundle | undefined
let bundle = ''
let server: Server
let hits = 0

beforeAll(async () => {
  childBundle = await bundleForChild(
    'router-lifetime-',
    `import { createLLMRouter } from ${JSON.stringify(resolve('src/index.ts'))}
const router = createLLMRouter({
  env: { LLM_ROUTER_BACKENDS: JSON.stringify([{ model_name: 'm', backend_type: 'ollama', endpoint_url: process.env.URL }]) },
  metrics: false,
  retry: { baseDelayMs: 300 },
})
const r = await router.generate({ model: 'm', prompt: 'x' })
process.stdout.write(JSON.stringify({ response: r.response, attempts: r.attempts.length }))
await router.close()
`,
  )
  bundle = childBundle.file
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      hits++
      if (hits === 1) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"server busy"}')
        return
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ model: 'm', response: 'after backoff', done: true, eval_count: 2 }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
}, 30_000)

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((r) => server?.close(r))
  await childBundle?.remove()
})

it('a script awaiting a request in retry backoff waits for it instead of exiting', async () => {
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const child = spawn(process.execPath, [bundle], {
    env: { ...process.env, URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    err += d
  })
  const code = await new Promise<number | null>((r) => child.on('close', r))
  expect(code, err).toBe(0)
  expect(JSON.parse(out)).toEqual({ response: 'after backoff', attempts: 2 })
  expect(hits).toBe(2)
})
