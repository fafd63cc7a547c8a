// One bench client process: runs one job and prints its result as one JSON line on stdout.
// The orchestrator (scripts/bench.mjs) starts a fresh process per job, pinned to its own core, so
// `process.cpuUsage()` and peak RSS are this job's alone.
//
// Jobs: `load` (one scenario at concurrency 1 and 64), `failover`, `burst`, `cache`.
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import {
  adminRecords,
  CHAT_MESSAGES,
  COMPLETION_TOKENS,
  MLX_MODEL,
  OLLAMA_MODEL,
  ollamaChatStreamLines,
  ollamaStreamLines,
  openaiChatSseEvents,
  openaiSseEvents,
  PROMPT,
  TEXT,
} from './lib/canned.mjs'
import { EMBED_INPUTS, EMBEDDINGS } from './lib/canned-embed.mjs'

const job = JSON.parse(process.argv[2])
const { ports } = job
const admin = `http://127.0.0.1:${ports.admin}`
const adminSingle = `http://127.0.0.1:${ports.adminSingle}`
const ollamaUrl = `http://127.0.0.1:${ports.ollama}/api/generate`
const openaiUrl = `http://127.0.0.1:${ports.openai}/v1/completions`
const OLLAMA_STREAM_LENGTH = ollamaStreamLines().join('').length
const SSE_STREAM_LENGTH = openaiSseEvents().join('').length
const ollamaChatUrl = `http://127.0.0.1:${ports.ollama}/api/chat`
const openaiChatUrl = `http://127.0.0.1:${ports.openai}/v1/chat/completions`
const OLLAMA_CHAT_STREAM_LENGTH = ollamaChatStreamLines().join('').length
const SSE_CHAT_STREAM_LENGTH = openaiChatSseEvents().join('').length
const JSON_HEADERS = { 'content-type': 'application/json' }

// Bench controls go through their own connection, never the measured pool.
async function control(path, method = 'GET') {
  const res = await request(`${admin}${path}`, { method, dispatcher: controlAgent })
  return res.body.json()
}
let controlAgent

async function loadRouter() {
  const mod = await import(job.dist)
  return mod
}

class WrongResponse extends Error {}
const wrong = (what) => {
  throw new WrongResponse(what)
}

// --- scenarios ------------------------------------------------------------------------------

/**
 * The body a hand-written client sends for the same request the router builds from the record:
 * `input` is `{ prompt }` (generation) or `{ messages }` (chat, issue 12).
 */
const rawOllamaBody = (stream, input = { prompt: PROMPT }) =>
  JSON.stringify({
    model: OLLAMA_MODEL,
    ...input,
    stream,
    options: { num_predict: 256, temperature: 0.7 },
  })
const rawOpenaiBody = (stream, input = { prompt: PROMPT }) =>
  JSON.stringify({
    model: MLX_MODEL,
    ...input,
    max_tokens: 256,
    temperature: 0.7,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  })

/**
 * Chat scenarios (issue 12): `raw-<backend>-chat[-stream]` (undici.request with the same body) and
 * `router-<backend>-chat[-stream]` (router.chat / router.streamChat), the whole answer in one write.
 */
async function makeChatScenario(name) {
  const isOllama = name.includes('-ollama')
  const stream = name.endsWith('-stream')
  if (name.startsWith('raw-')) {
    const url = isOllama ? ollamaChatUrl : openaiChatUrl
    const body = (isOllama ? rawOllamaBody : rawOpenaiBody)(stream, { messages: CHAT_MESSAGES })
    if (!stream) {
      const textOf = isOllama ? (j) => j.message.content : (j) => j.choices[0].message.content
      return {
        op: async () => {
          const res = await request(url, { method: 'POST', headers: JSON_HEADERS, body })
          const json = await res.body.json()
          if (res.statusCode !== 200 || textOf(json) !== TEXT) wrong(`${name}: ${res.statusCode}`)
        },
      }
    }
    const length = isOllama ? OLLAMA_CHAT_STREAM_LENGTH : SSE_CHAT_STREAM_LENGTH
    return {
      op: async () => {
        const res = await request(url, { method: 'POST', headers: JSON_HEADERS, body })
        const text = await res.body.text()
        if (res.statusCode !== 200 || text.length !== length) wrong(`${name}: ${res.statusCode}`)
      },
    }
  }
  const { createLLMRouter } = await loadRouter()
  const router = createLLMRouter({ adminUrl: admin, env: {}, connectionsPerEndpoint: null })
  const backend = isOllama ? 'ollama' : 'mlx'
  const req = { model: `bench-${backend}`, messages: CHAT_MESSAGES }
  const check = (result) => {
    if (result.backend !== backend || result.usage.completionTokens !== COMPLETION_TOKENS)
      wrong(`${name}: bad result`)
  }
  if (!stream) {
    return {
      router,
      op: async () => {
        const result = await router.chat(req)
        if (result.message.content !== TEXT) wrong(`${name}: text differs`)
        check(result)
      },
    }
  }
  return {
    router,
    op: async () => {
      let text = ''
      const s = router.streamChat(req)
      for await (const chunk of s) text += chunk.text
      if (text !== TEXT) wrong(`${name}: streamed text differs`)
      check(await s.result)
    },
  }
}

