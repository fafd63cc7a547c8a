import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: false,
  target: 'node22',
  platform: 'node',
  splitting: false,
  treeshake: true,
  // The testing kit's msw pieces are optional peers: never bundle them.
  external: ['msw', '@mswjs/interceptors', '@opentelemetry/api'],
})
