/**
 * Bundles a small ESM entry (which may import the TypeScript sources) with esbuild, so a test can run
 * it in a child process with `process.execPath`: the package is not built during tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'

export interface ChildBundle {
  /** Path of the bundled script. */
  file: string
  remove(): Promise<void>
}

/** `format: 'cjs'` runs the child as a CommonJS script (no top-level await there). */
export async function bundleForChild(
  prefix: string,
  source: string,
  format: 'esm' | 'cjs' = 'esm',
): Promise<ChildBundle> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  await writeFile(join(dir, 'entry.mjs'), source)
  const file = join(dir, format === 'esm' ? 'child.mjs' : 'child.cjs')
  await build({
    entryPoints: [join(dir, 'entry.mjs')],
    bundle: true,
    platform: 'node',
    format,
    target: 'node22',
    outfile: file,
    logLevel: 'silent',
    // undici's CommonJS inside an ESM bundle needs a real require.
    ...(format === 'esm'
      ? {
          banner: {
            js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
          },
        }
      : {}),
  })
  return { file, remove: () => rm(dir, { recursive: true, force: true }) }
}
