/**
 * Published entry of `llm-backend-router`: the Node.js version check first, then the implementation
 * (`src/index.ts`), kept as two separate files in dist/ so the check runs before undici loads.
 * @module
 */
import '../node-version.js'

export * from '../index.js'
