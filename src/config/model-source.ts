/**
 * Per-model lookup (`admin.lookup: 'model'`): one admin request per model
 * (`GET {adminUrl}/api/llm-backends/model/{model}`; 404 = no record, the model goes to the default
 * backend), each cached for the TTL and revalidated in the background like the list.
 *
 * Every request routes with ONE combined snapshot: the records of every model looked up so far
 * (at most MAX_CACHED_MODELS), plus a note per model that has no usable record (404, disabled,
 * invalid, admin unreachable). So `fallbackModels` finds the fallback model's own admin record,
 * `'priority'` walks every record known, and `router.config()` shows what is in use. The combined
 * snapshot is rebuilt only when some model's records, note or health change (a re-fetch that
 * returns the same records keeps it), so compiled routes survive revalidation.
 *
 * Origin of the combined snapshot: 'admin'; 'stale' while some model's last refresh failed and
 * its last good records are served; env/default when only environment records are in it. A
 * request without a model cannot be looked up: it routes with the environment records.
 */
import { LRUCache } from 'lru-cache'
import type { RouterError } from '../errors.js'
import type { BackendRecord } from '../types.js'
import { fetchAdmin, notesFor, parsePayload } from './admin-fetch.js'
import { MAX_CACHED_MODELS, SourceBase } from './base.js'
import type { ConfigSnapshot, ConfigSource, ConfigSourceDeps } from './contract.js'
import { buildSnapshot, contentKey, VersionCounter, withMeta } from './snapshot.js'

const noop = () => {}
/** Lookups a refresh() runs at once: a refresh must not open a thousand sockets to the admin. */
const REFRESH_CONCURRENCY = 4

interface Entry {
  /** This model's valid records (disabled ones included), as the admin sent them. */
  records: readonly BackendRecord[]
  /** Why the model has no enabled record, or null. */
  note: string | null
  etag: string | null
  fetchedAt: number | null
  /** The last lookup failed: `records` are the last good ones (or env records when `fromEnv`). */
  failed: boolean
  /** Never loaded from the admin: the records are the environment's for this model. */
  fromEnv: boolean
  freshUntil: number
}

function entryKey(e: Entry): string {
  return `${contentKey(e.records)}\u0000${e.note ?? ''}\u0000${e.failed}\u0000${e.fromEnv}`
}

export class ModelConfigSource extends SourceBase implements ConfigSource {
  readonly #cache: LRUCache<string, Entry>
  readonly #versions = new VersionCounter()
  #combined: ConfigSnapshot | null = null
  #dirty = true
  #noModel: ConfigSnapshot | null = null
  #loadedOnce = false
  /** A 'config:fallback' was emitted for the current failure streak. */
  #fallbackEmitted = false
  #lastError: RouterError | null = null

