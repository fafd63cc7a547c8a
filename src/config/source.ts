/**
 * The config source: backend records from the admin API, cached with a TTL, revalidated in the
 * background, kept through admin outages, and replaced by environment records exactly when no admin
 * config can be had.
 *
 * Origins: 'admin' = fetched from the admin within the TTL; 'stale' = the last good admin records,
 * past the TTL or after a failed refresh; 'env'/'default' = environment records (no admin URL,
 * admin unavailable before any good load, or the admin returned an empty list).
 *
 * Events: 'config:loaded' once, on the first admin load that yields records; 'config:refreshed'
 * on every later successful fetch or 304 revalidation (`changed` = records changed);
 * 'config:failed' on every failed fetch; 'config:fallback' when env records start being used;
 * 'config:invalid-record' once per distinct bad record (not again while later payloads repeat it).
 */
import { LRUCache } from 'lru-cache'
import { type Dispatcher, request } from 'undici'
import { parseRetryAfter } from '../dispatch/classify.js'
import { ErrorCode, isRouterError, RouterError } from '../errors.js'
import type { BackendRecord, RouterEvents } from '../types.js'
import type { ConfigSnapshot, ConfigSource, ConfigSourceDeps } from './contract.js'
import { type EnvRecordsResult, envRecords } from './env.js'
import { defaultMapPayload, type InvalidRecord, parseRecords, sortEnabled } from './schema.js'

/** Cache key of the whole list in 'list' mode (model mode keys are model names). */
const LIST_KEY = '\u0000list'
/** At most this many models are cached in 'model' lookup mode. */
export const MAX_CACHED_MODELS = 1000
/** How much of an error body is drained so the keep-alive socket can be reused. */
const DRAIN_LIMIT = 64 * 1024

interface Entry {
  /** As fetched: origin 'admin' (or 'env' for an empty admin list). */
  snapshot: ConfigSnapshot
  /** `snapshot` relabelled 'stale', built on first use. */
  staleView: ConfigSnapshot | null
  /** A refresh failed after this was fetched: serve it as stale even within the TTL. */
  failed: boolean
  etag: string | null
}

type FetchOutcome =
  | { kind: 'payload'; payload: unknown; etag: string | null }
  | { kind: 'not-modified'; entry: Entry }
  | { kind: 'not-found' }

const noop = () => {}

/** Snapshots are shared by every request; freezing makes an accidental mutation fail loudly. */
function freezeSnapshot(snapshot: ConfigSnapshot): ConfigSnapshot {
  for (const record of snapshot.allRecords) {
    if (record.auth !== undefined) Object.freeze(record.auth)
    Object.freeze(record)
  }
  Object.freeze(snapshot.records)
  Object.freeze(snapshot.allRecords)
  return Object.freeze(snapshot)
}

