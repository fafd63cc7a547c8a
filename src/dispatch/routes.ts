/**
 * Route compilation: turns a config snapshot into ready-to-send targets once per snapshot, so a
 * request only looks up a model and walks a prepared list (URLs split, static
 * headers built, circuit attached, generation defaults filled in).
 *
 * Tables are cached by snapshot identity (`RouteCache`), never by a version number: per-model
 * lookup and list mode both hand out frozen snapshots, and a snapshot's restamped and stale views
 * share its frozen `records` array, so that array is the key.
 */
import type { ConfigSnapshot } from '../config/contract.js'
import { ANY_MODEL, defaultOllamaUrl, envRecords, SEED_RECORD_DEFAULTS } from '../config/env.js'
import { normalizeBaseUrl } from '../config/schema.js'
import { ErrorCode, RouterError } from '../errors.js'
import { type Env, readEnv } from '../internal/env.js'
import { assignPools, recordExtras } from '../pool/groups.js'
import type { MemberState } from '../pool/load.js'
import type { Pool } from '../pool/select.js'
import type { BackendAuth, BackendKind, BackendRecord } from '../types.js'
import type { Circuit, CircuitRegistry } from './circuit.js'

export interface Target {
  /**
   * The protocol spoken. `openai` (hosted) targets: the base URL already carries the API version, so
   * their adapters' paths have none (backends/hosted.ts), and generation goes through chat completions.
   */
  kind: BackendKind
  /** `scheme://host:port` for undici. */
  origin: string
  /**
   * Path prefix of the endpoint (no trailing slash; '' for none). The operation's adapter appends its
   * own path (`/api/generate`, `/api/chat`, `/v1/chat/completions`, ...).
   */
  basePath: string
  /** Endpoint base URL without credentials: what errors, events and metrics show. */
  endpoint: string
  /** Model id put in the body (undefined: omit, for OpenAI-compatible servers). */
  sendModel: string | undefined
  auth: BackendAuth | undefined
  /** Static headers; auth headers are added per request from the env. */
  headers: Record<string, string>
  circuit: Circuit | null
  /** Ollama body fields from the record (`keep_alive`, `num_ctx` from `context_length`); the request's own win. */
  extras: Readonly<Record<string, unknown>> | null
  /** The endpoint's in-flight accounting, bound on first use by the dispatcher (src/pool/load.ts). */
  load?: MemberState
  /**
   * Set when an environment variable the record needs per request (base URL, model id) is unset or
   * unusable: the attempt fails with MISSING_CREDENTIAL and this message, before anything is sent.
   */
  envProblem?: string
}

export interface Candidate {
  /** The configured model name this candidate answers as. */
  model: string
  record: BackendRecord
  targets: Target[]
  /** Set on default-backend candidates: why the model went to the default backend. */
  defaultReason?: string
  /** The pool this record belongs to (same model and priority; src/pool/groups.ts), or null. */
  pool?: Pool | null
}

export interface RouteTable {
  /** Why env/default records are in use (from the snapshot), or null. */
  fallbackReason: string | null
  /** Per model without a usable record: why (from the snapshot). */
  modelNotes: ReadonlyMap<string, string>
  /** Enabled records per model name, in priority order. */
  byModel: Map<string, Candidate[]>
  /** Every enabled, non-wildcard candidate in priority order (for `fallbackModels: 'priority'`). */
  ordered: Candidate[]
  /** Wildcard (`*`) records from the config, if any, used for models without a record of their own. */
  wildcard: BackendRecord[]
  /** Materialised wildcard candidates per requested model (bounded). */
  wildcardCache: Map<string, Candidate[]>
  /** Model of the first enabled `is_default` record, for requests without `model`; null when none. */
  defaultModel: string | null
  /** Environment variables the compiled targets read (`endpoint_url_env`, `backend_model_env`) and their values then. */
  envRefs: readonly [name: string, value: string | undefined][]
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
  circuits: CircuitRegistry | null,
): Target {
  const parsed = parseEndpoint(url)
  const headers: Record<string, string> = { ...JSON_HEADERS }
  if (parsed.basicAuth !== null) headers.authorization = `Basic ${parsed.basicAuth}`
  return {
    kind,
    origin: parsed.origin,
    basePath: parsed.basePath,
    endpoint: parsed.endpoint,
    sendModel,
    auth,
    headers,
    circuit:
      circuits === null || circuits.options === null ? null : circuits.get(`${kind} ${parsed.endpoint}`),
    extras: null,
  }
}

const filledRecords = new WeakMap<BackendRecord, BackendRecord>()

/**
 * OpenAI-compatible servers get an explicit max_tokens and temperature, always: their own defaults
 * are not the seed's (vLLM stops at 16 tokens, mlx_lm samples at temperature 0.0). A record without
 * them gets the seed's (2048, 0.7), once per record so candidates keep sharing one record object.
 */