/** The embeddings body the router builds from a bench record: the record's model, `input` always a list. */
const rawEmbedBody = (model) => JSON.stringify({ model, input: EMBED_INPUTS })

/**
 * Embeddings scenarios (issue 12): `raw-<backend>-embed` (undici.request with the same body, vectors read
 * out in input order) and `router-<backend>-embed` (router.embed), 8 inputs of 384 dimensions per call.
 */
async function makeEmbedScenario(name) {
  const isOllama = name.includes('-ollama')
  const last = EMBED_INPUTS.length - 1
  if (name.startsWith('raw-')) {
    const url = `http://127.0.0.1:${isOllama ? ports.ollama : ports.openai}${isOllama ? '/api/embed' : '/v1/embeddings'}`
    const body = rawEmbedBody(isOllama ? OLLAMA_MODEL : MLX_MODEL)
    const vectors = isOllama
      ? (j) => j.embeddings
      : (j) => {
          const out = new Array(j.data.length)
          for (const d of j.data) out[d.index] = d.embedding
          return out
        }
    return {
      op: async () => {
        const res = await request(url, { method: 'POST', headers: JSON_HEADERS, body })
        const v = vectors(await res.body.json())
        if (res.statusCode !== 200 || v.length !== EMBED_INPUTS.length || v[last][0] !== EMBEDDINGS[last][0])
          wrong(`${name}: ${res.statusCode}`)
      },
    }
  }
  const { createLLMRouter } = await loadRouter()
  const router = createLLMRouter({ adminUrl: admin, env: {}, connectionsPerEndpoint: null })
  const backend = isOllama ? 'ollama' : 'mlx'
  return {
    router,
    op: async () => {
      const r = await router.embed({ model: `bench-${backend}`, input: EMBED_INPUTS })
      if (
        r.backend !== backend ||
        r.embeddings.length !== EMBED_INPUTS.length ||
        r.embeddings[last][0] !== EMBEDDINGS[last][0]
      )
        wrong(`${name}: bad result`)
    },
  }
}

/**
 * Scenario names: `raw-<backend>[-stream|-tokens]` and
 * `router-<backend>[-stream|-tokens][-nometrics][-request][-noframes][-nolimits]`, plus
 * `router-ollama-pool[-sessions]` (a pool of 4 Ollama records; sessions: 100 of them, round robin).
 * `-stream` answers come in one write, `-tokens` answers one write per token (see backend-server.mjs).
 *
 * `service-<backend>[-stream|-tokens][-single][-nometrics]` run the router as a service runs it: every option at
 * its default (config from the admin's list, the default HTTP metrics sink posting to that admin in `auto` mode)
 * except `connectionsPerEndpoint: null`, the same unbounded pool as the raw baseline. The plain admin takes
 * arrays (the sink learns batching); `-single` uses seed 004's admin, which takes one record per POST and answers
 * an array with 422 (the sink learns single mode and POSTs one record per request).
 */
