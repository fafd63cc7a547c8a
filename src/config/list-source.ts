/**
 * List lookup (`admin.lookup: 'list'`, the default): every record from one endpoint
 * (`GET {adminUrl}/api/llm-backends/public`), cached for the TTL, revalidated in the background
 * (If-None-Match when the admin sends an ETag), kept through admin outages, and replaced by
 * environment records exactly when no admin config can be had.
 *
 * Origins: 'admin' = fetched within the TTL; 'stale' = the last good admin records, past the TTL or
 * after a failed refresh; 'env'/'default' = environment records (admin unavailable before any good
 * load, or a list with no enabled record: empty or all disabled, as the seed's client treats it).
 *
 * Events: 'config:loaded' once, on the first admin load with records; 'config:refreshed' on every
 * later successful fetch or 304 (`changed` = records changed); 'config:failed' on every failed
 * fetch; 'config:fallback' when env records start being used; 'config:invalid-record' once per
 * distinct bad record.
 */
import { ErrorCode, RouterError } from '../errors.js'
import { fetchAdmin, notesFor, parsePayload } from './admin-fetch.js'
import { SourceBase } from './base.js'
import type { ConfigSnapshot, ConfigSource } from './contract.js'
import { buildSnapshot, contentKey, staleView, VersionCounter, withMeta } from './snapshot.js'

const LIST_KEY = 'list'
const noop = () => {}

interface Entry {
  /** As installed: origin 'admin', or env records for a list with no enabled record. */
  snapshot: ConfigSnapshot
  /** Content key (records and notes) of `snapshot`. */
  key: string
  etag: string | null
  freshUntil: number
  /** A refresh failed after this was fetched: serve it as stale even within the TTL. */
  failed: boolean
}

export class ListConfigSource extends SourceBase implements ConfigSource {
  readonly #versions = new VersionCounter()
  #entry: Entry | null = null
  /** Env snapshot in use because the admin failed before any good load. */
  #fallback: ConfigSnapshot | null = null
  #loadedOnce = false

