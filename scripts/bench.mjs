// `npm run bench` / `npm run bench:smoke`: client CPU, throughput, latency and memory of the router against
// raw `undici.request`, side by side against the same stand-in backends, plus failover, cold burst,
// config cache hit, import time and bundle size. See bench/README notes at the top of each bench/ file.
//
//   npm run bench                 full run (3 interleaved runs, about 2-3 minutes)
//   npm run bench -- --runs 5     more runs
//   npm run bench -- --profile router-mlx-stream   one scenario under --cpu-prof, top self time
//   npm run bench:smoke           seconds-long; asserts no timings, exits 1 if any scenario errors or answers wrongly
//   npm run bench -- --only router-ollama-stream,router-ollama-stream-request [--runs 3]
//                                 only these load scenarios, interleaved, ratios against the first one
//   npm run bench -- --help       this text and the scenario names
//
// The stand-in server runs in its own process on core 1, every measured client in a fresh process on core 0
// (`taskset`, when available). The bench imports the built package (dist/index.js) like a user would, and
// builds it first when dist/ is missing or older than the sources. Results: .bench/results.json.
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import { buildDist, distIsFresh } from './lib/build.mjs'

const root = resolve(import.meta.dirname, '..')
const args = process.argv.slice(2)
const smoke = args.includes('--smoke')
const runsArg = args.indexOf('--runs')
const profileArg = args.indexOf('--profile')
const onlyArg = args.indexOf('--only')
if (args.includes('--help')) {
  process.stdout.write(
    `${readFileSync(new URL(import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('//'))
      .slice(0, 16)
      .map((l) => l.slice(3))
      .join('\n')}\n\n` +
      'Load scenarios: raw-<ollama|mlx>[-stream|-tokens], router-<ollama|mlx>[-stream|-tokens][-nometrics]\n' +
      '  -request   router over plain undici.request() instead of the dispatch-handler transport\n' +
      '  -noframes  stream decoders (Ollama and OpenAI-compatible) without the learned frame-shape fast path\n' +
      '  -nolimits  streams without the first-token and idle timers\n' +
      'Chat scenarios: raw-<ollama|mlx>-chat[-stream], router-<ollama|mlx>-chat[-stream] (router.chat / streamChat)\n' +
      'Service scenarios (also run at c=16): service-<ollama|mlx>[-stream|-tokens][-single][-nometrics]: every\n' +
      '  option at its default (admin config, default metrics sink); -single: the admin takes one record per POST\n',
  )
  process.exit(0)
}
const RUNS = smoke ? 1 : runsArg !== -1 ? Math.max(1, Number(args[runsArg + 1]) || 3) : 3
const SIZE_BUDGET = 15 * 1024

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`)

// --- build ----------------------------------------------------------------------------------

function ensureBuilt() {
  if (distIsFresh()) return
  log('dist/ is missing or older than src/: building with tsup')
  if (!buildDist().ok) {
    log('build failed: fix `npx tsup` first')
    process.exit(1)
  }
}

// --- processes ------------------------------------------------------------------------------

const cores = os.availableParallelism()
const hasTaskset =
  process.platform === 'linux' && spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0
const pinned = hasTaskset && cores >= 2

function command(core, nodeArgs) {
  if (pinned) return ['taskset', ['-c', String(core), process.execPath, ...nodeArgs]]
  return [process.execPath, nodeArgs]
}

function startServer() {
  const [cmd, argv] = command(1, [join(root, 'bench/backend-server.mjs')])
  const child = spawn(cmd, argv, { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolvePorts, reject) => {
    let buf = ''
    child.on('error', reject)
    child.on('exit', (code) => reject(new Error(`bench server exited early (${code})`)))
    child.stdout.on('data', (d) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl !== -1) resolvePorts({ child, ports: JSON.parse(buf.slice(0, nl)) })
    })
  })
}

/** Runs one script in a fresh process on core 0 and returns the JSON of its last stdout line. */
function runChild(nodeArgs, timeoutMs = 180_000) {
  const [cmd, argv] = command(0, nodeArgs)
  return new Promise((done) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err += d
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      const line = out.trim().split('\n').pop() ?? ''
      try {
        done(JSON.parse(line))
      } catch {
        done({
          errors: 1,
          firstError: `child exited ${code} without a result: ${err.slice(-2000) || out.slice(-2000)}`,
        })
      }
    })
  })
}

const runJob = (job) => runChild(['--expose-gc', join(root, 'bench/client.mjs'), JSON.stringify(job)])

/**
 * `--profile <scenario>`: runs one load scenario under `node --cpu-prof` (profile in .bench/profiles/) and
 * prints the functions with the most self time, so a regression can be traced without other tools.
 */
async function profile(name) {
  const scenario = SCENARIOS.find((s) => s.name === name)
  if (!scenario) {
    log(`unknown scenario ${name}; one of: ${SCENARIOS.map((s) => s.name).join(', ')}`)
    process.exit(1)
  }
  const dir = join(root, '.bench/profiles')
  mkdirSync(dir, { recursive: true })
  const before = new Set(readdirSync(dir))
  const size = sizeFor(name, false)
  // `--profile-c64`: only the c=64 window is long (c=1 stays at its warmup length), so the profile is that scenario.
  const c64Only = args.includes('--profile-c64')
  const job = {
    mode: 'load',
    scenario: name,
    ports,
    dist,
    ...size,
    n1: c64Only ? 1 : size.n1 * 3,
    n64: size.n64 * (c64Only ? 6 : 3),
  }
  const r = await runChild([
    '--expose-gc',
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    join(root, 'bench/client.mjs'),
    JSON.stringify(job),
  ])
  log(
    `${name}: c1 ${fmt(r.c1?.cpuUsPerOp)} us/req, c64 ${fmt(r.c64?.cpuUsPerOp)} us/req${r.errors ? `, ${r.errors} errors: ${r.firstError}` : ''}`,
  )
  const file = readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.cpuprofile'))
  if (!file) return
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8'))
  const interval = (prof.endTime - prof.startTime) / prof.samples.length
  const self = new Map()
  let total = 0
  // Self time per function, and per source line (`positionTicks`: where inside the function the samples fell).
  const lines = new Map()
  for (const node of prof.nodes) {
    const f = node.callFrame
    const file = f.url ? f.url.replace(/^.*\/(node_modules\/|\.bench\/|bench\/)/, '$1') : ''
    const where = file ? `${file}:${f.lineNumber + 1}` : ''
    const key = `${f.functionName || '(anonymous)'} ${where}`
    const us = (node.hitCount ?? 0) * interval
    total += us
    self.set(key, (self.get(key) ?? 0) + us)
    for (const t of node.positionTicks ?? []) {
      const lk = `${file || f.functionName || '(native)'}:${t.line}  (${f.functionName || '(anonymous)'})`
      lines.set(lk, (lines.get(lk) ?? 0) + t.ticks * interval)
    }
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)
  console.log(`\nTop self time, ${join('.bench/profiles', file)} (${(total / 1000).toFixed(0)} ms sampled)\n`)
  for (const [key, us] of top) console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}`)
  console.log('\nTop self time per line\n')
  for (const [key, us] of [...lines.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30))
    console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}`)
}

// --- plan -----------------------------------------------------------------------------------

const SCENARIOS = [
  { name: 'raw-ollama', label: 'raw undici.request, Ollama JSON', base: 'raw-ollama', stream: false },
  { name: 'router-ollama', label: 'router.generate, ollama record', base: 'raw-ollama', stream: false },
  {
    name: 'router-ollama-nometrics',
    label: 'router.generate, ollama, metrics off',
    base: 'raw-ollama',
    stream: false,
  },
  { name: 'raw-mlx', label: 'raw undici.request, OpenAI JSON', base: 'raw-mlx', stream: false },
  { name: 'router-mlx', label: 'router.generate, mlx record', base: 'raw-mlx', stream: false },
  {
    name: 'raw-ollama-stream',
    label: 'raw undici.request, Ollama NDJSON (body.text())',
    base: 'raw-ollama-stream',
    stream: true,
  },
  {
    name: 'router-ollama-stream',
    label: 'router.stream, ollama record',
    base: 'raw-ollama-stream',
    stream: true,
  },
  {
    name: 'raw-mlx-stream',
    label: 'raw undici.request, OpenAI SSE (body.text())',
    base: 'raw-mlx-stream',
    stream: true,
  },
  { name: 'router-mlx-stream', label: 'router.stream, mlx record', base: 'raw-mlx-stream', stream: true },
  {
    name: 'raw-ollama-tokens',
    label: 'raw undici.request, Ollama NDJSON, 1 write/token',
    base: 'raw-ollama-tokens',
    stream: true,
  },
  {
    name: 'router-ollama-tokens',
    label: 'router.stream, ollama, 1 write/token',
    base: 'raw-ollama-tokens',
    stream: true,
  },
  {
    name: 'raw-mlx-tokens',
    label: 'raw undici.request, OpenAI SSE, 1 write/token',
    base: 'raw-mlx-tokens',
    stream: true,
  },
  {
    name: 'router-mlx-tokens',
    label: 'router.stream, mlx, 1 write/token',
    base: 'raw-mlx-tokens',
    stream: true,
  },
]

// Chat (issue 12): router.chat / router.streamChat against raw undici with the same body, whole answer in one write.
for (const backend of ['ollama', 'mlx']) {
  const wire = backend === 'ollama' ? 'Ollama /api/chat' : 'OpenAI /v1/chat/completions'
  SCENARIOS.push(
    {
      name: `raw-${backend}-chat`,
      label: `raw undici.request, ${wire} JSON`,
      base: `raw-${backend}-chat`,
      stream: false,
    },
    {
      name: `router-${backend}-chat`,
      label: `router.chat, ${backend} record`,
      base: `raw-${backend}-chat`,
      stream: false,
    },
    {
      name: `raw-${backend}-chat-stream`,
      label: `raw undici.request, ${wire} stream (body.text())`,
      base: `raw-${backend}-chat-stream`,
      stream: true,
    },
    {
      name: `router-${backend}-chat-stream`,
      label: `router.streamChat, ${backend} record`,
      base: `raw-${backend}-chat-stream`,
      stream: true,
    },
  )
}

// The service family: the router as a service runs it (admin config, default metrics sink posting to the
// admin), at concurrency 1, 16 and 64. `-single` is seed 004's admin (one record per POST, 422 on an array).
const SERVICE = [
  { name: 'service-ollama', label: 'service: generate, sink batching', base: 'raw-ollama', stream: false },
  {
    name: 'service-ollama-nometrics',
    label: 'service: generate, metrics: false',
    base: 'raw-ollama',
    stream: false,
  },
  {
    name: 'service-ollama-single',
    label: 'service: generate, admin takes 1 record/POST',
    base: 'raw-ollama',
    stream: false,
  },
  {
    name: 'service-ollama-stream',
    label: 'service: stream, sink batching',
    base: 'raw-ollama-stream',
    stream: true,
  },
  {
    name: 'service-ollama-stream-nometrics',
    label: 'service: stream, metrics: false',
    base: 'raw-ollama-stream',
    stream: true,
  },
  {
    name: 'service-ollama-stream-single',
    label: 'service: stream, admin takes 1 record/POST',
    base: 'raw-ollama-stream',
    stream: true,
  },
]
SCENARIOS.push(...SERVICE)
const isService = (name) => name.startsWith('service-')

const SIZES = smoke
  ? { json: { warmup: 20, n1: 40, n16: 100, n64: 200 }, stream: { warmup: 10, n1: 20, n16: 50, n64: 100 } }
  : {
      json: { warmup: 2000, n1: 3000, n16: 6000, n64: 12_000 },
      stream: { warmup: 500, n1: 1000, n16: 2000, n64: 3000 },
    }
/** Load job sizes: c=16 only for the service family and the raw scenarios it is compared with. */
function sizeFor(name, withC16) {
  const { n16, ...size } = name.includes('-stream') || name.includes('-tokens') ? SIZES.stream : SIZES.json
  return withC16 ? { ...size, n16 } : size
}
const SERVICE_BASES = new Set(SERVICE.map((s) => s.base))
const FAILOVER = smoke ? { warmup: 3, pairs: 10 } : { warmup: 100, pairs: 400 }
const BURST = smoke ? 1000 : 10_000
const CACHE = smoke ? { warmup: 100, n: 1000 } : { warmup: 20_000, n: 200_000 }

// --- stats ----------------------------------------------------------------------------------

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}
function spread(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x))
  if (v.length === 0) return { median: null, min: null, max: null, runs: values }
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), runs: values }
}
/** Ratios per run (runs are interleaved, so each pair saw the same machine state), then their spread. */
function pairedRatio(values, bases) {
  return spread(values.map((v, i) => (typeof v === 'number' && bases[i] ? v / bases[i] : null)))
}

// --- formatting -----------------------------------------------------------------------------

const fmt = (x, digits = 1) => (x === null || x === undefined ? '—' : x.toFixed(digits))
const num = (x) => (x === null || x === undefined ? '—' : Math.round(x).toLocaleString('en-US'))
function cell(s, f = fmt) {
  if (s.median === null) return '—'
  if (RUNS === 1 || s.min === s.max) return f(s.median)
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`
}
const ratio = (s) => (s.median === null ? '—' : `${s.median.toFixed(2)}x`)