/** Admin URL for messages: no credentials, no query string (either may carry secrets). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}`
  } catch {
    return '(admin URL)'
  }
}

/** Appends `path` to the base URL's path, keeping any query string of the base. */
function joinUrl(base: string, path: string): string {
  const suffix = path.startsWith('/') ? path : `/${path}`
  try {
    const url = new URL(base)
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`
    return url.toString()
  } catch {
    return `${base.replace(/\/+$/, '')}${suffix}`
  }
}

/** Destroys a body nobody will read; the listener keeps undici's AbortError from going unhandled. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', noop)
  body.destroy()
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  return Array.isArray(value) ? (value[0] ?? null) : value
}

function describeNetworkError(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code
    const message = (error as { message?: unknown }).message
    if (typeof code === 'string' && typeof message === 'string') return `${code}: ${message}`
    if (typeof message === 'string') return message
  }
  return String(error)
}

class AdminConfigSource implements ConfigSource {
  readonly #deps: ConfigSourceDeps
  readonly #modelMode: boolean
  readonly #cache: LRUCache<string, Entry>
  /** Reused so the hot path does not allocate an options object per lookup. */
  readonly #freshOnly: LRUCache.GetOptions<string, Entry, unknown> = {}
  readonly #inflight = new Map<string, Promise<ConfigSnapshot>>()
  readonly #cold = new Map<string, Promise<ConfigSnapshot>>()
  readonly #controllers = new Set<AbortController>()
  /** Signatures of the invalid records of the last payload, per cache key. */
  readonly #invalidSeen = new Map<string, Set<string>>()
  readonly #keys = new WeakMap<ConfigSnapshot, string>()

  #env: EnvRecordsResult | null = null
  #envSnapshot: ConfigSnapshot | null = null
  /** List mode: env snapshot in use because the admin failed before any good load. */
  #fallback: ConfigSnapshot | null = null
  /** Model mode: a 'config:fallback' was emitted for the current failure streak. */
  #modelFallbackEmitted = false
  #noAdminReported = false
  #version = 0
  #lastKey: string | null = null
  #loadedOnce = false
  #consecutiveFailures = 0
  #nextRetryAt = 0
  #retryTimer: unknown = null
  #closed = false

  constructor(deps: ConfigSourceDeps) {
    this.#deps = deps
    this.#modelMode = deps.admin.lookup === 'model' && deps.admin.url !== null
    const clock = deps.clock
    this.#cache = new LRUCache<string, Entry>({
      max: this.#modelMode ? MAX_CACHED_MODELS : 1,
      // lru-cache treats 0 as "no TTL"; 1 ms is the closest to "always revalidate".
      ttl: Math.max(1, Math.floor(deps.ttlMs)),
      // Staleness follows the injected clock; resolution 0 because lru-cache would otherwise
      // memoise now() behind a real timer that a manual clock does not drive.
      perf: { now: () => clock.now() },
      ttlResolution: 0,
      allowStale: false,
      // Stale entries are the last known good config: keep them until replaced or evicted.
      noDeleteOnStaleGet: true,
      updateAgeOnGet: false,
    })
  }

  get(model?: string): ConfigSnapshot | Promise<ConfigSnapshot> {
    if (this.#deps.admin.url === null) return this.#defaultSnapshot()
    if (this.#modelMode) {
      if (model === undefined) return this.#defaultSnapshot()
      return this.#lookup(model)
    }
    return this.#lookup(LIST_KEY)
  }

  refresh(): Promise<ConfigSnapshot> {
    if (this.#closed) return Promise.reject(this.#closedError())
    if (this.#deps.admin.url === null) return Promise.resolve(this.#defaultSnapshot())
    if (this.#modelMode) return this.#refreshModels()
    return this.#startFetch(LIST_KEY)
  }

  current(): ConfigSnapshot | null {
    if (this.#deps.admin.url === null || this.#modelMode) return this.#defaultSnapshot()
    const entry = this.#cache.peek(LIST_KEY, { allowStale: true })
    if (entry === undefined) return this.#fallback
    const fresh = this.#cache.get(LIST_KEY, this.#freshOnly)
    return fresh !== undefined && !fresh.failed ? fresh.snapshot : this.#staleView(entry)
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#clearRetryTimer()
    for (const controller of this.#controllers) controller.abort(this.#closedError())
    this.#controllers.clear()
  }

  // --- lookup -------------------------------------------------------------------------------

  #lookup(key: string): ConfigSnapshot | Promise<ConfigSnapshot> {
    const fresh = this.#cache.get(key, this.#freshOnly)
    if (fresh !== undefined && !fresh.failed) return fresh.snapshot
    const known = fresh ?? this.#cache.peek(key, { allowStale: true })
    if (known !== undefined) {
      this.#revalidate(key)
      return this.#staleView(known)
    }
    if (this.#closed) return this.#fallbackFor()
    if (!this.#modelMode && this.#fallback !== null) {
      this.#revalidate(key)
      return this.#fallback
    }
    // Model mode while the admin is failing: answer unknown models from env rather than wait.
    if (this.#modelMode && this.#deps.clock.now() < this.#nextRetryAt) return this.#defaultSnapshot()
    return this.#coldLoad(key)
  }

  #coldLoad(key: string): Promise<ConfigSnapshot> {
    const pending = this.#cold.get(key)
    if (pending !== undefined) return pending
    // Shared by every caller waiting on this cold key; never rejects (env records instead).
    const promise = this.#startFetch(key).then(
      (snapshot) => snapshot,
      () => this.#fallbackFor(),
    )
    this.#cold.set(key, promise)
    void promise.then(() => {
      if (this.#cold.get(key) === promise) this.#cold.delete(key)
    })
    return promise
  }

  /** Background refresh of a known key, unless one is running or the backoff says wait. */
  #revalidate(key: string): void {
    if (this.#closed || this.#inflight.has(key)) return
    if (this.#deps.clock.now() < this.#nextRetryAt) return
    this.#startFetch(key).catch(noop)
  }

  #staleView(entry: Entry): ConfigSnapshot {
    if (entry.snapshot.origin !== 'admin') return entry.snapshot
    if (entry.staleView === null) {
      const view = freezeSnapshot({ ...entry.snapshot, origin: 'stale' })
      this.#keys.set(view, this.#keys.get(entry.snapshot) ?? '')
      entry.staleView = view
    }
    return entry.staleView
  }

  #fallbackFor(): ConfigSnapshot {
    return this.#modelMode ? this.#defaultSnapshot() : (this.#fallback ?? this.#defaultSnapshot())
  }

  // --- env ----------------------------------------------------------------------------------

  #envResult(): EnvRecordsResult {
    if (this.#env === null) {
      this.#env = envRecords(this.#deps.env)
      for (const invalid of this.#env.invalid) this.#emit('config:invalid-record', invalid)
    }
    return this.#env
  }

  #defaultSnapshot(): ConfigSnapshot {
    if (this.#envSnapshot === null) {
      const env = this.#envResult()
      this.#envSnapshot = this.#makeSnapshot(
        env.records,
        env.origin,
        null,
        null,
        this.#modelMode ? null : true,
      )
    }
    if (this.#deps.admin.url === null && !this.#noAdminReported) {
      this.#noAdminReported = true
      this.#emit('config:fallback', {
        origin: this.#envSnapshot.origin as 'env' | 'default',
        reason: `no admin URL configured; using ${this.#envResult().reason}`,
      })
    }
    return this.#envSnapshot
  }

  /**
   * Env records as the snapshot to install now (list mode). Reuses the env snapshot object when
   * nothing else was installed since, so identity and version stay put.
   */
  #envForInstall(): ConfigSnapshot {
    const snapshot = this.#defaultSnapshot()
    const key = this.#keys.get(snapshot)
    if (key === this.#lastKey) return snapshot
    const env = this.#envResult()
    this.#envSnapshot = this.#makeSnapshot(env.records, env.origin, null, null, true)
    return this.#envSnapshot
  }

  // --- snapshots ----------------------------------------------------------------------------

  /**
   * Builds a snapshot. `track` true: list mode, the version moves when the records differ from the
   * last installed ones. `track` is the previous key for model mode (null when new).
   */
  #makeSnapshot(
    allRecords: BackendRecord[],
    origin: ConfigSnapshot['origin'],
    etag: string | null,
    fetchedAt: number | null,
    track: true | string | null,
  ): ConfigSnapshot {
    const key = JSON.stringify(allRecords)
    const previous = track === true ? this.#lastKey : track
    if (key !== previous) this.#version++
    if (track === true) this.#lastKey = key
    const snapshot = freezeSnapshot({
      records: sortEnabled(allRecords),
      allRecords,
      origin,
      etag,
      fetchedAt,
      version: this.#version,
    })
    this.#keys.set(snapshot, key)
    return snapshot
  }

  // --- fetching -----------------------------------------------------------------------------

  #startFetch(key: string): Promise<ConfigSnapshot> {
    const existing = this.#inflight.get(key)
    if (existing !== undefined) return existing
    if (this.#closed) return Promise.reject(this.#closedError())
    const promise = this.#fetchAndApply(key).finally(() => {
      if (this.#inflight.get(key) === promise) this.#inflight.delete(key)
    })
    this.#inflight.set(key, promise)
    return promise
  }

  async #fetchAndApply(key: string): Promise<ConfigSnapshot> {
    let outcome: FetchOutcome
    try {
      outcome = await this.#fetchOnce(key)
      if (this.#closed) throw this.#closedError()
      return this.#applySuccess(key, outcome)
    } catch (error) {
      const routerError = isRouterError(error)
        ? error
        : new RouterError(ErrorCode.CONFIG_FETCH_FAILED, 'Admin config refresh failed unexpectedly.', {
            cause: error,
          })
      if (!this.#closed) this.#applyFailure(key, routerError)
      throw routerError
    }
  }

  async #fetchOnce(key: string): Promise<FetchOutcome> {
    const admin = this.#deps.admin
    const base = admin.url as string
    const url =
      key === LIST_KEY
        ? joinUrl(base, admin.listPath)
        : joinUrl(base, admin.modelPath.replaceAll('{model}', encodeURIComponent(key)))
    const where = redactUrl(url)
    const headers: Record<string, string> = { accept: 'application/json' }
    for (const [name, value] of Object.entries(admin.headers)) headers[name.toLowerCase()] = value
    const previous = this.#cache.peek(key, { allowStale: true })
    if (previous?.etag) headers['if-none-match'] = previous.etag

    const controller = new AbortController()
    this.#controllers.add(controller)
    const clock = this.#deps.clock
    const timeoutMs = admin.timeoutMs
    const timer = clock.setTimeout(() => {
      controller.abort(
        new RouterError(
          ErrorCode.CONFIG_FETCH_FAILED,
          `Admin API at ${where} did not answer within ${timeoutMs} ms; raise admin.timeoutMs if it is just slow.`,
        ),
      )
    }, timeoutMs)
    try {
      let res: Dispatcher.ResponseData
      try {
        res = await request(url, {
          method: 'GET',
          headers,
          dispatcher: this.#deps.dispatcher,
          signal: controller.signal,
        })
      } catch (error) {
        if (controller.signal.aborted && isRouterError(controller.signal.reason))
          throw controller.signal.reason
        throw new RouterError(
          ErrorCode.CONFIG_FETCH_FAILED,
          `Could not reach the admin API at ${where} (${describeNetworkError(error)}). ` +
            'Check the admin URL; the last good config (or env records) stays in use.',
          { cause: error },
        )
      }
      const status = res.statusCode
      if (status === 304) {
        await this.#drain(res)
        if (previous === undefined || previous.etag === null) {
          throw new RouterError(
            ErrorCode.CONFIG_INVALID,
            `Admin API at ${where} answered 304 Not Modified to a request without If-None-Match.`,
            { status },
          )
        }
        return { kind: 'not-modified', entry: previous }
      }
      if (status === 404 && this.#modelMode) {
        await this.#drain(res)
        return { kind: 'not-found' }
      }
      if (status < 200 || status > 299) {
        await this.#drain(res)
        const hint =
          status === 401 || status === 403
            ? 'Check the credentials in admin.headers.'
            : status === 404
              ? 'Check the admin URL and admin.listPath.'
              : 'The last good config (or env records) stays in use; retrying with backoff.'
        // A busy or rate-limiting admin says when to come back: the next refresh waits at least that long.
        const retryAfterMs =
          status === 429 || status === 503
            ? parseRetryAfter(res.headers['retry-after'], this.#deps.clock.now())
            : undefined
        throw new RouterError(
          ErrorCode.CONFIG_FETCH_FAILED,
          `Admin API at ${where} answered ${status}. ${hint}`,
          retryAfterMs === undefined ? { status } : { status, retryAfterMs },
        )
      }
      const text = await this.#readBody(res, where, controller)
      let payload: unknown
      try {
        payload = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)
      } catch (error) {
        throw new RouterError(
          ErrorCode.CONFIG_INVALID,
          `Admin API at ${where} answered ${status} with a body that is not JSON; expected a list of backend records.`,
          { cause: error, status },
        )
      }
      return { kind: 'payload', payload, etag: headerValue(res.headers.etag) }
    } finally {
      clock.clearTimeout(timer)
      this.#controllers.delete(controller)
    }
  }

  async #readBody(res: Dispatcher.ResponseData, where: string, controller: AbortController): Promise<string> {
    const max = this.#deps.admin.maxPayloadBytes
    const tooLarge = (what: string) =>
      new RouterError(
        ErrorCode.CONFIG_TOO_LARGE,
        `Admin payload from ${where} is larger than admin.maxPayloadBytes (${max} bytes; ${what}). ` +
          'Raise the cap if this size is expected.',
      )
    const declared = Number(headerValue(res.headers['content-length']) ?? Number.NaN)
    if (Number.isFinite(declared) && declared > max) {
      discard(res.body)
      throw tooLarge(`content-length ${declared}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of res.body) {
        const buf = chunk as Buffer
        size += buf.length
        if (size > max) {
          discard(res.body)
          throw tooLarge(`more than ${max} bytes received`)
        }
        chunks.push(buf)
      }
    } catch (error) {
      if (isRouterError(error)) throw error
      if (controller.signal.aborted && isRouterError(controller.signal.reason)) throw controller.signal.reason
      throw new RouterError(
        ErrorCode.CONFIG_FETCH_FAILED,
        `Admin API at ${where} broke off while sending the config (${describeNetworkError(error)}).`,
        { cause: error },
      )
    }
    return Buffer.concat(chunks, size).toString('utf8')
  }

  async #drain(res: Dispatcher.ResponseData): Promise<void> {
    try {
      await res.body.dump({ limit: DRAIN_LIMIT })
    } catch {
      // The status already decided the outcome; a broken error body changes nothing.
    }
  }

  // --- outcomes -----------------------------------------------------------------------------

  #applySuccess(key: string, outcome: FetchOutcome): ConfigSnapshot {
    const now = this.#deps.clock.now()
    const previous = this.#cache.peek(key, { allowStale: true })
    const before = previous?.snapshot ?? this.#fallback
    let entry: Entry

    if (outcome.kind === 'not-modified') {
      const prev = outcome.entry
      const snapshot = prev.snapshot.origin === 'admin' ? this.#restamp(prev.snapshot, now) : prev.snapshot
      entry = { snapshot, staleView: null, failed: false, etag: prev.etag }
    } else if (outcome.kind === 'not-found') {
      entry = {
        snapshot: this.#makeSnapshot([], 'admin', null, now, this.#keyOf(previous)),
        staleView: null,
        failed: false,
        etag: null,
      }
    } else {
      entry = this.#entryFromPayload(key, outcome.payload, outcome.etag, now, previous)
    }

    this.#cache.set(key, entry)
    this.#consecutiveFailures = 0
    this.#nextRetryAt = 0
    this.#modelFallbackEmitted = false
    this.#clearRetryTimer()
    this.#fallback = null

    const snapshot = entry.snapshot
    const changed = before !== null && this.#keys.get(before) !== this.#keys.get(snapshot)
    if (snapshot.origin === 'admin' && !this.#loadedOnce) {
      this.#loadedOnce = true
      this.#emit('config:loaded', { origin: 'admin', records: snapshot.records.length, etag: snapshot.etag })
    }
    if (before !== null) {
      this.#emit('config:refreshed', {
        origin: snapshot.origin,
        records: snapshot.records.length,
        changed,
        etag: snapshot.etag,
      })
    }
    return snapshot
  }

  #keyOf(entry: Entry | undefined): string | null {
    return entry === undefined ? null : (this.#keys.get(entry.snapshot) ?? null)
  }

  #restamp(snapshot: ConfigSnapshot, fetchedAt: number): ConfigSnapshot {
    const next = freezeSnapshot({ ...snapshot, fetchedAt })
    this.#keys.set(next, this.#keys.get(snapshot) ?? '')
    return next
  }

  #entryFromPayload(
    key: string,
    payload: unknown,
    etag: string | null,
    now: number,
    previous: Entry | undefined,
  ): Entry {
    let mapped: unknown
    const map = this.#deps.admin.mapPayload ?? defaultMapPayload
    try {
      mapped = map(payload)
    } catch (error) {
      throw new RouterError(
        ErrorCode.CONFIG_INVALID,
        'admin.mapPayload threw while mapping the admin payload.',
        {
          cause: error,
        },
      )
    }
    // A per-model endpoint may answer with the record itself rather than a list.
    if (this.#modelMode && typeof mapped === 'object' && mapped !== null && !Array.isArray(mapped)) {
      mapped = [mapped]
    }
    const { records, invalid } = parseRecords(mapped)
    const raw = mapped as unknown[]
    this.#reportInvalid(key, invalid, raw)

    if (raw.length === 0) {
      if (this.#modelMode) {
        return {
          snapshot: this.#makeSnapshot([], 'admin', etag, now, this.#keyOf(previous)),
          staleView: null,
          failed: false,
          etag,
        }
      }
      // The admin's own clients treat an empty list as "use local defaults"; so do we.
      const snapshot = this.#envForInstall()
      // Once per switch to env records, not on every refresh that repeats the empty list.
      if (previous === undefined || previous.snapshot.origin === 'admin') {
        this.#emit('config:fallback', {
          origin: snapshot.origin as 'env' | 'default',
          reason: `admin returned an empty list; using ${this.#envResult().reason}`,
        })
      }
      return { snapshot, staleView: null, failed: false, etag }
    }
    if (records.length === 0) {
      throw new RouterError(
        ErrorCode.CONFIG_INVALID,
        `None of the ${raw.length} records from the admin API is valid (see 'config:invalid-record' events).`,
      )
    }
    const track = this.#modelMode ? this.#keyOf(previous) : true
    return {
      snapshot: this.#makeSnapshot(records, 'admin', etag, now, track),
      staleView: null,
      failed: false,
      etag,
    }
  }

  #reportInvalid(key: string, invalid: InvalidRecord[], raw: unknown[]): void {
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
      if (seen?.has(signature) !== true) this.#emit('config:invalid-record', item)
    }
    this.#invalidSeen.delete(key)
    this.#invalidSeen.set(key, next)
    if (this.#invalidSeen.size > MAX_CACHED_MODELS) {
      const oldest = this.#invalidSeen.keys().next().value
      if (oldest !== undefined) this.#invalidSeen.delete(oldest)
    }
  }

  #applyFailure(key: string, error: RouterError): void {
    this.#consecutiveFailures++
    const asked = Math.min(error.retryAfterMs ?? 0, this.#deps.admin.retryMaxMs)
    const delay = Math.max(this.#backoffDelay(this.#consecutiveFailures), asked)
    this.#nextRetryAt = this.#deps.clock.now() + delay
    const entry = this.#cache.peek(key, { allowStale: true })
    if (entry !== undefined) entry.failed = true
    this.#emit('config:failed', {
      error,
      consecutiveFailures: this.#consecutiveFailures,
      nextRetryMs: delay,
      servingStale: entry !== undefined,
    })
    if (entry !== undefined) {
      if (!this.#modelMode) this.#scheduleRetry(delay)
      return
    }
    if (this.#modelMode) {
      if (!this.#modelFallbackEmitted) {
        this.#modelFallbackEmitted = true
        const env = this.#defaultSnapshot()
        this.#emit('config:fallback', {
          origin: env.origin as 'env' | 'default',
          reason: `admin unavailable for model lookups (${error.code}); using ${this.#envResult().reason}`,
        })
      }
      return
    }
    if (this.#fallback === null) {
      this.#fallback = this.#envForInstall()
      this.#emit('config:fallback', {
        origin: this.#fallback.origin as 'env' | 'default',
        reason: `admin unavailable on first load (${error.code}); using ${this.#envResult().reason}`,
      })
    }
    this.#scheduleRetry(delay)
  }

  /** Exponential backoff with equal jitter: half fixed, half random, so retries spread but never bunch at 0. */
  #backoffDelay(failures: number): number {
    const { retryBaseMs, retryMaxMs } = this.#deps.admin
    const exp = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.min(failures - 1, 30))
    return Math.max(1, Math.round(exp / 2 + (this.#deps.clock.random() * exp) / 2))
  }

  #scheduleRetry(delay: number): void {
    this.#clearRetryTimer()
    if (this.#closed) return
    this.#retryTimer = this.#deps.clock.setTimeout(() => {
      this.#retryTimer = null
      if (this.#closed || this.#inflight.has(LIST_KEY)) return
      this.#startFetch(LIST_KEY).catch(noop)
    }, delay)
  }

  #clearRetryTimer(): void {
    if (this.#retryTimer !== null) {
      this.#deps.clock.clearTimeout(this.#retryTimer)
      this.#retryTimer = null
    }
  }

  async #refreshModels(): Promise<ConfigSnapshot> {
    const keys = [...this.#cache.keys()]
    let firstError: unknown = null
    let next = 0
    // A few at a time: a refresh must not open a thousand sockets to the admin at once.
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++] as string
        try {
          await this.#startFetch(key)
        } catch (error) {
          firstError ??= error
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(4, keys.length) }, worker))
    if (firstError !== null) throw firstError
    return this.#defaultSnapshot()
  }

  #closedError(): RouterError {
    return new RouterError(
      ErrorCode.CLOSED,
      'The config source was closed; create a new router to load config.',
    )
  }

  #emit<K extends keyof RouterEvents>(event: K, payload: RouterEvents[K]): void {
    try {
      this.#deps.emit(event, payload)
    } catch {
      // A throwing listener must not break config loading.
    }
  }
}

/** Creates the config source the router asks for a snapshot per request. */
export function createConfigSource(deps: ConfigSourceDeps): ConfigSource {
  return new AdminConfigSource(deps)
}