async function makeScenario(name) {
  if (name.includes('-chat')) return makeChatScenario(name)
  if (name.includes('-embed')) return makeEmbedScenario(name)
  const isOllama = name.includes('-ollama')
  const flavour = name.includes('-tokens') ? 'tokens' : name.includes('-stream') ? 'stream' : 'json'
  if (name.startsWith('raw-')) {
    const url = isOllama ? ollamaUrl : openaiUrl
    const target = flavour === 'tokens' ? url.replace(/(:\d+)\//, '$1/tokens/') : url
    if (flavour === 'json') {
      const body = isOllama ? rawOllamaBody : rawOpenaiBody
      const textOf = isOllama ? (j) => j.response : (j) => j.choices[0].text
      return {
        op: async () => {
          const res = await request(target, { method: 'POST', headers: JSON_HEADERS, body: body(false) })
          const json = await res.body.json()
          if (res.statusCode !== 200 || textOf(json) !== TEXT) wrong(`${name}: ${res.statusCode}`)
        },
      }
    }
    const body = isOllama ? rawOllamaBody : rawOpenaiBody
    const length = isOllama ? OLLAMA_STREAM_LENGTH : SSE_STREAM_LENGTH
    return {
      op: async () => {
        const res = await request(target, { method: 'POST', headers: JSON_HEADERS, body: body(true) })
        const text = await res.body.text()
        if (res.statusCode !== 200 || text.length !== length) wrong(`${name}: ${res.statusCode}`)
      },
    }
  }
  const { createLLMRouter } = await loadRouter()
  const metricsOff = name.includes('-nometrics')
  // The store on a request's path (issue 14): the bench-ollama record with limits high enough never to
  // refuse, so every request does one admission (and one settlement beside it), in memory or in Redis.
  if (name.includes('-limits') || name.includes('-redis')) {
    const record = adminRecords(ports).find((r) => r.model_name === 'bench-ollama')
    let storeFallbacks = 0
    const router = createLLMRouter({
      env: { LLM_ROUTER_BACKENDS: JSON.stringify([{ ...record, rpm: 1e9, tpm: 1e12 }]) },
      connectionsPerEndpoint: null,
      metrics: false,
      ...(name.includes('-redis')
        ? { redis: { url: `redis://127.0.0.1:${ports.redis}`, prefix: `bench-${process.pid}:` } }
        : {}),
    })
    router.on('store:fallback', () => storeFallbacks++)
    return { router, storeFallbacks: () => storeFallbacks, ...routerOps(name, router, isOllama, flavour) }
  }
  if (name.startsWith('service-')) {
    const router = createLLMRouter({
      adminUrl: name.includes('-single') ? adminSingle : admin,
      env: {},
      connectionsPerEndpoint: null,
      ...(metricsOff ? { metrics: false } : {}),
    })
    return { router, ...routerOps(name, router, isOllama, flavour) }
  }
  // Speed-path switches (RouterInternals), so `--only` can compare each path with the plain one:
  // `-request` sends over plain undici.request() instead of the dispatch-handler transport,
  // `-noframes` parses every stream frame with JSON.parse (no learned frame shape).
  const internals = {
    ...(name.includes('-request') ? { transport: 'request' } : {}),
    ...(name.includes('-noframes') ? { fastFrames: false } : {}),
  }
  // Unlimited sockets, like the raw undici.request() baseline (the router's default is 4 per endpoint).
  const router = createLLMRouter(
    {
      adminUrl: admin,
      env: {},
      connectionsPerEndpoint: null,
      ...(metricsOff ? { metrics: false } : {}),
      // `-nolimits`: no first-token / idle timers, to see what the stream limits cost.
      ...(name.includes('-nolimits') ? { firstTokenTimeoutMs: null, idleTimeoutMs: null } : {}),
    },
    internals,
  )
  return { router, ...routerOps(name, router, isOllama, flavour) }
}

/** The checked operation of a router scenario: one generate() or one stream read to the end. */
function routerOps(name, router, isOllama, flavour) {
  const backend = isOllama ? 'ollama' : 'mlx'
  const request_ = { model: `bench-${backend}${flavour === 'tokens' ? '-tokens' : ''}`, prompt: PROMPT }
  // `-pool`: the model is a pool of 4 Ollama records; `-sessions`: each request carries one of 100 sessions.
  if (name.includes('-pool')) request_.model = 'bench-pool'
  if (name.includes('-sessions')) {
    let n = 0
    const sessions = Array.from({ length: 100 }, (_, i) => ({ sessionId: `bench-session-${i}` }))
    return {
      op: async () => {
        const result = await router.generate({ ...request_, metadata: sessions[n++ % 100] })
        if (result.response !== TEXT || result.attempts[0]?.selectedBy === undefined)
          wrong(`${name}: bad result`)
      },
    }
  }
  if (flavour !== 'json') {
    return {
      op: async () => {
        let text = ''
        const stream = router.stream(request_)
        for await (const chunk of stream) text += chunk.text
        if (text !== TEXT) wrong(`${name}: streamed text differs`)
        const result = await stream.result
        if (result.backend !== backend || result.usage.completionTokens !== COMPLETION_TOKENS)
          wrong(`${name}: bad result`)
      },
    }
  }
  return {
    op: async () => {
      const result = await router.generate(request_)
      if (
        result.response !== TEXT ||
        result.backend !== backend ||
        result.usage.completionTokens !== COMPLETION_TOKENS
      )
        wrong(`${name}: bad result`)
    },
  }
}

// --- driver ---------------------------------------------------------------------------------

function percentile(sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
}

/** Runs `n` operations with `c` in flight; CPU and wall time cover exactly these operations. */
async function drive(op, n, c) {
  const lat = new Float64Array(n)
  let next = 0
  let errors = 0
  let firstError = null
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= n) return
      const t = performance.now()
      try {
        await op()
      } catch (error) {
        errors++
        firstError ??= error
      }
      lat[i] = performance.now() - t
    }
  }
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(c, n) }, worker))
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  lat.sort()
  return {
    n,
    concurrency: c,
    cpuUsPerOp: (cpu.user + cpu.system) / n,
    opsPerSec: (n * 1000) / wallMs,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    wallMs,
    errors,
    firstError: firstError === null ? null : String(firstError?.stack ?? firstError),
  }
}

