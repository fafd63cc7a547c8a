/**
 * Builds dist/ once for the tests that run the package as users get it (examples, demo): those import
 * `llm-backend-router` by name, which resolves to dist/ through the package's own `exports`.
 * Builds only when dist/ is missing or older than the sources; a lock directory keeps parallel test
 * files (vitest forks) from running tsup at the same time.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const root = resolve(import.meta.dirname, '../..')
const OUTPUTS = [
  'dist/index.js',
  'dist/testing.js',
  'dist/testing-msw.js',
  'dist/sinks.js',
  'dist/index.d.ts',
  'dist/testing.d.ts',
]
const INPUTS = ['package.json', 'tsup.config.ts', 'tsconfig.json']
const LOCK = join(root, 'node_modules/.cache/llm-backend-router-build.lock')
/** A lock older than this belongs to a build that died. */
const STALE_LOCK_MS = 120_000

function newestMtime(path: string): number {
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

/** True when every output exists and is at least as new as every input. */
export function isBuilt(): boolean {
  const inputs = Math.max(
    newestMtime(join(root, 'src')),
    ...INPUTS.map((f) => join(root, f))
      .filter((f) => existsSync(f))
      .map((f) => statSync(f).mtimeMs),
  )
  return OUTPUTS.every((f) => {
    const p = join(root, f)
    return existsSync(p) && statSync(p).mtimeMs >= inputs
  })
}

function tryLock(): boolean {
  mkdirSync(join(LOCK, '..'), { recursive: true })
  try {
    mkdirSync(LOCK)
    return true
  } catch {
    try {
      if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmSync(LOCK, { recursive: true, force: true })
    } catch {
      // Released meanwhile.
    }
    return false
  }
}

/** Builds dist/ with tsup unless it is up to date; waits for a build another test file started. */
export async function ensureBuilt(timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!isBuilt()) {
    if (tryLock()) {
      try {
        if (isBuilt()) return
        const r = spawnSync('npx', ['tsup'], { cwd: root, encoding: 'utf8', timeout: timeoutMs })
        if (r.status !== 0) throw new Error(`npx tsup failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
        return
      } finally {
        rmSync(LOCK, { recursive: true, force: true })
      }
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for another build of dist/')
    await new Promise((r) => setTimeout(r, 200))
  }
}
