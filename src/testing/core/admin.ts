/**
 * Protocol logic of the admin API stand-in: backend records (`GET /api/llm-backends/public`, ETag opt-in),
 * per-model lookup (`GET /api/llm-backends/model/:name`) and metrics intake
 * (`POST /api/llm-backends/metrics`).
 * @module
 */
import { createHash } from 'node:crypto'
import type { BackendRecord, MetricRecord } from '../../types.js'
import type { FaultSpec, RecordingOptions } from '../types.js'
import { type Action, bodyReply, emptyReply, type IncomingRequest, jsonReply, type Reply } from './reply.js'
import { type ErrorShape, ServiceCore } from './service.js'

/** A record as the admin serves it: usually a {@link BackendRecord}, but anything goes (to test validation). */
export type AdminRecord = BackendRecord | Record<string, unknown>

/** Options of the admin API stand-in. */
export interface AdminOptions extends RecordingOptions {
  /** Initial records served by `GET /api/llm-backends/public`. Default `[]`. */
  records?: AdminRecord[]
  /** Send an ETag and answer a matching If-None-Match with 304. Default false: the seed's FastAPI admin sends none. */
  etag?: boolean
  /** Accept a JSON array of metric records in one body. false: arrays get 422 (one record per body). Default true. */
  acceptArrays?: boolean
  /** Status of an accepted metrics POST. Default 200. */
  metricsStatus?: number
  /** Keep at most this many metric records in `metrics` (oldest dropped). Default: all. `metricsReceived` counts all. */
  maxRecordedMetrics?: number
  /** Called after each metrics POST with what was accepted (empty when rejected), e.g. to show batches arriving. */
  onMetrics?: (post: MetricPost, accepted: MetricRecord[]) => void
}

/** One `POST /api/llm-backends/metrics` as received. */
export interface MetricPost {
  /** Parsed body (or raw text when it was not JSON). */
  body: unknown
  /** Whether the body was a JSON array. */
  array: boolean
  /** Records accepted from this post (0 when rejected). */
  records: number
  /** Status answered. */
  status: number
  receivedAt: number
}