async function windowWithServer(op, n, c) {
  const before = await control('/_bench/stats')
  const result = await drive(op, n, c)
  const after = await control('/_bench/stats')
  // Share of one core the stand-in server used during the window: near 100 % would mean it was the bottleneck.
  result.serverCpuShare = (after.cpuUs - before.cpuUs) / 1000 / result.wallMs
  return result
}

async function runLoad() {
  await control('/_bench/reset', 'POST')
  const s = await makeScenario(job.scenario)
  await drive(s.op, job.warmup, 1)
  const c1 = await windowWithServer(s.op, job.n1, 1)
  // Concurrency 16 (the service family): after c=1, before the c=64 warmup.
  const c16 = job.n16 ? await windowWithServer(s.op, job.n16, 16) : null
  await drive(s.op, job.warmup, 64)
  const c64 = await windowWithServer(s.op, job.n64, 64)
  let metricsRecords = null
  let metricsPosts = null
  if (s.router) {
    await s.router.close()
    const stats = await control('/_bench/stats')
    const single = job.scenario.includes('-single')
    metricsRecords = single ? stats.singleRecords : stats.metricsRecords
    metricsPosts = single ? stats.singlePosts + stats.singleArraysRejected : stats.metricsPosts
  }
  const total = job.warmup * 2 + job.n1 + (job.n16 ?? 0) + job.n64
  return {
    c1,
    ...(c16 ? { c16 } : {}),
    c64,
    metricsPosts,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    totalOps: total,
    metricsRecords,
    errors: c1.errors + (c16?.errors ?? 0) + c64.errors,
    ...(s.storeFallbacks ? { storeFallbacks: s.storeFallbacks() } : {}),
    firstError: c1.firstError ?? c16?.firstError ?? c64.firstError,
  }
}

// --- failover -------------------------------------------------------------------------------

function median(values) {
  const s = [...values].sort((a, b) => a - b)
  return s.length === 0 ? null : s[Math.floor((s.length - 1) / 2)]
}

/** Alternates direct and failover requests at concurrency 1, so drift hits both equally. */
async function pairs(router, model, n, check) {
  const direct = []
  const other = []
  let errors = 0
  let firstError = null
  for (let i = 0; i < n; i++) {
    for (const [m, into] of [
      ['bench-ollama', direct],
      [model, other],
    ]) {
      const t = performance.now()
      try {
        const r = await router.generate({ model: m, prompt: PROMPT })
        if (r.response !== TEXT || r.backend !== 'ollama') wrong(`${m}: bad result`)
        if (m === model) check(r)
      } catch (error) {
        errors++
        firstError ??= error
      }
      into.push(performance.now() - t)
    }
  }
  const d = median(direct)
  const o = median(other)
  return {
    directP50Ms: d,
    failoverP50Ms: o,
    addedMs: o - d,
    errors,
    firstError: firstError === null ? null : String(firstError?.stack ?? firstError),
  }
}

