/**
 * The transport-neutral half of a stand-in: request recording, the fault switch and the order in which
 * a fault is applied. Protocol modules extend {@link ServiceCore}.
 * @module
 */
import type { FaultSpec, FaultType, RecordedRequest, RecordingOptions } from '../types.js'
import {
  type Action,
  applyBodyFault,
  bodyReply,
  HTML_500,
  type IncomingRequest,
  oversizeFrames,
  type Reply,
} from './reply.js'

/** Normalises `setFault('503')` to `{ type: '503' }` and validates the parameters. */
export function normalizeFault(fault: FaultSpec | FaultType): FaultSpec {
  const spec: FaultSpec = typeof fault === 'string' ? { type: fault } : { ...fault }
  if (spec.times !== undefined && (!Number.isInteger(spec.times) || spec.times < 1)) {
    throw new TypeError(`fault.times must be a positive integer, got ${String(spec.times)}`)
  }
  return spec
}

function pathMatches(scope: FaultSpec['path'], path: string, primary: boolean): boolean {
  if (scope === undefined) return primary
  if (scope === '*') return true
  if (typeof scope === 'string') return path.startsWith(scope)
  return scope.test(path)
}

/** The fault switch: one active fault, optionally limited to a number of requests or a path. */
export class FaultState {
  #fault: FaultSpec | null = null
  #left = Number.POSITIVE_INFINITY

  get fault(): FaultSpec | null {
    return this.#fault
  }

  set(fault: FaultSpec | FaultType): FaultSpec {
    const spec = normalizeFault(fault)
    this.#fault = spec
    this.#left = spec.times ?? Number.POSITIVE_INFINITY
    return spec
  }

  clear(): void {
    this.#fault = null
  }

  /** The fault that applies to this request, counting it against `times`. */
  take(path: string, primary: boolean): FaultSpec | null {
    const f = this.#fault
    if (f === null || !pathMatches(f.path, path, primary)) return null
    this.#left--
    if (this.#left <= 0) this.#fault = null
    return f
  }
}

export function parseBody(raw: string): unknown {
  if (raw.length === 0) return undefined
  try {
    return JSON.parse(raw) as unknown
  } catch {
    return raw
  }
}

/** Protocol-specific pieces the generic fault logic needs. */
export interface ErrorShape {
  /** An error response in this server's own shape. */
  error(status: number, message: string): Reply
  busyMessage: string
  rateLimitMessage: string
  badRequestMessage: string
}

/** Base of every stand-in's protocol logic. */
export abstract class ServiceCore {
  /** Requests received, in order (the most recent `maxRecordedRequests`). */
  readonly requests: RecordedRequest[] = []
  readonly faults = new FaultState()
  /** Every request received, recorded or not. */
  requestCount = 0
  readonly #maxRecorded: number
  readonly #onRequest: RecordingOptions['onRequest']

  constructor(recording: RecordingOptions = {}) {
    this.#maxRecorded = Math.max(0, recording.maxRecordedRequests ?? 10_000)
    this.#onRequest = recording.onRequest
  }

  /** Whether a request is on the route faults apply to by default. */
  protected abstract isPrimary(req: IncomingRequest): boolean
  /** The normal answer. May consult `fault` for protocol-specific faults (`404-model`, `invalid-json`, ...). */
  protected abstract route(req: IncomingRequest, fault: FaultSpec | null): Action
  protected abstract readonly errors: ErrorShape
  /** Content type of this route's normal answer, for `oversize`. */
  protected abstract contentTypeFor(req: IncomingRequest): { contentType: string; streaming: boolean }

  /** Records the request, applies the active fault, and answers. */
  handle(req: IncomingRequest): Action {
    const fault = this.faults.take(req.path, this.isPrimary(req))
    this.requestCount++
    if (this.#maxRecorded > 0 || this.#onRequest !== undefined) this.#record(req, fault)
    if (fault !== null) {
      const early = this.#replaceWithFault(req, fault)
      if (early !== null) return early
    }
    const action = this.route(req, fault)
    return fault !== null && action.kind === 'reply' ? applyBodyFault(action, fault) : action
  }

  #record(req: IncomingRequest, fault: FaultSpec | null): void {
    const recorded: RecordedRequest = {
      method: req.method,
      path: req.path,
      url: req.url,
      headers: req.headers,
      body: parseBody(req.rawBody),
      rawBody: req.rawBody,
      receivedAt: Date.now(),
      fault: fault?.type ?? null,
    }
    if (this.#maxRecorded > 0) {
      if (this.requests.length >= this.#maxRecorded) this.requests.shift()
      this.requests.push(recorded)
    }
    try {
      this.#onRequest?.(recorded)
    } catch {
      // An observer's bug must not change what the stand-in answers.
    }
  }

  #replaceWithFault(req: IncomingRequest, fault: FaultSpec): Action | null {
    switch (fault.type) {
      case 'down':
      case 'drop-socket':
        return { kind: 'drop' }
      case 'hang':
        return { kind: 'hang' }
      case '500-html':
        return bodyReply(500, 'text/html', HTML_500)
      case '503':
        return this.errors.error(503, fault.message ?? this.errors.busyMessage)
      case '400':
        return this.errors.error(400, fault.message ?? this.errors.badRequestMessage)
      case '429': {
        const r = this.errors.error(429, fault.message ?? this.errors.rateLimitMessage)
        return { ...r, headers: { ...r.headers, 'retry-after': retryAfter(fault) } }
      }
      case 'oversize': {
        const bytes = Math.max(0, Math.floor(fault.bytes ?? 50 * 1024 * 1024))
        const { contentType, streaming } = this.contentTypeFor(req)
        const headers: Record<string, string> = { 'content-type': contentType }
        if (!streaming) headers['content-length'] = String(bytes)
        return {
          kind: 'reply',
          status: 200,
          headers,
          delayMs: 0,
          frames: { [Symbol.iterator]: () => oversizeFrames(bytes) },
          streaming: false,
          ending: 'end',
        }
      }
      default:
        return null
    }
  }

  /** Forgets recorded requests and clears the fault. */
  reset(): void {
    this.requests.length = 0
    this.requestCount = 0
    this.faults.clear()
  }
}

function retryAfter(fault: FaultSpec): string {
  const v = fault.retryAfter ?? 1
  return typeof v === 'number' ? String(Math.max(0, Math.round(v))) : v
}
