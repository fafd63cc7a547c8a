import { resolve } from 'node:path'
import type { Plugin } from 'esbuild'
import { defineConfig } from 'tsup'

/**
 * dist/ layout. The public entries (package.json `exports`) are tiny files from src/entries/ that import
 * the Node.js version check and then the implementation, both as separate files under dist/lib/.
 * They must stay separate: a bundler hoists every import of a module above its code, so a check
 * bundled into the implementation would run after undici, which throws on Node 20 while loading.
 */
const publicEntries = {
  index: 'src/entries/index.ts',
  testing: 'src/entries/testing.ts',
  'testing-msw': 'src/entries/testing-msw.ts',
  sinks: 'src/entries/sinks.ts',
}
const libEntries = {
  'lib/node-version': 'src/node-version.ts',
  'lib/index': 'src/index.ts',
  'lib/testing': 'src/testing/index.ts',
  'lib/testing-msw': 'src/testing/msw/index.ts',
  'lib/sinks': 'src/metrics/sinks.ts',
}

/** In the public entries, imports of a lib/ entry's source become imports of its built file. */
function keepLibEntriesSeparate(): Plugin {
  const entriesDir = resolve('src/entries')
  const outByTs = new Map(Object.entries(libEntries).map(([out, src]) => [resolve(src), out]))
  return {
    name: 'keep-lib-entries-separate',
    setup(build) {
      // The extension this build writes (.cjs for CommonJS); with treeshake on, tsup runs esbuild in ESM
      // format for both and converts afterwards, so `format` does not tell.
      const ext = build.initialOptions.outExtension?.['.js'] ?? '.js'
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (!args.importer.startsWith(entriesDir)) return undefined
        const out = outByTs.get(resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')))
        if (out === undefined) throw new Error(`${args.importer}: ${args.path} is not a lib/ entry`)
        return { path: `./${out}${ext}`, external: true }
      })
    },
  }
}

export default defineConfig({
  entry: { ...publicEntries, ...libEntries },
  format: ['esm', 'cjs'],
  // Types for the public entries only; they bundle the implementation's types.
  dts: { entry: publicEntries },
  clean: true,
  sourcemap: false,
  target: 'node22',
  platform: 'node',
  splitting: false,
  treeshake: true,
  // The testing kit's msw pieces are optional peers: never bundle them.
  external: ['msw', '@mswjs/interceptors', '@opentelemetry/api'],
  esbuildPlugins: [keepLibEntriesSeparate()],
})
