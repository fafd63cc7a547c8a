/**
 * `admin.schema: 'llms'`: rows of seed 002's `llms` table, mapped field by field to backend records
 * (README "The `llms` schema" has the table). Callers pass the row's `name` as `model`; `model_name`
 * is what the backend is sent.
 *
 * Providers: only those whose API the router speaks. openai, azure (its v1 API), fireworks and google
 * (the Gemini API's OpenAI-compatible endpoint) become `openai` records; ollama an `ollama` record.
 * anthropic and bedrock are reported as invalid (no OpenAI-compatible API with these credentials),
 * never half-mapped. `auth_meta` keys ending in `_env` name environment variables, read per request.
 */
import { defaultOllamaUrl } from '../env.js'
import type { InvalidRecord, ParseRecordsResult } from '../schema.js'
import {
  envNameAt,
  invalidOf,
  isObject,
  lookup,
  nameOf,
  objectField,
  RowError,
  requiredString,
  type SchemaContext,
  UNSUPPORTED_PROVIDERS,
  validate,
} from './common.js'

interface HostedProvider {
  /** Base URL when `base_url_env` is absent or unset (the provider's public API). */
  url: string
}

/** Providers with an OpenAI-compatible chat API reached with a bearer key. */
const HOSTED: Readonly<Record<string, HostedProvider>> = {
  openai: { url: 'https://api.openai.com/v1' },
  fireworks: { url: 'https://api.fireworks.ai/inference/v1' },
  google: { url: 'https://generativelanguage.googleapis.com/v1beta/openai' },
}

const KNOWN = 'openai, azure, fireworks, google, ollama'

/** `auth_meta` keys each provider kind accepts. */
const AUTH_KEYS = {
  /** ollama and the hosted providers. */
  bearer: ['api_key_env', 'base_url_env'],
  azure: ['api_key_env', 'endpoint_env', 'deployment_name_env', 'api_version_env'],
} as const

/** Record field -> row field, for reporting validation errors under the row's names. */
const FIELDS: Readonly<Record<string, string>> = {
  model_name: 'name',
  backend_model: 'model_name',
  temperature_default: 'config.temperature',
  max_tokens: 'config.max_tokens',
  endpoint_url: 'auth_meta.base_url_env',
  endpoint_url_env: 'auth_meta.base_url_env',
  backend_model_env: 'auth_meta.deployment_name_env',
  auth: 'auth_meta.api_key_env',
  input_cost_per_million: 'config.input_cost_per_million',
  output_cost_per_million: 'config.output_cost_per_million',
}

const COST_FIELDS = ['input_cost_per_million', 'output_cost_per_million'] as const

function checkAuthKeys(
  authMeta: Record<string, unknown>,
  allowed: readonly string[],
  provider: string,
): void {
  for (const key of Object.keys(authMeta)) {
    if (allowed.includes(key)) continue
    const hint = key.endsWith('_env')
      ? `supported for ${provider}: ${allowed.join(', ')}`
      : 'auth_meta must reference secrets by environment variable (keys ending in _env), never hold them'
    throw new RowError(`auth_meta.${key}`, `is not supported (${hint})`)
  }
}

function scopeOf(row: Record<string, unknown>): string {
  const scope = row.scope
  if (scope === undefined || scope === null) return 'global'
  if (typeof scope !== 'string') throw new RowError('scope', 'must be a string')
  return scope
}

