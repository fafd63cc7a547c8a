// `npm run soak`: tens of thousands of requests through ONE router against the testing kit's
// node:http stand-ins (Ollama, mlx_lm.server, admin API) while faults from the fault matrix are
// switched on and off, requests are aborted at random, streams are broken off, and the admin's
// records change under a short cache TTL. A pool of three more Ollama stand-ins serves model `p`
// (members failing with the faults, leaving and joining with the admin's changes, drained and
// undrained with router.drain()/undrain(), with weights, max_concurrency and sessions). Then it
// checks what an embedding service relies on:
//
//   - every call settles (per-request bound and an overall watchdog), only with RouterErrors
//   - no unhandled rejection or uncaught exception
//   - exactly one metric event per request (per request_id), and every metric either reached the
//     admin's intake or was reported dropped
//   - sockets back to the baseline after close() (server-side counts and TCP handles)
//   - heap growth after GC bounded (see HEAP_BOUND_MB)
//   - no request answered by a pool member that was drained for the whole time the request ran, and
//     router.health() says `draining` (out of rotation) right after drain() returned true
//
//   npm run soak                      20,000 requests
//   npm run soak -- --requests 50000
//   npm run soak -- --quick           2,000 requests (CI)
//   npm run soak -- --seed 42         reproducible choices (faults, requests, aborts)
//   npm run soak -- --build           rebuild dist/ first
//
// Imports the built package (dist/index.js, dist/testing.js) like a user would; builds it when it is
// missing or older than src/. Needs global.gc: re-runs itself with --expose-gc when started without.
// Exit code 0 when every check passes, 1 otherwise.
import { spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildDist, distIsFresh } from './lib/build.mjs'

const root = resolve(import.meta.dirname, '..')
const args = process.argv.slice(2)
const log = (...a) => process.stdout.write(`${a.join(' ')}\n`)

if (typeof global.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, import.meta.filename, ...args], {
    stdio: 'inherit',
  })
  process.exit(r.status ?? 1)
}

const flag = (name) => args.includes(name)
const value = (name, fallback) => {
  const i = args.indexOf(name)
  return i === -1 ? fallback : Number(args[i + 1])
}
const QUICK = flag('--quick')
const REQUESTS = value('--requests', QUICK ? 2000 : 20_000)
const CONCURRENCY = value('--concurrency', 48)
const SEED = value('--seed', Date.now() % 1_000_000)
/** A fault state lasts this long (real ms) before the next draw. */
const SLICE_MS = 40
/** The admin's records change this often. */
const CONFIG_CHANGE_MS = 30
/** A pool member is drained or undrained about this often (real ms). */
const DRAIN_CHANGE_MS = 60
/** Upper bound of a worker's pause between two requests (real ms). */
const THINK_MS = 20
/** Deadline bounds (real ms) of the requests. */
const DEADLINE_MIN = 150
const DEADLINE_MAX = 600
const ADMIN_TIMEOUT_MS = 300
/**
 * A request may take its deadline, plus one admin fetch (only before the first good config: a cold
 * load is awaited before the deadline starts), plus event-loop lag on a busy 2-core machine.
 */
const SETTLE_SLACK_MS = ADMIN_TIMEOUT_MS + 1500
/** The whole run may not outlast this after its last request was sent. */
const WATCHDOG_MS = 30_000
/**
 * Growth of heapUsed + external (after GC) allowed, before vs after the run (with a warm-up before
 * the first sample).
 * What legitimately stays: the router's bounded stats windows (statsWindow 1000 samples for each
 * of ~8 model/backend/endpoint keys, ~1 MB), compiled route tables kept per config version
 * (capped at 1024; a few hundred versions in a full run, a few KB each), undici's pools and the
 * closed router itself. Everything else is per-request and must go. 8 MB over 20,000 requests is
 * ~400 bytes per request: a leak of anything request-sized (a body, a chunk list, a timer closure)
 * crosses it.
 */
const HEAP_BOUND_MB = 8

// --- build ----------------------------------------------------------------------------------

