/**
 * `admin.schema`: which payload shape the admin serves. `llm_backends` (seed 000's table, the
 * default) is validated as is; `llms` (seed 002) and `providers` (seed 003) are mapped to records
 * first, each by its own module, with no `mapPayload` written by the user.
 */
import { type ParseRecordsResult, parseRecords } from '../schema.js'
import type { AdminSchema, SchemaContext } from './common.js'
import { mapLlmsRows } from './llms.js'
import { mapProviderRows } from './providers.js'

export type { AdminSchema, SchemaContext } from './common.js'

/** Where the Fernet key for `api_key_encrypted` is read from unless `admin.encryptionKeyEnv` says otherwise. */
export const DEFAULT_ENCRYPTION_KEY_ENV = 'LLM_ROUTER_ENCRYPTION_KEY'

/** Default list path per schema: seed 003's admin lists providers at `/api/providers/all`. */
export const SCHEMA_LIST_PATH: Readonly<Record<AdminSchema, string>> = {
  llm_backends: '/api/llm-backends/public',
  llms: '/api/llm-backends/public',
  providers: '/api/providers/all',
}

/** Besides a bare array, the key a payload may wrap its rows in (`{"providers": [...]}`). */
export const SCHEMA_WRAPPER: Readonly<Record<AdminSchema, string | null>> = {
  llm_backends: null,
  llms: 'llms',
  providers: 'providers',
}

/** Validates (and for `llms`/`providers` maps) a list of rows. */
export function parseRows(schema: AdminSchema, rows: unknown[], ctx: SchemaContext): ParseRecordsResult {
  if (schema === 'llms') return mapLlmsRows(rows, ctx)
  if (schema === 'providers') return mapProviderRows(rows, ctx)
  return parseRecords(rows)
}
