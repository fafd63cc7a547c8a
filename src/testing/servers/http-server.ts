/**
 * The node:http half of a stand-in: listening, socket bookkeeping, and writing an {@link Action} to the
 * wire with real timings, resets and stalls. No msw in here.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { delay } from '../core/delay.js'
import type { Action, IncomingRequest, Reply } from '../core/reply.js'
import type { ServiceCore } from '../core/service.js'
import type { FaultSpec, FaultSwitch, FaultType, RecordedRequest, ServerOptions } from '../types.js'

/** Grace period between the last partial write and a reset, so the client has read the headers. */
const RESET_GRACE_MS = 15

/** What every stand-in server offers. */
export interface StandInServer extends FaultSwitch, AsyncDisposable {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string
  /** The bound port; kept across `stop()`/`listen()`. */
  readonly port: number
  /** Requests received, in order, including those a fault was applied to (the last `maxRecordedRequests`). */
  readonly requests: RecordedRequest[]
  /** Number of requests received since start (or `reset()`), recorded or not. */
  readonly requestCount: number
  /** Open sockets right now (for leak checks: returns to 0 once clients close their pools). */
  readonly connections: number
  /** Whether the listener is open. */
  readonly listening: boolean
  /** Starts listening again on the same port after `stop()` (or a `down` fault). */
  listen(): Promise<void>
  /** Closes the listener and destroys every open socket. Idempotent. */
  stop(): Promise<void>
  /** Forgets recorded requests (and metrics on the admin server) and clears the fault. */
  reset(): void
}

function drain(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done)
      signal.removeEventListener('abort', onAbort)
      resolve()
    }
    const onAbort = () => {
      res.off('drain', done)
      reject(signal.reason)
    }
    res.on('drain', done)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v
  }
  return out
}

/**
 * A limit on generations running at once, as Ollama's scheduler has (`OLLAMA_NUM_PARALLEL` slots,
 * `OLLAMA_MAX_QUEUE` waiting): a request beyond the slots waits for one, beyond the queue it gets
 * the server's busy answer. A waiting request is recorded (and its fault chosen) when it starts.
 */
export interface ConcurrencyLimit {
  parallel: number
  maxQueue: number
  applies(req: IncomingRequest): boolean
  busy(): Action
}

/** Base class of the node:http stand-ins. */
export class HttpStandIn<C extends ServiceCore> implements StandInServer {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #host: string
  readonly #keepAlive: boolean
  #port: number
  #listening = false
  #downByFault = false
  readonly #limit: ConcurrencyLimit | null
  #running = 0
  #peak = 0
  readonly #waiting: (() => void)[] = []

  protected constructor(
    /** The protocol logic; exposed to subclasses for their extra controls. */
    protected readonly core: C,
    options: ServerOptions & { keepAlive: boolean; limit?: ConcurrencyLimit | null },
  ) {
    this.#limit = options.limit ?? null
    this.#host = options.host ?? '127.0.0.1'
    this.#port = options.port ?? 0
    this.#keepAlive = options.keepAlive
    this.#server = createServer((req, res) => this.#onRequest(req, res))
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
    // A client that vanishes mid-response must not crash the test process.
    this.#server.on('clientError', (_err, socket) => socket.destroy())
  }

