/**
 * Validation of admin backend records. One bad record never poisons the others: `parseRecords` keeps
 * the valid ones and reports each invalid one with its index, model name and the field at fault.
 *
 * Decisions where the admin API is silent:
 * - `priority` defaults to 100 (the value the production payload uses for its first-choice records);
 *   lower is tried first. `enabled` defaults to true. Both accept the 0/1 integers SQL-backed admins send.
 * - `null` on any optional field means "absent" (admins built on SQL rows send `"description": null`).
 * - Numbers are never coerced from strings; every number must be finite and non-negative,
 *   `max_tokens` a positive integer and `timeout_seconds` positive.
 * - URLs must be http(s), without credentials, query or fragment (credentials go through `auth`,
 *   which names environment variables, so they never end up in metrics or logs). A trailing slash
 *   is stripped so `${endpoint_url}/api/generate` is always well formed.
 */
import { z } from 'zod'
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendAuth, BackendRecord, BackendType, Capability } from '../types.js'

/** One invalid record in a payload: `index` in the array (-1 when not tied to an array element). */
export interface InvalidRecord {
  index: number
  modelName: string | null
  field: string
  message: string
}

export type ParseRecordResult =
  | { ok: true; record: BackendRecord }
  | { ok: false; field: string; message: string }

export interface ParseRecordsResult {
  records: BackendRecord[]
  invalid: InvalidRecord[]
}

const BACKEND_TYPES = ['ollama', 'mlx', 'auto', 'openai'] as const satisfies readonly BackendType[]
const CAPABILITIES = [
  'tools',
  'vision',
  'json_schema',
  'thinking',
  'embeddings',
] as const satisfies readonly Capability[]
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
/** RFC 9110 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers the transport owns; letting a record set them would corrupt the request framing. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
])

/**
 * Validates an http(s) base URL and strips trailing slashes. The message never repeats the value:
 * a mistyped URL may carry credentials.
 */
export function normalizeBaseUrl(value: string): { url: string } | { error: string } {
  const trimmed = value.trim()
  let parsed: URL
  try {
    parsed = new URL(trimmed)
  } catch {
    return { error: 'must be an absolute http(s) URL, e.g. http://127.0.0.1:11434' }
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return { error: `must use http or https, not ${parsed.protocol.slice(0, 20)}` }
  }
  if (parsed.username !== '' || parsed.password !== '') {
    return {
      error: 'must not contain credentials; reference them with "auth" (an environment variable name)',
    }
  }
  if (parsed.search !== '' || parsed.hash !== '') {
    return { error: 'must be a base URL without query string or fragment' }
  }
  return { url: trimmed.replace(/\/+$/, '') }
}

/** `allowEmpty`: '' passes, for an `endpoint_url` whose URL comes from `endpoint_url_env` alone. */
const urlField = (allowEmpty: boolean) =>
  z.string().transform((value, ctx) => {
    if (allowEmpty && value === '') return value
    const result = normalizeBaseUrl(value)
    if ('error' in result) {
      ctx.addIssue({ code: 'custom', message: result.error })
      return z.NEVER
    }
    return result.url
  })
const baseUrl = urlField(false)

const nonEmpty = z.string().trim().min(1, 'must not be empty')
const nonNegative = z
  .number({ error: 'must be a number' })
  .finite('must be a finite number')
  .nonnegative('must not be negative')
const positiveInt = z
  .number({ error: 'must be a positive integer' })
  .int('must be a positive integer')
  .positive('must be a positive integer')
const flag = z.union([z.boolean(), z.literal(0), z.literal(1)], {
  error: 'must be true or false',
})

const envName = z
  .string({ error: 'must be an environment variable name' })
  .regex(ENV_NAME, 'must be an environment variable name (letters, digits, _), never a secret value')

