// `npm run demo`: the router end to end, in about ten seconds, with nothing else running.
//
// Starts an admin API, an Ollama server and an MLX (OpenAI-compatible) server from the package's own
// testing kit (`llm-backend-router/testing`) on 127.0.0.1, runs a router against them and shows routing,
// the MLX -> Ollama fallback of an `auto` record, an admin change picked up after the cache TTL, a
// streamed answer, metric records arriving at the admin and a per-backend summary. Exits 0 when every
// step passed, 1 otherwise.
//
//   npm run demo                          stand-ins for everything
//   npm run demo -- --ollama localhost    your Ollama (also: OLLAMA_HOST), stand-ins for the rest
//   npm run demo -- --serve               only start the stand-ins and print their URLs (for examples/)
//   npm run demo -- --help
//
// It imports the built package by its own name, as a user would; dist/ is built first when it is
// missing or older than the sources.
import { parseArgs } from 'node:util'
import { buildDist, distIsFresh } from './lib/build.mjs'

const HELP = `Usage: npm run demo [-- options]

Runs llm-backend-router against an admin API, an Ollama server and an MLX server. Each one is an
in-process stand-in from llm-backend-router/testing unless you point the demo at your own.

Options:
  --admin-url <url>   your admin API            (env LLM_ROUTER_ADMIN_URL)
  --ollama <host>     your Ollama server        (env OLLAMA_HOST), e.g. localhost or http://127.0.0.1:11434
  --mlx <host>        your mlx_lm.server        (env MLX_HOST), e.g. localhost:8080
  --model <name>      Ollama model to use with your Ollama (default: the first one it lists)
  --mlx-model <id>    model id sent to your MLX server (default: default_model, i.e. the one it serves)
  --stand-ins         ignore the environment variables above and use stand-ins for everything
  --serve             only start the stand-ins, print their URLs as environment variables, and wait
                      (run the files in examples/ against them from another terminal)
  -h, --help          show this help

Steps that need control of a server (stopping MLX, changing admin records) are skipped when that
server is yours. Colours are used when stdout is a terminal and NO_COLOR is not set.
Exit code: 0 when every step passed, 1 when one failed, 2 on bad arguments.`

let args
try {
  args = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h' },
      'admin-url': { type: 'string' },
      ollama: { type: 'string' },
      mlx: { type: 'string' },
      model: { type: 'string' },
      'mlx-model': { type: 'string' },
      'stand-ins': { type: 'boolean' },
      serve: { type: 'boolean' },
    },
    strict: true,
  }).values
} catch (error) {
  process.stderr.write(`${error.message}\n\n${HELP}\n`)
  process.exit(2)
}
if (args.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}

// --- presentation ---------------------------------------------------------------------------