function ensureBuilt() {
  const fresh = distIsFresh()
  if (fresh && !flag('--build')) return
  log(fresh ? 'building dist/ (--build)' : 'dist/ is missing or older than src/: building with tsup')
  if (!buildDist().ok) {
    log('tsup failed; cannot soak without dist/')
    process.exit(1)
  }
}

ensureBuilt()
const { createLLMRouter, isRouterError } = await import(pathToFileURL(join(root, 'dist/index.js')).href)
const { startAdminServer, startOllamaServer, startOpenAIServer, ADMIN_LIST_PATH } = await import(
  pathToFileURL(join(root, 'dist/testing.js')).href
)

// --- randomness -----------------------------------------------------------------------------

/** mulberry32: small, seedable, good enough to pick faults. */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const random = rng(SEED)
const pick = (list) => list[Math.floor(random() * list.length)]
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1))

// --- accounting -----------------------------------------------------------------------------

const violations = []
const violate = (message) => {
  if (violations.length < 50) violations.push(message)
}
let unhandled = 0
let uncaught = 0
process.on('unhandledRejection', (reason) => {
  unhandled++
  violate(`unhandled rejection: ${reason?.stack ?? reason}`)
})
process.on('uncaughtException', (error) => {
  uncaught++
  violate(`uncaught exception: ${error?.stack ?? error}`)
})

const countBy = (map, key, n = 1) => map.set(key, (map.get(key) ?? 0) + n)
const outcomes = new Map()
const faultHits = new Map()
const faultsSet = new Map()
const modes = new Map()
let aborts = 0
let configChanges = 0
let maxOverrunMs = 0
const metricSeen = new Uint8Array(REQUESTS)
const adminSeen = new Uint8Array(REQUESTS)
let metricEvents = 0
let metricsDropped = 0
let configFailed = 0
const idOf = (requestId) => {
  const n = typeof requestId === 'string' && requestId.startsWith('r') ? Number(requestId.slice(1)) : -1
  return Number.isInteger(n) && n >= 0 && n < REQUESTS ? n : -1
}

const tcpSockets = () => process.getActiveResourcesInfo().filter((t) => t === 'TCPSocketWrap').length
/** JS heap plus off-heap buffers: a leaked response body lives in `external`, not in heapUsed. */
const heapMB = () => {
  const m = process.memoryUsage()
  return (m.heapUsed + m.external) / 1024 / 1024
}
async function settleHeap() {
  for (let i = 0; i < 4; i++) {
    global.gc()
    await new Promise((r) => setTimeout(r, 20))
  }
  return heapMB()
}

// --- servers --------------------------------------------------------------------------------

const onRequest = (server) => (req) => {
  if (req.fault !== null) countBy(faultHits, `${server}:${req.fault}`)
}
const recording = (server) => ({ maxRecordedRequests: 0, onRequest: onRequest(server) })
// A little generation time (~10 ms per answer), so requests overlap fault slices and config changes.
const pace = { tokensPerSecond: 1500 }
const ollama = await startOllamaServer({ ...recording('ollama'), ...pace })
const mlx = await startOpenAIServer({ ...recording('mlx'), ...pace })
const admin = await startAdminServer({
  ...recording('admin'),
  maxRecordedMetrics: 0,
  onMetrics: (_post, accepted) => {
    for (const m of accepted) {
      const i = idOf(m.request_id)
      if (i >= 0) adminSeen[i]++
    }
  },
})
// The pool: model `p` over these three (plus the main Ollama at a lower priority).
const pool = await Promise.all([1, 2, 3].map((n) => startOllamaServer({ ...recording(`pool${n}`), ...pace })))
const servers = { ollama, mlx, admin, pool1: pool[0], pool2: pool[1], pool3: pool[2] }
const selectedBy = new Map()
const trimSlash = (url) => url.replace(/\/+$/, '')
const poolUrls = pool.map((m) => trimSlash(m.url))