  constructor(deps: ConfigSourceDeps) {
    super(deps)
    // Size bound only: freshness is each entry's own `freshUntil`, so stale entries (the last good
    // config) stay visible to iteration and to the combined snapshot until replaced or evicted.
    this.#cache = new LRUCache<string, Entry>({
      max: MAX_CACHED_MODELS,
      dispose: (_value, _key, reason) => {
        if (reason !== 'set') this.#dirty = true
      },
    })
  }

  get(model?: string, also?: readonly string[] | 'priority'): ConfigSnapshot | Promise<ConfigSnapshot> {
    if (model === undefined) return this.#noModelSnapshot()
    const pending: Promise<void>[] = []
    const first = this.#ensure(model)
    if (first !== null) pending.push(first)
    if (Array.isArray(also)) {
      for (const name of also) {
        const p = this.#ensure(name)
        if (p !== null) pending.push(p)
      }
    }
    if (pending.length === 0) return this.#snapshot()
    return Promise.all(pending).then(() => this.#snapshot())
  }

  async refresh(): Promise<ConfigSnapshot> {
    if (this.closed) throw this.closedError()
    const keys = [...this.#cache.keys()]
    let firstError: unknown = null
    let next = 0
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++] as string
        try {
          await this.#fetch(key)
        } catch (error) {
          firstError ??= error
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(REFRESH_CONCURRENCY, keys.length) }, worker))
    if (firstError !== null) throw firstError
    return this.current() ?? this.#noModelSnapshot()
  }

  current(): ConfigSnapshot | null {
    // Nothing looked up yet: the env records model-less requests use, if any ran, else nothing.
    if (this.#cache.size === 0 && this.#combined === null) return this.#noModel
    const snapshot = this.#snapshot()
    // Revalidations that changed nothing keep the routing snapshot; show their time here.
    let latest: number | null = null
    for (const entry of this.#cache.values()) {
      if (entry.fetchedAt !== null && (latest === null || entry.fetchedAt > latest)) latest = entry.fetchedAt
    }
    return latest === snapshot.fetchedAt ? snapshot : withMeta(snapshot, { fetchedAt: latest })
  }

  // --- lookup -------------------------------------------------------------------------------

  /** Makes sure `model` has an entry; a promise when the caller must wait for a first lookup. */
  #ensure(model: string): Promise<void> | null {
    const known = this.#cache.get(model)
    if (known !== undefined) {
      if (!known.failed && this.deps.clock.now() < known.freshUntil) return null
      this.#revalidate(model)
      return null
    }
    if (this.closed) return null
    // While the admin is failing, unknown models are answered from env at once rather than waiting.
    if (this.scheduler.backingOff && this.#lastError !== null) {
      this.#installFromEnv(model, this.#lastError)
      return null
    }
    return this.#fetch(model).then(noop, noop)
  }

  #revalidate(model: string): void {
    if (this.closed || this.scheduler.running(model) || this.scheduler.backingOff) return
    this.#fetch(model).catch(noop)
  }

  #noModelSnapshot(): ConfigSnapshot {
    this.#noModel ??= this.envSnapshot(
      "the request names no model, and per-model lookup (admin.lookup 'model') needs one",
      new VersionCounter(),
      null,
    )
    return this.#noModel
  }

  /** The combined snapshot, rebuilt when some entry changed since the last build. */
  #snapshot(): ConfigSnapshot {
    if (!this.#dirty && this.#combined !== null) return this.#combined
    const all: BackendRecord[] = []
    const notes = new Map<string, string>()
    let failed = false
    let fromAdmin = false
    let fetchedAt: number | null = null
    const keys: string[] = []
    // By model name, so the view (and equal-priority order) does not depend on lookup recency.
    const entries = [...this.#cache.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    for (const [model, entry] of entries) {
      all.push(...entry.records)
      if (entry.note !== null) notes.set(model, entry.note)
      if (entry.failed) failed = true
      if (!entry.fromEnv) fromAdmin = true
      if (entry.fetchedAt !== null && (fetchedAt === null || entry.fetchedAt > fetchedAt))
        fetchedAt = entry.fetchedAt
      keys.push(`${model}\u0000${entryKey(entry)}`)
    }
    const origin = fromAdmin
      ? failed
        ? 'stale'
        : 'admin'
      : this.#cache.size === 0
        ? 'admin'
        : this.envResult().origin
    this.#combined = buildSnapshot({
      allRecords: all,
      origin,
      fetchedAt,
      version: this.#versions.next(keys.join('\u0001')),
      modelNotes: notes,
    })
    this.#dirty = false
    return this.#combined
  }

  #set(model: string, fields: Omit<Entry, 'freshUntil'>): void {
    const entry: Entry = { ...fields, freshUntil: this.deps.clock.now() + Math.max(1, this.deps.ttlMs) }
    const previous = this.#cache.peek(model)
    if (previous === undefined || entryKey(previous) !== entryKey(entry)) this.#dirty = true
    this.#cache.set(model, entry)
  }

  #installFromEnv(model: string, error: RouterError): void {
    const env = this.envResult()
    this.#set(model, {
      records: env.origin === 'env' ? env.records.filter((r) => r.model_name === model) : [],
      note: `${this.unavailable(error)} for its lookup`,
      etag: null,
      fetchedAt: null,
      failed: true,
      fromEnv: true,
    })
  }

  // --- fetching -----------------------------------------------------------------------------

  #fetch(model: string): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError())
    return this.scheduler.run(model, async () => {
      const previous = this.#cache.peek(model)
      try {
        const result = await fetchAdmin(
          this.deps,
          previous?.fromEnv === false ? previous.etag : null,
          this.closeController.signal,
          model,
        )
        if (this.closed) throw this.closedError()
        this.#applySuccess(model, previous, result)
      } catch (caught) {
        const error = this.asRouterError(caught)
        if (!this.closed) this.#applyFailure(model, previous, error)
        throw error
      }
    })
  }

  #applySuccess(
    model: string,
    previous: Entry | undefined,
    result: Awaited<ReturnType<typeof fetchAdmin>>,
  ): void {
    const now = this.deps.clock.now()
    let entry: Omit<Entry, 'freshUntil'>
    if (result.kind === 'not-modified') {
      const prev = previous as Entry
      entry = { ...prev, etag: result.etag, fetchedAt: now, failed: false }
    } else if (result.kind === 'not-found') {
      entry = {
        records: [],
        note: `the admin API at ${this.adminOrigin} has no record for it (404)`,
        etag: null,
        fetchedAt: now,
        failed: false,
        fromEnv: false,
      }
    } else {
      const parsed = parsePayload(this.deps.admin, result.payload, true)
      this.reportInvalid(model, parsed.invalid, parsed.raw)
      const note =
        parsed.raw.length === 0
          ? `the admin API at ${this.adminOrigin} returned no record for it`
          : (notesFor(parsed.records, parsed.invalid).get(model) ?? null)
      // Unchanged records keep the previous (frozen) array, so the combined snapshot stays put.
      const same =
        previous !== undefined &&
        !previous.fromEnv &&
        contentKey(previous.records) === contentKey(parsed.records)
      entry = {
        records: same ? previous.records : parsed.records,
        note,
        etag: result.etag,
        fetchedAt: now,
        failed: false,
        fromEnv: false,
      }
    }
    this.#set(model, entry)
    this.scheduler.succeeded()
    this.#fallbackEmitted = false
    this.#lastError = null

    const enabled = entry.records.filter((r) => r.enabled).length
    if (enabled > 0 && !this.#loadedOnce) {
      this.#loadedOnce = true
      this.emit('config:loaded', { origin: 'admin', records: enabled, etag: entry.etag })
    }
    if (previous !== undefined) {
      this.emit('config:refreshed', {
        origin: 'admin',
        records: enabled,
        changed: previous.fromEnv || contentKey(previous.records) !== contentKey(entry.records),
        etag: entry.etag,
      })
    }
  }

  #applyFailure(model: string, previous: Entry | undefined, error: RouterError): void {
    const delay = this.scheduler.failed(error.retryAfterMs)
    this.#lastError = error
    const servingStale = previous !== undefined && !previous.fromEnv
    this.emit('config:failed', {
      error,
      consecutiveFailures: this.scheduler.consecutiveFailures,
      nextRetryMs: delay,
      servingStale,
    })
    if (previous !== undefined) {
      // Marked in place: the entry keeps its age, and the combined snapshot turns 'stale'.
      if (!previous.failed) {
        previous.failed = true
        this.#dirty = true
      }
      return
    }
    this.#installFromEnv(model, error)
    if (!this.#fallbackEmitted) {
      this.#fallbackEmitted = true
      const env = this.envResult()
      this.emit('config:fallback', {
        origin: env.origin,
        reason: `admin unavailable for model lookups (${error.code}); using ${env.reason}`,
      })
    }
  }
}