/** Go duration syntax, as Ollama parses a string `keep_alive` (time.ParseDuration): `5m`, `1h30m`, `-1s`, `0`. */
const GO_DURATION = /^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$/
/** Ollama's `keep_alive`: seconds as a number (negative: keep loaded), or a Go duration string. */
const KEEP_ALIVE_MESSAGE =
  'must be seconds (a number; negative keeps the model loaded) or a duration such as "5m" or "1h"'
const keepAlive = z.union(
  [
    z.number({ error: KEEP_ALIVE_MESSAGE }).finite(KEEP_ALIVE_MESSAGE),
    z.string({ error: KEEP_ALIVE_MESSAGE }).regex(GO_DURATION, KEEP_ALIVE_MESSAGE),
  ],
  { error: KEEP_ALIVE_MESSAGE },
)

const bearerAuth = z.strictObject({ bearer_env: envName })
const encryptedAuth = z.strictObject({
  bearer_encrypted: z.string({ error: 'must be a Fernet token' }).min(1, 'must be a Fernet token'),
  key_env: envName,
})
const headerAuth = z.strictObject({
  header: z
    .string()
    .trim()
    .regex(HEADER_NAME, 'header must be an HTTP header name')
    .refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), 'header names a header the transport sets itself'),
  value_env: envName,
})

/**
 * Dispatches on the keys present instead of a zod union, so the report names the real problem
 * (a union would answer "invalid input" for both shapes).
 */
const authSchema = z.unknown().transform((value, ctx): BackendAuth => {
  const shapeError =
    'must be {"bearer_env": "VAR"} or {"header": "X-Api-Key", "value_env": "VAR"} (environment variable names)'
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: shapeError })
    return z.NEVER
  }
  const schema =
    'bearer_env' in value
      ? bearerAuth
      : 'header' in value || 'value_env' in value
        ? headerAuth
        : 'bearer_encrypted' in value
          ? encryptedAuth
          : null
  if (schema === null) {
    ctx.addIssue({ code: 'custom', message: shapeError })
    return z.NEVER
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path.map(String) })
    }
    return z.NEVER
  }
  const data = parsed.data
  if ('bearer_encrypted' in data) return { bearer_encrypted: data.bearer_encrypted, key_env: data.key_env }
  return 'bearer_env' in data
    ? { bearer_env: data.bearer_env }
    : { header: data.header, value_env: data.value_env }
})

const recordShape = z.object({
  id: z.union([z.number(), z.string()], { error: 'id must be a number or a string' }).optional(),
  model_name: z.string({ error: 'must be a string' }).trim().min(1, 'must not be empty'),
  backend_type: z.enum(BACKEND_TYPES, {
    error: (issue) =>
      issue.input === undefined
        ? 'is required: ollama, mlx or auto (or openai for hosted APIs)'
        : `unknown backend_type ${JSON.stringify(String(issue.input).slice(0, 40))}; expected ollama, mlx or auto (or openai for hosted APIs)`,
  }),
  // '' only with endpoint_url_env: the URL then comes from the environment alone (checked below).
  endpoint_url: urlField(true),
  enabled: flag.optional(),
  priority: nonNegative.optional(),
  max_tokens: z
    .number({ error: 'must be a positive integer' })
    .int('must be a positive integer')
    .positive('must be a positive integer')
    .optional(),
  temperature_default: nonNegative.optional(),
  timeout_seconds: z
    .number({ error: 'must be a positive number of seconds' })
    .finite('must be a positive number of seconds')
    .positive('must be a positive number of seconds')
    .optional(),
  description: z.string({ error: 'must be a string' }).optional(),
  backend_model: nonEmpty.optional(),
  fallback_url: baseUrl.optional(),
  auth: authSchema.optional(),
  endpoint_url_env: envName.optional(),
  endpoint_path: z
    .string({ error: 'must be a path' })
    .regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must be a path such as /openai/v1')
    .optional(),
  backend_model_env: envName.optional(),
  is_default: flag.optional(),
  provider: nonEmpty.optional(),
  input_cost_per_million: nonNegative.optional(),
  output_cost_per_million: nonNegative.optional(),
  // An unknown name rejects the record (a typo such as "tool" would otherwise skip it for every tool call).
  capabilities: z
    .array(
      z.enum(CAPABILITIES, {
        error: (issue) =>
          `unknown capability ${JSON.stringify(String(issue.input).slice(0, 40))}; expected ${CAPABILITIES.join(', ')}`,
      }),
      { error: `must be a list of capabilities (${CAPABILITIES.join(', ')})` },
    )
    .optional(),
  // Limits (issue 14): per endpoint, enforced through the store, fleet-wide when it is Redis.
  rpm: positiveInt.optional(),
  tpm: positiveInt.optional(),
  token_budget: positiveInt.optional(),
  budget_period_seconds: positiveInt.optional(),
  // Pools (src/pool/): records of one model_name and priority share its traffic.
  weight: z
    .number({ error: 'must be a positive number' })
    .finite('must be a positive number')
    .positive('must be a positive number (share of the pool; disable a record with enabled: false)')
    .optional(),
  max_concurrency: positiveInt.optional(),
  keep_alive: keepAlive.optional(),
  context_length: z
    .number({ error: 'must be a positive integer (tokens)' })
    .int('must be a positive integer (tokens)')
    .positive('must be a positive integer (tokens)')
    .optional(),
})