function recordsVariant() {
  const ollamaPriority = between(1, 3)
  const records = [
    { model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url, priority: ollamaPriority },
    {
      model_name: 'x',
      backend_type: 'mlx',
      endpoint_url: mlx.url,
      priority: between(1, 3),
      enabled: random() < 0.9,
    },
    {
      model_name: 'a',
      backend_type: 'auto',
      endpoint_url: mlx.url,
      fallback_url: ollama.url,
      priority: between(1, 3),
      max_tokens: between(8, 64),
    },
  ]
  if (random() < 0.5) {
    records.push({ model_name: 'extra', backend_type: 'ollama', endpoint_url: ollama.url, priority: 5 })
  }
  // Pool members join and leave with the admin's changes (at least one stays), each with a weight,
  // sometimes a max_concurrency (so requests overflow or queue) and a context_length.
  const members = pool.filter(() => random() < 0.75)
  for (const m of members.length > 0 ? members : [pick(pool)]) {
    const rec = {
      model_name: 'p',
      backend_type: 'ollama',
      endpoint_url: m.url,
      priority: 1,
      weight: between(1, 4),
    }
    if (random() < 0.5) rec.max_concurrency = between(1, 4)
    if (random() < 0.3) rec.context_length = between(2, 8)
    if (random() < 0.3) rec.keep_alive = '5m'
    records.push(rec)
  }
  records.push({ model_name: 'p', backend_type: 'ollama', endpoint_url: ollama.url, priority: 2 })
  // Now and then a record the router must report and skip.
  if (random() < 0.1) records.push({ model_name: 'bad', backend_type: 'tpu', endpoint_url: 'ftp://x' })
  return records
}
admin.setRecords(recordsVariant())

// --- faults ---------------------------------------------------------------------------------

const BACKEND_FAULTS = [
  () => ({ type: 'down' }),
  () => ({ type: 'hang' }),
  () => ({ type: 'stall-body' }),
  () => ({ type: 'reset-mid-body' }),
  () => ({ type: '500-html' }),
  () => ({ type: '503' }),
  () => ({ type: '429', retryAfter: 0 }),
  () => ({ type: '429', retryAfter: 30 }),
  () => ({ type: '429', retryAfter: new Date(Date.now() + 1000).toUTCString() }),
  () => ({ type: '404-model' }),
  () => ({ type: '400' }),
  () => ({ type: 'invalid-json' }),
  () => ({ type: 'oversize', bytes: 512 * 1024 }),
  () => ({ type: 'cut-stream' }),
  () => ({ type: 'error-mid-stream' }),
  () => ({ type: 'trickle', chunkBytes: 32, delayMs: 15 }),
  () => ({ type: 'slow', delayMs: 400 }),
  () => ({ type: 'drop-socket' }),
]
const ADMIN_FAULTS = [
  () => ({ type: 'down' }),
  () => ({ type: 'hang', path: ADMIN_LIST_PATH }),
  () => ({ type: 'stall-body', path: ADMIN_LIST_PATH }),
  () => ({ type: 'reset-mid-body', path: ADMIN_LIST_PATH }),
  () => ({ type: '500-html', path: ADMIN_LIST_PATH }),
  () => ({ type: '503', path: ADMIN_LIST_PATH }),
  () => ({ type: '429', path: ADMIN_LIST_PATH }),
  () => ({ type: 'invalid-json', path: ADMIN_LIST_PATH }),
  () => ({ type: 'oversize', bytes: 256 * 1024, path: ADMIN_LIST_PATH }),
  () => ({ type: 'cut-stream', path: ADMIN_LIST_PATH }),
  () => ({ type: 'trickle', chunkBytes: 16, delayMs: 30, path: ADMIN_LIST_PATH }),
]

let chaosOn = true
async function chaos() {
  while (chaosOn) {
    for (const [name, server] of Object.entries(servers)) {
      const table = name === 'admin' ? ADMIN_FAULTS : BACKEND_FAULTS
      // Healthy about half the time, so requests also succeed and fall over to something.
      if (random() < (name === 'admin' ? 0.6 : 0.5)) {
        if (server.fault !== null) await server.clearFault()
      } else {
        const spec = pick(table)()
        countBy(faultsSet, `${name}:${spec.type}`)
        await server.setFault(spec)
      }
    }
    await new Promise((r) => setTimeout(r, between(SLICE_MS / 2, SLICE_MS * 2)))
  }
  await Promise.all(Object.values(servers).map((s) => s.clearFault()))
}

