/**
 * `llm-backend-router/testing/msw`: the testing kit's stand-ins as msw handlers (same protocol, faults
 * and recording as the node:http servers of `llm-backend-router/testing`), and a socket-level msw
 * network that sees undici requests.
 *
 * Needs the optional peer dependencies `msw` (^3) and `@mswjs/interceptors`; without them importing
 * this entry fails with Node's own not-found error naming msw. `llm-backend-router/testing` does not
 * need them.
 *
 * @example
 * import { adminHandlers, createMockNetwork, ollamaHandlers } from 'llm-backend-router/testing/msw'
 * const ollama = ollamaHandlers({ baseUrl: 'http://ollama.test:11434' })
 * const network = createMockNetwork(...ollama)
 * network.enable()
 * await ollama.setFault('503')
 * @module
 */

export type {
  AdminMockExtras,
  AdminMockOptions,
  MockBaseOptions,
  MockControls,
  MockHandlers,
  OllamaMockOptions,
  OpenAIMockOptions,
} from './handlers.js'
export { adminHandlers, mlxHandlers, ollamaHandlers, openAIHandlers } from './handlers.js'
export type { MockNetwork } from './network.js'
export { createMockNetwork } from './network.js'
