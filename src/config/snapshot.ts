/**
 * Config snapshots: built once, frozen, and shared by every request that routes with them.
 *
 * Identity is the object: a snapshot is never mutated, so "same object" means "same config", and
 * compiled route tables are cached on the object (dispatch/routes.ts). Restamping (a 304 or an
 * unchanged re-fetch) and the stale view make new objects that share the frozen record arrays.
 * `version` is a per-source display counter that moves when the records change.
 */
import type { BackendRecord, ConfigOrigin } from '../types.js'
import type { ConfigSnapshot } from './contract.js'
import { sortEnabled } from './schema.js'

const NO_NOTES: ReadonlyMap<string, string> = Object.freeze(new Map<string, string>())

export interface SnapshotInput {
  allRecords: readonly BackendRecord[]
  origin: ConfigOrigin
  etag?: string | null
  fetchedAt?: number | null
  version: number
  fallbackReason?: string | null
  modelNotes?: ReadonlyMap<string, string>
}

/** Content key of a record list: records are canonical (fixed key order), so equal JSON = equal config. */
export function contentKey(records: readonly BackendRecord[]): string {
  return JSON.stringify(records)
}

function freezeRecords(records: readonly BackendRecord[]): readonly BackendRecord[] {
  for (const record of records) {
    if (record.auth !== undefined) Object.freeze(record.auth)
    Object.freeze(record)
  }
  return Object.freeze(records)
}

/** Builds and freezes a snapshot; `records` are the enabled ones in priority order. */
export function buildSnapshot(input: SnapshotInput): ConfigSnapshot {
  const allRecords = freezeRecords(input.allRecords)
  const notes = input.modelNotes === undefined || input.modelNotes.size === 0 ? NO_NOTES : input.modelNotes
  return Object.freeze({
    records: Object.freeze(sortEnabled(allRecords)),
    allRecords,
    origin: input.origin,
    etag: input.etag ?? null,
    fetchedAt: input.fetchedAt ?? null,
    version: input.version,
    fallbackReason: input.fallbackReason ?? null,
    modelNotes: notes,
  })
}

/** The same config with some metadata changed (fetchedAt, origin, etag). Shares the record arrays. */
export function withMeta(
  snapshot: ConfigSnapshot,
  meta: Partial<Pick<ConfigSnapshot, 'origin' | 'etag' | 'fetchedAt'>>,
): ConfigSnapshot {
  return Object.freeze({ ...snapshot, ...meta })
}

const staleViews = new WeakMap<ConfigSnapshot, ConfigSnapshot>()

/** The snapshot relabelled 'stale' (built once per snapshot); env/default snapshots are returned as is. */
export function staleView(snapshot: ConfigSnapshot): ConfigSnapshot {
  if (snapshot.origin !== 'admin') return snapshot
  let view = staleViews.get(snapshot)
  if (view === undefined) {
    view = withMeta(snapshot, { origin: 'stale' })
    staleViews.set(snapshot, view)
  }
  return view
}

/** Moves `version` when the content key differs from the last one it saw. One per source. */
export class VersionCounter {
  #last: string | null = null
  #version = 0

  /** The version for records with this content key. */
  next(key: string): number {
    if (key !== this.#last) {
      this.#last = key
      this.#version++
    }
    return this.#version
  }

  get current(): number {
    return this.#version
  }
}
