/**
 * Pool membership, once per route table: records of one `model_name` and one `priority` form a pool.
 * A record alone at its priority stays a plain candidate (today's path, no selection), unless it sets
 * `max_concurrency`: then it is a pool of one, so its limit and wait queue apply.
 */
import type { Candidate } from '../dispatch/routes.js'
import type { BackendRecord } from '../types.js'
import { hashString } from './affinity.js'
import { type LoadRegistry, MemberState } from './load.js'
import { ollamaTagged } from './probe.js'
import type { Pool, PoolMember } from './select.js'

/** Placeholder until the pool is bound to a router's load registry (`bindPool`). */
const UNBOUND = new MemberState('')

/** Ollama body fields a record sets on every request to its endpoint; null when it sets none. */
export function recordExtras(record: BackendRecord): Readonly<Record<string, unknown>> | null {
  if (record.keep_alive === undefined && record.context_length === undefined) return null
  const extras: Record<string, unknown> = {}
  if (record.keep_alive !== undefined) extras.keep_alive = record.keep_alive
  // Without it Ollama runs its own default window (4k on small GPUs) and silently drops the prompt's start.
  if (record.context_length !== undefined) extras.num_ctx = record.context_length
  return Object.freeze(extras)
}

function memberOf(candidate: Candidate): PoolMember {
  const first = candidate.targets[0]
  const endpoint = first?.endpoint ?? candidate.record.endpoint_url
  return {
    candidate,
    endpoint,
    state: UNBOUND,
    weight: candidate.record.weight ?? 1,
    limit: candidate.record.max_concurrency ?? Number.POSITIVE_INFINITY,
    contextLength: candidate.record.context_length ?? null,
    // Tagged once here: /api/ps lists tagged names, and a pick checks every member's.
    warmModel: ollamaTagged(first?.sendModel ?? candidate.model),
    circuit: first?.circuit ?? null,
    hash: hashString(endpoint),
  }
}

/**
 * Sets `candidate.pool` on every candidate of `list` (one model's candidates, in priority order):
 * consecutive candidates of equal priority share one Pool; null for a plain candidate.
 */
export function assignPools(list: readonly Candidate[]): void {
  let i = 0
  while (i < list.length) {
    const first = list[i] as Candidate
    let j = i + 1
    while (j < list.length && (list[j] as Candidate).record.priority === first.record.priority) j++
    const group = list.slice(i, j)
    const limited = group.some((c) => c.record.max_concurrency !== undefined)
    const pool: Pool | null =
      group.length > 1 || limited
        ? { key: `${first.model}\u0000${first.record.priority}`, members: group.map(memberOf), bound: null }
        : null
    for (const c of group) c.pool = pool
    i = j
  }
}

/** Points the pool's members at the router's per-endpoint load (once per pool and router). */
export function bindPool(pool: Pool, load: LoadRegistry): void {
  if (pool.bound === load) return
  for (const m of pool.members) m.state = load.member(m.endpoint)
  pool.bound = load
}
