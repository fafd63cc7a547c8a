// Import time of one module in a fresh process with nothing else loaded: `node import-time.mjs <specifier>`.
// Prints `{"ms": ...}`. The bench compares the router's dist/index.js with undici alone.
import { performance } from 'node:perf_hooks'

const t0 = performance.now()
await import(process.argv[2])
process.stdout.write(`${JSON.stringify({ ms: performance.now() - t0 })}\n`)
