/**
 * `admin.schema: 'providers'`: seed 003's providers, each with its models, mapped to one backend
 * record per model (README "The `providers` schema" has the table). Callers pass a model's `id` as
 * `model`.
 *
 * - An `ollama` provider is an `ollama` record (a trailing `/v1` on its base_url is dropped: the
 *   native API is at the root); every other provider an `openai` (hosted, OpenAI-compatible) record.
 *   anthropic and bedrock, and google with its native (not `/openai`) base URL, are reported.
 * - `fallback_priority` is the record's priority; `provider` groups the records, so
 *   `fallbackModels: 'priority'` tries the provider's models in that order before other providers'.
 * - The champion is the provider's default model (`is_default`), else `default_model`.
 * - `rpm_limit`/`tpm_limit` become `rpm`/`tpm` on each of the provider's records.
 * - `api_key_encrypted` (Fernet) is checked here against the key in `admin.encryptionKeyEnv` when that
 *   is set (a wrong key or tampered token makes the provider's records invalid) and decrypted per
 *   request; the plaintext is never part of a record.
 */
import { readEnv } from '../../internal/env.js'
import type { BackendRecord } from '../../types.js'
import { decryptKey } from '../encrypted-key.js'
import { defaultOllamaUrl } from '../env.js'
import type { InvalidRecord, ParseRecordsResult } from '../schema.js'
import {
  invalidOf,
  isObject,
  lookup,
  nameOf,
  RowError,
  requiredString,
  type SchemaContext,
  UNSUPPORTED_PROVIDERS,
  validate,
} from './common.js'

const GOOGLE_IDS = new Set(['google', 'gemini', 'google-ai-studio', 'google_ai_studio'])

/** Record field -> provider/model field, for reporting validation errors under the payload's names. */
const PROVIDER_FIELDS: Readonly<Record<string, string>> = {
  endpoint_url: 'base_url',
  rpm: 'rpm_limit',
  tpm: 'tpm_limit',
  enabled: 'enabled',
  auth: 'api_key_encrypted',
}
const MODEL_FIELDS: Readonly<Record<string, string>> = {
  model_name: 'id',
  backend_model: 'id',
  priority: 'fallback_priority',
}

function flagOf(value: unknown, field: string): boolean {
  if (value === undefined || value === null) return true
  if (value === true || value === 1) return true
  if (value === false || value === 0) return false
  throw new RowError(field, 'must be true or false')
}

interface ProviderBase {
  id: string
  fields: Record<string, unknown>
  enabled: boolean
  champion: string | null
  defaultModel: string | null
}

function mapProvider(row: Record<string, unknown>, ctx: SchemaContext): ProviderBase {
  const id = requiredString(row, 'id')
  const kind = id.toLowerCase()
  const unsupported = lookup(UNSUPPORTED_PROVIDERS, kind)
  if (unsupported !== undefined) throw new RowError('id', unsupported)
  const fields: Record<string, unknown> = { provider: id }
  const baseUrl = row.base_url
  if (kind === 'ollama') {
    fields.backend_type = 'ollama'
    fields.endpoint_url =
      typeof baseUrl === 'string'
        ? baseUrl.trim().replace(/\/+$/, '').replace(/\/v1$/, '')
        : (baseUrl ?? defaultOllamaUrl(ctx.env))
  } else {
    if (baseUrl === undefined || baseUrl === null) throw new RowError('base_url', 'is required')
    if (GOOGLE_IDS.has(kind) && typeof baseUrl === 'string' && !/\/openai\/?$/.test(baseUrl.trim())) {
      throw new RowError(
        'base_url',
        "is Google's native Gemini API, which is not OpenAI-compatible; use its OpenAI-compatible endpoint https://generativelanguage.googleapis.com/v1beta/openai",
      )
    }
    fields.backend_type = 'openai'
    fields.endpoint_url = baseUrl
  }
  if (row.rpm_limit !== undefined && row.rpm_limit !== null) fields.rpm = row.rpm_limit
  if (row.tpm_limit !== undefined && row.tpm_limit !== null) fields.tpm = row.tpm_limit
  const raw = row.api_key_encrypted
  if (raw !== undefined && raw !== null) {
    const token = typeof raw === 'string' ? raw.trim() : ''
    if (token === '') throw new RowError('api_key_encrypted', 'must be a Fernet token (a string)')
    const keyEnv = ctx.encryptionKeyEnv
    const keyValue = readEnv(ctx.env, keyEnv)
    // Checked now when the key is known; unset, the request reports MISSING_CREDENTIAL naming it.
    if (keyValue !== undefined) {
      const result = decryptKey(token, keyValue, keyEnv)
      if (!result.ok)
        throw new RowError('api_key_encrypted', result.reason.replace(/^api_key_encrypted /, ''))
    }
    fields.auth = { bearer_encrypted: token, key_env: keyEnv }
  }
  const champion = typeof row.champion_model === 'string' ? row.champion_model : null
  const defaultModel = typeof row.default_model === 'string' ? row.default_model : null
  return { id, fields, enabled: flagOf(row.enabled, 'enabled'), champion, defaultModel }
}

