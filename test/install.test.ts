/**
 * A clean clone installs with `npm ci` on any platform, and CI installs and tests the way the README
 * says. `npm ci` refuses a lock that lacks any optional dependency of a locked package, on every
 * platform (it failed on Linux too: "Missing: @biomejs/cli-darwin-arm64@2.6.8 from lock file").
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { root } from './helpers/build.js'

interface LockedPackage {
  optionalDependencies?: Record<string, string>
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage>
}

/** Where npm would find `dep` for the package at `path`: the nearest node_modules up the tree. */
function lockedPath(path: string, dep: string): string | null {
  let base = path
  for (;;) {
    const candidate = `${base === '' ? '' : `${base}/`}node_modules/${dep}`
    if (lock.packages[candidate] !== undefined) return candidate
    if (base === '') return null
    const i = base.lastIndexOf('/node_modules/')
    base = i < 0 ? '' : base.slice(0, i)
  }
}

describe('package-lock.json', () => {
  it("lists every locked package's optional dependencies (every platform's binaries)", () => {
    const missing: string[] = []
    for (const [path, p] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(p.optionalDependencies ?? {})) {
        if (lockedPath(path, dep) === null) missing.push(`${path || '(root)'} -> ${dep}`)
      }
    }
    expect(missing).toEqual([])
    // The platforms users and CI run on are among them.
    for (const bin of [
      '@biomejs/cli-darwin-arm64',
      '@rollup/rollup-win32-x64-msvc',
      '@esbuild/darwin-arm64',
    ]) {
      expect(lock.packages[`node_modules/${bin}`], bin).toBeDefined()
    }
  })
})

describe('.ci/run and the README', () => {
  it("runs the README's Development install and test commands first, in that order", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('\n## Development\n'))
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
    const readmeCommands = block.trim().split('\n')
    expect(readmeCommands).toEqual(['npm ci', 'npm test'])
    const ciCommands = readFileSync(join(root, '.ci/run'), 'utf8')
      .split('\n')
      .filter((l) => /^npm /.test(l))
    expect(ciCommands.slice(0, 2)).toEqual(readmeCommands)
  })
})
