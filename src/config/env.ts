/**
 * Records used when no admin config can be had: `LLM_ROUTER_BACKENDS`, else a default backend from
 * `OLLAMA_HOST`/`MLX_HOST`, else Ollama at http://localhost:11434.
 */
import { isRouterError } from '../errors.js'
import { type Env, readEnv } from '../internal/env.js'
import type { BackendRecord } from '../types.js'
import { DEFAULT_PRIORITY, defaultMapPayload, type InvalidRecord, parseRecords } from './schema.js'

/**
 * `model_name` of a default record. The router treats a `'*'` record as the default backend for
 * every model without a record of its own (unless strict model matching is on).
 */
export const ANY_MODEL = '*'

export const DEFAULT_OLLAMA_URL = 'http://localhost:11434'
export const DEFAULT_OLLAMA_PORT = 11434
export const DEFAULT_MLX_PORT = 8080

/**
 * The seed admin's config for a model without a record (`_get_backend_config` on a 404), also the
 * column defaults of its `llm_backends` table. Filled into default and env records that lack them.
 */
export const SEED_RECORD_DEFAULTS = Object.freeze({
  max_tokens: 2048,
  temperature_default: 0.7,
  timeout_seconds: 60,
})

/** `record` with the seed defaults for the generation fields it does not set (a new object). */
export function withSeedDefaults(record: BackendRecord): BackendRecord {
  if (
    record.max_tokens !== undefined &&
    record.temperature_default !== undefined &&
    record.timeout_seconds !== undefined
  )
    return record
  return {
    ...record,
    max_tokens: record.max_tokens ?? SEED_RECORD_DEFAULTS.max_tokens,
    temperature_default: record.temperature_default ?? SEED_RECORD_DEFAULTS.temperature_default,
    timeout_seconds: record.timeout_seconds ?? SEED_RECORD_DEFAULTS.timeout_seconds,
  }
}

export interface EnvRecordsResult {
  records: BackendRecord[]
  /** 'env' when an environment variable supplied the records, 'default' when nothing was set. */
  origin: 'env' | 'default'
  /** Human-readable: which variable the records came from. */
  reason: string
  /** Bad `LLM_ROUTER_BACKENDS` entries or host variables, reported like admin records. */
  invalid: InvalidRecord[]
}

/** Hosts that mean "every interface" when a server binds them; a client must dial loopback instead. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', ''])

/**
 * Parses a host variable the way Ollama reads `OLLAMA_HOST`: `host`, `host:port`, `:port`,
 * `[v6]:port`, with or without `http://`/`https://` and an optional path. Without a scheme the
 * scheme is http and the port `defaultPort`; with an explicit scheme and no port, the scheme's own
 * port applies (80/443), as in Ollama's `envconfig`. `0.0.0.0`, `::` and an empty host dial
 * 127.0.0.1. Surrounding quotes and spaces are ignored.
 * @returns the base URL without trailing slash, or null when the value is empty or unusable.
 */
export function parseHostEnv(value: string | undefined, defaultPort: number): string | null {
  if (value === undefined) return null
  const raw = value
    .trim()
    .replace(/^["']+|["']+$/g, '')
    .trim()
  if (raw === '') return null
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)
  let scheme = 'http'
  let rest = raw
  let explicitScheme = false
  if (schemeMatch) {
    scheme = schemeMatch[1]!.toLowerCase()
    if (scheme !== 'http' && scheme !== 'https') return null
    rest = raw.slice(schemeMatch[0].length)
    explicitScheme = true
  }
  const slash = rest.indexOf('/')
  const hostport = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash).replace(/\/+$/, '')
  if (hostport.includes('@')) return null

  let host: string
  let port: string | undefined
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(hostport)
  if (bracketed) {
    host = bracketed[1]!
    port = bracketed[2]
  } else {
    const colons = hostport.split(':').length - 1
    if (colons === 1) {
      const i = hostport.indexOf(':')
      host = hostport.slice(0, i)
      port = hostport.slice(i + 1)
    } else {
      // No colon: a bare host. Several: a bare IPv6 address (Ollama's ParseIP fallback).
      host = hostport
    }
  }
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return null
  } else if (!explicitScheme) {
    port = String(defaultPort)
  }
  if (WILDCARD_HOSTS.has(host)) host = '127.0.0.1'
  if (!/^[A-Za-z0-9.:%_-]+$/.test(host)) return null
  const hostPart = host.includes(':') ? `[${host}]` : host
  const url = `${scheme}://${hostPart}${port === undefined ? '' : `:${port}`}${path}`
  try {
    new URL(url)
  } catch {
    return null
  }
  return url
}

/** Ollama base URL for `auto` records without `fallback_url`: `OLLAMA_HOST`, else http://localhost:11434. */
export function defaultOllamaUrl(env: Env): string {
  return parseHostEnv(readEnv(env, 'OLLAMA_HOST'), DEFAULT_OLLAMA_PORT) ?? DEFAULT_OLLAMA_URL
}