  get url(): string {
    return `http://${this.#host.includes(':') ? `[${this.#host}]` : this.#host}:${this.#port}`
  }

  get port(): number {
    return this.#port
  }

  get requests(): RecordedRequest[] {
    return this.core.requests
  }

  get requestCount(): number {
    return this.core.requestCount
  }

  get connections(): number {
    return this.#sockets.size
  }

  get listening(): boolean {
    return this.#listening
  }

  /** Limited requests (generations, when a concurrency limit is set) being answered right now. */
  get inFlight(): number {
    return this.#running
  }

  /** The most limited requests that ran at once since start (or `reset()`). */
  get peakInFlight(): number {
    return this.#peak
  }

  /** Limited requests waiting for a slot. */
  get queued(): number {
    return this.#waiting.length
  }

  get fault(): FaultSpec | null {
    return this.core.faults.fault
  }

  async setFault(fault: FaultSpec | FaultType): Promise<void> {
    const spec = this.core.faults.set(fault)
    if (spec.type === 'down') {
      if (this.#listening) {
        this.#downByFault = true
        await this.#close()
      }
    } else if (this.#downByFault) {
      await this.listen()
    }
  }

  async clearFault(): Promise<void> {
    this.core.faults.clear()
    if (this.#downByFault) await this.listen()
  }

  reset(): void {
    this.core.reset()
    this.#peak = this.#running
  }

  async listen(): Promise<void> {
    this.#downByFault = false
    // Listening again on purpose ends a `down` fault; otherwise requests would keep being dropped.
    if (this.core.faults.fault?.type === 'down') this.core.faults.clear()
    if (this.#listening) return
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err)
      this.#server.once('error', onError)
      this.#server.listen(this.#port, this.#host, () => {
        this.#server.off('error', onError)
        const addr = this.#server.address()
        if (addr !== null && typeof addr === 'object') this.#port = addr.port
        resolve()
      })
    })
    this.#listening = true
  }

  async stop(): Promise<void> {
    this.#downByFault = false
    await this.#close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  async #close(): Promise<void> {
    const wasListening = this.#listening
    this.#listening = false
    const closed = wasListening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve()
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
    await closed
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('error', () => {})
    req.on('end', () => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const incoming: IncomingRequest = {
        method: req.method ?? 'GET',
        path: q >= 0 ? url.slice(0, q) : url,
        url,
        headers: headersOf(req),
        rawBody: Buffer.concat(chunks).toString('utf8'),
        checkContentLength: req.method === 'POST',
      }
      const limit = this.#limit
      if (limit === null || !limit.applies(incoming)) {
        this.#answer(incoming, res)
        return
      }
      const start = () => {
        this.#running++
        this.#peak = Math.max(this.#peak, this.#running)
        res.once('close', () => {
          this.#running--
          this.#waiting.shift()?.()
        })
        this.#answer(incoming, res)
      }
      if (this.#running < limit.parallel) start()
      else if (this.#waiting.length < limit.maxQueue) {
        const wait = () => start()
        this.#waiting.push(wait)
        // A client that gives up while queued leaves the queue.
        res.once('close', () => {
          const i = this.#waiting.indexOf(wait)
          if (i >= 0) this.#waiting.splice(i, 1)
        })
      } else {
        const ac = new AbortController()
        res.once('close', () => ac.abort(new Error('response closed')))
        this.#write(res, limit.busy(), ac.signal).catch(() => {})
      }
    })
  }

  #answer(incoming: IncomingRequest, res: ServerResponse): void {
    let action: Action
    try {
      action = this.core.handle(incoming)
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`stand-in error: ${String(err)}`)
      return
    }
    const ac = new AbortController()
    res.once('close', () => ac.abort(new Error('response closed')))
    this.#write(res, action, ac.signal).catch(() => {
      // Client went away or the server stopped: nothing left to write to.
    })
  }

  async #write(res: ServerResponse, action: Action, signal: AbortSignal): Promise<void> {
    if (action.kind === 'hang') return
    if (action.kind === 'drop') {
      res.socket?.destroy()
      return
    }
    await this.#writeReply(res, action, signal)
  }

  async #writeReply(res: ServerResponse, reply: Reply, signal: AbortSignal): Promise<void> {
    if (reply.delayMs > 0) await delay(reply.delayMs, signal)
    for (const [k, v] of Object.entries(reply.headers)) res.setHeader(k, v)
    if (!this.#keepAlive) {
      res.setHeader('connection', 'close')
      if (reply.headers['content-length'] === undefined) {
        // HTTP/1.0 style (mlx_lm.server): no chunked framing, the body ends when the connection closes.
        res.removeHeader('content-length')
        res.removeHeader('transfer-encoding')
      }
    }
    res.writeHead(reply.status)
    if (reply.streaming) res.flushHeaders()
    for (const frame of reply.frames) {
      if (frame.delayMs > 0) await delay(frame.delayMs, signal)
      if (signal.aborted) return
      if (!res.write(frame.data)) await drain(res, signal)
    }
    if (reply.ending === 'end') {
      res.end()
      return
    }
    if (reply.ending === 'hang') return
    await new Promise<void>((resolve) => res.write('', () => resolve()))
    await delay(RESET_GRACE_MS, signal)
    const socket = res.socket
    if (socket !== null && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy()
    else socket?.destroy()
  }
}
