/**
 * `router.stream()` and `router.streamChat()`: an async iterable of chunks backed by the same
 * dispatcher as the one-answer calls; the operation's `ChunkShape` says how its deltas become chunks.
 * The request starts on the first `next()` (or when `result` is read), so an unread stream never
 * holds a connection. Backpressure pauses the socket when an iterating consumer falls behind; a
 * consumer that only awaits `result` is never paused (the text ends up in the result anyway).
 * Concurrent `next()` calls are answered in call order.
 */
import type { ProtocolAdapter } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind, StreamChunk } from '../types.js'
import type { RequestControl } from './attempt.js'
import { type DispatchCore, runRequest, type StreamHooks } from './dispatcher.js'
import type { DispatchRequest, DispatchResult, Operation } from './operation.js'
import type { Candidate } from './routes.js'

/** Queued deltas before the socket is paused (resumed on the next pull, which drains the queue). */
const HIGH_WATER = 64

export interface StreamRunHooks<Res> {
  /** Config snapshot for the request; called once, when the stream starts. */
  snapshot(): ConfigSnapshot | Promise<ConfigSnapshot>
  started(result: Promise<Res>): void
  settled(result: Res | null, error: unknown): void
}

/** How an operation's stream deltas become the chunks its consumer sees. */
export interface ChunkShape<Delta, Chunk> {
  /** One delta as a chunk. */
  one(delta: Delta, model: string, backend: BackendKind): Chunk
  /** Deltas queued while the consumer was busy (at least two), coalesced into one chunk; must not keep the array. */
  many(deltas: Delta[], model: string, backend: BackendKind): Chunk
  /** How much a delta delivers (characters): once anything is delivered a failure is STREAM_INTERRUPTED. */
  size(delta: Delta): number
}

/** generate streams: deltas are text. */
export const textChunks: ChunkShape<string, StreamChunk> = {
  one: (text, model, backend) => ({ text, model, backend }),
  many: (texts, model, backend) => ({ text: texts.join(''), model, backend }),
  size: (text) => text.length,
}

interface Waiter<Chunk> {
  resolve: (r: IteratorResult<Chunk>) => void
  reject: (e: unknown) => void
}