  get(): ConfigSnapshot | Promise<ConfigSnapshot> {
    const entry = this.#entry
    if (entry !== null) {
      if (!entry.failed && this.deps.clock.now() < entry.freshUntil) return entry.snapshot
      this.#revalidate()
      return staleView(entry.snapshot)
    }
    if (this.#fallback !== null) {
      this.#revalidate()
      return this.#fallback
    }
    if (this.closed) return this.#closedFallback()
    // Shared by every caller waiting on the first load; never rejects (env records instead).
    return this.#fetch().then(
      (snapshot) => snapshot,
      () =>
        this.#fallback ?? (this.#entry === null ? this.#closedFallback() : staleView(this.#entry.snapshot)),
    )
  }

  refresh(): Promise<ConfigSnapshot> {
    if (this.closed) return Promise.reject(this.closedError())
    return this.#fetch()
  }

  current(): ConfigSnapshot | null {
    const entry = this.#entry
    if (entry === null) return this.#fallback
    return !entry.failed && this.deps.clock.now() < entry.freshUntil
      ? entry.snapshot
      : staleView(entry.snapshot)
  }

  #closedFallback(): ConfigSnapshot {
    return this.envSnapshot('the router was closed before the admin config loaded', this.#versions, null)
  }

  #revalidate(): void {
    if (this.closed || this.scheduler.running(LIST_KEY) || this.scheduler.backingOff) return
    this.#fetch().catch(noop)
  }

  #fetch(): Promise<ConfigSnapshot> {
    return this.scheduler.run(LIST_KEY, async () => {
      try {
        const result = await fetchAdmin(this.deps, this.#entry?.etag ?? null, this.closeController.signal)
        if (this.closed) throw this.closedError()
        return this.#applySuccess(result)
      } catch (caught) {
        const error = this.asRouterError(caught)
        // Admin down before any good load: the last good config (Redis or file) beats env records.
        if (!this.closed && this.#entry === null && this.#fallback === null) await this.#restore()
        if (!this.closed) this.#applyFailure(error)
        throw error
      }
    })
  }

  /** Installs the saved last good config as a failed entry, so it is served as `stale` (never as env). */
  async #restore(): Promise<void> {
    const saved = await this.deps.lastGood?.load().catch(() => null)
    if (!saved || this.#entry !== null || this.closed) return
    const key = contentKey(saved.records)
    const snapshot = buildSnapshot({
      allRecords: saved.records,
      origin: 'admin',
      etag: null,
      fetchedAt: saved.fetchedAt,
      version: this.#versions.next(key),
      modelNotes: notesFor(saved.records, []),
    })
    this.#entry = { snapshot, key, etag: null, freshUntil: 0, failed: true }
    this.emit('config:restored', {
      from: saved.from,
      records: snapshot.records.length,
      fetchedAt: saved.fetchedAt,
    })
  }

  #applySuccess(result: Awaited<ReturnType<typeof fetchAdmin>>): ConfigSnapshot {
    const now = this.deps.clock.now()
    const previous = this.#entry
    const before = previous?.snapshot ?? this.#fallback
    let snapshot: ConfigSnapshot
    let key: string
    let etag: string | null

    if (result.kind === 'not-modified') {
      // An ETag is only sent when an entry exists, and a 304 only counts with one (fetchAdmin).
      const prev = previous as Entry
      snapshot =
        prev.snapshot.origin === 'admin' ? withMeta(prev.snapshot, { fetchedAt: now }) : prev.snapshot
      key = prev.key
      etag = result.etag
    } else if (result.kind === 'payload') {
      const parsed = parsePayload(this.deps.admin, result.payload, false, this.deps.env)
      this.reportInvalid(LIST_KEY, parsed.invalid, parsed.raw)
      etag = result.etag
      if (parsed.raw.length > 0 && parsed.records.length === 0) {
        throw new RouterError(
          ErrorCode.CONFIG_INVALID,
          `None of the ${parsed.raw.length} records from the admin API is valid (see 'config:invalid-record' events).`,
        )
      }
      if (!parsed.records.some((r) => r.enabled)) {
        // The seed's client filters disabled records and treats the empty result as "use local
        // defaults"; an all-disabled list is therefore exactly an empty one.
        const why =
          parsed.raw.length === 0
            ? `the admin API at ${this.adminOrigin} returned an empty list`
            : `every record from the admin API at ${this.adminOrigin} is disabled`
        const current =
          before !== null && before.origin !== 'admin' && before.origin !== 'stale' ? before : null
        snapshot = this.envSnapshot(why, this.#versions, current)
        key = `env\u0000${why}`
        // Once per switch to env records, not on every refresh that repeats it.
        if (snapshot !== before) {
          this.emit('config:fallback', {
            origin: snapshot.origin as 'env' | 'default',
            reason: `${parsed.raw.length === 0 ? 'admin returned an empty list' : 'every admin record is disabled'}; using ${this.envResult().reason}`,
          })
        }
      } else {
        const notes = notesFor(parsed.records, parsed.invalid)
        key = contentKey(parsed.records) + JSON.stringify([...notes])
        snapshot =
          previous !== null && previous.key === key && previous.snapshot.origin === 'admin'
            ? withMeta(previous.snapshot, { fetchedAt: now, etag })
            : buildSnapshot({
                allRecords: parsed.records,
                origin: 'admin',
                etag,
                fetchedAt: now,
                version: this.#versions.next(key),
                modelNotes: notes,
              })
      }
    } else {
      throw new RouterError(ErrorCode.CONFIG_INVALID, 'The list endpoint answered like a per-model lookup.')
    }

    this.#entry = {
      snapshot,
      key,
      etag,
      freshUntil: now + Math.max(1, this.deps.ttlMs),
      failed: false,
    }
    this.#fallback = null
    this.scheduler.succeeded()
    if (snapshot.origin === 'admin' && previous?.key !== key) {
      this.deps.lastGood?.save(snapshot.allRecords, etag, now).catch(noop)
    }

    if (snapshot.origin === 'admin' && !this.#loadedOnce) {
      this.#loadedOnce = true
      this.emit('config:loaded', { origin: 'admin', records: snapshot.records.length, etag: snapshot.etag })
    }
    if (before !== null) {
      this.emit('config:refreshed', {
        origin: snapshot.origin,
        records: snapshot.records.length,
        changed: before.allRecords !== snapshot.allRecords,
        etag: snapshot.etag,
      })
    }
    return snapshot
  }

  #applyFailure(error: RouterError): void {
    const delay = this.scheduler.failed(error.retryAfterMs)
    const entry = this.#entry
    if (entry !== null) entry.failed = true
    this.emit('config:failed', {
      error,
      consecutiveFailures: this.scheduler.consecutiveFailures,
      nextRetryMs: delay,
      servingStale: entry !== null,
    })
    if (entry === null && this.#fallback === null) {
      this.#fallback = this.envSnapshot(this.unavailable(error), this.#versions, null)
      this.emit('config:fallback', {
        origin: this.#fallback.origin as 'env' | 'default',
        reason: `admin unavailable on first load (${error.code}); using ${this.envResult().reason}`,
      })
    }
    this.scheduler.retryIn(delay, () => {
      if (!this.scheduler.running(LIST_KEY)) this.#fetch().catch(noop)
    })
  }
}