async function runFailover() {
  const { createLLMRouter } = await loadRouter()
  // Refused MLX port: without a circuit breaker every request pays the refused connect, which is what
  // "failover cost" means; with it, the circuit would open after three requests and hide it.
  const plain = createLLMRouter({ adminUrl: admin, env: {}, circuitBreaker: false })
  const refusedCheck = (r) => {
    if (r.attempts.length !== 2 || r.attempts[0].code !== 'BACKEND_UNREACHABLE')
      wrong('refused: expected 2 attempts')
  }
  await pairs(plain, 'bench-auto-refused', job.warmup, refusedCheck)
  const refused = await pairs(plain, 'bench-auto-refused', job.pairs, refusedCheck)
  await plain.close()

  // Circuit open: the MLX endpoint accepts and drops connections; once its circuit is open, no more accepts.
  const router = createLLMRouter({ adminUrl: admin, env: {} })
  await control('/_bench/reset', 'POST')
  let opened = false
  for (let i = 0; i < 20 && !opened; i++) {
    await router.generate({ model: 'bench-auto-counting', prompt: PROMPT })
    opened = router.circuits().some((c) => c.endpoint.includes(`:${ports.counting}`) && c.state === 'open')
  }
  const acceptsBefore = (await control('/_bench/stats')).countingAccepts
  const openCheck = (r) => {
    if (r.attempts.length !== 2 || r.attempts[0].code !== 'CIRCUIT_OPEN')
      wrong('circuit: expected CIRCUIT_OPEN skip')
  }
  const open = await pairs(router, 'bench-auto-counting', job.pairs, openCheck)
  const acceptsAfter = (await control('/_bench/stats')).countingAccepts
  await router.close()
  return {
    refused,
    circuitOpen: {
      ...open,
      opened,
      acceptsToOpen: acceptsBefore,
      connectionAttemptsWhileOpen: acceptsAfter - acceptsBefore,
    },
    errors: refused.errors + open.errors + (opened ? 0 : 1),
    firstError: refused.firstError ?? open.firstError ?? (opened ? null : 'circuit never opened'),
  }
}

// --- burst ----------------------------------------------------------------------------------

async function runBurst() {
  await control('/_bench/reset', 'POST')
  let op
  let router = null
  if (job.variant === 'raw') {
    op = async () => {
      const res = await request(ollamaUrl, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: rawOllamaBody(false),
      })
      const json = await res.body.json()
      if (res.statusCode !== 200 || json.response !== TEXT) wrong('raw burst: bad response')
    }
  } else {
    const { createLLMRouter } = await loadRouter()
    router = createLLMRouter({ adminUrl: admin, env: {} })
    op = async () => {
      const r = await router.generate({ model: 'bench-ollama', prompt: PROMPT })
      if (r.response !== TEXT) wrong('router burst: bad response')
    }
  }
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const settled = await Promise.allSettled(Array.from({ length: job.n }, op))
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const failed = settled.filter((s) => s.status === 'rejected')
  const stats = await control('/_bench/stats')
  if (router) await router.close()
  return {
    n: job.n,
    wallMs,
    cpuUsPerOp: (cpu.user + cpu.system) / job.n,
    adminRequests: stats.adminList,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    errors: failed.length,
    firstError: failed.length > 0 ? String(failed[0].reason?.stack ?? failed[0].reason) : null,
  }
}

// --- config cache hit -----------------------------------------------------------------------

async function runCache() {
  const { createLLMRouter } = await loadRouter()
  const router = createLLMRouter({ adminUrl: admin, env: {}, metrics: false })
  const first = await router.resolve('bench-ollama')
  if (first.targets[0]?.backend !== 'ollama') wrong('resolve: bad route')
  const loop = async (n) => {
    for (let i = 0; i < n; i++) await router.resolve('bench-ollama')
  }
  await loop(job.warmup)
  globalThis.gc?.()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await loop(job.n)
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  await router.close()
  return {
    n: job.n,
    usPerCall: (wallMs * 1000) / job.n,
    cpuUsPerCall: (cpu.user + cpu.system) / job.n,
    errors: 0,
  }
}

// --- main -----------------------------------------------------------------------------------

const { Agent } = await import('undici')
controlAgent = new Agent({ connections: 1 })
let out
try {
  const runners = { load: runLoad, failover: runFailover, burst: runBurst, cache: runCache }
  out = await runners[job.mode]()
} catch (error) {
  out = { errors: 1, firstError: String(error?.stack ?? error) }
}
await controlAgent.close()
process.stdout.write(`${JSON.stringify(out)}\n`)
process.exit(0)