function withGenerationDefaults(record: BackendRecord): BackendRecord {
  if (record.backend_type === 'ollama') return record
  if (record.max_tokens !== undefined && record.temperature_default !== undefined) return record
  let filled = filledRecords.get(record)
  if (filled === undefined) {
    filled = Object.freeze({
      ...record,
      max_tokens: record.max_tokens ?? SEED_RECORD_DEFAULTS.max_tokens,
      temperature_default: record.temperature_default ?? SEED_RECORD_DEFAULTS.temperature_default,
    })
    filledRecords.set(record, filled)
  }
  return filled
}

/** Base URL and model id of a record whose values come from the environment (read per compile). */
interface EnvValues {
  url: string
  model: string | undefined
  problem?: string
}

const UNRESOLVED_URL = 'http://unresolved.invalid'

function fromEnv(record: BackendRecord, model: string, env: Env): EnvValues {
  let url = record.endpoint_url
  let sendModel = record.backend_model
  const where = `The record for model "${model}"`
  if (record.endpoint_url_env !== undefined) {
    const name = record.endpoint_url_env
    const raw = readEnv(env, name)
    if (raw === undefined) {
      if (url === '') {
        return {
          url: UNRESOLVED_URL,
          model: sendModel,
          problem: `${where} reads its base URL from the environment variable ${name}, which is not set`,
        }
      }
    } else {
      const path = record.endpoint_path ?? ''
      const trimmed = raw.replace(/\/+$/, '')
      const checked = normalizeBaseUrl(path === '' || trimmed.endsWith(path) ? trimmed : `${trimmed}${path}`)
      if ('error' in checked) {
        return {
          url: UNRESOLVED_URL,
          model: sendModel,
          problem: `${where} reads its base URL from the environment variable ${name}, which ${checked.error}`,
        }
      }
      url = checked.url
    }
  }
  if (record.backend_model_env !== undefined) {
    const name = record.backend_model_env
    const value = readEnv(env, name)
    if (value === undefined) {
      return {
        url,
        model: sendModel,
        problem: `${where} reads the model id it sends from the environment variable ${name}, which is not set`,
      }
    }
    sendModel = value
  }
  return { url, model: sendModel }
}

/** Targets of one record, for a request that asked for `model`. */
export function compileCandidate(
  source: BackendRecord,
  model: string,
  env: Env,
  circuits: CircuitRegistry,
): Candidate {
  const record = withGenerationDefaults(source)
  if (record.endpoint_url_env !== undefined || record.backend_model_env !== undefined) {
    const values = fromEnv(record, model, env)
    // (auto records cannot read the environment: schema.ts refuses them)
    const kind: BackendKind = record.backend_type === 'auto' ? 'mlx' : record.backend_type
    // mlx_lm.server answers with its loaded model; Ollama and hosted APIs need one.
    const sent = kind === 'mlx' ? values.model : (values.model ?? model)
    const target = makeTarget(
      kind,
      values.url,
      sent,
      record.auth,
      values.problem === undefined ? circuits : null,
    )
    if (values.problem !== undefined) {
      target.envProblem = values.problem
      // No URL to show: errors, attempts and metrics name the variable instead.
      if (values.url === UNRESOLVED_URL) target.endpoint = `env:${record.endpoint_url_env}`
    }
    if (kind === 'ollama') target.extras = recordExtras(record)
    return { model, record, targets: [target] }
  }
  const ollamaModel = record.backend_type === 'ollama' ? (record.backend_model ?? model) : model
  const targets: Target[] = []
  if (record.backend_type === 'ollama') {
    targets.push(makeTarget('ollama', record.endpoint_url, ollamaModel, record.auth, circuits))
  } else if (record.backend_type === 'mlx') {
    targets.push(makeTarget('mlx', record.endpoint_url, record.backend_model, record.auth, circuits))
  } else if (record.backend_type === 'openai') {
    // Hosted APIs require `model` in the body (mlx_lm.server answers with whatever is loaded).
    targets.push(
      makeTarget('openai', record.endpoint_url, record.backend_model ?? model, record.auth, circuits),
    )
  } else {
    // auto: MLX first with backend_model; then Ollama with the Ollama-style model name.
    targets.push(makeTarget('mlx', record.endpoint_url, record.backend_model, record.auth, circuits))
    const fallback = record.fallback_url ?? defaultOllamaUrl(env)
    targets.push(
      makeTarget('ollama', fallback, model, record.fallback_url ? record.auth : undefined, circuits),
    )
  }
  const extras = recordExtras(record)
  if (extras !== null) for (const t of targets) if (t.kind === 'ollama') t.extras = extras
  return { model, record, targets }
}

