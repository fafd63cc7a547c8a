/**
 * What both admin-backed sources share: guarded events, once-per-distinct-record invalid reports,
 * the environment records (built once) and their snapshots, the refresh scheduler, and close().
 */
import { ErrorCode, isRouterError, RouterError } from '../errors.js'
import { originOf } from '../http/url.js'
import type { RouterEvents } from '../types.js'
import type { ConfigSnapshot, ConfigSourceDeps } from './contract.js'
import { type EnvRecordsResult, envRecords } from './env.js'
import { RefreshScheduler } from './scheduler.js'
import type { InvalidRecord } from './schema.js'
import { buildSnapshot, contentKey, type VersionCounter } from './snapshot.js'

/** At most this many models are cached in 'model' lookup mode (and invalid-record signatures kept). */
export const MAX_CACHED_MODELS = 1000

export abstract class SourceBase {
  protected readonly deps: ConfigSourceDeps
  protected readonly scheduler: RefreshScheduler
  /** Aborts every admin request in flight when the source is closed. */
  protected readonly closeController = new AbortController()
  /** Origin of the admin URL, for messages (never its path or query, which may carry a token). */
  protected readonly adminOrigin: string
  #env: EnvRecordsResult | null = null
  readonly #invalidSeen = new Map<string, Set<string>>()

  constructor(deps: ConfigSourceDeps) {
    this.deps = deps
    this.adminOrigin = deps.admin.url === null ? '(none)' : originOf(deps.admin.url)
    this.scheduler = new RefreshScheduler({
      clock: deps.clock,
      retryBaseMs: deps.admin.retryBaseMs,
      retryMaxMs: deps.admin.retryMaxMs,
    })
  }

  get closed(): boolean {
    return this.closeController.signal.aborted
  }

  close(): void {
    if (this.closed) return
    this.scheduler.close()
    this.closeController.abort(this.closedError())
  }

  protected closedError(): RouterError {
    return new RouterError(
      ErrorCode.CLOSED,
      'The config source was closed; create a new router to load config.',
    )
  }

  /** What a failed fetch is reported as: the RouterError it threw, or CONFIG_FETCH_FAILED around a bug. */
  protected asRouterError(caught: unknown): RouterError {
    return isRouterError(caught)
      ? caught
      : new RouterError(ErrorCode.CONFIG_FETCH_FAILED, 'Admin config fetch failed unexpectedly.', {
          cause: caught,
        })
  }

  protected emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void {
    try {
      this.deps.emit(event, payload)
    } catch {
      // A throwing listener must not break config loading.
    }
  }

  /** Environment records, read once; their invalid entries are reported once. */
  protected envResult(): EnvRecordsResult {
    if (this.#env === null) {
      this.#env = envRecords(this.deps.env)
      for (const invalid of this.#env.invalid) this.emit('config:invalid-record', invalid)
    }
    return this.#env
  }

  /**
   * The env snapshot to use because of `reason`. `current` is returned as is when it is already the
   * env snapshot for that reason, so a repeated cause keeps its identity (and its compiled routes).
   */
  protected envSnapshot(
    reason: string,
    counter: VersionCounter,
    current: ConfigSnapshot | null,
  ): ConfigSnapshot {
    const env = this.envResult()
    const fallbackReason = `${reason}; using ${env.reason}`
    if (current !== null && current.fallbackReason === fallbackReason) return current
    return buildSnapshot({
      allRecords: env.records,
      origin: env.origin,
      version: counter.next(`env\u0000${contentKey(env.records)}`),
      fallbackReason,
    })
  }

  /** Emits 'config:invalid-record' for records not reported for `key` by the previous payload. */
  protected reportInvalid(key: string, invalid: readonly InvalidRecord[], raw: readonly unknown[]): void {
    const seen = this.#invalidSeen.get(key)
    if (invalid.length === 0) {
      if (seen !== undefined) this.#invalidSeen.delete(key)
      return
    }
    const next = new Set<string>()
    for (const item of invalid) {
      let body: string
      try {
        body = JSON.stringify(raw[item.index]) ?? ''
      } catch {
        body = String(item.index)
      }
      const signature = `${item.field}\u0000${item.message}\u0000${body}`
      next.add(signature)
      if (seen?.has(signature) !== true) this.emit('config:invalid-record', item)
    }
    this.#invalidSeen.delete(key)
    this.#invalidSeen.set(key, next)
    if (this.#invalidSeen.size > MAX_CACHED_MODELS) {
      const oldest = this.#invalidSeen.keys().next().value
      if (oldest !== undefined) this.#invalidSeen.delete(oldest)
    }
  }

  /** Short form of an admin failure for reasons: `the admin API at <origin> is unavailable (CODE 503)`. */
  protected unavailable(error: RouterError): string {
    return `the admin API at ${this.adminOrigin} is unavailable (${error.code}${
      error.status === undefined ? '' : ` ${error.status}`
    })`
  }
}
