/**
 * Contract between the router and the config source. The router asks for a snapshot per request;
 * the source answers from cache (fresh or stale) without waiting on the admin once a config is known.
 */
import type { Dispatcher } from 'undici'
import type { Clock } from '../internal/clock.js'
import type { Env } from '../internal/env.js'
import type { BackendRecord, ConfigOrigin, RouterEvents } from '../types.js'
import type { LastGood } from './last-good.js'
import type { AdminSchema } from './schemas/index.js'

export interface ConfigSnapshot {
  /** Enabled records only, sorted by priority (lower first), stable for equal priorities. */
  readonly records: readonly BackendRecord[]
  /** Every valid record including disabled ones, in payload order (for inspection). */
  readonly allRecords: readonly BackendRecord[]
  readonly origin: ConfigOrigin
  readonly etag: string | null
  /** Epoch ms of the last successful fetch or revalidation; null for env/default. */
  readonly fetchedAt: number | null
  /**
   * Increments whenever the records change (per source). For display only: compiled route tables
   * are keyed by the snapshot object itself (see dispatch/routes.ts), never by this number.
   */
  readonly version: number
  /**
   * Why env/default records are in use at all (no admin URL, admin unreachable, empty or
   * all-disabled list); null when the records came from the admin.
   */
  readonly fallbackReason: string | null
  /**
   * Per model: why it has no enabled record of its own (its only record is invalid, disabled,
   * the admin answered 404, the admin could not be reached for it). Read by route compilation to
   * say in errors why the default backend was used.
   */
  readonly modelNotes: ReadonlyMap<string, string>
}

export interface AdminOptions {
  /** Base URL of the admin API, or null when none is configured (env/default only). */
  url: string | null
  /** List endpoint path. */
  listPath: string
  /** Per-model endpoint path, `{model}` replaced by the URL-encoded model name. */
  modelPath: string
  /** 'list' fetches every record at once; 'model' fetches per model (404 = not configured). */
  lookup: 'list' | 'model'
  headers: Readonly<Record<string, string>>
  timeoutMs: number
  maxPayloadBytes: number
  /** Maps another payload shape to a record array. Default: array, or `{data: [...]}`/`{backends: [...]}`. */
  mapPayload: ((payload: unknown) => unknown) | undefined
  /** Payload shape: `llm_backends` (records as is), `llms` or `providers` (mapped; src/config/schemas/). */
  schema?: AdminSchema
  /** Records of this scope and `global` are used (`llms` rows; router option `scope`). Default 'global'. */
  scope?: string
  /** Environment variable with the Fernet key for `api_key_encrypted`. Default LLM_ROUTER_ENCRYPTION_KEY. */
  encryptionKeyEnv?: string
  /** Backoff after failed refreshes: base and cap (ms). */
  retryBaseMs: number
  retryMaxMs: number
}

export interface ConfigSourceDeps {
  admin: AdminOptions
  ttlMs: number
  env: Env
  clock: Clock
  /** The router's undici dispatcher (keep-alive Agent). */
  dispatcher: Dispatcher
  emit: <K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]) => void
  /** Where the last good admin config is kept across restarts (Redis and/or `admin.snapshotFile`). */
  lastGood?: LastGood | null
}

export interface ConfigSource {
  /**
   * Snapshot to route `model` with. Returns synchronously when a config is cached (fresh or stale,
   * a stale one triggers one background refresh); otherwise a promise shared by every concurrent caller.
   * Never rejects: when no admin config can be had it resolves with env/default records.
   * `also`: further models the request may fall back to (its `fallbackModels`); in per-model
   * lookup mode they are looked up too, so the snapshot carries their records.
   */
  get(model?: string, also?: readonly string[] | 'priority'): ConfigSnapshot | Promise<ConfigSnapshot>
  /** Force a fetch now (shares an in-flight one). Rejects with a RouterError if the admin fails. */
  refresh(): Promise<ConfigSnapshot>
  /** The config in use, without fetching (null before the first load). */
  current(): ConfigSnapshot | null
  /** Stop background refreshes and timers. */
  close(): void
}
