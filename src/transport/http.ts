/**
 * The router's HTTP layer. Two interchangeable transports behind one `Exchange` interface:
 * - `dispatchTransport` (the default): undici's low-level `dispatch()` with a handler object instead of
 *   `request()`. That skips the per-response Readable stream and AbortController/EventTarget machinery.
 * - `requestTransport`: plain `undici.request()`. Kept so `npm run bench` can measure what the first one
 *   is worth (RouterInternals `transport: 'request'`).
 *
 * Both settle at once when stopped: `abort()` reports the reason to the handler synchronously and only
 * then asks undici to cancel, because undici does not settle a request whose TCP connect is still
 * pending (a listener with a full backlog) until the connect ends.
 *
 * undici's own 300 s headers/body timeouts are disabled: a long local generation must be cut off
 * by the router's limits (or the caller's signal), never by a transport default.
 */
import { Agent, type Dispatcher, Pool } from 'undici'

export interface AgentOptions {
  /** Max sockets per origin; null = unlimited. */
  connections: number | null
  /** Per-origin overrides of `connections` (keys are `scheme://host:port`). */
  connectionsByOrigin?: Readonly<Record<string, number | null>>
  /** Idle keep-alive before a pooled socket is closed. */
  keepAliveTimeoutMs: number
  connectTimeoutMs: number
}

export function createAgent(options: AgentOptions): Agent {
  const byOrigin = options.connectionsByOrigin ?? {}
  return new Agent({
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs, 60_000),
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { timeout: options.connectTimeoutMs },
    factory: (origin, opts) => {
      const key = typeof origin === 'string' ? origin : origin.origin
      const own = Object.hasOwn(byOrigin, key) ? byOrigin[key] : undefined
      return new Pool(origin, own === undefined ? opts : { ...opts, connections: own })
    },
  })
}

/** A request in flight. `abort()` is safe at any time, also before the socket is assigned. */
export interface Exchange {
  /** Settles the exchange now (the handler's onError gets `reason`), then cancels it in undici. */
  abort(reason: Error): void
  pause(): void
  resume(): void
  /** True while paused for a slow consumer (an idle limit must not count that as a stall). */
  readonly paused: boolean
}

export type Transport = (dispatcher: Dispatcher, call: HttpCall, handler: ResponseHandler) => Exchange

/** How long a rejected body may keep arriving (discarded) before the connection is cut. */
const DRAIN_GRACE_MS = 1000

/** Receives one response. Throwing from onStart/onData aborts the request with that error. */
export interface ResponseHandler {
  onStart(status: number, headers: Record<string, string | string[] | undefined>): void
  onData(chunk: Buffer): void
  onEnd(): void
  /** Called once, for network errors and for aborts (with the abort reason). */
  onError(error: Error, responseStarted: boolean): void
}

/** A request in flight. `abort()` is safe at any time, also before the socket is assigned. */
export class HttpExchange implements Dispatcher.DispatchHandler, Exchange {
  private controller: Dispatcher.DispatchController | null = null
  private abortReason: Error | null = null
  private settled = false
  private started = false
  private drainTimer: ReturnType<typeof setTimeout> | null = null
  paused = false

  constructor(private readonly handler: ResponseHandler) {}

  abort(reason: Error): void {
    if (this.settled) return
    this.settled = true
    this.handler.onError(reason, this.started)
    // Before onRequestStart (still queued, or the TCP connect hangs) there is nothing to cancel yet:
    // undici gets the reason when it starts the request.
    if (this.controller) this.controller.abort(reason)
    else this.abortReason = reason
  }

  pause(): void {
    this.paused = true
    this.controller?.pause()
  }

  resume(): void {
    this.paused = false
    this.controller?.resume()
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.abortReason) controller.abort(this.abortReason)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200 && statusCode !== 101) return
    this.started = true
    try {
      this.handler.onStart(statusCode, headers)
    } catch (error) {
      controller.abort(error as Error)
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return
    try {
      this.handler.onData(chunk)
    } catch (error) {
      // The handler rejected the body (error frame, malformed, over the cap): settle now, discard
      // the rest, and only cut the connection if the server keeps sending. Servers end the body
      // right after an error frame; aborting a body that is about to end trips an undici assertion
      // under msw's socket interceptor, so the abort waits for a real need.
      this.settled = true
      this.handler.onError(error as Error, true)
      this.drainTimer = setTimeout(() => controller.abort(error as Error), DRAIN_GRACE_MS)
      this.drainTimer.unref?.()
    }
  }

  onResponseEnd(): void {
    if (this.drainTimer !== null) clearTimeout(this.drainTimer)
    if (this.settled) return
    this.settled = true
    this.handler.onEnd()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.drainTimer !== null) clearTimeout(this.drainTimer)
    if (this.settled) return
    this.settled = true
    this.handler.onError(error, this.started)
  }
}

export interface HttpCall {
  origin: string
  path: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body: string | null
}

function dispatchOptions(call: HttpCall): Dispatcher.DispatchOptions {
  return {
    origin: call.origin,
    path: call.path,
    method: call.method,
    headers: call.headers,
    body: call.body,
    // Generation is not idempotent in cost: never let undici replay it on its own.
    idempotent: false,
    headersTimeout: 0,
    bodyTimeout: 0,
  }
}

/** Starts a request with dispatch(); the handler receives the response. Errors thrown synchronously by undici go to onError. */
export const dispatchTransport: Transport = (dispatcher, call, handler) => {
  const exchange = new HttpExchange(handler)
  try {
    dispatcher.dispatch(dispatchOptions(call), exchange)
  } catch (error) {
    exchange.onResponseError(undefined as unknown as Dispatcher.DispatchController, error as Error)
  }
  return exchange
}

/** The same exchange over plain `undici.request()` (a Readable body and an AbortController per request). */
class RequestExchange implements Exchange {
  private readonly controller = new AbortController()
  private body: Dispatcher.ResponseData['body'] | null = null
  private settled = false
  private started = false
  paused = false

  constructor(
    dispatcher: Dispatcher,
    call: HttpCall,
    private readonly handler: ResponseHandler,
  ) {
    dispatcher
      .request({ ...dispatchOptions(call), signal: this.controller.signal })
      .then(this.onResponse, (error: Error) => this.fail(error))
  }

  private readonly onResponse = (res: Dispatcher.ResponseData): void => {
    const body = res.body
    if (this.settled) {
      body.on('error', () => {}).destroy()
      return
    }
    this.body = body
    this.started = true
    try {
      this.handler.onStart(res.statusCode, res.headers)
    } catch (error) {
      this.fail(error as Error)
      body.on('error', () => {}).destroy()
      return
    }
    if (this.paused) body.pause()
    body.on('data', (chunk: Buffer) => {
      if (this.settled) return
      try {
        this.handler.onData(chunk)
      } catch (error) {
        this.fail(error as Error)
        body.destroy()
      }
    })
    body.on('end', () => {
      if (this.settled) return
      this.settled = true
      this.handler.onEnd()
    })
    body.on('error', (error: Error) => this.fail(error))
  }

  private fail(error: Error): void {
    if (this.settled) return
    this.settled = true
    this.handler.onError(error, this.started)
  }

  abort(reason: Error): void {
    if (this.settled) return
    this.fail(reason)
    this.controller.abort(reason)
  }

  pause(): void {
    this.paused = true
    this.body?.pause()
  }

  resume(): void {
    this.paused = false
    this.body?.resume()
  }
}

export const requestTransport: Transport = (dispatcher, call, handler) =>
  new RequestExchange(dispatcher, call, handler)
