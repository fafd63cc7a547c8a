/**
 * Protocol logic of the admin API stand-in: backend records (`GET /api/llm-backends/public`),
 * per-model lookup (`GET /api/llm-backends/model/:name`) and metrics intake
 * (`POST /api/llm-backends/metrics`).
 *
 * By default it behaves like the seed's admin (FastAPI + pydantic, seeds 000 and 004): no ETag, 404
 * `{"detail": ...}` for an unknown model, and ONE metric record per POST, validated the way pydantic
 * validates the request model (a body that is not an object, or lacks a required field, gets 422 with
 * FastAPI's `detail` list), answered with `{"id": N, "status": "created"}`. ETags and arrays of records
 * are opt-in (`etag: true`, `acceptArrays: true`).
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
  /** Send an ETag on the record list and answer a matching If-None-Match with 304. The seed's admin does not. Default false. */
  etag?: boolean
  /**
   * Also accept a JSON array of metric records in one body (each item validated like a single record).
   * Default false: like the seed's FastAPI endpoint, an array gets
   * `422 {"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]}`.
   */
  acceptArrays?: boolean
  /**
   * Path of the record list, e.g. `/api/providers/all` for seed 003's admin (`admin.schema: 'providers'`).
   * Default {@link ADMIN_LIST_PATH}.
   */
  listPath?: string
  /** Status of an accepted metrics POST. Default 200 (FastAPI's default). */
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

/** One entry of FastAPI's 422 `detail` list (pydantic v1 wording, as in seed 004's admin). */
export interface ValidationIssue {
  loc: (string | number)[]
  msg: string
  type: string
}

type FieldKind = 'float' | 'int' | 'str'

/** Seed 004's metric model: required fields, then `Optional[str]` ones (null or absent is fine). */
const METRIC_FIELDS: readonly [name: string, kind: FieldKind, required: boolean][] = [
  ['timestamp', 'float', true],
  ['model', 'str', true],
  ['backend', 'str', true],
  ['latency_seconds', 'float', true],
  ['tokens', 'int', true],
  ['tokens_per_second', 'float', true],
  ['request_id', 'str', false],
  ['session_id', 'str', false],
  ['user_id', 'str', false],
  ['zone', 'str', false],
  ['intent', 'str', false],
]

/** Whether pydantic v1 would coerce `v` to `kind` (it accepts numeric strings and bools for numbers, numbers for str). */
function coerces(v: unknown, kind: FieldKind): boolean {
  if (kind === 'str') return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
  if (typeof v === 'boolean') return true
  if (typeof v === 'number') return Number.isFinite(v) || kind === 'float'
  if (typeof v !== 'string') return false
  const t = v.trim()
  return kind === 'int' ? /^[+-]?\d+$/.test(t) : t !== '' && !Number.isNaN(Number(t))
}

const WRONG_TYPE: Record<FieldKind, { msg: string; type: string }> = {
  float: { msg: 'value is not a valid float', type: 'type_error.float' },
  int: { msg: 'value is not a valid integer', type: 'type_error.integer' },
  str: { msg: 'str type expected', type: 'type_error.str' },
}

/**
 * Validates one metric body as FastAPI/pydantic would for seed 004's model. Unknown fields are ignored
 * (pydantic's default), so the router's extra fields (`endpoint`, `outcome`, ...) are accepted.
 */
export function validateMetricBody(body: unknown, loc: (string | number)[] = ['body']): ValidationIssue[] {
  if (!isObject(body)) return [{ loc, msg: 'value is not a valid dict', type: 'type_error.dict' }]
  const issues: ValidationIssue[] = []
  for (const [name, kind, required] of METRIC_FIELDS) {
    const v = body[name]
    if (v === undefined) {
      if (required) issues.push({ loc: [...loc, name], msg: 'field required', type: 'value_error.missing' })
    } else if (v === null) {
      if (required)
        issues.push({
          loc: [...loc, name],
          msg: 'none is not an allowed value',
          type: 'type_error.none.not_allowed',
        })
    } else if (!coerces(v, kind)) issues.push({ loc: [...loc, name], ...WRONG_TYPE[kind] })
  }
  return issues
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
  /** Last row id handed out (`{"id": N}`), like a database sequence. */
  #lastId = 0

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
    this.#lastId = 0
  }

  protected route(req: IncomingRequest, fault: FaultSpec | null): Action {
    if (fault?.type === '404-model') return this.errors.error(404, fault.message ?? 'Not Found')
    if (fault?.type === 'error-mid-stream')
      return this.errors.error(500, fault.message ?? 'Internal Server Error')
    const { method, path } = req
    const get = method === 'GET' || method === 'HEAD'
    const listPath = this.options.listPath ?? ADMIN_LIST_PATH
    if (path === listPath && get) return this.#list(req, fault)
    if (path.startsWith(ADMIN_MODEL_PATH) && get) return this.#model(path.slice(ADMIN_MODEL_PATH.length))
    if (path === ADMIN_METRICS_PATH && method === 'POST') return this.#intake(req)
    // FastAPI's answers for a known path with the wrong method, and for an unknown path.
    if (path === listPath || path === ADMIN_METRICS_PATH || path.startsWith(ADMIN_MODEL_PATH))
      return this.errors.error(405, 'Method Not Allowed')
    return this.errors.error(404, 'Not Found')
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
    } catch (err) {
      // FastAPI answers a body that is not JSON with 422 too.
      const msg = err instanceof Error ? err.message : 'Expecting value'
      return post(
        req.rawBody,
        false,
        0,
        unprocessable([{ loc: ['body', 0], msg, type: 'value_error.jsondecode' }]),
      )
    }
    const array = Array.isArray(body)
    const issues =
      array && this.options.acceptArrays === true
        ? (body as unknown[]).flatMap((item, i) => validateMetricBody(item, ['body', i]))
        : validateMetricBody(body)
    if (issues.length > 0) return post(body, array, 0, unprocessable(issues))
    const records = (array ? body : [body]) as MetricRecord[]
    this.#keep(records)
    const ids = records.map(() => ++this.#lastId)
    const status = this.options.metricsStatus ?? 200
    const answer = array
      ? jsonReply(status, { ids, status: 'created' })
      : jsonReply(status, { id: ids[0], status: 'created' })
    return post(body, array, records.length, answer)
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
}

function unprocessable(detail: ValidationIssue[]): Reply {
  return jsonReply(422, { detail })
}

function rank(r: Record<string, unknown>): number {
  const enabledPenalty = r.enabled === false ? 1e12 : 0
  return enabledPenalty + (typeof r.priority === 'number' ? r.priority : 0)
}

function jsonReplyRaw(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return bodyReply(status, 'application/json', body, headers)
}