function defaultRecord(
  backendType: BackendRecord['backend_type'],
  endpoint: string,
  fallback?: string,
): BackendRecord {
  const record: BackendRecord = {
    model_name: ANY_MODEL,
    backend_type: backendType,
    endpoint_url: endpoint,
    enabled: true,
    priority: DEFAULT_PRIORITY,
    max_tokens: SEED_RECORD_DEFAULTS.max_tokens,
    temperature_default: SEED_RECORD_DEFAULTS.temperature_default,
    timeout_seconds: SEED_RECORD_DEFAULTS.timeout_seconds,
  }
  if (fallback !== undefined) record.fallback_url = fallback
  return record
}

function hostProblem(name: string, defaultPort: number): InvalidRecord {
  return {
    index: -1,
    modelName: null,
    field: name,
    message:
      `${name} is not a usable host (expected host, host:port, :port or http(s)://host[:port], ` +
      `default port ${defaultPort}); ignored`,
  }
}

/**
 * Records from the environment. Never throws: problems are returned in `invalid` and the next
 * source in the chain is used.
 */
export function envRecords(env: Env): EnvRecordsResult {
  const invalid: InvalidRecord[] = []

  const json = readEnv(env, 'LLM_ROUTER_BACKENDS')
  if (json !== undefined) {
    let payload: unknown
    let parsedOk = true
    try {
      payload = JSON.parse(json)
    } catch {
      parsedOk = false
      invalid.push({
        index: -1,
        modelName: null,
        field: 'LLM_ROUTER_BACKENDS',
        message: 'LLM_ROUTER_BACKENDS is not valid JSON (expected a JSON array of backend records); ignored',
      })
    }
    if (parsedOk) {
      try {
        const result = parseRecords(defaultMapPayload(payload))
        invalid.push(
          ...result.invalid.map((i) => ({ ...i, field: `LLM_ROUTER_BACKENDS[${i.index}].${i.field}` })),
        )
        // All disabled is the same as empty, as for an admin list (the seed filters disabled rows out).
        if (result.records.some((r) => r.enabled)) {
          const n = result.records.length
          return {
            records: result.records.map(withSeedDefaults),
            origin: 'env',
            reason: `LLM_ROUTER_BACKENDS (${n} record${n === 1 ? '' : 's'})`,
            invalid,
          }
        }
        if (result.records.length > 0) {
          invalid.push({
            index: -1,
            modelName: null,
            field: 'LLM_ROUTER_BACKENDS',
            message:
              'every record in LLM_ROUTER_BACKENDS is disabled, which counts as an empty list; ignored',
          })
        } else if (result.invalid.length === 0) {
          invalid.push({
            index: -1,
            modelName: null,
            field: 'LLM_ROUTER_BACKENDS',
            message: 'LLM_ROUTER_BACKENDS is an empty list; ignored',
          })
        }
      } catch (error) {
        invalid.push({
          index: -1,
          modelName: null,
          field: 'LLM_ROUTER_BACKENDS',
          message: `LLM_ROUTER_BACKENDS must be a JSON array of backend records; ignored${
            isRouterError(error) ? '' : ` (${String(error)})`
          }`,
        })
      }
    }
  }

  const ollamaRaw = readEnv(env, 'OLLAMA_HOST')
  const mlxRaw = readEnv(env, 'MLX_HOST')
  const ollama = parseHostEnv(ollamaRaw, DEFAULT_OLLAMA_PORT)
  const mlx = parseHostEnv(mlxRaw, DEFAULT_MLX_PORT)
  if (ollamaRaw !== undefined && ollama === null)
    invalid.push(hostProblem('OLLAMA_HOST', DEFAULT_OLLAMA_PORT))
  if (mlxRaw !== undefined && mlx === null) invalid.push(hostProblem('MLX_HOST', DEFAULT_MLX_PORT))

  if (mlx !== null && ollama !== null) {
    return {
      records: [defaultRecord('auto', mlx, ollama)],
      origin: 'env',
      reason: `MLX_HOST (${mlx}) with fallback to OLLAMA_HOST (${ollama})`,
      invalid,
    }
  }
  if (mlx !== null) {
    return { records: [defaultRecord('mlx', mlx)], origin: 'env', reason: `MLX_HOST (${mlx})`, invalid }
  }
  if (ollama !== null) {
    return {
      records: [defaultRecord('ollama', ollama)],
      origin: 'env',
      reason: `OLLAMA_HOST (${ollama})`,
      invalid,
    }
  }
  return {
    records: [defaultRecord('ollama', DEFAULT_OLLAMA_URL)],
    origin: 'default',
    reason: `default Ollama at ${DEFAULT_OLLAMA_URL}`,
    invalid,
  }
}
