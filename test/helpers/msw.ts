/**
 * msw at the socket level, so handlers see requests made with `undici.request()` (the production
 * transport). msw's `setupServer()` only patches fetch/ClientRequest and would miss undici.
 */
import { HttpRequestInterceptor } from '@mswjs/interceptors/http'
import type { RequestHandler } from 'msw'
import { defineNetwork, InterceptorSource } from 'msw/experimental'
import { afterAll, afterEach, beforeAll } from 'vitest'

export interface MockNetwork {
  use(...handlers: RequestHandler[]): void
  resetHandlers(...handlers: RequestHandler[]): void
}

/** Call at the top of a test file: enables interception for the file, resets handlers after each test. */
export function setupMockNetwork(...initial: RequestHandler[]): MockNetwork {
  const network = defineNetwork({
    sources: [new InterceptorSource({ interceptors: [new HttpRequestInterceptor()] })],
    handlers: initial,
    // Quiet: msw otherwise prints every intercepted request. Unhandled requests (e.g. to real
    // 127.0.0.1 servers in the same file) pass through.
    context: { quiet: true },
    onUnhandledFrame: 'bypass',
  })
  beforeAll(() => {
    network.enable()
  })
  afterEach(() => {
    network.resetHandlers()
  })
  afterAll(() => {
    network.disable()
  })
  return {
    use: (...handlers) => network.use(...handlers),
    resetHandlers: (...handlers) => network.resetHandlers(...handlers),
  }
}
