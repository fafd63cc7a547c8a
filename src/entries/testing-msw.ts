/**
 * Published entry of `llm-backend-router/testing/msw`: the Node.js version check first, then the msw
 * handlers (`src/testing/msw/index.ts`).
 * @module
 */
import '../node-version.js'

export * from '../testing/msw/index.js'
