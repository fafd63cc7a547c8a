/**
 * Published entry of `llm-backend-router/sinks`: the Node.js version check first, then the optional
 * metric sinks (`src/metrics/sinks.ts`).
 * @module
 */
import '../node-version.js'

export * from '../metrics/sinks.js'