async function configChurn() {
  while (chaosOn) {
    await new Promise((r) => setTimeout(r, between(CONFIG_CHANGE_MS / 2, CONFIG_CHANGE_MS * 2)))
    admin.setRecords(recordsVariant())
    configChanges++
  }
}

// Drain churn: the soak drains and undrains pool members while requests run (and while members
// leave and join: a member drained while out of the config is drained when it comes back).
// `drainEpoch` counts every change per member, so a request can tell afterwards whether the member
// stayed drained for its whole run.
const drained = new Set()
const drainEpoch = new Map(poolUrls.map((u) => [u, 0]))
const drainCalls = new Map()
let drainedEvents = 0
let undrainedEvents = 0
let drainedSkips = 0
async function drainChurn() {
  while (chaosOn) {
    await new Promise((r) => setTimeout(r, between(DRAIN_CHANGE_MS / 2, DRAIN_CHANGE_MS * 2)))
    if (!chaosOn) break
    const url = pick(poolUrls)
    if (drained.has(url)) {
      if (random() < 0.7) {
        if (!router.undrain(url)) violate(`undrain(${url}) returned false for a drained member`)
        drained.delete(url)
        drainEpoch.set(url, drainEpoch.get(url) + 1)
        countBy(drainCalls, 'undrain')
      }
    } else if (random() < 0.5) {
      const known = router.drain(url)
      drained.add(url)
      drainEpoch.set(url, drainEpoch.get(url) + 1)
      countBy(drainCalls, known ? 'drain (in the config)' : 'drain (not in the config)')
      if (known) {
        const h = router.health().find((m) => m.endpoint === url)
        if (h === undefined) violate(`drain(${url}) returned true but health() does not list it`)
        else if (h.state !== 'draining' || h.inRotation) {
          violate(`health() after drain(${url}): state ${h.state}, inRotation ${h.inRotation}`)
        }
      }
    }
  }
  // Everything back in rotation before the end (close() must not depend on it either way).
  for (const url of drained) {
    router.undrain(url)
    countBy(drainCalls, 'undrain')
  }
  drained.clear()
}

// --- the router -----------------------------------------------------------------------------

const router = createLLMRouter({
  adminUrl: admin.url,
  admin: { timeoutMs: ADMIN_TIMEOUT_MS, maxPayloadBytes: 64 * 1024, retryBaseMs: 50, retryMaxMs: 500 },
  cacheTtlMs: 50,
  env: {
    // Used before the first good admin load, and for models without a record of their own.
    LLM_ROUTER_BACKENDS: JSON.stringify([
      { model_name: 'o', backend_type: 'ollama', endpoint_url: ollama.url },
      { model_name: 'x', backend_type: 'mlx', endpoint_url: mlx.url },
    ]),
    OLLAMA_HOST: ollama.url,
  },
  retry: { maxRetries: 2, baseDelayMs: 10, maxDelayMs: 80, maxRetryAfterMs: 2000 },
  circuitBreaker: { threshold: 5, cooldownMs: 50 },
  maxResponseBytes: 64 * 1024,
  metrics: { flushIntervalMs: 100, batchSize: 200, maxQueueSize: 50_000, closeTimeoutMs: 10_000 },
  closeTimeoutMs: 10_000,
})
router.on('metric', (m) => {
  metricEvents++
  const i = idOf(m.request_id)
  if (i < 0) violate(`metric without a known request_id: ${JSON.stringify(m.request_id)}`)
  else metricSeen[i]++
})
router.on('metric', (m) => {
  if (m.model === 'p') countBy(selectedBy, m.selected_by ?? '(not a pool choice)')
})
router.on('metrics:dropped', ({ dropped }) => {
  metricsDropped += dropped
})
router.on('config:failed', () => {
  configFailed++
})
router.on('member:drained', () => {
  drainedEvents++
})
router.on('member:undrained', () => {
  undrainedEvents++
})

