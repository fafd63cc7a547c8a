/**
 * Choosing a pool member for one attempt: pure, given the pool, what this request already tried, the
 * health signals and a snapshot of the load. The dispatcher asks again after a member fails.
 *
 * 1. Filter: members already tried, out of rotation (probes, drain), with an open circuit, or whose
 *    `context_length` cannot hold the prompt are dropped with a reason; members at their
 *    `max_concurrency` are set aside as `full` (the caller may wait for one of them).
 * 2. A request with `metadata.sessionId` goes to its pinned member, else to the highest weighted
 *    rendezvous score (affinity.ts), unless that member is over the load cap (`overflow`: this
 *    request only, the pin stays).
 * 3. Otherwise: warm members first (the model is loaded there, MemberSignals.isWarm) unless all of
 *    them are over the load cap; then power of two choices: two distinct members drawn by weight, the
 *    one with fewer requests in flight per unit of weight wins; on a tie, between equal weights, the
 *    clearly faster one by the router's recent latency; else the first drawn (so idle traffic splits
 *    by weight, which is what a canary needs).
 *
 * The load cap is bounded-load hashing's (Mirrokni et al.): a member may hold 1.5x its weighted share
 * of the pool's in-flight requests (this one included), plus two, before sessions and warmth stop
 * favouring it. The slack keeps small pools sticky: a session spills only when its member is clearly
 * busier than the rest, because moving it costs the prompt cache that affinity is for.
 */
import type { Circuit } from '../dispatch/circuit.js'
import type { Candidate } from '../dispatch/routes.js'
import { rendezvousScore } from './affinity.js'
import type { LoadRegistry, MemberState } from './load.js'
import type { MemberSignals } from './signals.js'

/** Why a member was chosen: on the attempt (`selectedBy`) and the metric record (`selected_by`). */
export type PickReason =
  /** The session's member (pinned, or placed by its rendezvous hash). */
  | 'affinity'
  /** The session's member failed, left or is out of rotation: placed on its next choice, and pinned there. */
  | 'affinity-moved'
  /** The session's member is full or over the load cap: its next choice, for this request only. */
  | 'overflow'
  /** Preferred because the model is loaded there. */
  | 'warm'
  /** Fewer requests in flight (per unit of weight) than the other choice. */
  | 'least-loaded'
  /** Equal load, clearly lower recent latency. */
  | 'latency'
  /** Equal load: the weighted random draw decided. */
  | 'weight'
  /** The only member left to try. */
  | 'only'
  /** Every member was full: it waited in the queue for this member's next free slot. */
  | 'queued'

/**
 * Why a member was left out of a pick. CIRCUIT_OPEN and CONTEXT_TOO_LONG are also the codes of their
 * attempt entries; an out-of-rotation member's entry says why (MEMBER_DRAINED, MEMBER_DOWN).
 */
export type SkipCode = 'OUT_OF_ROTATION' | 'CIRCUIT_OPEN' | 'CONTEXT_TOO_LONG'

export interface PoolMember {
  candidate: Candidate
  /** The record's endpoint (its first target), as in results and attempts. */
  endpoint: string
  state: MemberState
  weight: number
  /** `max_concurrency`, or Infinity. */
  limit: number
  contextLength: number | null
  /** Model name the server knows, tagged as /api/ps lists it (`m` -> `m:latest`), for warmth. */
  warmModel: string
  circuit: Circuit | null
  /** Hash of the endpoint, for rendezvous. */
  hash: number
}

export interface Pool {
  /** Model and priority: names the pool across config snapshots (session pins are kept under it). */
  key: string
  members: PoolMember[]
  /** The load registry the members' states come from (groups.ts `bindPool`), null until bound. */
  bound: LoadRegistry | null
}

export interface PickInput {
  pool: Pool
  tried: readonly PoolMember[]
  signals: MemberSignals
  /** Epoch ms, for circuits. */
  now: number
  /** Lower bound of the prompt's tokens; 0: no member is checked. */
  promptTokens: number
  /** Hash of `metadata.sessionId`, or null without one. */
  sessionHash: number | null
  /** Endpoint the session is pinned to in this pool. */
  pinned: string | undefined
  random: () => number
}

export interface Pick {
  member: PoolMember | null
  reason: PickReason
  /** Members at their `max_concurrency`, not yet tried. */
  full: PoolMember[]
  /** Members dropped by the filter, with why. */
  skipped: { member: PoolMember; code: SkipCode }[]
}

/** A circuit that would refuse now (open and cooling down). Half-open ones are left to the guard. */
function circuitOpen(circuit: Circuit | null, now: number): boolean {
  return circuit !== null && circuit.state === 'open' && now < circuit.openUntil
}

/** Bounded load: how far above its weighted share of the pool's in-flight requests a member may go. */
export const LOAD_CAP_FACTOR = 1.5
/** ...plus this many, so a pool with a handful of requests in flight does not spill sessions. */
export const LOAD_CAP_SLACK = 2

/** Lower bound of the characters one token covers: a prompt is "clearly too long" past this. */
export const MAX_CHARS_PER_TOKEN = 6

/** At least this many tokens (see README "Context length"). */
export function promptTokensAtLeast(chars: number): number {
  return Math.ceil(chars / MAX_CHARS_PER_TOKEN)
}

