/**
 * One admin request for config: the shared HTTP client's outcome turned into what a config source
 * needs (a payload, not modified, not found) or a RouterError whose message says what to check.
 * Stateless: the sources keep ETags, caches and backoff.
 */
import type { Dispatcher } from 'undici'
import { ErrorCode, RouterError } from '../errors.js'
import { getJson } from '../http/client.js'
import { joinUrl, redactUrl } from '../http/url.js'
import type { Clock } from '../internal/clock.js'
import type { Env } from '../internal/env.js'
import type { BackendRecord } from '../types.js'
import type { AdminOptions } from './contract.js'
import { defaultMapPayload, type InvalidRecord, parseRecords } from './schema.js'
import { DEFAULT_ENCRYPTION_KEY_ENV, parseRows, SCHEMA_WRAPPER } from './schemas/index.js'

function isWrapped(value: unknown, key: string): value is Record<string, unknown[]> {
  return typeof value === 'object' && value !== null && Array.isArray((value as Record<string, unknown>)[key])
}

export type AdminFetchResult =
  | { kind: 'payload'; payload: unknown; etag: string | null }
  | { kind: 'not-modified'; etag: string | null }
  /** Only for per-model lookups: the admin has no record for the model. */
  | { kind: 'not-found' }

export interface AdminFetchDeps {
  admin: AdminOptions
  dispatcher: Dispatcher
  clock: Clock
}

/** URL of the list endpoint, or of one model's lookup when `model` is given. */
export function adminUrlFor(admin: AdminOptions, model?: string): string {
  const base = admin.url as string
  return model === undefined
    ? joinUrl(base, admin.listPath)
    : joinUrl(base, admin.modelPath.replaceAll('{model}', encodeURIComponent(model)))
}

/**
 * GETs the list (or one model when `model` is given) with If-None-Match when `etag` is known.
 * @throws RouterError CONFIG_FETCH_FAILED, CONFIG_INVALID, CONFIG_TOO_LARGE, or CLOSED when `signal` fires.
 */
export async function fetchAdmin(
  deps: AdminFetchDeps,
  etag: string | null,
  signal: AbortSignal,
  model?: string,
): Promise<AdminFetchResult> {
  const { admin } = deps
  const url = adminUrlFor(admin, model)
  const where = redactUrl(url)
  const outcome = await getJson({
    url,
    dispatcher: deps.dispatcher,
    clock: deps.clock,
    timeoutMs: admin.timeoutMs,
    maxBodyBytes: admin.maxPayloadBytes,
    headers: admin.headers,
    signal,
    etag,
  })
  switch (outcome.kind) {
    case 'json':
      return { kind: 'payload', payload: outcome.value, etag: outcome.etag }
    case 'not-modified':
      if (etag === null) {
        throw new RouterError(
          ErrorCode.CONFIG_INVALID,
          `Admin API at ${where} answered 304 Not Modified to a request without If-None-Match.`,
          { status: 304 },
        )
      }
      return { kind: 'not-modified', etag: outcome.etag ?? etag }
    case 'status': {
      const status = outcome.status
      if (status === 404 && model !== undefined) return { kind: 'not-found' }
      const hint =
        status === 401 || status === 403
          ? 'Check the credentials in admin.headers.'
          : status === 404
            ? 'Check the admin URL and admin.listPath.'
            : 'The last good config (or env records) stays in use; retrying with backoff.'
      throw new RouterError(
        ErrorCode.CONFIG_FETCH_FAILED,
        `Admin API at ${where} answered ${status}. ${hint}`,
        outcome.retryAfterMs === undefined ? { status } : { status, retryAfterMs: outcome.retryAfterMs },
      )
    }
    case 'not-json':
      throw new RouterError(
        ErrorCode.CONFIG_INVALID,
        `Admin API at ${where} answered ${outcome.status} with a body that is not JSON; expected a list of backend records.`,
        { cause: outcome.error, status: outcome.status },
      )
    case 'too-large':
      throw new RouterError(
        ErrorCode.CONFIG_TOO_LARGE,
        `Admin payload from ${where} is larger than admin.maxPayloadBytes (${admin.maxPayloadBytes} bytes; ${outcome.detail}). ` +
          'Raise the cap if this size is expected.',
      )
    case 'network':
      throw new RouterError(
        ErrorCode.CONFIG_FETCH_FAILED,
        `Could not reach the admin API at ${where} (${outcome.description}). ` +
          'Check the admin URL; the last good config (or env records) stays in use.',
        { cause: outcome.error },
      )
    case 'broken-body':
      throw new RouterError(
        ErrorCode.CONFIG_FETCH_FAILED,
        `Admin API at ${where} broke off while sending the config (${outcome.description}).`,
        { cause: outcome.error },
      )
    case 'timeout':
      throw new RouterError(
        ErrorCode.CONFIG_FETCH_FAILED,
        `Admin API at ${where} did not answer within ${outcome.timeoutMs} ms; raise admin.timeoutMs if it is just slow.`,
      )
    case 'aborted':
      throw new RouterError(
        ErrorCode.CLOSED,
        'The config source was closed; create a new router to load config.',
        {
          cause: outcome.reason,
        },
      )
  }
}