// --- requests -------------------------------------------------------------------------------

async function one(i) {
  const stream = random() < 0.4
  const model = pick(['o', 'x', 'a', 'a', 'extra', 'unconfigured', undefined, 'p', 'p', 'p'])
  const timeoutMs = between(DEADLINE_MIN, DEADLINE_MAX)
  const req = { prompt: `soak ${i}`, timeoutMs, metadata: { requestId: `r${i}` } }
  // Pool requests: some carry one of 40 sessions; some prompts are too long for a small context_length.
  if (model === 'p' && random() < 0.5) req.metadata.sessionId = `s${between(0, 39)}`
  if (model === 'p' && random() < 0.1) req.prompt = 'long '.repeat(20)
  if (model !== undefined) req.model = model
  const f = random()
  if (f < 0.1) req.fallbackModels = ['o']
  else if (f < 0.15) req.fallbackModels = 'priority'
  let timer = null
  const a = random()
  if (a < 0.02) {
    req.signal = AbortSignal.abort(new Error('pre-aborted'))
    aborts++
  } else if (a < 0.12) {
    const ac = new AbortController()
    timer = setTimeout(() => ac.abort(new Error('soak abort')), between(0, 80))
    req.signal = ac.signal
    aborts++
  }
  const breakEarly = stream && random() < 0.05
  countBy(modes, stream ? (breakEarly ? 'stream (broken off)' : 'stream') : 'generate')
  // Pool members drained now, with the epoch of their drain: if one is still drained under the same
  // epoch when the request settles, it was drained for the whole request and must not have answered.
  const drainedAtStart =
    model === 'p' && drained.size > 0 ? [...drained].map((u) => [u, drainEpoch.get(u)]) : null
  const checkAnswer = (result) => {
    if (drainedAtStart !== null) {
      for (const [url, epoch] of drainedAtStart) {
        if (result.endpoint === url && drained.has(url) && drainEpoch.get(url) === epoch) {
          violate(`r${i}: answered by ${url}, drained for the whole request`)
        }
      }
    }
    countDrainedSkips(result.attempts)
  }

  const t0 = performance.now()
  let code = 'ok'
  try {
    if (stream) {
      const s = router.stream(req)
      let n = 0
      for await (const chunk of s) {
        if (typeof chunk.text !== 'string') violate(`r${i}: chunk without text`)
        if (breakEarly && ++n === 1) break
      }
      if (!breakEarly) {
        const result = await s.result
        if (typeof result.response !== 'string') violate(`r${i}: result without response`)
        checkAnswer(result)
      }
    } else {
      const result = await router.generate(req)
      if (typeof result.response !== 'string' || result.response.length === 0) {
        violate(`r${i}: empty response`)
      }
      checkAnswer(result)
    }
  } catch (error) {
    if (!isRouterError(error)) {
      violate(`r${i}: rejected with a non-RouterError: ${error?.stack ?? error}`)
      code = 'non-RouterError'
    } else {
      code = error.code
      countDrainedSkips(error.attempts)
      // Which failure ended the chain says more than ALL_BACKENDS_FAILED alone.
      if (code === 'ALL_BACKENDS_FAILED') code += ` (last: ${error.attempts.at(-1)?.code ?? 'none'})`
    }
  } finally {
    if (timer !== null) clearTimeout(timer)
  }
  const elapsed = performance.now() - t0
  maxOverrunMs = Math.max(maxOverrunMs, elapsed - timeoutMs)
  if (elapsed > timeoutMs + SETTLE_SLACK_MS) {
    violate(`r${i}: settled after ${Math.round(elapsed)} ms (deadline ${timeoutMs} ms)`)
  }
  countBy(outcomes, code)
}