/** One row to the record object the `llm_backends` schema then validates. */
function mapRow(row: Record<string, unknown>, ctx: SchemaContext): Record<string, unknown> {
  const name = requiredString(row, 'name')
  const provider = requiredString(row, 'provider').toLowerCase()
  const modelName = requiredString(row, 'model_name')
  const authMeta = objectField(row, 'auth_meta')
  const config = objectField(row, 'config')

  const out: Record<string, unknown> = {}
  if (row.id !== undefined && row.id !== null) out.id = row.id
  out.model_name = name
  out.backend_model = modelName
  const unsupported = lookup(UNSUPPORTED_PROVIDERS, provider)
  if (unsupported !== undefined) throw new RowError('provider', unsupported)
  const apiKeyEnv = () => envNameAt(authMeta, 'api_key_env', 'auth_meta.api_key_env')
  if (provider === 'azure') {
    checkAuthKeys(authMeta, AUTH_KEYS.azure, provider)
    const endpointEnv = envNameAt(authMeta, 'endpoint_env', 'auth_meta.endpoint_env')
    if (endpointEnv === undefined) throw new RowError('auth_meta.endpoint_env', 'is required for azure')
    const keyEnv = apiKeyEnv()
    if (keyEnv === undefined) throw new RowError('auth_meta.api_key_env', 'is required for azure')
    envNameAt(authMeta, 'api_version_env', 'auth_meta.api_version_env')
    // Azure's v1 API (GA since August 2025): OpenAI's chat API at {endpoint}/openai/v1, the deployment
    // name as `model`, the key in `api-key`; it takes no api-version, so api_version_env is not read.
    out.backend_type = 'openai'
    out.endpoint_url = ''
    out.endpoint_url_env = endpointEnv
    out.endpoint_path = '/openai/v1'
    const deploymentEnv = envNameAt(authMeta, 'deployment_name_env', 'auth_meta.deployment_name_env')
    if (deploymentEnv !== undefined) out.backend_model_env = deploymentEnv
    out.auth = { header: 'api-key', value_env: keyEnv }
  } else {
    // ollama and the hosted providers: a base URL and a bearer key, each optionally from a variable.
    const hosted = lookup(HOSTED, provider)
    if (provider !== 'ollama' && hosted === undefined) {
      throw new RowError(
        'provider',
        `unknown provider ${JSON.stringify(provider.slice(0, 40))}; expected ${KNOWN}`,
      )
    }
    checkAuthKeys(authMeta, AUTH_KEYS.bearer, provider)
    out.backend_type = hosted === undefined ? 'ollama' : 'openai'
    out.endpoint_url = hosted === undefined ? defaultOllamaUrl(ctx.env) : hosted.url
    const urlEnv = envNameAt(authMeta, 'base_url_env', 'auth_meta.base_url_env')
    if (urlEnv !== undefined) out.endpoint_url_env = urlEnv
    const keyEnv = apiKeyEnv()
    if (keyEnv !== undefined) out.auth = { bearer_env: keyEnv }
  }
  // No `provider` field: seed 002 falls back by priority across providers, not within one first.
  if (row.description !== undefined) out.description = row.description
  if (row.enabled !== undefined) out.enabled = row.enabled
  if (row.priority !== undefined) out.priority = row.priority
  if (row.is_default !== undefined) out.is_default = row.is_default
  // `streaming` is the caller's choice per call (generate or stream), so it is not read.
  if (config.temperature !== undefined) out.temperature_default = config.temperature
  if (config.max_tokens !== undefined) out.max_tokens = config.max_tokens
  // Prices live in `config` too: the table has no columns for them.
  for (const key of COST_FIELDS) if (config[key] !== undefined) out[key] = config[key]
  return out
}

/**
 * Maps `llms` rows to records: rows of other scopes than `ctx.scope` and `global` are left out; when
 * the scope has its own enabled default, it wins over the global one.
 */
export function mapLlmsRows(rows: readonly unknown[], ctx: SchemaContext): ParseRecordsResult {
  const kept: { record: ReturnType<typeof validate>; scope: string }[] = []
  const invalid: InvalidRecord[] = []
  rows.forEach((row, index) => {
    try {
      if (!isObject(row)) throw new RowError('(record)', 'a row must be a JSON object')
      const scope = scopeOf(row)
      if (scope !== ctx.scope && scope !== 'global') return
      kept.push({ record: validate(mapRow(row, ctx), FIELDS), scope })
    } catch (error) {
      invalid.push(invalidOf(index, nameOf(row, 'name'), error))
    }
  })
  const scopedDefault =
    ctx.scope !== 'global' &&
    kept.some((k) => k.scope === ctx.scope && k.record.is_default && k.record.enabled)
  const records = kept.map(({ record, scope }) =>
    scopedDefault && scope === 'global' && record.is_default ? { ...record, is_default: false } : record,
  )
  return { records, invalid }
}
