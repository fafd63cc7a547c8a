// Checks the package as users get it: `npm pack` from a tree without dist/ (the prepack script must
// build it), publint and are-the-types-wrong on that tarball, the size budget, and the tarball installed
// into a scratch project: first without msw (main entry and ./testing, import and require; ./testing/msw
// must fail naming msw), then with msw (./testing/msw against a router), and on an older Node than
// `engines` when the machine has one (the version error, not undici's).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { findOldNode } from './lib/old-node.mjs'

const root = resolve(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
// The goal is 15 kB (issue 16). The CI budget is the current size plus a little headroom, so growth is caught
// (see README, Performance): 28.0 kB after issues 10-11 and the ./sinks split (budget 28.5 kB); 58.0 kB after
// chat, embeddings, the other admin schemas, pools, member health, limits and the fleet store (issues 12-15).
const SIZE_BUDGET = 60 * 1024
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts })
const npmInstall = (cwd, specs) =>
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...specs], { cwd })

/** Runs `node -e code` in `cwd`; returns its stdout, or throws with everything it printed. */
function nodeEval(node, cwd, type, code) {
  const r = spawnSync(node, [`--input-type=${type}`, '-e', code], { cwd, encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`${node} (${type}) exited ${r.status}:\n${r.stdout}${r.stderr}`)
  return r.stdout.trim()
}
function expectOutput(label, out, pattern) {
  if (!pattern.test(out)) throw new Error(`${label}: expected ${pattern}, got:\n${out}`)
  console.log(`${label}: ${out.split('\n')[0]}`)
}

const scratch = mkdtempSync(join(tmpdir(), 'llm-router-smoke-'))
try {
  console.log('\n== npm pack from a tree without dist/ (prepack builds it)')
  rmSync(join(root, 'dist'), { recursive: true, force: true })
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', scratch], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .trim()
    .split('\n')
    .pop()
  const tarball = join(scratch, packed)
  const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n')
  const unexpected = listing.filter(
    (f) => !/^package\/(dist\/.*|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/.test(f),
  )
  if (unexpected.length > 0) throw new Error(`tarball contains unexpected files: ${unexpected.join(', ')}`)
  const exported = Object.values(pkg.exports)
    .flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e).flatMap((c) => Object.values(c))))
    .map((f) => `package/${f.replace(/^\.\//, '')}`)
  const missing = exported.filter((f) => !listing.includes(f))
  if (missing.length > 0) throw new Error(`tarball lacks exported files: ${missing.join(', ')}`)
  console.log(`${packed}: ${listing.length} files, every exported file present`)

  console.log('\n== publint')
  run('npx', ['publint', 'run', tarball, '--strict'])

  console.log('\n== are the types wrong')
  run('npx', ['attw', tarball, '--profile', 'node16'])

  console.log('\n== size budget (main entry, dependencies excluded, min+gz)')
  const bundled = await build({
    entryPoints: [join(root, 'dist/index.js')],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'node',
    write: false,
    // Optional peers too: `redis` is imported only when a Redis URL is configured (src/store/redis.ts).
    external: [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies ?? {})],
  })
  const gz = gzipSync(bundled.outputFiles[0].contents).length
  console.log(
    `main entry: ${(bundled.outputFiles[0].contents.length / 1024).toFixed(1)} kB min, ${(gz / 1024).toFixed(1)} kB min+gz (budget ${SIZE_BUDGET / 1024} kB)`,
  )
  if (gz > SIZE_BUDGET)
    throw new Error(`main entry is ${gz} bytes min+gz, over the ${SIZE_BUDGET} byte budget`)

  console.log('\n== the tarball in a scratch project without msw')
  writeFileSync(
    join(scratch, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, version: '0.0.0' }),
  )
  npmInstall(scratch, [tarball])
  for (const peer of ['msw', '@mswjs/interceptors']) {
    if (existsSync(join(scratch, 'node_modules', peer))) throw new Error(`${peer} got installed; it must not`)
  }
  const node = process.execPath
  expectOutput(
    'esm, main entry and ./testing',
    nodeEval(
      node,
      scratch,
      'module',
      `
      import { createLLMRouter, isRouterError, ErrorCode } from 'llm-backend-router'
      import { startOllamaServer, parseNdjson } from 'llm-backend-router/testing'
      import { createCallbackSink, fanoutSinks } from 'llm-backend-router/sinks'
      const ollama = await startOllamaServer()
      const router = createLLMRouter({ env: { OLLAMA_HOST: ollama.url }, metrics: false })
      const r = await router.generate({ model: 'llama3.2', prompt: 'Say hello' })
      if (typeof r.response !== 'string' || r.response.length === 0 || r.backend !== 'ollama') throw new Error('bad result ' + JSON.stringify(r))
      if (ErrorCode.TIMEOUT !== 'TIMEOUT' || isRouterError(new Error('x'))) throw new Error('bad exports')
      if (typeof parseNdjson !== 'function') throw new Error('bad testing exports')
      const seen = []
      const sinkRouter = createLLMRouter({ env: { OLLAMA_HOST: ollama.url }, metrics: fanoutSinks(createCallbackSink((m) => seen.push(m.model))) })
      await sinkRouter.generate({ model: 'llama3.2', prompt: 'Say hello' })
      await sinkRouter.close()
      if (seen.join() !== 'llama3.2') throw new Error('./sinks: callback sink got ' + JSON.stringify(seen))
      await router.close(); await ollama.stop()
      console.log('ok', JSON.stringify(r.response.slice(0, 40)))
    `,
    ),
    /^ok "/,
  )
  expectOutput(
    'cjs, main entry and ./testing',
    nodeEval(
      node,
      scratch,
      'commonjs',
      `
      const { createLLMRouter, RouterError } = require('llm-backend-router')
      const { startAdminServer, startMlxServer } = require('llm-backend-router/testing')
      if (typeof createLLMRouter !== 'function' || typeof RouterError !== 'function') throw new Error('bad cjs exports')
      const { createOpenTelemetrySink, fanoutSinks } = require('llm-backend-router/sinks')
      if (typeof createOpenTelemetrySink !== 'function' || typeof fanoutSinks !== 'function') throw new Error('bad cjs ./sinks exports')
      try { createLLMRouter({ adminUrl: 'ftp://x', env: {} }); throw new Error('no validation') } catch (e) { if (e.code !== 'INVALID_OPTIONS') throw e }
      ;(async () => {
        const mlx = await startMlxServer({ respond: 'from mlx' })
        const admin = await startAdminServer({ records: [{ model_name: 'm', backend_type: 'mlx', endpoint_url: mlx.url, enabled: true, priority: 1 }] })
        const router = createLLMRouter({ adminUrl: admin.url, env: {}, metrics: false })
        const r = await router.generate({ model: 'm', prompt: 'x' })
        await router.close(); await mlx.stop(); await admin.stop()
        console.log('ok', JSON.stringify(r.response), r.backend)
      })().catch((e) => { console.error(e); process.exit(1) })
    `,
    ),
    /^ok "from mlx" mlx$/,
  )
  const mswProbe = (type) =>
    type === 'module'
      ? `await import('llm-backend-router/testing/msw').then(() => console.log('loaded'), (e) => console.log(e.code + ' ' + e.message))`
      : `try { require('llm-backend-router/testing/msw'); console.log('loaded') } catch (e) { console.log(e.code + ' ' + e.message) }`
  expectOutput(
    'esm, ./testing/msw without msw',
    nodeEval(node, scratch, 'module', mswProbe('module')),
    /^ERR_MODULE_NOT_FOUND Cannot find package 'msw'/,
  )
  expectOutput(
    'cjs, ./testing/msw without msw',
    nodeEval(node, scratch, 'commonjs', mswProbe('commonjs')),
    /^MODULE_NOT_FOUND Cannot find module 'msw'/,
  )

  const oldNode = findOldNode(pkg.engines.node.replace(/^>=/, ''))
  if (oldNode === null) {
    console.log(`\n(no Node older than ${pkg.engines.node} on this machine: version-error check skipped)`)
  } else {
    const version = nodeEval(oldNode, scratch, 'commonjs', 'console.log(process.version)')
    console.log(`\n== the installed package on ${oldNode} (${version}): the engines error, in ESM and CJS`)
    for (const entry of ['llm-backend-router', 'llm-backend-router/testing']) {
      expectOutput(
        `esm ${entry}`,
        nodeEval(
          oldNode,
          scratch,
          'module',
          `await import('${entry}').then(() => console.log('loaded'), (e) => console.log(e.code + ': ' + e.message))`,
        ),
        /^UNSUPPORTED_NODE_VERSION: llm-backend-router requires Node\.js >=/,
      )
      expectOutput(
        `cjs ${entry}`,
        nodeEval(
          oldNode,
          scratch,
          'commonjs',
          `try { require('${entry}'); console.log('loaded') } catch (e) { console.log(e.code + ': ' + e.message) }`,
        ),
        /^UNSUPPORTED_NODE_VERSION: llm-backend-router requires Node\.js >=/,
      )
    }
  }

  console.log('\n== ./testing/msw with msw installed')
  npmInstall(scratch, [
    `msw@${pkg.devDependencies.msw}`,
    `@mswjs/interceptors@${pkg.devDependencies['@mswjs/interceptors']}`,
  ])
  const mswSmoke = (load) => `
    ${load}
    const records = [{ model_name: 'm', backend_type: 'ollama', endpoint_url: 'http://ollama.test:11434', enabled: true, priority: 1 }]
    const ollama = msw.ollamaHandlers({ baseUrl: 'http://ollama.test:11434', respond: 'mocked' })
    const network = msw.createMockNetwork(...msw.adminHandlers({ baseUrl: 'http://admin.test', records }), ...ollama)
    network.enable()
    const router = main.createLLMRouter({ adminUrl: 'http://admin.test', env: {}, metrics: false })
    const r = await router.generate({ model: 'm', prompt: 'x' })
    await router.close(); network.disable()
    console.log('ok', JSON.stringify(r.response), ollama.requests.length)
  `
  expectOutput(
    'esm, ./testing/msw',
    nodeEval(
      node,
      scratch,
      'module',
      mswSmoke(
        "const main = await import('llm-backend-router'); const msw = await import('llm-backend-router/testing/msw')",
      ),
    ),
    /^ok "mocked" [1-9]/,
  )
  expectOutput(
    'cjs, ./testing/msw',
    nodeEval(
      node,
      scratch,
      'commonjs',
      `(async () => { ${mswSmoke("const main = require('llm-backend-router'); const msw = require('llm-backend-router/testing/msw')")} })().catch((e) => { console.error(e); process.exit(1) })`,
    ),
    /^ok "mocked" [1-9]/,
  )
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
console.log('\npackage checks passed')
