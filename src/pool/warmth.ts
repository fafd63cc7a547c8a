/**
 * Which models each Ollama member has loaded, from its `GET /api/ps`, so selection can send a
 * request where the model is warm instead of paying a cold load (tens of seconds for big models).
 * Stale-while-revalidate: a lookup answers from the cache at once and, when the entry is older than
 * the TTL, starts one background fetch for the next lookups. Nothing here ever waits on the network
 * on the request path.
 */
import type { Clock } from '../internal/clock.js'
import { ollamaTagged } from './probe.js'

interface Entry {
  /** Tagged names; null when the last fetch failed or never ran. */
  models: ReadonlySet<string> | null
  fetchedAt: number
  pending: Promise<void> | null
}

export class WarmthCache {
  readonly #entries = new Map<string, Entry>()

  constructor(
    private readonly fetch: (endpoint: string) => Promise<string[] | null>,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly ttlMs: number,
  ) {}

  /** True/false from the last `/api/ps` of `endpoint`; undefined when none is known. May start a background refresh. */
  isWarm(endpoint: string, model: string, now: number = this.clock.now()): boolean | undefined {
    const entry = this.#entries.get(endpoint)
    if (entry === undefined || now - entry.fetchedAt >= this.ttlMs) this.refresh(endpoint)
    const models = entry?.models
    if (models === null || models === undefined) return undefined
    return models.has(ollamaTagged(model))
  }

  /** Loaded models of `endpoint` as last fetched, or null. */
  models(endpoint: string): string[] | null {
    const models = this.#entries.get(endpoint)?.models
    return models ? [...models] : null
  }

  /** Fetches `endpoint`'s list now unless a fetch is already running. Never rejects. */
  refresh(endpoint: string): Promise<void> {
    let entry = this.#entries.get(endpoint)
    if (entry === undefined) {
      entry = { models: null, fetchedAt: Number.NEGATIVE_INFINITY, pending: null }
      this.#entries.set(endpoint, entry)
    }
    if (entry.pending !== null) return entry.pending
    const e = entry
    e.pending = this.fetch(endpoint).then(
      (models) => {
        e.models = models === null ? null : new Set(models)
        e.fetchedAt = this.clock.now()
        e.pending = null
      },
      () => {
        e.models = null
        e.fetchedAt = this.clock.now()
        e.pending = null
      },
    )
    return e.pending
  }

  /** Refreshes when the entry is older than the TTL (the probe loop's call). */
  refreshIfStale(endpoint: string): Promise<void> {
    const entry = this.#entries.get(endpoint)
    if (entry !== undefined && this.clock.now() - entry.fetchedAt < this.ttlMs) return Promise.resolve()
    return this.refresh(endpoint)
  }

  forget(endpoint: string): void {
    this.#entries.delete(endpoint)
  }

  /** Fetches still running (close() waits for none of them: their pool is destroyed). */
  get pending(): Promise<void>[] {
    return [...this.#entries.values()].flatMap((e) => (e.pending ? [e.pending] : []))
  }
}
