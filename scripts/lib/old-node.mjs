// Shared by scripts/check-package.mjs and test/node-version.test.ts: finds a `node` on this machine older
// than the package's floor (e.g. the system Node 20), outside node_modules (whose .bin/node is Node 24).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'

const rank = (v) => {
  const [a, b, c] = v.replace(/^v/, '').split('.').map(Number)
  return a * 1e6 + b * 1e3 + c
}

/** Path of a `node` older than `minVersion` (e.g. `22.19.0`) on PATH or in /usr/local/bin, /usr/bin; or null. */
export function findOldNode(minVersion) {
  const dirs = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d !== '' && !d.includes('node_modules'))
  for (const bin of new Set([...dirs.map((d) => join(d, 'node')), '/usr/local/bin/node', '/usr/bin/node'])) {
    if (!existsSync(bin)) continue
    const r = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 10_000 })
    if (r.status === 0 && rank(r.stdout.trim()) < rank(minVersion)) return bin
  }
  return null
}
