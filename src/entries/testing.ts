/**
 * Published entry of `llm-backend-router/testing`: the Node.js version check first, then the kit
 * (`src/testing/index.ts`).
 * @module
 */
import '../node-version.js'

export * from '../testing/index.js'
