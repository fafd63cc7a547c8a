/**
 * Snapshots (build, freeze, views), the refresh scheduler, and the route cache keyed by snapshot
 * identity: the pieces issue 10's restructure split out of the old config source.
 */
import { describe, expect, it } from 'vitest'
import { RefreshScheduler } from '../src/config/scheduler.js'
import { buildSnapshot, staleView, VersionCounter, withMeta } from '../src/config/snapshot.js'
import { CircuitRegistry } from '../src/dispatch/circuit.js'
import { defaultCandidates, RouteCache } from '../src/dispatch/routes.js'
import type { BackendRecord } from '../src/types.js'
import { ManualClock } from './helpers/manual-clock.js'

const record = (model: string, url: string, extra: Partial<BackendRecord> = {}): BackendRecord => ({
  model_name: model,
  backend_type: 'ollama',
  endpoint_url: url,
  enabled: true,
  priority: 100,
  ...extra,
})

describe('snapshots', () => {
  it('are frozen, sort enabled records by priority, and share records with their views', () => {
    const s = buildSnapshot({
      allRecords: [
        record('b', 'http://b', { priority: 2 }),
        record('a', 'http://a', { priority: 1 }),
        record('c', 'http://c', { enabled: false }),
      ],
      origin: 'admin',
      fetchedAt: 5,
      version: 1,
    })
    expect(s.records.map((r) => r.model_name)).toEqual(['a', 'b'])
    expect(Object.isFrozen(s) && Object.isFrozen(s.records) && Object.isFrozen(s.allRecords[0])).toBe(true)
    expect(() => (s.records as BackendRecord[]).push(record('x', 'http://x'))).toThrow()
    const later = withMeta(s, { fetchedAt: 9 })
    expect(later).not.toBe(s)
    expect(later.records).toBe(s.records)
    const stale = staleView(s)
    expect(stale.origin).toBe('stale')
    expect(staleView(s)).toBe(stale)
    expect(stale.records).toBe(s.records)
  })

  it('the version counter moves only when the content key changes', () => {
    const v = new VersionCounter()
    expect([v.next('a'), v.next('a'), v.next('b'), v.next('b'), v.next('a')]).toEqual([1, 1, 2, 2, 3])
  })
})

describe('route cache', () => {
  const circuits = new CircuitRegistry(null, new ManualClock())

  it('compiles once per snapshot identity, never by version number', () => {
    const cache = new RouteCache({}, circuits)
    // Two different configs that carry the same version number (as the old per-model bug did).
    const a = buildSnapshot({ allRecords: [record('a', 'http://a.test')], origin: 'admin', version: 7 })
    const b = buildSnapshot({ allRecords: [record('b', 'http://b.test')], origin: 'admin', version: 7 })
    const ta = cache.get(a)
    const tb = cache.get(b)
    expect(ta).not.toBe(tb)
    expect(ta.byModel.get('a')?.[0]?.targets[0]?.endpoint).toBe('http://a.test')
    expect(tb.byModel.get('b')?.[0]?.targets[0]?.endpoint).toBe('http://b.test')
    // A restamped or stale view of the same config reuses the table.
    expect(cache.get(withMeta(a, { fetchedAt: 1 }))).toBe(ta)
    expect(cache.get(staleView(a))).toBe(ta)
  })

  it('default candidates carry the reason the default backend is used', () => {
    const cache = new RouteCache({}, circuits)
    const notes = new Map([
      ['bad', 'its only record is invalid (endpoint_url: must be an absolute http(s) URL)'],
    ])
    const table = cache.get(
      buildSnapshot({
        allRecords: [record('a', 'http://a.test')],
        origin: 'admin',
        version: 1,
        modelNotes: notes,
      }),
    )
    expect(defaultCandidates(table, 'bad', {}, circuits)[0]?.defaultReason).toBe(
      'model "bad" has no usable record: its only record is invalid (endpoint_url: must be an absolute http(s) URL)',
    )
    expect(defaultCandidates(table, 'x', {}, circuits)[0]?.defaultReason).toBe(
      'there is no enabled record for model "x" in the admin config',
    )
  })
})

describe('refresh scheduler', () => {
  it('shares one run per key, backs off with jitter, and never waits less than Retry-After', async () => {
    const clock = new ManualClock()
    clock.randomValue = 0
    const s = new RefreshScheduler({ clock, retryBaseMs: 1_000, retryMaxMs: 8_000 })
    let runs = 0
    const task = async () => {
      runs++
      return runs
    }
    const [x, y] = await Promise.all([s.run('k', task), s.run('k', task)])
    expect([x, y, runs]).toEqual([1, 1, 1])
    expect(s.running('k')).toBe(false)
    expect([
      s.failed(undefined),
      s.failed(undefined),
      s.failed(undefined),
      s.failed(undefined),
      s.failed(undefined),
    ]).toEqual([1_000, 2_000, 4_000, 8_000, 8_000])
    expect(s.backingOff).toBe(true)
    s.succeeded()
    expect(s.backingOff).toBe(false)
    expect(s.failed(5_000)).toBe(5_000)
    expect(s.failed(60_000)).toBe(8_000) // Retry-After is capped at retryMaxMs
    let fired = 0
    s.retryIn(100, () => fired++)
    s.retryIn(200, () => fired++) // replaces the first
    clock.advance(200)
    expect(fired).toBe(1)
    s.retryIn(100, () => fired++)
    s.close()
    clock.advance(1_000)
    expect(fired).toBe(1)
    expect(clock.pendingTimers).toBe(0)
  })
})