export function pickMember(input: PickInput): Pick {
  const { pool, tried, signals, now, promptTokens } = input
  const eligible: PoolMember[] = []
  const full: PoolMember[] = []
  const skipped: Pick['skipped'] = []
  let inFlight = 0
  let weights = 0
  for (const m of pool.members) {
    if (tried.includes(m)) continue
    if (!signals.inRotation(m.endpoint)) skipped.push({ member: m, code: 'OUT_OF_ROTATION' })
    else if (circuitOpen(m.circuit, now)) skipped.push({ member: m, code: 'CIRCUIT_OPEN' })
    else if (promptTokens > 0 && m.contextLength !== null && promptTokens > m.contextLength)
      skipped.push({ member: m, code: 'CONTEXT_TOO_LONG' })
    else {
      inFlight += m.state.inFlight
      weights += m.weight
      if (m.state.inFlight >= m.limit) full.push(m)
      else eligible.push(m)
    }
  }
  const result: Pick = { member: null, reason: 'only', full, skipped }
  if (eligible.length === 0) return result
  // Bounded load: 1.5x the member's weighted share of the in-flight requests (this one included), plus two.
  const share = (inFlight + 1) / weights
  const overCap = (m: PoolMember): boolean =>
    m.state.inFlight >= Math.ceil(LOAD_CAP_FACTOR * share * m.weight) + LOAD_CAP_SLACK

  if (input.sessionHash !== null) return pickForSession(input, eligible, full, overCap, result)

  let choices = eligible
  let warm = false
  if (choices.length > 1) {
    const warmOnes: PoolMember[] = []
    for (const m of choices) {
      if (signals.isWarm(m.endpoint, m.warmModel, input.now) === true && !overCap(m)) warmOnes.push(m)
    }
    if (warmOnes.length > 0 && warmOnes.length < choices.length) {
      choices = warmOnes
      warm = true
    }
  }
  if (choices.length === 1) {
    result.member = choices[0] as PoolMember
    result.reason = warm ? 'warm' : 'only'
    return result
  }
  const a = drawByWeight(choices, null, input.random)
  const b = drawByWeight(choices, a, input.random)
  const loadA = a.state.inFlight / a.weight
  const loadB = b.state.inFlight / b.weight
  let reason: PickReason
  if (loadA !== loadB) {
    result.member = loadA < loadB ? a : b
    reason = 'least-loaded'
  } else if (a.weight === b.weight && clearlyFaster(b, a)) {
    result.member = b
    reason = 'latency'
  } else {
    result.member = a
    reason = a.weight === b.weight && clearlyFaster(a, b) ? 'latency' : 'weight'
  }
  result.reason = warm ? 'warm' : reason
  return result
}

/** `x` answered recently in under 1/1.2 of `y`'s time (both measured): noise below that is a tie. */
function clearlyFaster(x: PoolMember, y: PoolMember): boolean {
  const lx = x.state.latencyMs
  const ly = y.state.latencyMs
  return lx !== null && ly !== null && lx * 1.2 < ly
}

/** A member drawn with probability proportional to its weight, other than `not`. */
function drawByWeight(members: PoolMember[], not: PoolMember | null, random: () => number): PoolMember {
  let total = 0
  for (const m of members) if (m !== not) total += m.weight
  let r = random() * total
  let last = members[0] as PoolMember
  for (const m of members) {
    if (m === not) continue
    last = m
    r -= m.weight
    if (r < 0) return m
  }
  return last
}

function pickForSession(
  input: PickInput,
  eligible: PoolMember[],
  full: PoolMember[],
  overCap: (m: PoolMember) => boolean,
  result: Pick,
): Pick {
  const hash = input.sessionHash as number
  // Placed among every member that could take it now or soon (eligible and full), so a full member
  // keeps its sessions: they overflow for this request and come back.
  let best: PoolMember | null = null
  let pinned: PoolMember | null = null
  let bestScore = -1
  for (let i = 0; i < eligible.length + full.length; i++) {
    const m = (i < eligible.length ? eligible[i] : full[i - eligible.length]) as PoolMember
    if (m.endpoint === input.pinned) pinned = m
    const score = rendezvousScore(hash, m.hash, m.weight)
    if (score > bestScore) {
      bestScore = score
      best = m
    }
  }
  const home: PoolMember | null = input.pinned === undefined ? best : pinned
  if (home !== null && home.state.inFlight < home.limit && !overCap(home)) {
    result.member = home
    result.reason = 'affinity'
    return result
  }
  // The home member is full or over the cap (overflow), or the pinned one is gone (moved): the next
  // best score among those that can take it now.
  let next: PoolMember | null = null
  let nextScore = -1
  let spare: PoolMember | null = null
  for (const m of eligible) {
    if (m === home) continue
    spare ??= m
    if (overCap(m)) continue
    const score = rendezvousScore(hash, m.hash, m.weight)
    if (score > nextScore) {
      nextScore = score
      next = m
    }
  }
  // Everyone else over the cap too: better the session's own member, if it has a slot.
  const homeFree = home !== null && home.state.inFlight < home.limit
  result.member = next ?? (homeFree ? home : spare)
  if (result.member === null) return result
  result.reason = home === null ? 'affinity-moved' : result.member === home ? 'affinity' : 'overflow'
  return result
}