export function compileRoutes(snapshot: ConfigSnapshot, env: Env, circuits: CircuitRegistry): RouteTable {
  const byModel = new Map<string, Candidate[]>()
  const ordered: Candidate[] = []
  const wildcard: BackendRecord[] = []
  let defaultModel: string | null = null
  const envNames = new Set<string>()
  for (const record of snapshot.records) {
    if (record.endpoint_url_env !== undefined) envNames.add(record.endpoint_url_env)
    if (record.backend_model_env !== undefined) envNames.add(record.backend_model_env)
    if (record.is_default === true && defaultModel === null && record.model_name !== ANY_MODEL) {
      defaultModel = record.model_name
    }
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
  for (const list of byModel.values()) assignPools(list)
  return {
    fallbackReason: snapshot.fallbackReason,
    modelNotes: snapshot.modelNotes,
    byModel,
    ordered,
    wildcard,
    wildcardCache: new Map(),
    defaultModel,
    envRefs: [...envNames].map((name) => [name, readEnv(env, name)] as [string, string | undefined]),
  }
}

/** True when an environment variable the table's targets were compiled from has changed since. */
function envChanged(table: RouteTable, env: Env): boolean {
  for (const [name, value] of table.envRefs) if (readEnv(env, name) !== value) return true
  return false
}

/** Compiled route tables of one router, keyed by snapshot identity (see the module comment). */
export class RouteCache {
  readonly #tables = new WeakMap<readonly BackendRecord[], RouteTable>()
  readonly #env: Env
  readonly #circuits: CircuitRegistry

  constructor(env: Env, circuits: CircuitRegistry) {
    this.#env = env
    this.#circuits = circuits
  }

  get(snapshot: ConfigSnapshot): RouteTable {
    let table = this.#tables.get(snapshot.records)
    // Base URLs and model ids referenced by `_env` are read per request: a changed value recompiles.
    if (table === undefined || (table.envRefs.length > 0 && envChanged(table, this.#env))) {
      table = compileRoutes(snapshot, this.#env, this.#circuits)
      this.#tables.set(snapshot.records, table)
    }
    return table
  }
}

const WILDCARD_CACHE_MAX = 1000
/** Key of the model-less request in the wildcard cache (not a valid model name: names are non-empty). */
const NO_MODEL = ''

/** Why a request for `model` goes to the default backend, for error messages and `resolve()`. */
export function defaultReason(table: RouteTable, model: string | undefined): string {
  const note = model === undefined ? undefined : table.modelNotes.get(model)
  if (note !== undefined) return `model "${model}" has no usable record: ${note}`
  const what =
    model === undefined ? 'the request names no model' : `there is no enabled record for model "${model}"`
  if (table.fallbackReason !== null) return `${what} (${table.fallbackReason})`
  return `${what} in the admin config`
}

function modelRequired(record: BackendRecord): never {
  throw new RouterError(
    ErrorCode.INVALID_REQUEST,
    `Invalid request: model is required here. No backend record names a model, and the default backend (${record.backend_type} at ${record.endpoint_url}) needs one; pass request.model, or set backend_model on the default ('*') record.`,
    { issues: [{ path: 'model', message: 'is required: no record names a model' }] },
  )
}

/**
 * Candidates for a model without a record of its own: the config's `*` records, else the default
 * backend from OLLAMA_HOST / MLX_HOST (else Ollama on localhost:11434). Without a model, the
 * default record's `backend_model` names it; an OpenAI-compatible default needs none (the server
 * answers with its loaded model); otherwise INVALID_REQUEST, never a made-up name.
 */
export function defaultCandidates(
  table: RouteTable,
  model: string | undefined,
  env: Env,
  circuits: CircuitRegistry,
): Candidate[] {
  const cached = table.wildcardCache.get(model ?? NO_MODEL)
  if (cached) return cached
  let records = table.wildcard
  if (records.length === 0) records = envDefaultRecords(env)
  const reason = defaultReason(table, model)
  const list = records.map((r) => {
    let name = model
    if (name === undefined) {
      name = r.backend_model
      if (name === undefined) {
        if (r.backend_type !== 'mlx') modelRequired(r)
        name = 'default'
      }
    }
    const candidate = compileCandidate(r, name, env, circuits)
    candidate.defaultReason = reason
    return candidate
  })
  assignPools(list)
  if (table.wildcardCache.size < WILDCARD_CACHE_MAX) table.wildcardCache.set(model ?? NO_MODEL, list)
  return list
}

function envDefaultRecords(env: Env): BackendRecord[] {
  // The default backend is derived from OLLAMA_HOST/MLX_HOST only, not from LLM_ROUTER_BACKENDS.
  const { LLM_ROUTER_BACKENDS: _ignored, ...rest } = env
  return envRecords(rest).records
}
