/**
 * The last good admin config, kept where a restarted instance can find it: in Redis when a Redis
 * store is configured (shared by the fleet), and/or in `admin.snapshotFile`. A router whose admin is
 * down at start serves it (origin `stale`) before falling back to env records.
 *
 * Saved records are validated again on load (a file may have been edited or written by another
 * version), and a file is written to a temporary name and renamed, so a crash never leaves half a file.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import type { Store } from '../store/types.js'
import type { BackendRecord } from '../types.js'
import { parseRecords } from './schema.js'

export interface SavedConfig {
  records: BackendRecord[]
  etag: string | null
  /** Epoch ms of the admin fetch the records came from. */
  fetchedAt: number | null
  /** Where it was read from. */
  from: 'redis' | 'file'
}

export interface LastGood {
  save(records: readonly BackendRecord[], etag: string | null, fetchedAt: number | null): Promise<void>
  load(): Promise<SavedConfig | null>
}

const KEY = 'config:last-good'

function encode(records: readonly BackendRecord[], etag: string | null, fetchedAt: number | null): string {
  return JSON.stringify({ version: 1, etag, fetchedAt, records })
}

function decode(raw: string, from: 'redis' | 'file'): SavedConfig | null {
  let parsed: { version?: unknown; etag?: unknown; fetchedAt?: unknown; records?: unknown }
  try {
    parsed = JSON.parse(raw)
  } catch {
    return null
  }
  if (parsed?.version !== 1 || !Array.isArray(parsed.records)) return null
  const { records } = parseRecords(parsed.records)
  if (records.length === 0) return null
  return {
    records,
    etag: typeof parsed.etag === 'string' ? parsed.etag : null,
    fetchedAt: typeof parsed.fetchedAt === 'number' ? parsed.fetchedAt : null,
    from,
  }
}

/** null when there is nowhere to keep it (no Redis, no snapshotFile). */
export function createLastGood(store: Store | null, file: string | null): LastGood | null {
  if (store === null && file === null) return null
  return {
    async save(records, etag, fetchedAt) {
      const body = encode(records, etag, fetchedAt)
      const writes: Promise<unknown>[] = []
      if (store !== null) writes.push(store.set(KEY, body, null))
      if (file !== null) {
        const tmp = `${file}.${process.pid}.tmp`
        writes.push(writeFile(tmp, body).then(() => rename(tmp, file)))
      }
      await Promise.allSettled(writes)
    },
    async load() {
      if (store !== null) {
        const raw = await store.get(KEY).catch(() => null)
        const saved = raw === null ? null : decode(raw, 'redis')
        if (saved !== null) return saved
      }
      if (file !== null) {
        const raw = await readFile(file, 'utf8').catch(() => null)
        return raw === null ? null : decode(raw, 'file')
      }
      return null
    },
  }
}