function table(headers, rows) {
  const lines = [
    `| ${headers.join(' | ')} |`,
    `|${headers.map((_h, i) => (i === 0 ? ':--' : '--:')).join('|')}|`,
  ]
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`)
  return lines.join('\n')
}

// --- main -----------------------------------------------------------------------------------

ensureBuilt()
// Measure a private copy: another `tsup` run (clean: true) must not pull dist/ away mid-bench. From .bench/pkg/
// the package's own imports (undici, zod, ...) still resolve to the project's node_modules.
// All of dist/: the entry imports its implementation from dist/lib/.
const pkgDir = join(root, '.bench/pkg')
rmSync(pkgDir, { recursive: true, force: true })
cpSync(join(root, 'dist'), pkgDir, { recursive: true })
const benchEntry = join(pkgDir, 'index.js')
const dist = pathToFileURL(benchEntry).href
const { child: server, ports } = await startServer()
const stopServer = () => {
  if (server.exitCode === null) server.kill('SIGTERM')
}
process.on('exit', stopServer)

if (profileArg !== -1) {
  await profile(args[profileArg + 1])
  stopServer()
  process.exit(0)
}

/**
 * `--only a,b,c`: just these load scenarios, RUNS interleaved rounds (order rotated per round), then
 * CPU/request and req/s per scenario with each round's ratio against the first scenario of the list.
 */
async function compare(names) {
  const withC16 = names.some(isService)
  const rounds = []
  for (let run = 0; run < RUNS; run++) {
    const results = {}
    const order = names.map((_, i) => names[(i + run) % names.length])
    for (const name of order) {
      const r = await runJob({ mode: 'load', scenario: name, ports, dist, ...sizeFor(name, withC16) })
      if (r.errors) log(`  ${name}: ${r.errors} errors: ${r.firstError}`)
      results[name] = r
      log(
        `  run ${run + 1} ${name.padEnd(34)} c1 ${fmt(r.c1?.cpuUsPerOp)}${withC16 ? `  c16 ${fmt(r.c16?.cpuUsPerOp)}` : ''}  c64 ${fmt(r.c64?.cpuUsPerOp)} us/req ${num(r.c64?.opsPerSec)} req/s`,
      )
    }
    rounds.push(results)
  }
  // A `-request` / `-noframes` variant is compared with its default-path scenario, a router scenario
  // with its raw undici one, when those ran too; anything else with the first scenario.
  const baseOf = (name) => {
    const plain = name.replace(/-(request|noframes|nolimits)/g, '')
    if (plain !== name && names.includes(plain)) return plain
    const raw = name.replace(/^(router|service)-/, 'raw-').replace(/-(nometrics|single)/g, '')
    return raw !== name && names.includes(raw) ? raw : names[0]
  }
  const col = (name, f) => rounds.map((r) => f(r[name]))
  const rows = names.map((name) => {
    const base = baseOf(name)
    const cpu1 = col(name, (r) => r?.c1?.cpuUsPerOp)
    const cpu16 = col(name, (r) => r?.c16?.cpuUsPerOp)
    const cpu64 = col(name, (r) => r?.c64?.cpuUsPerOp)
    const rps64 = col(name, (r) => r?.c64?.opsPerSec)
    const rt = (values, f) => {
      const s = pairedRatio(values, col(base, f))
      return name === base ? 'base' : `${ratio(s)} (${fmt(s.min, 2)}–${fmt(s.max, 2)}) vs ${base}`
    }
    return [
      name,
      cell(spread(cpu1)),
      rt(cpu1, (r) => r?.c1?.cpuUsPerOp),
      ...(withC16 ? [cell(spread(cpu16)), rt(cpu16, (r) => r?.c16?.cpuUsPerOp)] : []),
      cell(spread(cpu64)),
      rt(cpu64, (r) => r?.c64?.cpuUsPerOp),
      cell(spread(rps64), num),
      rt(rps64, (r) => r?.c64?.opsPerSec),
    ]
  })
  console.log(
    `\n${RUNS} interleaved run(s), median (min–max); ratios per run against the named base, then median (min–max)\n`,
  )
  console.log(
    table(
      [
        'scenario',
        'CPU µs/req c=1',
        'ratio',
        ...(withC16 ? ['CPU µs/req c=16', 'ratio'] : []),
        'CPU µs/req c=64',
        'ratio',
        'req/s c=64',
        'ratio',
      ],
      rows,
    ),
  )
}

if (onlyArg !== -1) {
  await compare(args[onlyArg + 1].split(',').filter(Boolean))
  stopServer()
  process.exit(0)
}

const started = performance.now()
const perRun = []
const failures = []
const noteFailure = (what, result) => {
  if (result.errors > 0 || result.firstError)
    failures.push(`${what}: ${result.errors} error(s); first: ${result.firstError}`)
}

log(
  `bench: ${smoke ? 'smoke' : `${RUNS} runs`}, client on core 0, server on core 1 (${pinned ? 'taskset' : 'not pinned: taskset unavailable or 1 core'})`,
)
for (let run = 0; run < RUNS; run++) {
  const results = {}
  // Rotate the order each run so no scenario always runs first or last.
  const order = SCENARIOS.map((_, i) => SCENARIOS[(i + run * 2) % SCENARIOS.length])
  for (const s of order) {
    const withC16 = isService(s.name) || SERVICE_BASES.has(s.name)
    const r = await runJob({ mode: 'load', scenario: s.name, ports, dist, ...sizeFor(s.name, withC16) })
    noteFailure(`${s.name} (run ${run + 1})`, r)
    // Every request's metric record must have reached the admin by close(), in either wire format.
    if (
      (s.name.startsWith('router-') || isService(s.name)) &&
      !s.name.endsWith('-nometrics') &&
      r.metricsRecords !== r.totalOps
    ) {
      failures.push(
        `${s.name} (run ${run + 1}): metrics sink posted ${r.metricsRecords} records for ${r.totalOps} requests`,
      )
    }
    results[s.name] = r
    log(
      `  run ${run + 1} ${s.name.padEnd(24)} c1 ${fmt(r.c1?.cpuUsPerOp)} us/req  c64 ${fmt(r.c64?.cpuUsPerOp)} us/req ${num(r.c64?.opsPerSec)} req/s  server ${fmt((r.c64?.serverCpuShare ?? 0) * 100, 0)}%`,
    )
  }
  results.failover = await runJob({ mode: 'failover', ports, dist, ...FAILOVER })
  noteFailure(`failover (run ${run + 1})`, results.failover)
  results.burstRaw = await runJob({ mode: 'burst', variant: 'raw', ports, dist, n: BURST })
  noteFailure(`burst raw (run ${run + 1})`, results.burstRaw)
  results.burstRouter = await runJob({ mode: 'burst', variant: 'router', ports, dist, n: BURST })
  noteFailure(`burst router (run ${run + 1})`, results.burstRouter)
  results.cache = await runJob({ mode: 'cache', ports, dist, ...CACHE })
  noteFailure(`cache (run ${run + 1})`, results.cache)
  results.importDist = await runChild([join(root, 'bench/import-time.mjs'), dist])
  noteFailure(`import dist (run ${run + 1})`, results.importDist)
  results.importUndici = await runChild([join(root, 'bench/import-time.mjs'), 'undici'])
  noteFailure(`import undici (run ${run + 1})`, results.importUndici)
  log(
    `  run ${run + 1} failover +${fmt(results.failover.refused?.addedMs, 3)} ms, circuit-open connects ${results.failover.circuitOpen?.connectionAttemptsWhileOpen}, burst ${fmt(results.burstRouter.wallMs, 0)} ms / ${results.burstRouter.adminRequests} admin request(s), resolve ${fmt(results.cache.usPerCall, 2)} us`,
  )
  perRun.push(results)
}
stopServer()

// Size of the main entry as users bundle it: dependencies external, minified, gzipped.
let sizeBytes = null
let minBytes = null
try {
  const { build } = await import('esbuild')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const bundled = await build({
    entryPoints: [benchEntry],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'node',
    write: false,
    external: Object.keys(pkg.dependencies ?? {}),
  })
  minBytes = bundled.outputFiles[0].contents.length
  sizeBytes = gzipSync(bundled.outputFiles[0].contents).length
} catch (error) {
  failures.push(`size: ${error}`)
}

// --- summary --------------------------------------------------------------------------------

const pick = (name, f) => perRun.map((r) => f(r[name]))
const METRICS = {
  cpu1: (r) => r?.c1?.cpuUsPerOp,
  rps1: (r) => r?.c1?.opsPerSec,
  p50_1: (r) => r?.c1?.p50Ms,
  p99_1: (r) => r?.c1?.p99Ms,
  cpu16: (r) => r?.c16?.cpuUsPerOp,
  rps16: (r) => r?.c16?.opsPerSec,
  cpu64: (r) => r?.c64?.cpuUsPerOp,
  rps64: (r) => r?.c64?.opsPerSec,
  p50_64: (r) => r?.c64?.p50Ms,
  p99_64: (r) => r?.c64?.p99Ms,
  rss: (r) => r?.maxRssMb,
  server64: (r) => r?.c64?.serverCpuShare,
}
const summary = {}
for (const s of SCENARIOS) {
  const entry = { label: s.label, baseline: s.base }
  for (const [k, f] of Object.entries(METRICS)) {
    entry[k] = spread(pick(s.name, f))
    entry[`${k}Ratio`] = pairedRatio(pick(s.name, f), pick(s.base, f))
  }
  summary[s.name] = entry
}
const metricsOnOff = {
  cpu1: pairedRatio(pick('router-ollama', METRICS.cpu1), pick('router-ollama-nometrics', METRICS.cpu1)),
  cpu64: pairedRatio(pick('router-ollama', METRICS.cpu64), pick('router-ollama-nometrics', METRICS.cpu64)),
  rps64: pairedRatio(pick('router-ollama', METRICS.rps64), pick('router-ollama-nometrics', METRICS.rps64)),
}
// Service family: metrics on vs off, per concurrency and shape (batching admin and one-record-per-POST admin).
const serviceOnOff = {}
for (const shape of ['', '-stream']) {
  for (const admin of ['', '-single']) {
    const on = `service-ollama${shape}${admin}`
    const off = `service-ollama${shape}-nometrics`
    serviceOnOff[on] = Object.fromEntries(
      ['cpu1', 'cpu16', 'cpu64', 'rps64'].map((k) => [
        k,
        pairedRatio(pick(on, METRICS[k]), pick(off, METRICS[k])),
      ]),
    )
  }
}
const postsPerRequest = Object.fromEntries(
  SERVICE.filter((s) => !s.name.endsWith('-nometrics')).map((s) => [
    s.name,
    spread(perRun.map((r) => (r[s.name]?.metricsPosts ?? 0) / (r[s.name]?.totalOps || 1))),
  ]),
)
const failover = {
  directP50Ms: spread(perRun.map((r) => r.failover.refused?.directP50Ms)),
  refusedP50Ms: spread(perRun.map((r) => r.failover.refused?.failoverP50Ms)),
  refusedAddedMs: spread(perRun.map((r) => r.failover.refused?.addedMs)),
  circuitOpenAddedMs: spread(perRun.map((r) => r.failover.circuitOpen?.addedMs)),
  circuitOpenConnectionAttempts: perRun.map((r) => r.failover.circuitOpen?.connectionAttemptsWhileOpen),
}
const burst = {
  n: BURST,
  rawWallMs: spread(perRun.map((r) => r.burstRaw.wallMs)),
  routerWallMs: spread(perRun.map((r) => r.burstRouter.wallMs)),
  wallRatio: pairedRatio(
    perRun.map((r) => r.burstRouter.wallMs),
    perRun.map((r) => r.burstRaw.wallMs),
  ),
  rawCpuUsPerOp: spread(perRun.map((r) => r.burstRaw.cpuUsPerOp)),
  routerCpuUsPerOp: spread(perRun.map((r) => r.burstRouter.cpuUsPerOp)),
  routerRssMb: spread(perRun.map((r) => r.burstRouter.maxRssMb)),
  adminRequests: perRun.map((r) => r.burstRouter.adminRequests),
}
const cache = {
  resolveUs: spread(perRun.map((r) => r.cache.usPerCall)),
  shareOfBaselineCpu: pairedRatio(
    perRun.map((r) => r.cache.cpuUsPerCall),
    pick('raw-ollama', METRICS.cpu1),
  ),
}
const importTime = {
  distMs: spread(perRun.map((r) => r.importDist.ms)),
  undiciMs: spread(perRun.map((r) => r.importUndici.ms)),
  ratio: pairedRatio(
    perRun.map((r) => r.importDist.ms),
    perRun.map((r) => r.importUndici.ms),
  ),
}

for (const r of perRun) {
  if (r.burstRouter.adminRequests !== 1)
    failures.push(
      `burst: ${r.burstRouter.adminRequests} admin requests for ${BURST} cold calls (expected exactly 1)`,
    )
  if (r.failover.circuitOpen?.connectionAttemptsWhileOpen !== 0)
    failures.push(
      `circuit open: ${r.failover.circuitOpen?.connectionAttemptsWhileOpen} connection attempts (expected 0)`,
    )
}

const m = (s) => s.median
const targets = [
  ['CPU/request, generate (ollama, c=1)', m(summary['router-ollama'].cpu1Ratio), '<= 1.10x', (x) => x <= 1.1],
  [
    'CPU/request, generate (ollama, c=64)',
    m(summary['router-ollama'].cpu64Ratio),
    '<= 1.10x',
    (x) => x <= 1.1,
  ],
  ['CPU/request, generate (mlx, c=1)', m(summary['router-mlx'].cpu1Ratio), '<= 1.10x', (x) => x <= 1.1],
  ['CPU/request, generate (mlx, c=64)', m(summary['router-mlx'].cpu64Ratio), '<= 1.10x', (x) => x <= 1.1],
  ['req/s at c=64 (ollama)', m(summary['router-ollama'].rps64Ratio), '>= 0.95x', (x) => x >= 0.95],
  ['req/s at c=64 (mlx)', m(summary['router-mlx'].rps64Ratio), '>= 0.95x', (x) => x >= 0.95],
  ['CPU/stream (ollama, c=1)', m(summary['router-ollama-stream'].cpu1Ratio), '<= 1.20x', (x) => x <= 1.2],
  ['CPU/stream (ollama, c=64)', m(summary['router-ollama-stream'].cpu64Ratio), '<= 1.20x', (x) => x <= 1.2],
  ['CPU/stream (mlx, c=1)', m(summary['router-mlx-stream'].cpu1Ratio), '<= 1.20x', (x) => x <= 1.2],
  ['CPU/stream (mlx, c=64)', m(summary['router-mlx-stream'].cpu64Ratio), '<= 1.20x', (x) => x <= 1.2],
  [
    'CPU/stream, 1 write/token (ollama, c=1)',
    m(summary['router-ollama-tokens'].cpu1Ratio),
    '<= 1.20x',
    (x) => x <= 1.2,
  ],
  [
    'CPU/stream, 1 write/token (mlx, c=1)',
    m(summary['router-mlx-tokens'].cpu1Ratio),
    '<= 1.20x',
    (x) => x <= 1.2,
  ],
  ...['cpu1', 'cpu16', 'cpu64'].map((k) => [
    `service: CPU/request (c=${k.slice(3)})`,
    m(summary['service-ollama'][`${k}Ratio`]),
    '<= 1.10x',
    (x) => x <= 1.1,
  ]),
  ['service: req/s at c=64', m(summary['service-ollama'].rps64Ratio), '>= 0.95x', (x) => x >= 0.95],
  ...['cpu1', 'cpu16', 'cpu64'].map((k) => [
    `service: CPU/stream (c=${k.slice(3)})`,
    m(summary['service-ollama-stream'][`${k}Ratio`]),
    '<= 1.20x',
    (x) => x <= 1.2,
  ]),
  ...['service-ollama', 'service-ollama-stream'].flatMap((name) =>
    ['cpu1', 'cpu64'].map((k) => [
      `service: metrics on vs off, ${name.includes('stream') ? 'stream' : 'generate'} CPU (c=${k.slice(3)})`,
      m(serviceOnOff[name][k]),
      '<= 1.05x',
      (x) => x <= 1.05,
    ]),
  ),
  ['metrics on vs off, CPU (c=1)', m(metricsOnOff.cpu1), '<= 1.05x', (x) => x <= 1.05],
  ['metrics on vs off, CPU (c=64)', m(metricsOnOff.cpu64), '<= 1.05x', (x) => x <= 1.05],
  ['failover, refused port: added p50', m(failover.refusedAddedMs), '< 5 ms', (x) => x < 5],
  [
    'circuit open: connection attempts',
    Math.max(...failover.circuitOpenConnectionAttempts.map((x) => x ?? 1)),
    '= 0',
    (x) => x === 0,
  ],
  [
    `cold burst of ${num(BURST)}: admin requests`,
    Math.max(...burst.adminRequests.map((x) => x ?? 99)),
    '= 1',
    (x) => x === 1,
  ],
  ['main entry min+gz (bytes)', sizeBytes, `<= ${SIZE_BUDGET}`, (x) => x <= SIZE_BUDGET],
].map(([name, value, target, ok]) => ({
  name,
  value,
  target,
  met: value !== null && value !== undefined && ok(value),
}))

const undiciVersion = JSON.parse(readFileSync(join(root, 'node_modules/undici/package.json'), 'utf8')).version
const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  undici: undiciVersion,
  os: `${os.type()} ${os.release()}`,
  pinned,
}

// --- print ----------------------------------------------------------------------------------

const rowsFor = (c) =>
  SCENARIOS.filter((s) => !isService(s.name)).map((s) => {
    const e = summary[s.name]
    const base = s.base === s.name
    return [
      e.label,
      cell(e[`cpu${c}`]),
      base ? 'base' : ratio(e[`cpu${c}Ratio`]),
      cell(e[`rps${c}`], num),
      base ? 'base' : ratio(e[`rps${c}Ratio`]),
      cell(e[`p50_${c}`], (x) => x.toFixed(3)),
      cell(e[`p99_${c}`], (x) => x.toFixed(3)),
      ...(c === 64 ? [cell(e.rss, (x) => x.toFixed(0)), fmt(e.server64.median * 100, 0)] : []),
    ]
  })
const H = ['scenario', 'CPU µs/req', 'ratio', 'req/s', 'ratio', 'p50 ms', 'p99 ms']
let report = ''
report += `Machine: ${machine.cpu}, ${cores} cores, ${machine.memGiB} GiB, ${machine.os}; Node ${machine.node}, undici ${undiciVersion}; `
report += `client on core 0, server on core 1${pinned ? ' (taskset)' : ' (NOT pinned)'}; ${RUNS} interleaved run(s): median (min–max).\n\n`
report += `Concurrency 1\n\n${table(H, rowsFor(1))}\n\n`
report += `Concurrency 64\n\n${table([...H, 'peak RSS MB', 'server CPU %'], rowsFor(64))}\n\n`
const serviceRows = [...new Set(SERVICE.map((s) => s.base)), ...SERVICE.map((s) => s.name)].map((name) => {
  const e = summary[name]
  const base = e.baseline === name
  const r = (k) => (base ? 'base' : ratio(e[`${k}Ratio`]))
  const onOff = serviceOnOff[name]
  return [
    name,
    cell(e.cpu1),
    r('cpu1'),
    cell(e.cpu16),
    r('cpu16'),
    cell(e.cpu64),
    r('cpu64'),
    cell(e.rps64, num),
    r('rps64'),
    onOff ? `${ratio(onOff.cpu1)} / ${ratio(onOff.cpu16)} / ${ratio(onOff.cpu64)}` : '—',
    postsPerRequest[name] ? fmt(postsPerRequest[name].median, 3) : '—',
  ]
})
report += `Service (admin config, default metrics sink posting to the admin; ratios vs raw undici)\n\n${table(
  [
    'scenario',
    'CPU µs/req c=1',
    'ratio',
    'c=16',
    'ratio',
    'c=64',
    'ratio',
    'req/s c=64',
    'ratio',
    'metrics on/off CPU c=1/16/64',
    'POSTs/req',
  ],
  serviceRows,
)}\n\n`
report += `${table(
  ['other', 'value', 'compared with', 'ratio'],
  [
    [
      'metrics sink on vs off (CPU/req c=1 / c=64)',
      `${ratio(metricsOnOff.cpu1)} / ${ratio(metricsOnOff.cpu64)}`,
      'router, metrics: false',
      '—',
    ],
    [
      'failover, MLX port refused (auto record), added p50',
      `${cell(failover.refusedAddedMs, (x) => x.toFixed(3))} ms`,
      `direct to Ollama p50 ${cell(failover.directP50Ms, (x) => x.toFixed(3))} ms`,
      ratio(
        pairedRatio(
          perRun.map((r) => r.failover.refused?.failoverP50Ms),
          perRun.map((r) => r.failover.refused?.directP50Ms),
        ),
      ),
    ],
    [
      'circuit open: connection attempts / added p50',
      `${failover.circuitOpenConnectionAttempts.join(', ')} / ${cell(failover.circuitOpenAddedMs, (x) => x.toFixed(3))} ms`,
      'direct to Ollama',
      '—',
    ],
    [
      `cold burst, ${num(BURST)} concurrent generate() on a fresh router`,
      `${cell(burst.routerWallMs, num)} ms, ${burst.adminRequests.join(', ')} admin request(s)`,
      `raw undici ${cell(burst.rawWallMs, num)} ms`,
      ratio(burst.wallRatio),
    ],
    [
      'config cache hit: router.resolve()',
      `${cell(cache.resolveUs, (x) => x.toFixed(2))} µs`,
      'baseline CPU/request (c=1)',
      ratio(cache.shareOfBaselineCpu),
    ],
    [
      'import dist/index.js (fresh process)',
      `${cell(importTime.distMs)} ms`,
      `import undici ${cell(importTime.undiciMs)} ms`,
      ratio(importTime.ratio),
    ],
    [
      'main entry, min+gz (deps external)',
      `${sizeBytes === null ? '—' : (sizeBytes / 1024).toFixed(1)} kB (${minBytes === null ? '—' : (minBytes / 1024).toFixed(1)} kB min)`,
      `budget ${SIZE_BUDGET / 1024} kB`,
      sizeBytes === null ? '—' : `${(sizeBytes / SIZE_BUDGET).toFixed(2)}x`,
    ],
  ],
)}\n\n`
report += `${table(
  ['target', 'measured', 'target', 'met'],
  targets.map((t) => [
    t.name,
    typeof t.value === 'number'
      ? t.name.includes('bytes') || Number.isInteger(t.value)
        ? String(t.value)
        : t.value.toFixed(3)
      : '—',
    t.target,
    t.met ? 'yes' : 'NO',
  ]),
)}\n`

console.log(report)
const elapsed = (performance.now() - started) / 1000
mkdirSync(join(root, '.bench'), { recursive: true })
const file = join(root, '.bench', smoke ? 'results-smoke.json' : 'results.json')
writeFileSync(
  file,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      mode: smoke ? 'smoke' : 'full',
      runs: RUNS,
      elapsedSec: elapsed,
      machine,
      sizes: { ...SIZES, failover: FAILOVER, burst: BURST, cache: CACHE },
      summary,
      metricsOnOff,
      serviceOnOff,
      postsPerRequest,
      failover,
      burst,
      cache,
      importTime,
      size: { minBytes, minGzBytes: sizeBytes, budget: SIZE_BUDGET },
      targets,
      failures,
      perRun,
      report,
    },
    null,
    2,
  )}\n`,
)
log(`wrote ${file} (${elapsed.toFixed(0)} s)`)

if (failures.length > 0) {
  log(`\n${failures.length} failure(s):`)
  for (const f of failures) log(`  - ${f}`)
  process.exit(1)
}
if (smoke) log('bench smoke passed (no timings asserted)')