/** Default priority when a record has none (lower is tried first). */
export const DEFAULT_PRIORITY = 100

function dropNulls(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = v
  return out
}

/**
 * zod schema for one admin record; output is a `BackendRecord` with unknown fields dropped and
 * optional fields present only when set (key order fixed, so JSON of the output is canonical).
 */
export const backendRecordSchema = z.preprocess(
  dropNulls,
  recordShape.transform((r, ctx): BackendRecord => {
    if (
      r.backend_type === 'auto' &&
      (r.endpoint_url_env !== undefined || r.backend_model_env !== undefined)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: [r.endpoint_url_env !== undefined ? 'endpoint_url_env' : 'backend_model_env'],
        message: 'is not supported on auto records (use an mlx and an ollama record)',
      })
      return z.NEVER
    }
    if (r.endpoint_url === '' && r.endpoint_url_env === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoint_url'],
        message: 'must be an absolute http(s) URL, e.g. http://127.0.0.1:11434',
      })
      return z.NEVER
    }
    const out: BackendRecord = r.id === undefined ? ({} as BackendRecord) : ({ id: r.id } as BackendRecord)
    out.model_name = r.model_name
    out.backend_type = r.backend_type
    out.endpoint_url = r.endpoint_url
    out.enabled = r.enabled === undefined ? true : r.enabled === true || r.enabled === 1
    out.priority = r.priority ?? DEFAULT_PRIORITY
    if (r.max_tokens !== undefined) out.max_tokens = r.max_tokens
    if (r.temperature_default !== undefined) out.temperature_default = r.temperature_default
    if (r.timeout_seconds !== undefined) out.timeout_seconds = r.timeout_seconds
    if (r.description !== undefined) out.description = r.description
    if (r.backend_model !== undefined) out.backend_model = r.backend_model
    if (r.fallback_url !== undefined) out.fallback_url = r.fallback_url
    if (r.auth !== undefined) out.auth = r.auth
    if (r.endpoint_url_env !== undefined) out.endpoint_url_env = r.endpoint_url_env
    if (r.endpoint_path !== undefined) out.endpoint_path = r.endpoint_path
    if (r.backend_model_env !== undefined) out.backend_model_env = r.backend_model_env
    if (r.is_default !== undefined) out.is_default = r.is_default === true || r.is_default === 1
    if (r.provider !== undefined) out.provider = r.provider
    if (r.input_cost_per_million !== undefined) out.input_cost_per_million = r.input_cost_per_million
    if (r.output_cost_per_million !== undefined) out.output_cost_per_million = r.output_cost_per_million
    if (r.capabilities !== undefined) out.capabilities = [...new Set(r.capabilities)]
    if (r.rpm !== undefined) out.rpm = r.rpm
    if (r.tpm !== undefined) out.tpm = r.tpm
    if (r.token_budget !== undefined) out.token_budget = r.token_budget
    if (r.budget_period_seconds !== undefined) out.budget_period_seconds = r.budget_period_seconds
    if (r.weight !== undefined) out.weight = r.weight
    if (r.max_concurrency !== undefined) out.max_concurrency = r.max_concurrency
    if (r.keep_alive !== undefined) out.keep_alive = r.keep_alive
    if (r.context_length !== undefined) out.context_length = r.context_length
    return out
  }),
)