const color = process.stdout.isTTY === true && !process.env.NO_COLOR
const paint = (code) => (s) => (color ? `\x1b[${code}m${s}\x1b[0m` : String(s))
const bold = paint('1')
const dim = paint('2')
const red = paint('31')
const green = paint('32')
const yellow = paint('33')
const cyan = paint('36')
const OK = green('✓')
const FAIL = red('✗')
const SKIP = yellow('–')
const out = (s = '') => process.stdout.write(`${s}\n`)
const note = (s) => out(`    ${s}`)
const visible = (s) => String(s).replace(/\x1b\[[0-9;]*m/g, '')
const secs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`)
const host = (url) => url.replace(/^https?:\/\//, '')

/** `align`: one letter per column, `l` or `r`. */
function table(header, rows, align = '') {
  const widths = header.map((h, i) => Math.max(visible(h).length, ...rows.map((r) => visible(r[i]).length)))
  const line = (cells) =>
    cells
      .map((c, i) => {
        const pad = ' '.repeat(widths[i] - visible(c).length)
        return align[i] === 'r' ? pad + c : c + pad
      })
      .join('  ')
      .trimEnd()
  out(`  ${bold(line(header))}`)
  out(`  ${dim(widths.map((w) => '─'.repeat(w)).join('  '))}`)
  for (const r of rows) out(`  ${line(r)}`)
}

function wrap(text, width = 88) {
  const lines = []
  let line = ''
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length > 0 && line.length + word.length + 1 > width) {
      lines.push(line)
      line = word
    } else line = line.length > 0 ? `${line} ${word}` : word
  }
  if (line.length > 0) lines.push(line)
  return lines
}

/** Prints streamed text as it arrives, wrapped and indented. */
function streamPrinter(width = 88) {
  let col = 0
  let started = false
  let space = false
  return {
    write(text) {
      for (const piece of text.split(/(\s+)/)) {
        if (piece === '') continue
        if (/^\s+$/.test(piece)) {
          if (piece.includes('\n')) col = width
          space = true
          continue
        }
        if (!started || col + 1 + piece.length > width) {
          process.stdout.write(`${started ? '\n' : ''}    ${dim('│')} `)
          started = true
          col = 0
        } else if (space) {
          process.stdout.write(' ')
          col++
        }
        space = false
        process.stdout.write(piece)
        col += piece.length
      }
    },
    end() {
      if (started) process.stdout.write('\n')
    },
  }
}

// --- build ----------------------------------------------------------------------------------

function ensureBuilt() {
  if (distIsFresh()) return
  const t0 = performance.now()
  process.stdout.write(dim('building dist/ (missing or older than src/) … '))
  const r = buildDist('pipe')
  if (!r.ok) {
    out(FAIL)
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}\n`)
    process.stderr.write('The build failed: run `npx tsup` to see why.\n')
    process.exit(1)
  }
  out(dim(`done in ${secs(performance.now() - t0)}`))
}

ensureBuilt()
const { createLLMRouter, isRouterError } = await import('llm-backend-router')
const { defaultResponse, startAdminServer, startMlxServer, startOllamaServer } = await import(
  'llm-backend-router/testing'
)

// --- targets --------------------------------------------------------------------------------

const env = args['stand-ins'] ? {} : process.env
const pick = (flag, name) => {
  const v = args[flag] ?? env[name]
  return v !== undefined && v.trim() !== '' ? v.trim() : null
}

