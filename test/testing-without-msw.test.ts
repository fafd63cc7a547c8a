/**
 * `llm-backend-router/testing` (the node:http stand-ins and wire helpers) works in a project without
 * msw; only `llm-backend-router/testing/msw` needs it. Runs the built entries in a child process in which
 * a module hook makes `msw` and `@mswjs/*` unresolvable, as in a project that never installed them
 * (scripts/check-package.mjs does the same with the packed tarball in a real scratch project).
 */
import { spawnSync } from 'node:child_process'
import { beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, root } from './helpers/build.js'

/** Loaded with --import: resolving msw or @mswjs/* fails like a missing package, for import and require. */
const HIDE_MSW = `data:text/javascript,${encodeURIComponent(`
  import { registerHooks } from 'node:module'
  registerHooks({
    resolve(specifier, context, next) {
      if (/^(msw|@mswjs\\/[^/]+)(\\/|$)/.test(specifier)) {
        const e = new Error("Cannot find package '" + specifier + "' (hidden by the test)")
        e.code = context.conditions.includes('require') ? 'MODULE_NOT_FOUND' : 'ERR_MODULE_NOT_FOUND'
        throw e
      }
      return next(specifier, context)
    },
  })
`)}`

const run = (type: 'module' | 'commonjs', code: string) =>
  spawnSync(process.execPath, ['--import', HIDE_MSW, `--input-type=${type}`, '-e', code], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
  })

/** Starts an Ollama stand-in, asks it for a generation over node:http, and prints what came back. */
const useKit = (kit: string) => `
  const ollama = await ${kit}.startOllamaServer({ respond: 'hi there' })
  const http = await import('node:http')
  const body = await new Promise((resolve, reject) => {
    const req = http.request(ollama.url + '/api/generate', { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d) => { text += d }).on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.end(JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }))
  })
  await ollama.stop()
  console.log('response:', JSON.parse(body).response, '| ndjson:', ${kit}.parseNdjson(${kit}.ndjsonLine({ a: 1 })).length)
`

describe('the testing kit without msw installed', () => {
  beforeAll(() => ensureBuilt(), 120_000)

  it('the hook really hides msw', () => {
    const r = run(
      'module',
      `await import('msw').then(() => console.log('found'), (e) => console.log(e.code))`,
    )
    expect(r.stdout.trim()).toBe('ERR_MODULE_NOT_FOUND')
  })

  it('import llm-backend-router/testing: starts a stand-in that answers', () => {
    const r = run('module', `const kit = await import('llm-backend-router/testing'); ${useKit('kit')}`)
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('response: hi there | ndjson: 1')
  })

  it('require llm-backend-router/testing: starts a stand-in that answers', () => {
    const r = run(
      'commonjs',
      `(async () => { const kit = require('llm-backend-router/testing'); ${useKit('kit')} })()`,
    )
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('response: hi there | ndjson: 1')
  })

  it('llm-backend-router/testing/msw fails naming msw, in ESM and CJS', () => {
    const esm = run(
      'module',
      `await import('llm-backend-router/testing/msw').then(() => console.log('loaded'), (e) => console.log(e.code + ' ' + e.message))`,
    )
    expect(esm.stdout).toMatch(/^ERR_MODULE_NOT_FOUND Cannot find package '(msw|@mswjs\/interceptors)/)
    const cjs = run(
      'commonjs',
      `try { require('llm-backend-router/testing/msw'); console.log('loaded') } catch (e) { console.log(e.code + ' ' + e.message) }`,
    )
    expect(cjs.stdout).toMatch(/^MODULE_NOT_FOUND Cannot find package '(msw|@mswjs\/interceptors)/)
  })
})