function describeIssue(issue: z.core.$ZodIssue, input: object): { field: string; message: string } {
  const field = issue.path.length === 0 ? '(record)' : issue.path.map(String).join('.')
  const top = issue.path[0]
  // Messages never echo the offending value (it may be a misplaced secret); a missing key says so.
  if (
    issue.code === 'invalid_type' &&
    issue.path.length === 1 &&
    typeof top === 'string' &&
    !(top in input && (input as Record<string, unknown>)[top] !== null)
  ) {
    return { field, message: 'is required' }
  }
  return { field, message: issue.message }
}

/** Validates one record. Never throws. */
export function parseRecord(input: unknown): ParseRecordResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, field: '(record)', message: 'a record must be a JSON object' }
  }
  const parsed = backendRecordSchema.safeParse(input)
  if (parsed.success) return { ok: true, record: parsed.data }
  const issues = parsed.error.issues.map((issue) => describeIssue(issue, input))
  const first = issues[0] ?? { field: '(record)', message: 'invalid record' }
  const message = issues.map((i) => `${i.field}: ${i.message}`).join('; ')
  return { ok: false, field: first.field, message }
}

function modelNameOf(input: unknown): string | null {
  if (typeof input !== 'object' || input === null) return null
  const name = (input as { model_name?: unknown }).model_name
  return typeof name === 'string' ? name.slice(0, 200) : null
}

/**
 * Validates a payload that must be a list of records. Invalid records are returned in `invalid`
 * (one entry per record, naming its first bad field) and left out of `records`.
 * @throws RouterError CONFIG_INVALID when `payload` is not an array.
 */
export function parseRecords(payload: unknown): ParseRecordsResult {
  if (!Array.isArray(payload)) {
    const kind = payload === null ? 'null' : typeof payload === 'object' ? 'an object' : typeof payload
    throw new RouterError(
      ErrorCode.CONFIG_INVALID,
      `Admin payload must be a list of backend records (or {data|backends|records: [...]}), got ${kind}. ` +
        'Check the admin URL and list path, or pass admin.mapPayload to map another shape.',
    )
  }
  const records: BackendRecord[] = []
  const invalid: InvalidRecord[] = []
  payload.forEach((item, index) => {
    const result = parseRecord(item)
    if (result.ok) records.push(result.record)
    else invalid.push({ index, modelName: modelNameOf(item), field: result.field, message: result.message })
  })
  return { records, invalid }
}

/**
 * Default payload mapping: an array as-is, or the array under `data`, `backends` or `records`.
 * Anything else is returned unchanged, so `parseRecords` rejects it.
 */
export function defaultMapPayload(payload: unknown): unknown {
  if (Array.isArray(payload)) return payload
  if (typeof payload === 'object' && payload !== null) {
    const obj = payload as Record<string, unknown>
    for (const key of ['data', 'backends', 'records']) {
      if (Array.isArray(obj[key])) return obj[key]
    }
  }
  return payload
}

/** Enabled records ordered by priority, lower first; equal priorities keep payload order. */
export function sortEnabled(records: readonly BackendRecord[]): BackendRecord[] {
  // Array.prototype.sort is stable (ES2019), so equal priorities keep their payload order.
  return records.filter((r) => r.enabled).sort((a, b) => a.priority - b.priority)
}
