// Checks the package as users get it: publint, are-the-types-wrong, the packed tarball installed
// into a scratch project (import and require, main entry and ./testing), and the size budget.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const root = resolve(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
// Issue 7 targets 15 kB; the CI budget is the current size plus headroom so growth is caught (see README).
const SIZE_BUDGET = 25 * 1024
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts })

console.log('\n== publint')
run('npx', ['publint', '--strict'])

console.log('\n== are the types wrong')
run('npx', ['attw', '--pack', '.', '--profile', 'node16'])

console.log('\n== size budget (main entry, dependencies excluded, min+gz)')
const bundled = await build({
  entryPoints: [join(root, 'dist/index.js')],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  write: false,
  external: Object.keys(pkg.dependencies),
})
const gz = gzipSync(bundled.outputFiles[0].contents).length
console.log(
  `main entry: ${(bundled.outputFiles[0].contents.length / 1024).toFixed(1)} kB min, ${(gz / 1024).toFixed(1)} kB min+gz (budget ${SIZE_BUDGET / 1024} kB)`,
)
if (gz > SIZE_BUDGET) throw new Error(`main entry is ${gz} bytes min+gz, over the ${SIZE_BUDGET} byte budget`)

console.log('\n== packed tarball in a scratch project')
const scratch = mkdtempSync(join(tmpdir(), 'llm-router-smoke-'))
try {
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', scratch], {
    cwd: root,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop()
  const listing = execFileSync('tar', ['-tzf', join(scratch, packed)], { encoding: 'utf8' })
    .trim()
    .split('\n')
  const unexpected = listing.filter(
    (f) => !/^package\/(dist\/.*|README\.md|CHANGELOG\.md|LICENSE|package\.json)$/.test(f),
  )
  if (unexpected.length > 0) throw new Error(`tarball contains unexpected files: ${unexpected.join(', ')}`)
  writeFileSync(
    join(scratch, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, version: '0.0.0' }),
  )
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      join(scratch, packed),
      `msw@${pkg.devDependencies.msw}`,
    ],
    {
      cwd: scratch,
    },
  )
  const esm = `
    import { createLLMRouter, isRouterError, ErrorCode } from 'llm-backend-router'
    import { startOllamaServer } from 'llm-backend-router/testing'
    const ollama = await startOllamaServer()
    const router = createLLMRouter({ env: { OLLAMA_HOST: ollama.url }, metrics: false })
    const r = await router.generate({ model: 'llama3.2', prompt: 'Say hello' })
    if (typeof r.response !== 'string' || r.response.length === 0 || r.backend !== 'ollama') throw new Error('bad result ' + JSON.stringify(r))
    if (ErrorCode.TIMEOUT !== 'TIMEOUT' || isRouterError(new Error('x'))) throw new Error('bad exports')
    await router.close(); await ollama.stop()
    console.log('esm ok:', JSON.stringify(r.response.slice(0, 40)))
  `
  const cjs = `
    const { createLLMRouter, RouterError } = require('llm-backend-router')
    const testing = require('llm-backend-router/testing')
    if (typeof createLLMRouter !== 'function' || typeof RouterError !== 'function') throw new Error('bad cjs exports')
    if (typeof testing.startOllamaServer !== 'function') throw new Error('bad cjs testing exports')
    try { createLLMRouter({ adminUrl: 'ftp://x', env: {} }) ; throw new Error('no validation') } catch (e) { if (e.code !== 'INVALID_OPTIONS') throw e }
    console.log('cjs ok')
  `
  writeFileSync(join(scratch, 'smoke.mjs'), esm)
  writeFileSync(join(scratch, 'smoke.cjs'), cjs)
  run(process.execPath, ['smoke.mjs'], { cwd: scratch })
  run(process.execPath, ['smoke.cjs'], { cwd: scratch })
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
console.log('\npackage checks passed')