/** Maps provider rows to one record per model. */
export function mapProviderRows(rows: readonly unknown[], ctx: SchemaContext): ParseRecordsResult {
  const records: BackendRecord[] = []
  const invalid: InvalidRecord[] = []
  rows.forEach((row, index) => {
    let provider: ProviderBase
    let models: unknown[]
    try {
      if (!isObject(row)) throw new RowError('(record)', 'a provider must be a JSON object')
      provider = mapProvider(row, ctx)
      // Provider fields checked once, before the models.
      validate({ ...provider.fields, model_name: provider.id }, PROVIDER_FIELDS)
      const list = row.models ?? []
      if (!Array.isArray(list)) throw new RowError('models', 'must be a list of models')
      models = list
    } catch (error) {
      // Reported once per model it leaves without a record, so a request for one of them says why
      // (see the notes routing uses); a provider without models is reported by its id.
      const ids = isObject(row) && Array.isArray(row.models) ? row.models.map((m) => nameOf(m, 'id')) : []
      const providerId = nameOf(row, 'id')
      const base = invalidOf(index, providerId, error)
      if (ids.length === 0) invalid.push(base)
      for (const id of ids)
        invalid.push({
          ...base,
          modelName: id,
          message: `provider ${providerId ?? `#${index}`}: ${base.message}`,
        })
      return
    }
    const mapped: BackendRecord[] = []
    models.forEach((model, m) => {
      const prefix = `models[${m}].`
      try {
        if (!isObject(model)) throw new RowError(`models[${m}]`, 'a model must be a JSON object')
        const id = requiredString(model, 'id', prefix)
        const owner = model.provider_id
        if (owner !== undefined && owner !== null && owner !== provider.id) {
          throw new RowError(
            `${prefix}provider_id`,
            `names another provider than ${JSON.stringify(provider.id)}`,
          )
        }
        const out: Record<string, unknown> = { ...provider.fields, model_name: id, backend_model: id }
        out.enabled = provider.enabled && flagOf(model.enabled, `${prefix}enabled`)
        if (model.fallback_priority !== undefined) out.priority = model.fallback_priority
        if (model.input_cost_per_million !== undefined)
          out.input_cost_per_million = model.input_cost_per_million
        if (model.output_cost_per_million !== undefined)
          out.output_cost_per_million = model.output_cost_per_million
        mapped.push(validate(out, MODEL_FIELDS, prefix))
      } catch (error) {
        invalid.push(invalidOf(index, nameOf(model, 'id'), error))
      }
    })
    // The champion is the default; when it is missing or disabled, default_model.
    const usable = (name: string | null) => mapped.find((r) => r.model_name === name && r.enabled)
    const chosen = usable(provider.champion) ?? usable(provider.defaultModel)
    for (const record of mapped) records.push(record === chosen ? { ...record, is_default: true } : record)
  })
  return { records, invalid }
}
