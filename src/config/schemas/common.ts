/**
 * What the `llms` and `providers` mappers share: the context they map with, the row-to-record step
 * (a mapped record is validated by the same schema as an `llm_backends` record, and its errors are
 * reported under the row's own field names), and small readers that never echo a value.
 */
import type { Env } from '../../internal/env.js'
import type { BackendRecord } from '../../types.js'
import { ENV_NAME, type InvalidRecord, parseRecord } from '../schema.js'

/** The admin payload shapes `admin.schema` selects. */
export type AdminSchema = 'llm_backends' | 'llms' | 'providers'

export interface SchemaContext {
  /** Records of this scope and of `global` are used (option `scope`, default 'global'). */
  scope: string
  env: Env
  /** Environment variable holding the Fernet key for `api_key_encrypted` (`admin.encryptionKeyEnv`). */
  encryptionKeyEnv: string
}

/** Providers both schemas report instead of mapping, and why (checked against the providers' own docs). */
export const UNSUPPORTED_PROVIDERS: Readonly<Record<string, string>> = {
  anthropic:
    "provider anthropic is not supported: Anthropic's Messages API is not OpenAI-compatible (its OpenAI SDK compatibility layer is documented as for testing, not production)",
  bedrock:
    'provider bedrock is not supported: AWS Bedrock is called with AWS SigV4 credentials, not an OpenAI-compatible API key',
}

/** `table[key]` for the table's own keys only (a row's `constructor` or `__proto__` is no entry). */
export function lookup<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined
}

/** A row field that could not be mapped. */
export class RowError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message)
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A required non-empty string field. */
export function requiredString(row: Record<string, unknown>, field: string, prefix = ''): string {
  const value = row[field]
  if (value === undefined || value === null) throw new RowError(`${prefix}${field}`, 'is required')
  if (typeof value !== 'string' || value.trim() === '') {
    throw new RowError(`${prefix}${field}`, 'must be a non-empty string')
  }
  return value.trim()
}

/** An optional JSON object field (`null` or absent: empty). */
export function objectField(row: Record<string, unknown>, field: string): Record<string, unknown> {
  const value = row[field]
  if (value === undefined || value === null) return {}
  if (!isObject(value)) throw new RowError(field, 'must be a JSON object')
  return value
}

/** An environment variable name in `field` of `obj` (reported as `where`). */
export function envNameAt(obj: Record<string, unknown>, field: string, where: string): string | undefined {
  const value = obj[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string' || !ENV_NAME.test(value)) {
    throw new RowError(
      where,
      'must be an environment variable name (letters, digits, _), never a secret value',
    )
  }
  return value
}

/**
 * Validates a mapped record with the `llm_backends` schema; an error is reported under the row's
 * field name (`fields` maps record fields to row fields).
 */
export function validate(
  mapped: Record<string, unknown>,
  fields: Readonly<Record<string, string>>,
  prefix = '',
): BackendRecord {
  const result = parseRecord(mapped)
  if (result.ok) return result.record
  const top = result.field.split('.')[0] as string
  const rowField = `${prefix}${fields[top] ?? top}`
  throw new RowError(rowField, result.message.replace(`${result.field}: `, ''))
}

/** An InvalidRecord for a row error (or anything a mapper threw). */
export function invalidOf(index: number, modelName: string | null, error: unknown): InvalidRecord {
  if (error instanceof RowError) return { index, modelName, field: error.field, message: error.message }
  return { index, modelName, field: '(record)', message: 'could not be mapped' }
}

/** A name for reports: the string at `field`, cut short, or null. */
export function nameOf(row: unknown, field: string): string | null {
  if (!isObject(row)) return null
  const value = row[field]
  return typeof value === 'string' ? value.slice(0, 200) : null
}
