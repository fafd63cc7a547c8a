// Shared by the demo, bench and soak scripts: they import the built package, so they build dist/
// with tsup when it is missing or older than its inputs (a fresh clone has no dist/).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const root = resolve(import.meta.dirname, '../..')
const INPUT_FILES = ['package.json', 'tsup.config.ts', 'tsconfig.json']
const OUTPUTS = ['dist/index.js', 'dist/testing.js', 'dist/testing-msw.js', 'dist/sinks.js'].map((f) =>
  join(root, f),
)

function newestMtime(path) {
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

/** True when every dist/ entry exists and is newer than src/ and the build configuration. */
export function distIsFresh() {
  const inputs = Math.max(
    newestMtime(join(root, 'src')),
    ...INPUT_FILES.map((f) => join(root, f))
      .filter(existsSync)
      .map((f) => statSync(f).mtimeMs),
  )
  return OUTPUTS.every((f) => existsSync(f) && statSync(f).mtimeMs >= inputs)
}

/** Runs tsup; returns spawnSync's result with `ok` set when every dist/ entry exists afterwards. */
export function buildDist(stdio = ['ignore', 2, 2]) {
  const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'
  const r = spawnSync(npx, ['tsup'], {
    cwd: root,
    stdio,
    encoding: 'utf8',
    shell: process.platform === 'win32',
  })
  return { ...r, ok: r.status === 0 && OUTPUTS.every((f) => existsSync(f)) }
}