/** Attempts that skipped a drained member (attempt entries with MEMBER_DRAINED). */
function countDrainedSkips(attempts) {
  if (attempts === undefined) return
  for (const a of attempts) if (a.code === 'MEMBER_DRAINED') drainedSkips++
}

// --- run ------------------------------------------------------------------------------------

const socketsBaseline = tcpSockets()
const started = performance.now()
log(`soak: ${REQUESTS} requests, concurrency ${CONCURRENCY}, seed ${SEED}, node ${process.version}`)

// Warm-up outside the measurements: JIT, pools, first config load.
const WARMUP = Math.min(200, Math.floor(REQUESTS / 10))
let next = 0
const worker = async (limit) => {
  while (next < limit) {
    await one(next++)
    // Think time, like callers with their own work between requests. It is also a macrotask turn:
    // a request refused at once (open circuit) settles in microtasks only, and without a turn the
    // workers would starve timers and sockets and the run would happen in one tick.
    await new Promise((r) => setTimeout(r, between(0, THINK_MS)))
  }
}
await Promise.all(Array.from({ length: Math.min(CONCURRENCY, WARMUP) }, () => worker(WARMUP)))
const heapBefore = await settleHeap()

const chaosDone = chaos()
const churnDone = configChurn()
const drainDone = drainChurn()
let progress = 0
const progressTimer = setInterval(() => {
  if (next - progress >= REQUESTS / 10) {
    progress = next
    log(`  ${next}/${REQUESTS} sent, ${Math.round((performance.now() - started) / 1000)} s`)
  }
}, 1000)
progressTimer.unref()

const sending = Promise.all(Array.from({ length: CONCURRENCY }, () => worker(REQUESTS)))
let watchdogFired = false
let watchdog = null
const allSettled = await Promise.race([
  sending.then(() => true),
  (async () => {
    // The watchdog starts counting once the last request has been sent.
    while (next < REQUESTS) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => {
      watchdog = setTimeout(r, WATCHDOG_MS)
    })
    watchdogFired = true
    return false
  })(),
])
clearTimeout(watchdog)
clearInterval(progressTimer)
if (!allSettled) violate(`watchdog: requests still pending ${WATCHDOG_MS} ms after the last was sent`)
chaosOn = false
await Promise.all([chaosDone, churnDone, drainDone])
const runMs = performance.now() - started

const closeStarted = performance.now()
await router.close()
const closeMs = performance.now() - closeStarted

// Sockets: the servers' view and the process's TCP handles, after the pools have closed.
let socketsAfter = tcpSockets()
let serverConnections = Object.values(servers).map((s) => s.connections)
for (let i = 0; i < 100 && (socketsAfter > socketsBaseline || serverConnections.some((c) => c > 0)); i++) {
  await new Promise((r) => setTimeout(r, 20))
  socketsAfter = tcpSockets()
  serverConnections = Object.values(servers).map((s) => s.connections)
}
const heapAfter = await settleHeap()

// --- checks ---------------------------------------------------------------------------------

const settled = [...outcomes.values()].reduce((a, b) => a + b, 0)
if (settled !== REQUESTS) violate(`${settled} of ${REQUESTS} requests settled`)
if (unhandled > 0) violate(`${unhandled} unhandled rejection(s)`)
if (uncaught > 0) violate(`${uncaught} uncaught exception(s)`)
if (metricEvents !== REQUESTS) violate(`${metricEvents} metric events for ${REQUESTS} requests`)
let missing = 0
let duplicated = 0
let adminMissing = 0
let adminDuplicated = 0
for (let i = 0; i < REQUESTS; i++) {
  if (metricSeen[i] === 0) missing++
  if (metricSeen[i] > 1) duplicated++
  if (adminSeen[i] === 0) adminMissing++
  if (adminSeen[i] > 1) adminDuplicated++
}
if (missing > 0) violate(`${missing} request(s) without a metric`)
if (duplicated > 0) violate(`${duplicated} request(s) with more than one metric`)
// Every metric reached the admin or was reported dropped (a POST retried after the admin processed
// it but the connection broke can arrive twice; that is reported, not failed).
if (adminMissing > metricsDropped) {
  violate(`${adminMissing} metric(s) neither received by the admin nor reported dropped (${metricsDropped})`)
}
if ((selectedBy.size === 0 || [...selectedBy.keys()].every((k) => k.startsWith('('))) && REQUESTS >= 1000)
  violate('no pool request was answered by a chosen member (selected_by)')
