/**
 * Two processes share one rpm limit through Redis: each runs its own router (as two instances of a
 * service would), both send 10 requests at once to an endpoint whose record says `rpm: 8`, and the
 * endpoint gets 8 in total, not 8 per process. The rest fail at once with RATE_LIMITED and
 * `retryAfterMs` (this example sets `limits.maxWaitMs: 0`; by default they would wait for the window).
 *
 * Needs Redis and the `redis` package (npm install redis):
 *   LLM_ROUTER_REDIS_URL=redis://127.0.0.1:6379 node examples/fleet-limits.ts
 * OLLAMA_URL=http://10.0.0.5:11434 MODEL=llama3.2 points it at a real server; without it, it starts a
 * testing-kit Ollama stand-in on 127.0.0.1.
 */
import { spawn } from 'node:child_process'
import { createLLMRouter, isRouterError } from 'llm-backend-router'
import { startOllamaServer } from 'llm-backend-router/testing'

const redisUrl = process.env.LLM_ROUTER_REDIS_URL
if (redisUrl === undefined) {
  console.error('Set LLM_ROUTER_REDIS_URL (e.g. redis://127.0.0.1:6379): the limit is shared through Redis.')
  process.exit(1)
}
const model = process.env.MODEL ?? 'llama3.2'

if (process.argv[2] === 'worker') {
  // One instance: its own router, the shared Redis from LLM_ROUTER_REDIS_URL (read from the environment).
  const records = [
    { model_name: model, backend_type: 'ollama', endpoint_url: process.env.OLLAMA_URL, rpm: 8 },
  ]
  const router = createLLMRouter({
    env: { ...process.env, LLM_ROUTER_BACKENDS: JSON.stringify(records) },
    // A generous store budget (default 100 ms): on a loaded machine a slower answer would send this
    // instance to local state, where it enforces the whole rpm on its own (README: when Redis is slow).
    redis: { url: redisUrl, prefix: process.env.FLEET_PREFIX, timeoutMs: 1000 },
    limits: { maxWaitMs: 0 },
    metrics: false,
  })
  const outcomes = await Promise.all(
    Array.from({ length: 10 }, () =>
      router.generate({ model, prompt: 'Say hi' }).then(
        () => 'answered',
        (e: unknown) =>
          isRouterError(e) && e.code === 'RATE_LIMITED'
            ? `RATE_LIMITED (retry after ${Math.round((e.retryAfterMs ?? 0) / 1000)} s)`
            : `failed: ${String(e)}`,
      ),
    ),
  )
  await router.close()
  process.stdout.write(`${JSON.stringify(outcomes)}\n`)
  process.exit(0)
}

let ollamaUrl = process.env.OLLAMA_URL
const standIn = ollamaUrl === undefined ? await startOllamaServer({ respond: 'Hi!' }) : null
ollamaUrl ??= standIn?.url

// A key prefix of this run, so runs never share a window.
const env = { ...process.env, OLLAMA_URL: ollamaUrl, FLEET_PREFIX: `fleet-example-${process.pid}:` }
const runWorker = () =>
  new Promise<string[]>((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1] as string, 'worker'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d
    })
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out.trim()) as string[]) : reject(new Error(`worker exited ${code}`)),
    )
  })

const [a, b] = await Promise.all([runWorker(), runWorker()])
const answered = [...(a as string[]), ...(b as string[])].filter((o) => o === 'answered').length
for (const [name, outcomes] of [
  ['instance A', a],
  ['instance B', b],
] as const) {
  const counts = new Map<string, number>()
  for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1)
  console.log(`${name}: ${[...counts].map(([o, n]) => `${n} ${o}`).join(', ')}`)
}
console.log(`fleet: ${answered} of 20 answered (rpm 8 shared through Redis)`)
await standIn?.stop()