export interface ParsedPayload {
  /** Valid records, in payload order. */
  records: BackendRecord[]
  invalid: InvalidRecord[]
  /** The mapped payload as a list (for reporting invalid records). */
  raw: unknown[]
}

/**
 * Maps (admin.mapPayload, else the default mapping) and validates a payload. `single`: a per-model
 * endpoint, which may answer with the record itself rather than a list.
 * @throws RouterError CONFIG_INVALID when the payload is not a list, or mapPayload throws.
 */
export function parsePayload(
  admin: AdminOptions,
  payload: unknown,
  single: boolean,
  env: Env = {},
): ParsedPayload {
  const schema = admin.schema ?? 'llm_backends'
  let mapped: unknown
  try {
    mapped = (admin.mapPayload ?? defaultMapPayload)(payload)
    const wrapper = SCHEMA_WRAPPER[schema]
    if (wrapper !== null && admin.mapPayload === undefined && isWrapped(mapped, wrapper))
      mapped = mapped[wrapper]
  } catch (error) {
    throw new RouterError(
      ErrorCode.CONFIG_INVALID,
      'admin.mapPayload threw while mapping the admin payload.',
      {
        cause: error,
      },
    )
  }
  if (single && typeof mapped === 'object' && mapped !== null && !Array.isArray(mapped)) mapped = [mapped]
  if (schema !== 'llm_backends' && !Array.isArray(mapped)) {
    throw new RouterError(
      ErrorCode.CONFIG_INVALID,
      `Admin payload must be a list of ${schema} rows (admin.schema is '${schema}'), got ${
        mapped === null ? 'null' : typeof mapped === 'object' ? 'an object' : typeof mapped
      }. Check the admin URL and admin.listPath.`,
    )
  }
  const { records, invalid } = Array.isArray(mapped)
    ? parseRows(schema, mapped, {
        scope: admin.scope ?? 'global',
        env,
        encryptionKeyEnv: admin.encryptionKeyEnv ?? DEFAULT_ENCRYPTION_KEY_ENV,
      })
    : parseRecords(mapped)
  return { records, invalid, raw: mapped as unknown[] }
}

/**
 * Per model without an enabled record: why (its only record is invalid, or disabled). Feeds the
 * error that says why a request went to the default backend.
 */
export function notesFor(
  records: readonly BackendRecord[],
  invalid: readonly InvalidRecord[],
): Map<string, string> {
  const notes = new Map<string, string>()
  const enabled = new Set<string>()
  for (const r of records) if (r.enabled) enabled.add(r.model_name)
  for (const r of records) {
    if (!r.enabled && !enabled.has(r.model_name)) notes.set(r.model_name, 'its record is disabled')
  }
  for (const item of invalid) {
    const name = item.modelName
    if (name !== null && !enabled.has(name)) notes.set(name, `its only record is invalid (${item.message})`)
  }
  return notes
}