const drainsKnown = drainCalls.get('drain (in the config)') ?? 0
const drainsTotal = drainsKnown + (drainCalls.get('drain (not in the config)') ?? 0)
if (drainedEvents !== drainsTotal)
  violate(`${drainedEvents} member:drained events for ${drainsTotal} drain() calls`)
if (undrainedEvents !== (drainCalls.get('undrain') ?? 0))
  violate(`${undrainedEvents} member:undrained events for ${drainCalls.get('undrain') ?? 0} undrain() calls`)
if (REQUESTS >= 1000 && drainsKnown === 0) violate('no pool member was drained while in the config')
if (REQUESTS >= 1000 && drainedSkips === 0) violate('no request skipped a drained member (MEMBER_DRAINED)')
if (socketsAfter > socketsBaseline)
  violate(`TCP sockets: ${socketsAfter} after close vs ${socketsBaseline} before`)
if (serverConnections.some((c) => c > 0)) {
  violate(`server connections after close: ${JSON.stringify(serverConnections)}`)
}
const heapGrowth = heapAfter - heapBefore
if (heapGrowth > HEAP_BOUND_MB) violate(`heap grew ${heapGrowth.toFixed(1)} MB (bound ${HEAP_BOUND_MB} MB)`)

await Promise.all(Object.values(servers).map((s) => s.stop()))

// --- report ---------------------------------------------------------------------------------

const table = (title, map) => {
  log(`\n${title}`)
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1])
  for (const [k, v] of rows) log(`  ${k.padEnd(34)} ${String(v).padStart(7)}`)
}
log(`\nrequests            ${REQUESTS} (${Math.round(REQUESTS / (runMs / 1000))}/s)`)
log(`duration            ${(runMs / 1000).toFixed(1)} s run, ${Math.round(closeMs)} ms close()`)
table('requests by kind', modes)
log(`  aborted by signal                  ${String(aborts).padStart(7)}`)
table('outcomes (ok or error code)', outcomes)
table('pool requests (model p) by selected_by', selectedBy)
table('fault slices started (server:fault)', faultsSet)
table('requests that met a fault (server:fault)', faultHits)
log(`\nconfig changes      ${configChanges} (config:failed events: ${configFailed})`)
log(
  `drain churn         ${[...drainCalls].map(([k, v]) => `${k} ${v}`).join(', ')}; events drained ${drainedEvents}, undrained ${undrainedEvents}; MEMBER_DRAINED skips ${drainedSkips}`,
)
log(`metric events       ${metricEvents} (requests without one: ${missing}, with several: ${duplicated})`)
log(
  `admin metrics       received for ${REQUESTS - adminMissing} requests, dropped ${metricsDropped}, duplicated ${adminDuplicated}`,
)
log(`slowest settle      ${Math.round(maxOverrunMs)} ms past its deadline (bound ${SETTLE_SLACK_MS} ms)`)
log(`unhandled           ${unhandled} rejections, ${uncaught} exceptions`)
log(
  `heap+external (GC) ${heapBefore.toFixed(1)} MB before, ${heapAfter.toFixed(1)} MB after (${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(1)} MB, bound ${HEAP_BOUND_MB} MB)`,
)
log(
  `TCP sockets         ${socketsBaseline} before, ${socketsAfter} after close; server connections ${JSON.stringify(serverConnections)}`,
)
if (watchdogFired) log('watchdog            FIRED')

if (violations.length > 0) {
  log(`\nSOAK FAILED (${violations.length} violation(s)):`)
  for (const v of violations) log(`  - ${v}`)
  process.exit(1)
}
log('\nSOAK OK')
process.exit(0)
