/**
 * msw at the socket level, so handlers see requests made with `undici.request()` (which msw's
 * `setupServer()` does not intercept).
 * @module
 */
import { HttpRequestInterceptor } from '@mswjs/interceptors/http'
import type { RequestHandler } from 'msw'
import { defineNetwork, InterceptorSource } from 'msw/experimental'

/** A socket-level msw network. */
export interface MockNetwork {
  /** Starts intercepting. Requests no handler matches (e.g. to real 127.0.0.1 servers) pass through. */
  enable(): void
  /** Stops intercepting. */
  disable(): void
  /** Prepends handlers (they win over the initial ones) until `resetHandlers()`. */
  use(...handlers: RequestHandler[]): void
  /** Drops handlers added with `use()`; with arguments, replaces the initial handlers. */
  resetHandlers(...handlers: RequestHandler[]): void
  /** The handlers in effect, in matching order. */
  listHandlers(): readonly RequestHandler[]
}

/**
 * Creates an msw network that intercepts `undici.request()`, `fetch` and `node:http` at the socket level,
 * quiet, with unhandled requests passed through. Call `enable()` before the test and `disable()` after.
 *
 * @example
 * const network = createMockNetwork(...ollamaHandlers(), ...adminHandlers({ records }))
 * beforeAll(() => network.enable())
 * afterEach(() => network.resetHandlers())
 * afterAll(() => network.disable())
 */
export function createMockNetwork(...handlers: RequestHandler[]): MockNetwork {
  const network = defineNetwork({
    sources: [new InterceptorSource({ interceptors: [new HttpRequestInterceptor()] })],
    handlers,
    context: { quiet: true },
    onUnhandledFrame: 'bypass',
  })
  return {
    enable: () => {
      network.enable()
    },
    disable: () => {
      network.disable()
    },
    use: (...h) => network.use(...h),
    resetHandlers: (...h) => network.resetHandlers(...h),
    listHandlers: () => network.listHandlers() as readonly RequestHandler[],
  }
}
