/**
 * The router's HTTP layer: undici's low-level `dispatch()` with a handler object instead of
 * `request()`. That skips the per-response Readable stream and AbortController/EventTarget machinery,
 * which is most of a request's client CPU; the router then costs about what raw undici costs.
 *
 * undici's own 300 s headers/body timeouts are disabled: a long local generation must be cut off
 * by the router's deadline (or the caller's signal), never by a transport default.
 */
import { Agent, type Dispatcher } from 'undici'

export interface AgentOptions {
  /** Max sockets per origin; null = unlimited. */
  connections: number | null
  /** Idle keep-alive before a pooled socket is closed. */
  keepAliveTimeoutMs: number
  connectTimeoutMs: number
}

export function createAgent(options: AgentOptions): Agent {
  return new Agent({
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs, 60_000),
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { timeout: options.connectTimeoutMs },
  })
}

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
export class HttpExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null
  private abortReason: Error | null = null
  private settled = false
  private started = false
  private drainTimer: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly handler: ResponseHandler) {}

  abort(reason: Error): void {
    if (this.settled) return
    if (this.controller) this.controller.abort(reason)
    else this.abortReason = reason
  }

  pause(): void {
    this.controller?.pause()
  }

  resume(): void {
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

/** Starts a request; the handler receives the response. Errors thrown synchronously by undici go to onError. */
export function startExchange(
  dispatcher: Dispatcher,
  call: HttpCall,
  handler: ResponseHandler,
): HttpExchange {
  const exchange = new HttpExchange(handler)
  try {
    dispatcher.dispatch(
      {
        origin: call.origin,
        path: call.path,
        method: call.method,
        headers: call.headers,
        body: call.body,
        // Generation is not idempotent in cost: never let undici replay it on its own.
        idempotent: false,
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      exchange,
    )
  } catch (error) {
    exchange.onResponseError(undefined as unknown as Dispatcher.DispatchController, error as Error)
  }
  return exchange
}
