/**
 * The Node.js version check of the published entries: a Node older than package.json `engines` gets a
 * clear error naming the required version, in ESM and CommonJS, before undici is loaded (which on
 * Node 20 throws `Cannot read properties of undefined (reading 'bind')`).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { findOldNode } from '../scripts/lib/old-node.mjs'
import { assertSupportedNode, isSupportedNode, MIN_NODE_VERSION } from '../src/node-version.js'
import { ensureBuilt, root } from './helpers/build.js'

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }

describe('isSupportedNode / assertSupportedNode', () => {
  it('uses the version in package.json engines', () => {
    expect(pkg.engines.node).toBe(`>=${MIN_NODE_VERSION}`)
  })

  it.each([
    ['20.20.2', false],
    ['v20.20.2', false],
    ['22.18.99', false],
    ['21.99.0', false],
    ['22.19.0', true],
    ['22.100.0', true],
    ['23.0.0', true],
    ['v24.11.1', true],
    ['not a version', true],
  ])('%s -> %s', (version, supported) => {
    expect(isSupportedNode(version)).toBe(supported)
  })

  it('throws UNSUPPORTED_NODE_VERSION naming both versions', () => {
    expect(() => assertSupportedNode('20.20.2')).toThrow(
      expect.objectContaining({
        code: 'UNSUPPORTED_NODE_VERSION',
        message: expect.stringMatching(/requires Node\.js >=22\.19\.0 .*this is Node\.js v20\.20\.2/),
      }),
    )
    expect(() => assertSupportedNode('22.19.0')).not.toThrow()
    expect(() => assertSupportedNode(undefined)).not.toThrow()
  })
})

const oldNode = findOldNode(MIN_NODE_VERSION)

// Machines without an old Node (a developer on Node 24 only) skip this; the CI machine has Node 20.
describe.skipIf(oldNode === null)(`the built entries on ${oldNode ?? 'an old Node'}`, () => {
  beforeAll(() => ensureBuilt(), 120_000)

  const load = (code: string, type: 'module' | 'commonjs') =>
    spawnSync(oldNode as string, [`--input-type=${type}`, '-e', code], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
    })

  it.each(['index', 'testing', 'testing-msw', 'sinks'])(
    'import dist/%s.js fails with the version error',
    (entry) => {
      const r = load(
        `import('./dist/${entry}.js').then(() => console.log('loaded'), (e) => { console.log(e.code + ': ' + e.message); process.exit(3) })`,
        'module',
      )
      expect(r.stdout).toMatch(/^UNSUPPORTED_NODE_VERSION: llm-backend-router requires Node\.js >=22\.19\.0 /)
      expect(r.stdout).not.toContain('bind')
      expect(r.status).toBe(3)
    },
  )

  it.each(['index', 'testing', 'testing-msw', 'sinks'])(
    'require dist/%s.cjs fails with the version error',
    (entry) => {
      const r = load(
        `try { require('./dist/${entry}.cjs'); console.log('loaded') } catch (e) { console.log(e.code + ': ' + e.message); process.exit(3) }`,
        'commonjs',
      )
      expect(r.stdout).toMatch(/^UNSUPPORTED_NODE_VERSION: llm-backend-router requires Node\.js >=22\.19\.0 /)
      expect(r.status).toBe(3)
    },
  )
})