/** Path of the admin's record list (`GET`). */
export const ADMIN_LIST_PATH = '/api/llm-backends/public'
/** Path prefix of the admin's per-model lookup (`GET {prefix}{model}`). */
export const ADMIN_MODEL_PATH = '/api/llm-backends/model/'
/** Path of the admin's metrics intake (`POST`). */
export const ADMIN_METRICS_PATH = '/api/llm-backends/metrics'

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export class AdminCore extends ServiceCore {
  protected readonly errors: ErrorShape = {
    error: (status, message) => jsonReply(status, { detail: message }),
    busyMessage: 'Service Unavailable',
    rateLimitMessage: 'Too Many Requests',
    badRequestMessage: 'Bad Request',
  }
  #records: AdminRecord[]
  #payload: { value: unknown } | null = null
  /** Every metric record accepted, in arrival order (as sent: not validated). */
  readonly metrics: MetricRecord[] = []
  /** Every metrics POST, accepted or not (capped like `metrics`). */
  readonly metricPosts: MetricPost[] = []
  /** Metric records accepted so far, kept or not. */
  metricsReceived = 0

  constructor(readonly options: AdminOptions = {}) {
    super(options)
    this.#records = [...(options.records ?? [])]
  }

  get records(): AdminRecord[] {
    return this.#records
  }

  /** Replaces the records; the next list request sees them (with a new ETag). Clears `setPayload`. */
  setRecords(records: AdminRecord[]): void {
    this.#records = [...records]
    this.#payload = null
  }

  /** Serves this value (JSON-encoded) instead of the records, e.g. `{ data: [...] }` or garbage. */
  setPayload(value: unknown): void {
    this.#payload = { value }
  }

  protected isPrimary(): boolean {
    return true
  }

  protected contentTypeFor(): { contentType: string; streaming: boolean } {
    return { contentType: 'application/json', streaming: false }
  }

  override reset(): void {
    super.reset()
    this.metrics.length = 0
    this.metricPosts.length = 0
    this.metricsReceived = 0
  }

  protected route(req: IncomingRequest, fault: FaultSpec | null): Action {
    if (fault?.type === '404-model') return this.errors.error(404, fault.message ?? 'Not Found')
    if (fault?.type === 'error-mid-stream')
      return this.errors.error(500, fault.message ?? 'Internal Server Error')
    const { method, path } = req
    const get = method === 'GET' || method === 'HEAD'
    if (path === ADMIN_LIST_PATH && get) return this.#list(req, fault)
    if (path.startsWith(ADMIN_MODEL_PATH) && get) return this.#model(path.slice(ADMIN_MODEL_PATH.length))
    if (path === ADMIN_METRICS_PATH && method === 'POST') return this.#intake(req)
    return this.errors.error(path === ADMIN_LIST_PATH || path === ADMIN_METRICS_PATH ? 405 : 404, 'Not Found')
  }

  #list(req: IncomingRequest, fault: FaultSpec | null): Reply {
    const body = JSON.stringify(this.#payload !== null ? this.#payload.value : this.#records)
    if (fault?.type === 'invalid-json') {
      return jsonReplyRaw(200, body.slice(0, Math.max(1, Math.floor(body.length / 2))))
    }
    if (this.options.etag !== true) return jsonReplyRaw(200, body)
    const etag = `"${createHash('sha1').update(body).digest('hex').slice(0, 20)}"`
    const inm = req.headers['if-none-match']
    if (inm !== undefined) {
      const tags = inm.split(',').map((t) => t.trim().replace(/^W\//, ''))
      if (tags.includes(etag) || tags.includes('*')) return emptyReply(304, { etag })
    }
    return jsonReplyRaw(200, body, { etag })
  }

  #model(encoded: string): Reply {
    let name: string
    try {
      name = decodeURIComponent(encoded)
    } catch {
      name = encoded
    }
    const matches = this.#records
      .filter((r): r is Record<string, unknown> => isObject(r) && r.model_name === name)
      .sort((a, b) => rank(a) - rank(b))
    const found = matches[0]
    return found !== undefined ? jsonReply(200, found) : this.errors.error(404, `Model '${name}' not found`)
  }

  #intake(req: IncomingRequest): Reply {
    const post = (body: unknown, array: boolean, records: number, reply: Reply): Reply => {
      const entry: MetricPost = { body, array, records, status: reply.status, receivedAt: Date.now() }
      this.metricPosts.push(entry)
      this.#trim(this.metricPosts)
      try {
        const accepted = records === 0 ? [] : ((array ? body : [body]) as MetricRecord[])
        this.options.onMetrics?.(entry, accepted)
      } catch {
        // An observer's bug must not change what the stand-in answers.
      }
      return reply
    }
    let body: unknown
    try {
      body = JSON.parse(req.rawBody)
    } catch {
      return post(req.rawBody, false, 0, this.errors.error(400, 'Invalid JSON body'))
    }
    const unprocessable = (msg: string) =>
      jsonReply(422, { detail: [{ type: 'dict_type', loc: ['body'], msg, input: null }] })
    if (Array.isArray(body)) {
      if (this.options.acceptArrays === false) {
        return post(body, true, 0, unprocessable('Input should be a valid dictionary'))
      }
      if (!body.every(isObject))
        return post(body, true, 0, unprocessable('Each item should be a valid dictionary'))
      this.#keep(body as unknown as MetricRecord[])
      return post(body, true, body.length, this.#accepted(body.length))
    }
    if (!isObject(body)) return post(body, false, 0, unprocessable('Input should be a valid dictionary'))
    this.#keep([body as unknown as MetricRecord])
    return post(body, false, 1, this.#accepted(1))
  }

  #keep(records: MetricRecord[]): void {
    this.metricsReceived += records.length
    this.metrics.push(...records)
    this.#trim(this.metrics)
  }

  #trim(list: unknown[]): void {
    const max = this.options.maxRecordedMetrics
    if (max !== undefined && list.length > max) list.splice(0, list.length - Math.max(0, max))
  }

  #accepted(n: number): Reply {
    return jsonReply(this.options.metricsStatus ?? 200, { status: 'ok', received: n })
  }
}

function rank(r: Record<string, unknown>): number {
  const enabledPenalty = r.enabled === false ? 1e12 : 0
  return enabledPenalty + (typeof r.priority === 'number' ? r.priority : 0)
}

function jsonReplyRaw(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return bodyReply(status, 'application/json', body, headers)
}