export class StreamRun<Req extends DispatchRequest, Out, Res extends DispatchResult, Delta, Chunk>
  implements AsyncIterable<Chunk>, AsyncIterator<Chunk>, StreamHooks<Out, Delta>
{
  /** Deltas not yet handed to the consumer; coalesced into one chunk per `next()`. */
  private readonly queue: Delta[] = []
  /** Pending `next()` calls, oldest first. */
  private readonly waiters: Waiter<Chunk>[] = []
  /** Set by the first `next()`: only an iterating consumer can resume a paused socket. */
  private iterated = false
  private ended = false
  private failure: unknown = null
  private resultPromise: Promise<Res> | null = null
  private deliveredChars = 0
  private firstAt: number | null = null
  private lastAt: number | null = null
  /** A delta arrived after `lastAt` was taken; `stamp` (queued as a microtask) brings it up to date. */
  private stampDue = false
  private readonly stamp = (): void => {
    if (!this.stampDue) return
    this.stampDue = false
    this.lastAt = performance.now()
  }
  private model = ''
  private backend: BackendKind = 'ollama'
  /** An abort requested before the request's control existed. */
  private pendingAbort: RouterError | null = null
  private paused = false
  control: RequestControl | null = null

  constructor(
    private readonly core: DispatchCore,
    private readonly op: Operation<Req, Out, Res, Delta>,
    private readonly chunks: ChunkShape<Delta, Chunk>,
    private readonly req: Req,
    private readonly hooks: StreamRunHooks<Res>,
    /** A request that failed before it could start (invalid, router closed): reported on first use. */
    private readonly invalid: RouterError | null = null,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    return this
  }

  get result(): Promise<Res> {
    return this.start()
  }

  abort(reason?: unknown): void {
    const error =
      reason instanceof RouterError && reason.code === ErrorCode.ABORTED
        ? reason
        : new RouterError(ErrorCode.ABORTED, 'The stream was aborted with stream.abort()', { cause: reason })
    if (this.control !== null) this.control.stop(error)
    else this.pendingAbort ??= error
  }

  // StreamHooks ---------------------------------------------------------------------------------
  createDecoder(adapter: ProtocolAdapter<Out, Delta>) {
    return adapter.createStreamDecoder(this.core.fastFrames)
  }

  readonly onText = (delta: Delta): void => {
    if (this.firstAt === null) {
      this.firstAt = performance.now()
      this.lastAt = this.firstAt
    } else if (!this.stampDue) {
      // The deltas of one burst (a socket read holds many frames at load) share one clock read, taken
      // when the burst's synchronous work is done: one performance.now() per read, not per token.
      this.stampDue = true
      queueMicrotask(this.stamp)
    }
    this.deliveredChars += this.chunks.size(delta)
    const waiter = this.waiters.shift()
    if (waiter !== undefined) {
      waiter.resolve({ value: this.chunks.one(delta, this.model, this.backend), done: false })
      return
    }
    // The consumer is busy: queue, and let the next pull take everything at once. A body that
    // arrives in one packet then costs one chunk, not one chunk (and promise) per token.
    this.queue.push(delta)
    if (!this.paused && this.iterated && this.queue.length >= HIGH_WATER) {
      this.paused = true
      this.control?.current?.pause()
    }
  }

  delivered(): number {
    return this.deliveredChars
  }

  onAttempt(candidate: Candidate, target: { kind: BackendKind }): void {
    this.model = candidate.model
    this.backend = target.kind
  }

  firstTextAt(): number | null {
    return this.firstAt
  }

  lastTextAt(): number | null {
    this.stamp()
    return this.lastAt
  }

  // Iterator ------------------------------------------------------------------------------------
  next(): Promise<IteratorResult<Chunk>> {
    this.iterated = true
    const queued = this.queue.length
    if (queued > 0) {
      const value =
        queued === 1
          ? this.chunks.one(this.queue[0]!, this.model, this.backend)
          : this.chunks.many(this.queue, this.model, this.backend)
      this.queue.length = 0
      if (this.paused) {
        this.paused = false
        this.control?.current?.resume()
      }
      return Promise.resolve({ value, done: false })
    }
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.ended) return Promise.resolve({ value: undefined, done: true })
    this.start()
    if (this.failure !== null) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject })
    })
  }

  /** `break` in a for-await loop lands here: stop the request and close its connection. */
  return(): Promise<IteratorResult<Chunk>> {
    if (!this.ended && this.failure === null) {
      this.abort(new RouterError(ErrorCode.ABORTED, 'The stream was closed by its consumer before it ended'))
    }
    this.queue.length = 0
    this.ended = true
    return Promise.resolve({ value: undefined, done: true })
  }

  private start(): Promise<Res> {
    if (this.resultPromise !== null) return this.resultPromise
    if (this.invalid !== null) {
      this.failure = this.invalid
      this.resultPromise = Promise.reject(this.invalid)
      this.resultPromise.catch(() => {})
      return this.resultPromise
    }
    const t0 = performance.now()
    let snapshot: ConfigSnapshot | Promise<ConfigSnapshot>
    try {
      snapshot = this.hooks.snapshot()
    } catch (error) {
      snapshot = Promise.reject(error)
    }
    const p = runRequest(this.core, this.op, this.req, snapshot, this, t0, (c) => {
      this.control = c
      if (this.pendingAbort !== null) c.stop(this.pendingAbort)
    })
    this.resultPromise = p.then(
      (result) => {
        this.ended = true
        this.hooks.settled(result, null)
        for (const waiter of this.waiters.splice(0)) waiter.resolve({ value: undefined, done: true })
        return result
      },
      (error: unknown) => {
        this.failure = error
        this.hooks.settled(null, error)
        for (const waiter of this.waiters.splice(0)) waiter.reject(error)
        throw error
      },
    )
    // Readers of `result` still see the rejection; an unread one must not crash the process.
    this.resultPromise.catch(() => {})
    this.hooks.started(this.resultPromise)
    return this.resultPromise
  }
}