/** `host`, `host:port`, `:port` or a URL, read like OLLAMA_HOST; wildcard binds dial loopback. */
function hostUrl(value, defaultPort, label) {
  const v = value.replace(/^["']+|["']+$/g, '')
  const hasScheme = /^https?:\/\//i.test(v)
  let url
  try {
    url = new URL(hasScheme ? v : `http://${v.startsWith(':') ? `127.0.0.1${v}` : v}`)
  } catch {
    process.stderr.write(`${label}: "${value}" is not a host, host:port or http(s) URL\n`)
    process.exit(2)
  }
  // Without a scheme a bare host gets the server's usual port; with one, the scheme's port applies.
  if (!hasScheme && url.port === '' && !/:\d+(\/|$)/.test(v)) url.port = String(defaultPort)
  if (['0.0.0.0', '[::]'].includes(url.hostname)) url.hostname = '127.0.0.1'
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

const userAdmin = pick('admin-url', 'LLM_ROUTER_ADMIN_URL')
const userOllama = pick('ollama', 'OLLAMA_HOST')
const userMlx = pick('mlx', 'MLX_HOST')
const userAdminUrl = userAdmin === null ? null : hostUrl(userAdmin, 80, 'admin URL')
const userOllamaUrl = userOllama === null ? null : hostUrl(userOllama, 11434, 'Ollama host')
const userMlxUrl = userMlx === null ? null : hostUrl(userMlx, 8080, 'MLX host')

// --- stand-ins ------------------------------------------------------------------------------

const PROMPTS = {
  ollama: 'Why is the sky blue?',
  mlx: 'Write a haiku about routing requests.',
  auto: 'What does a circuit breaker do?',
  quick: 'Say hello in five words.',
  stream: 'Tell a very short story about a lighthouse keeper.',
}
const ANSWERS = {
  [PROMPTS.ollama]:
    'Sunlight is scattered by the molecules of the air, and short blue wavelengths scatter far more than ' +
    'red ones (Rayleigh scattering), so blue light reaches your eyes from every part of the sky.',
  [PROMPTS.mlx]:
    'Packets seek their home, / a quiet switch decides where, / the answer returns. ' +
    '(Five, seven and five syllables: each request finds the backend its record names.)',
  [PROMPTS.auto]:
    'It stops sending calls to a failing service for a while, so the service can recover and callers ' +
    'fail fast or fall back instead of waiting on timeouts.',
  [PROMPTS.quick]: 'Hello there, nice to meet!',
  [PROMPTS.stream]:
    'Every night for forty years, Mara climbed the hundred steps and lit the lamp. Ships passed without ' +
    'knowing her name. The winter the lamp failed, she stood on the gallery with a lantern until dawn, and ' +
    'in the morning a fishing boat came in safely, its crew waving at a light they thought was a star.',
}
const respond = (prompt) => ANSWERS[prompt] ?? defaultResponse(prompt)

// The chat turn: the stand-in model asks for the weather tool, then answers from the tool result.
const CHAT_QUESTION = 'What is the weather in Lisbon right now?'
const chat = ({ messages }) => {
  const last = messages.at(-1)
  if (last?.role !== 'tool') {
    return { toolCalls: [{ name: 'get_weather', arguments: { city: 'Lisbon' } }] }
  }
  const w = JSON.parse(String(last.content))
  return `It is ${w.celsius} °C and ${w.sky} in ${w.city}.`
}

// Realistic pacing: a cold load on a model's first request, prompt processing, then steady decoding.
const OLLAMA_TIMING = { tokensPerSecond: 55, timeToFirstTokenMs: 120, loadMs: 600 }
const MLX_TIMING = { tokensPerSecond: 75, timeToFirstTokenMs: 80, loadMs: 450 }
const MLX_MODEL_ID = 'mlx-community/Qwen2.5-3B-Instruct-4bit'

const servers = []
const started = async (p) => {
  const s = await p
  servers.push(s)
  return s
}

async function stopAll() {
  await Promise.allSettled(servers.map((s) => s.stop()))
}

if (args.serve) {
  const ollama = await started(startOllamaServer({ ...OLLAMA_TIMING, respond, chat }))
  const mlx = await started(startMlxServer({ ...MLX_TIMING, respond, chat }))
  const admin = await started(
    startAdminServer({
      records: [
        {
          model_name: 'llama3.2',
          backend_type: 'ollama',
          endpoint_url: ollama.url,
          enabled: true,
          priority: 1,
        },
        {
          model_name: 'qwen2.5',
          backend_type: 'mlx',
          endpoint_url: mlx.url,
          backend_model: MLX_MODEL_ID,
          enabled: true,
          priority: 2,
        },
        {
          model_name: 'gemma3',
          backend_type: 'auto',
          endpoint_url: mlx.url,
          fallback_url: ollama.url,
          enabled: true,
          priority: 3,
        },
      ],
      onMetrics: (post) => out(dim(`admin: metrics POST with ${post.records} record(s)`)),
    }),
  )
  out(
    `${bold('Stand-ins running')} (models: llama3.2 → ollama, qwen2.5 → mlx, gemma3 → auto). In another shell:`,
  )
  out()
  out(`  export LLM_ROUTER_ADMIN_URL=${admin.url}`)
  out(`  export OLLAMA_HOST=${ollama.url}`)
  out(`  export MLX_HOST=${mlx.url}`)
  out(`  node examples/basic-generate.ts`)
  out()
  out(dim('Ctrl+C to stop.'))
  const stop = async () => {
    await stopAll()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  await new Promise(() => {})
}

const demoStart = performance.now()
const watchdog = setTimeout(
  () => {
    out(`\n${FAIL} ${red('the demo took too long; giving up')}`)
    process.exit(1)
  },
  userOllamaUrl || userMlxUrl || userAdminUrl ? 15 * 60_000 : 60_000,
)
process.once('SIGINT', () => {
  void stopAll().then(() => process.exit(130))
})

out(bold('llm-backend-router demo'))

const ollama = userOllamaUrl ? null : await started(startOllamaServer({ ...OLLAMA_TIMING, respond, chat }))
const mlx = userMlxUrl ? null : await started(startMlxServer({ ...MLX_TIMING, respond, chat }))
const ollamaUrl = userOllamaUrl ?? ollama.url
const mlxUrl = userMlxUrl ?? mlx.url

async function ollamaModel() {
  if (userOllamaUrl === null) return 'llama3.2'
  if (args.model) return args.model
  try {
    const res = await fetch(`${userOllamaUrl}/api/tags`, { signal: AbortSignal.timeout(5000) })
    const body = await res.json()
    const name = body?.models?.[0]?.name
    if (typeof name === 'string') return name
    out(`${FAIL} your Ollama at ${userOllamaUrl} lists no models: \`ollama pull llama3.2\` or pass --model`)
  } catch (error) {
    out(`${FAIL} could not list the models of your Ollama at ${userOllamaUrl}/api/tags: ${error.message}`)
  }
  await stopAll()
  process.exit(1)
}

const M = {
  ollama: await ollamaModel(),
  mlx: 'qwen2.5',
  auto: 'gemma3',
}
const mlxSendModel = userMlxUrl ? (args['mlx-model'] ?? 'default_model') : MLX_MODEL_ID
// With your Ollama the auto record's Ollama leg must name a model it has.
if (userOllamaUrl) M.auto = M.ollama

const ollamaRecord = (priority) => ({
  id: 1,
  model_name: M.ollama,
  backend_type: 'ollama',
  endpoint_url: ollamaUrl,
  enabled: true,
  priority,
  description: 'general chat on Ollama',
})
const records = [
  ollamaRecord(1),
  {
    id: 2,
    model_name: M.mlx,
    backend_type: 'mlx',
    endpoint_url: mlxUrl,
    backend_model: mlxSendModel,
    enabled: true,
    priority: 2,
    description: 'MLX on Apple silicon',
  },
  {
    id: 3,
    model_name: M.auto,
    backend_type: 'auto',
    endpoint_url: mlxUrl,
    backend_model: mlxSendModel,
    fallback_url: ollamaUrl,
    enabled: true,
    priority: 3,
    description: 'MLX first, Ollama when MLX is down',
  },
]

const metricPosts = []
const admin = userAdminUrl
  ? null
  : await started(
      startAdminServer({
        records: M.auto === M.ollama ? [records[0], records[1]] : records,
        onMetrics: (post) =>
          metricPosts.push({ at: performance.now(), records: post.records, status: post.status }),
      }),
    )
// With your Ollama, `auto` and `ollama` records would share a model name; serve the auto one alone in step 3.
const adminUrl = userAdminUrl ?? admin.url

const TTL_MS = 2000
const FLUSH_MS = 500
const router = createLLMRouter({
  adminUrl,
  cacheTtlMs: TTL_MS,
  // Only what this demo decides: auto records without fallback_url use this Ollama.
  env: { OLLAMA_HOST: ollamaUrl },
  metrics: { flushIntervalMs: FLUSH_MS },
  retry: { baseDelayMs: 200 },
  defaultTimeoutMs: userOllamaUrl || userMlxUrl || userAdminUrl ? 300_000 : 15_000,
})

const label = (url, mine, what) => `${url}  ${dim(mine ? `(yours)` : `(stand-in${what ? `, ${what}` : ''})`)}`
out(`  admin   ${label(adminUrl, userAdminUrl !== null, 'records + metrics intake')}`)
out(
  `  ollama  ${label(ollamaUrl, userOllamaUrl !== null, `~${OLLAMA_TIMING.tokensPerSecond} tok/s, ${OLLAMA_TIMING.loadMs} ms cold load`)}`,
)
out(
  `  mlx     ${label(mlxUrl, userMlxUrl !== null, `~${MLX_TIMING.tokensPerSecond} tok/s, ${MLX_TIMING.loadMs} ms cold load`)}`,
)
out(`  router  ${dim(`cacheTtlMs ${TTL_MS}, metrics flushed to the admin every ${FLUSH_MS} ms`)}`)

// --- events ---------------------------------------------------------------------------------

const events = []
for (const name of [
  'config:loaded',
  'config:refreshed',
  'config:failed',
  'config:fallback',
  'request:fallback',
]) {
  router.on(name, (payload) => events.push({ name, payload, at: performance.now() }))
}
let metricCount = 0
let flushFailures = 0
let lastMetric = null
router.on('metric', (m) => {
  metricCount++
  lastMetric = m
})
router.on('metrics:flush-failed', () => {
  flushFailures++
})
const eventsSince = (i, name) => events.slice(i).filter((e) => e.name === name)

// --- steps ----------------------------------------------------------------------------------

const results = []
const TOTAL = 8

class Skip extends Error {}

async function step(n, title, fn) {
  out()
  out(`${bold(cyan(`[${n}/${TOTAL}]`))} ${bold(title)}`)
  const t0 = performance.now()
  let status = 'ok'
  let detail = ''
  try {
    detail = (await fn()) ?? ''
  } catch (error) {
    if (error instanceof Skip) {
      status = 'skipped'
      detail = error.message
      note(`${SKIP} ${yellow(`skipped: ${error.message}`)}`)
    } else {
      status = 'failed'
      detail = isRouterError(error) ? `${error.code}: ${error.message}` : String(error?.message ?? error)
      note(`${FAIL} ${red(detail)}`)
    }
  }
  results.push({ n, title, status, detail, ms: performance.now() - t0 })
}

function check(condition, message) {
  if (!condition) throw new Error(message)
}

function describe(result) {
  const parts = [
    `${result.model} → ${bold(result.backend)} @ ${host(result.endpoint)}`,
    secs(result.latencyMs),
    `${result.usage.completionTokens} tokens`,
    `${Math.round(result.tokensPerSecond)} tok/s`,
  ]
  if (result.loadMs) parts.push(`cold load ${secs(result.loadMs)}`)
  return parts.join(dim(' · '))
}

function showAnswer(text) {
  for (const l of wrap(text).slice(0, 3)) note(dim(`“ ${l}`))
}

const MAX_TOKENS = 96

// (a) a request routed per the admin records
await step(1, 'A request routed by the admin records', async () => {
  // Without a model and without admin records there is no model to resolve (INVALID_REQUEST):
  // report the admin problem first, it is the cause.
  const route = await router.resolve(userAdminUrl ? undefined : M.ollama).catch((error) => error)
  const info = router.config()
  if (info?.origin !== 'admin') {
    const failed = events.findLast((e) => e.name === 'config:failed')?.payload.error.message
    throw new Error(`no records from the admin: ${failed ?? 'it served an empty list'}`)
  }
  if (route instanceof Error) throw route
  const n = info.records.length
  note(`config: ${n} record${n === 1 ? '' : 's'} from the admin ${dim(`(etag ${info.etag ?? '-'})`)}`)
  const target = route.targets[0]
  check(target !== undefined, `no backend for ${route.model}`)
  note(`${route.model} resolves to ${target.backend} @ ${host(target.endpoint)}`)
  const r = await router.generate({ model: route.model, prompt: PROMPTS.ollama, maxTokens: MAX_TOKENS })
  showAnswer(r.response)
  check(r.backend === target.backend, `answered by ${r.backend}, expected ${target.backend}`)
  note(`${OK} ${describe(r)}`)
  return `${r.backend}, ${secs(r.latencyMs)}`
})

// (b) an MLX record
await step(2, 'An MLX record', async () => {
  const rec = router.config()?.records.find((r) => r.backend_type === 'mlx')
  if (!rec) throw new Skip('your admin has no enabled mlx record')
  note(
    `${rec.model_name} is an mlx record: POST /v1/completions with model "${rec.backend_model ?? rec.model_name}"`,
  )
  const r = await router.generate({ model: rec.model_name, prompt: PROMPTS.mlx, maxTokens: MAX_TOKENS })
  showAnswer(r.response)
  check(r.backend === 'mlx', `answered by ${r.backend}, expected mlx`)
  note(`${OK} ${describe(r)}`)
  return `mlx, ${secs(r.latencyMs)}`
})

// (c) an auto record with MLX stopped falls back to Ollama
await step(3, 'An auto record with the MLX server stopped', async () => {
  if (userAdminUrl) throw new Skip('using your admin API (the demo needs its own auto record)')
  if (userMlxUrl) throw new Skip(`using your MLX server at ${userMlxUrl} (the demo will not stop it)`)
  if (M.auto === M.ollama) admin.setRecords([records[2], records[1]])
  await mlx.stop()
  note(`${dim('•')} MLX stand-in stopped (connections to ${host(mlxUrl)} are refused)`)
  const mark = events.length
  try {
    if (M.auto === M.ollama) await router.refresh()
    const r = await router.generate({ model: M.auto, prompt: PROMPTS.auto, maxTokens: MAX_TOKENS })
    for (const e of eventsSince(mark, 'request:fallback')) {
      const { from, to, code } = e.payload
      note(`${yellow('↪')} event request:fallback  ${from.backend} → ${to.backend}  ${dim(`(${code})`)}`)
    }
    for (const a of r.attempts) {
      const mark2 = a.ok ? OK : FAIL
      note(
        `  attempt ${a.backend.padEnd(6)} @ ${host(a.endpoint)}  ${mark2} ${secs(a.latencyMs)}${a.code ? `  ${dim(a.code)}` : ''}`,
      )
    }
    showAnswer(r.response)
    check(r.backend === 'ollama', `answered by ${r.backend}, expected the Ollama fallback`)
    check(eventsSince(mark, 'request:fallback').length > 0, 'no request:fallback event')
    note(`${OK} ${describe(r)}`)
    return `mlx ✗ → ollama ✓, ${secs(r.latencyMs)}`
  } finally {
    await mlx.listen()
    note(`${dim('•')} MLX stand-in restarted on the same port`)
    if (M.auto === M.ollama) admin.setRecords([records[0], records[1]])
  }
})

// (d) an admin change takes effect after the TTL, without a restart
await step(4, 'An admin change, picked up after the cache TTL', async () => {
  if (userAdminUrl) throw new Skip('using your admin API (the demo will not change your records)')
  if (M.auto === M.ollama) await router.refresh()
  const model = M.ollama
  const before = await router.generate({ model, prompt: PROMPTS.quick, maxTokens: 16 })
  note(`before: ${model} → ${before.backend} @ ${host(before.endpoint)}`)
  const moved = {
    ...ollamaRecord(1),
    backend_type: 'mlx',
    endpoint_url: mlxUrl,
    backend_model: mlxSendModel,
    description: 'moved to MLX',
  }
  admin.setRecords(admin.records.map((r) => (r.model_name === model ? moved : r)))
  const changedAt = performance.now()
  note(`${dim('•')} admin now says ${model} → mlx @ ${host(mlxUrl)} (new ETag); the router is not restarted`)
  const mark = events.length
  const cached = await router.generate({ model, prompt: PROMPTS.quick, maxTokens: 16 })
  note(`right away: ${model} → ${cached.backend} ${dim(`(cached config, TTL ${secs(TTL_MS)})`)}`)
  const fetchedAt = router.config()?.fetchedAt ?? Date.now()
  const wait = Math.max(0, fetchedAt + TTL_MS - Date.now()) + 50
  note(`${dim('•')} waiting ${secs(wait)} for the TTL to run out …`)
  await new Promise((r) => setTimeout(r, wait))
  let after = null
  for (let i = 0; i < 4 && after?.backend !== 'mlx'; i++) {
    after = await router.generate({ model, prompt: PROMPTS.quick, maxTokens: 16 })
    const origin = lastMetric?.config_origin
    const why =
      origin === 'stale' ? 'old config, served while the router revalidates' : `config from the ${origin}`
    note(`then: ${model} → ${after.backend} @ ${host(after.endpoint)}  ${dim(`(${why})`)}`)
    for (const e of eventsSince(mark, 'config:refreshed').filter((e) => !e.shown)) {
      e.shown = true
      const p = e.payload
      note(
        `${cyan('⟳')} event config:refreshed  changed=${p.changed}  records=${p.records}  ${dim(`etag ${p.etag}`)}`,
      )
    }
  }
  check(after?.backend === 'mlx', `still routed to ${after?.backend} after the TTL`)
  check(
    eventsSince(mark, 'config:refreshed').some((e) => e.payload.changed),
    'no config:refreshed event with changed=true',
  )
  note(
    `${OK} ${model} moved from ${before.backend} to mlx ${secs(performance.now() - changedAt)} after the edit`,
  )
  return `${before.backend} → mlx after ${secs(performance.now() - changedAt)}`
})

// (e) a streamed answer printed as it arrives
await step(5, 'A streamed answer, printed as it arrives', async () => {
  const model = userAdminUrl ? router.config()?.records[0]?.model_name : M.ollama
  const stream = router.stream({ model, prompt: PROMPTS.stream, maxTokens: 160 })
  const printer = streamPrinter()
  let chunks = 0
  for await (const chunk of stream) {
    chunks++
    printer.write(chunk.text)
  }
  printer.end()
  const r = await stream.result
  check(chunks > 1, `only ${chunks} chunk(s) arrived`)
  note(
    `${OK} ${chunks} chunks${dim(' · ')}first token after ${secs(r.timeToFirstTokenMs ?? 0)}${dim(' · ')}${describe(r)}`,
  )
  return `${chunks} chunks, TTFT ${secs(r.timeToFirstTokenMs ?? 0)}`
})

// (f) a chat turn: the model calls a tool, the demo runs it, the model answers
await step(6, 'A chat turn with a tool call', async () => {
  const model = userAdminUrl ? router.config()?.records[0]?.model_name : M.ollama
  const messages = [{ role: 'user', content: CHAT_QUESTION }]
  note(`user: ${CHAT_QUESTION}`)
  if (userOllamaUrl || userAdminUrl) {
    // A real model may not support tools (Ollama answers 400): one plain turn instead.
    const r = await router.chat({ model, messages, maxTokens: MAX_TOKENS })
    showAnswer(r.message.content)
    note(`${OK} ${describe(r)}`)
    return `plain turn, ${secs(r.latencyMs)}`
  }
  const tools = [
    {
      name: 'get_weather',
      description: 'Current weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  ]
  const first = await router.chat({ model, messages, tools })
  const call = first.message.toolCalls?.[0]
  check(call !== undefined, 'the model made no tool call')
  note(`assistant calls ${call.name}(${JSON.stringify(call.arguments)}) ${dim(`id ${call.id}`)}`)
  const output = JSON.stringify({ city: call.arguments.city, celsius: 19, sky: 'clear' })
  note(`tool result: ${output}`)
  messages.push(first.message, { role: 'tool', toolCallId: call.id, content: output })
  const stream = router.streamChat({ model, messages, tools })
  let answer = ''
  for await (const chunk of stream) answer += chunk.text
  const r = await stream.result
  note(`assistant: ${answer}`)
  check(answer.includes('19 °C'), `the answer does not use the tool result: ${answer}`)
  const path = r.backend === 'ollama' ? '/api/chat' : '/v1/chat/completions'
  note(`${OK} ${describe(r)} ${dim(`(POST ${path}, two turns)`)}`)
  return `tool call + answer, ${secs(first.latencyMs + r.latencyMs)}`
})

// (g) metric records arriving at the admin
await step(7, 'Metric records arriving at the admin', async () => {
  if (userAdminUrl) {
    // Not our admin: flush by closing the router and report what the sink did.
    await router.close()
    check(flushFailures === 0, `${flushFailures} metric POST(s) failed to reach ${adminUrl}`)
    note(`${OK} ${metricCount} metric records sent to your admin (POST /api/llm-backends/metrics)`)
    return `${metricCount} records sent`
  }
  const deadline = performance.now() + FLUSH_MS * 6
  while (admin.metricsReceived < metricCount && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
  }
  const posts = metricPosts.filter((p) => p.status < 300)
  // The stand-in admin is seed-shaped: ONE record per POST, 422 for an array. The sink's first flush
  // is an array; it learns the shape from that answer and resends the records one by one.
  const rejected = metricPosts.find((p) => p.status === 422)
  if (rejected) {
    note(
      `${dim(`POST #${metricPosts.indexOf(rejected) + 1}`)}  ${`+${secs(rejected.at - demoStart)}`.padStart(8)}  array answered 422: the admin takes one record per POST, so the sink resends them one by one`,
    )
  }
  const shown = posts.length > 8 ? [...posts.slice(0, 3), null, ...posts.slice(-2)] : posts
  for (const p of shown) {
    if (p === null) {
      note(dim('…'))
      continue
    }
    const i = metricPosts.indexOf(p) + 1
    note(
      `${dim(`POST #${i}`)}  ${`+${secs(p.at - demoStart)}`.padStart(8)}  ${p.records} record${p.records === 1 ? '' : 's'}`,
    )
  }
  const last = admin.metrics.at(-1)
  if (last) {
    const sample = {
      model: last.model,
      backend: last.backend,
      latency_seconds: Number(last.latency_seconds.toFixed(3)),
      tokens: last.tokens,
      tokens_per_second: Number(last.tokens_per_second.toFixed(1)),
      time_to_first_token_seconds:
        last.time_to_first_token_seconds === null
          ? null
          : Number(last.time_to_first_token_seconds.toFixed(3)),
      outcome: last.outcome,
      fallback: last.fallback,
      config_origin: last.config_origin,
    }
    note(dim(`last record: ${JSON.stringify(sample)}`))
  }
  check(
    admin.metricsReceived === metricCount,
    `the admin has ${admin.metricsReceived} of ${metricCount} metric records`,
  )
  check(flushFailures === 0, `${flushFailures} metric POST(s) failed`)
  note(
    `${OK} ${posts.length} POSTs, ${admin.metricsReceived} records: every request the router made is accounted for`,
  )
  return `${posts.length} POSTs, ${admin.metricsReceived} records`
})

// (h) per-backend summary from router.stats()
await step(8, 'Per-backend summary (router.stats())', async () => {
  const stats = router
    .stats()
    .sort((a, b) => a.backend.localeCompare(b.backend) || a.model.localeCompare(b.model))
  check(stats.length > 0, 'router.stats() is empty')
  const ms = (v) => (v === null ? '-' : `${Math.round(v)} ms`)
  table(
    ['backend', 'model', 'endpoint', 'requests', 'errors', 'p50', 'p95', 'tok/s'],
    stats.map((s) => [
      s.backend,
      s.model,
      s.endpoint ? host(s.endpoint) : '-',
      String(s.count),
      String(s.errors),
      ms(s.p50LatencyMs),
      ms(s.p95LatencyMs),
      s.avgTokensPerSecond === null ? '-' : s.avgTokensPerSecond.toFixed(1),
    ]),
    'lllrrrrr',
  )
  const requests = stats.reduce((n, s) => n + s.count, 0)
  return `${requests} requests over ${new Set(stats.map((s) => s.backend)).size} backends`
})

// --- wrap up --------------------------------------------------------------------------------

await router.close()
await stopAll()
clearTimeout(watchdog)

out()
out(bold('Summary'))
const mark = { ok: OK, failed: FAIL, skipped: SKIP }
table(
  ['', 'step', 'result', 'time'],
  results.map((r) => [mark[r.status], r.title, r.status === 'ok' ? r.detail : r.status, secs(r.ms)]),
  'lllr',
)
const failed = results.filter((r) => r.status === 'failed').length
const skipped = results.filter((r) => r.status === 'skipped').length
out()
out(
  failed === 0
    ? `${OK} ${green(`demo passed`)} in ${secs(performance.now() - demoStart)}${skipped ? dim(` (${skipped} skipped)`) : ''}`
    : `${FAIL} ${red(`${failed} step${failed === 1 ? '' : 's'} failed`)}`,
)
process.exitCode = failed === 0 ? 0 : 1
