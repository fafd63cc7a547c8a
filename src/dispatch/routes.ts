/**
 * Route compilation: turns a config snapshot into ready-to-send targets once per config version,
 * so a request only looks up a model and walks a prepared list (URLs split, adapter chosen,
 * static headers built, circuit attached).
 */
import { adapterFor } from '../backends/index.js'
import type { BackendAdapter } from '../backends/types.js'
import type { ConfigSnapshot } from '../config/contract.js'
import { ANY_MODEL, defaultOllamaUrl, envRecords } from '../config/env.js'
import type { Env } from '../internal/env.js'
import type { BackendAuth, BackendKind, BackendRecord } from '../types.js'
import type { Circuit, CircuitRegistry } from './circuit.js'

export interface Target {
  kind: BackendKind
  adapter: BackendAdapter
  /** `scheme://host:port` for undici. */
  origin: string
  /** Path prefix of the endpoint plus the adapter's path. */
  path: string
  /** Endpoint base URL without credentials: what errors, events and metrics show. */
  endpoint: string
  /** Model id put in the body (undefined: omit, for OpenAI-compatible servers). */
  sendModel: string | undefined
  auth: BackendAuth | undefined
  /** Static headers; auth headers are added per request from the env. */
  headers: Record<string, string>
  circuit: Circuit | null
}

export interface Candidate {
  /** The configured model name this candidate answers as. */
  model: string
  record: BackendRecord
  targets: Target[]
}

export interface RouteTable {
  version: number
  /** Enabled records per model name, in priority order. */
  byModel: Map<string, Candidate[]>
  /** Every enabled, non-wildcard candidate in priority order (for `fallbackModels: 'priority'`). */
  ordered: Candidate[]
  /** Wildcard (`*`) records from the config, if any, used for models without a record of their own. */
  wildcard: BackendRecord[]
  /** Materialised wildcard candidates per requested model (bounded). */
  wildcardCache: Map<string, Candidate[]>
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' } as const

interface ParsedEndpoint {
  origin: string
  basePath: string
  endpoint: string
  basicAuth: string | null
}

function parseEndpoint(url: string): ParsedEndpoint {
  const u = new URL(url)
  const basePath = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname
  const basicAuth =
    u.username !== ''
      ? Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')
      : null
  return { origin: u.origin, basePath, endpoint: `${u.origin}${basePath}`, basicAuth }
}

function makeTarget(
  kind: BackendKind,
  url: string,
  sendModel: string | undefined,
  auth: BackendAuth | undefined,
  circuits: CircuitRegistry,
): Target {
  const adapter = adapterFor(kind)
  const parsed = parseEndpoint(url)
  const headers: Record<string, string> = { ...JSON_HEADERS }
  if (parsed.basicAuth !== null) headers.authorization = `Basic ${parsed.basicAuth}`
  return {
    kind,
    adapter,
    origin: parsed.origin,
    path: `${parsed.basePath}${adapter.path}`,
    endpoint: parsed.endpoint,
    sendModel,
    auth,
    headers,
    circuit: circuits.options === null ? null : circuits.get(`${kind} ${parsed.endpoint}`),
  }
}

/** Targets of one record, for a request that asked for `model`. */
export function compileCandidate(
  record: BackendRecord,
  model: string,
  env: Env,
  circuits: CircuitRegistry,
): Candidate {
  const ollamaModel = record.backend_type === 'ollama' ? (record.backend_model ?? model) : model
  const targets: Target[] = []
  if (record.backend_type === 'ollama') {
    targets.push(makeTarget('ollama', record.endpoint_url, ollamaModel, record.auth, circuits))
  } else if (record.backend_type === 'mlx') {
    targets.push(makeTarget('mlx', record.endpoint_url, record.backend_model, record.auth, circuits))
  } else {
    // auto: MLX first with backend_model; then Ollama with the Ollama-style model name.
    targets.push(makeTarget('mlx', record.endpoint_url, record.backend_model, record.auth, circuits))
    const fallback = record.fallback_url ?? defaultOllamaUrl(env)
    targets.push(
      makeTarget('ollama', fallback, model, record.fallback_url ? record.auth : undefined, circuits),
    )
  }
  return { model, record, targets }
}

export function compileRoutes(snapshot: ConfigSnapshot, env: Env, circuits: CircuitRegistry): RouteTable {
  const byModel = new Map<string, Candidate[]>()
  const ordered: Candidate[] = []
  const wildcard: BackendRecord[] = []
  for (const record of snapshot.records) {
    if (record.model_name === ANY_MODEL) {
      wildcard.push(record)
      continue
    }
    const candidate = compileCandidate(record, record.model_name, env, circuits)
    ordered.push(candidate)
    const list = byModel.get(record.model_name)
    if (list) list.push(candidate)
    else byModel.set(record.model_name, [candidate])
  }
  return { version: snapshot.version, byModel, ordered, wildcard, wildcardCache: new Map() }
}

const WILDCARD_CACHE_MAX = 1000

/**
 * Candidates for a model without a record of its own: the config's `*` records, else the default
 * backend from OLLAMA_HOST / MLX_HOST (else Ollama on localhost:11434).
 */
export function defaultCandidates(
  table: RouteTable,
  model: string,
  env: Env,
  circuits: CircuitRegistry,
): Candidate[] {
  const cached = table.wildcardCache.get(model)
  if (cached) return cached
  let records = table.wildcard
  if (records.length === 0) records = envDefaultRecords(env)
  const list = records.map((r) => compileCandidate(r, model, env, circuits))
  if (table.wildcardCache.size < WILDCARD_CACHE_MAX) table.wildcardCache.set(model, list)
  return list
}

function envDefaultRecords(env: Env): BackendRecord[] {
  // The default backend is derived from OLLAMA_HOST/MLX_HOST only, not from LLM_ROUTER_BACKENDS.
  const { LLM_ROUTER_BACKENDS: _ignored, ...rest } = env
  return envRecords(rest).records
}
