/**
 * One request's walk through one pool: pick a member (select.ts), take its slot, attempt it (the
 * dispatcher's candidate walk: retries, circuit, fallback target), and on failure pick again among
 * the members not tried yet. When every remaining member is full the request waits for a slot in
 * the bounded queue (load.ts) within its deadline. Returns null when the pool is exhausted, so the
 * dispatcher goes on to the next priority.
 *
 * Members the filter leaves out are listed in the attempts (attempt 0, with why), like a lone record
 * that is skipped. A session is pinned to the member that answered it when that member was its affinity choice (or
 * its move after a failure); an overflow or a queued slot elsewhere leaves the pin where it was.
 */
import type { RequestControl } from '../dispatch/attempt.js'
import type { Candidate, RouteTable } from '../dispatch/routes.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { BackendKind } from '../types.js'
import { hashString, type SessionPins } from './affinity.js'
import { bindPool } from './groups.js'
import type { LoadRegistry, MemberState, SlotWaiter } from './load.js'
import { type PickReason, type Pool, type PoolMember, pickMember, type SkipCode } from './select.js'
import type { MemberSignals } from './signals.js'

/**
 * What the walk needs from the dispatcher's request run (the run itself implements it, so walking a
 * pool allocates no host object per request).
 */
export interface PoolHost<Res> {
  readonly load: LoadRegistry
  readonly signals: MemberSignals
  readonly pins: SessionPins
  readonly clock: Pick<Clock, 'now' | 'random'>
  readonly maxQueued: number
  readonly control: RequestControl
  readonly model: string | undefined
  readonly sessionId: string | undefined
  /** The route table of the config in use now (a waiting request takes members that joined), or null. */
  currentRoutes(): RouteTable | null
  /** Why the operation cannot use this candidate (capabilities), or null. */
  poolUnable(candidate: Candidate): string | null
  /** Lists a candidate the operation cannot use in the attempts. */
  poolSkipUnable(candidate: Candidate, why: string): void
  /** Lists a member left out (never connected to) in the attempts. */
  poolNote(member: PoolMember, error: RouterError): void
  /** Why a member is out of rotation (drained, probes failing: MEMBER_DRAINED / MEMBER_DOWN), as its attempt entry. */
  poolOutOfRotation(where: { model: string; backend: BackendKind; endpoint: string }): RouterError
  /** Attempts the member, its slot already held: the result, or null when the policy moves on. */
  poolAttempt(member: PoolMember, reason: PickReason): Promise<Res | null>
  /** The request's error now that it stopped (deadline, abort, close), last seen at `member`. */
  poolStopped(member: PoolMember): RouterError
}

export async function walkPool<Res>(
  first: Pool,
  promptTokens: number,
  host: PoolHost<Res>,
): Promise<Res | null> {
  let pool = first
  bindPool(pool, host.load)
  let tried: PoolMember[] = []
  let listed: PoolMember[] = []
  const checkUnable = (members: readonly PoolMember[]) => {
    for (const m of members) {
      const why = host.poolUnable(m.candidate)
      if (why !== null) {
        host.poolSkipUnable(m.candidate, why)
        tried.push(m)
      }
    }
  }
  checkUnable(pool.members)
  const sessionId = host.sessionId
  const sessionHash = sessionId === undefined ? null : hashString(sessionId)
  // A fleet shares pins: a session new to this instance may have been placed by another one (one
  // store read, only on a local miss; the loop below then finds it locally).
  if (sessionId !== undefined && host.pins.shared !== null)
    await host.pins.recall(pool.key, sessionId, host.clock.now())
  // While every member is full: the request's place in the queues, kept across nudges.
  let queued: SlotWaiter | null = null
  let queuedSince = 0
  const leaveQueue = () => {
    queued?.cancel()?.release()
    queued = null
  }
  for (;;) {
    if (host.control.stopped) {
      leaveQueue()
      throw host.poolStopped(pool.members[0] as PoolMember)
    }
    const now = host.clock.now()
    const pick = pickMember({
      pool,
      tried,
      signals: host.signals,
      now,
      promptTokens,
      sessionHash,
      pinned: sessionId === undefined ? undefined : host.pins.get(pool.key, sessionId, now),
      random: host.clock.random,
    })
    // Members left out (out of rotation, open circuit, prompt too long) are listed once, as a lone
    // record would be, so the attempts say why they got nothing.
    for (const s of pick.skipped) {
      if (listed.includes(s.member)) continue
      listed.push(s.member)
      host.poolNote(
        s.member,
        s.code === 'OUT_OF_ROTATION'
          ? host.poolOutOfRotation(where(s.member))
          : skippedError(s.member, s.code, promptTokens),
      )
    }
    let member = pick.member
    let reason = pick.reason
    if (member !== null) {
      leaveQueue()
      member.state.inFlight++
    } else if (pick.full.length > 0) {
      const states = pick.full.map((m) => m.state)
      if (queued === null || !sameStates(queued.states, states)) {
        leaveQueue()
        queued = host.load.wait(
          states,
          pick.full.map((m) => m.limit),
          host.maxQueued,
        )
        if (queued === null) {
          for (const m of pick.full) host.poolNote(m, queueFull(m, host.maxQueued))
          return null
        }
        if (queuedSince === 0) queuedSince = host.clock.now()
      }
      const state = await waitForSlot(queued, pick.full, queuedSince, host)
      if (state === null) {
        // Nudged: a member came back into rotation or the config changed. Pick again, among the
        // members of the config in use now (a joined member is one of them).
        const now = currentPool(host.currentRoutes(), pool)
        if (now !== pool) {
          bindPool(now, host.load)
          const known = new Set(pool.members.map((m) => m.endpoint))
          const triedAt = new Set(tried.map((m) => m.endpoint))
          const listedAt = new Set(listed.map((m) => m.endpoint))
          tried = now.members.filter((m) => triedAt.has(m.endpoint))
          listed = now.members.filter((m) => listedAt.has(m.endpoint))
          checkUnable(now.members.filter((m) => !known.has(m.endpoint)))
          pool = now
        }
        continue
      }
      queued = null
      member = pick.full.find((m) => m.state === state) as PoolMember
      reason = 'queued'
    }
    if (member === null) return null
    tried.push(member)
    let out: Res | null
    try {
      out = await host.poolAttempt(member, reason)
    } finally {
      member.state.release()
    }
    if (out !== null) {
      if (sessionId !== undefined && (reason === 'affinity' || reason === 'affinity-moved'))
        host.pins.set(pool.key, sessionId, member.endpoint, host.clock.now())
      return out
    }
  }
}

function sameStates(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((s) => b.includes(s))
}

/** The pool of the same model and priority in `table` (the config in use), or `pool` when it has none. */
function currentPool(table: RouteTable | null, pool: Pool): Pool {
  const model = pool.members[0]?.candidate.model
  if (table === null || model === undefined) return pool
  for (const c of table.byModel.get(model) ?? []) if (c.pool?.key === pool.key) return c.pool
  return pool
}

/**
 * Waits on `waiter` (queued on every member of `full`): the state whose slot it now holds, or null
 * when nudged (it stays queued). On deadline, abort or close it leaves the queue and throws.
 */
async function waitForSlot<Res>(
  waiter: SlotWaiter,
  full: PoolMember[],
  startedAt: number,
  host: PoolHost<Res>,
): Promise<MemberState | null> {
  try {
    return await host.control.wait(waiter.next())
  } catch (caught) {
    waiter.cancel()?.release()
    const stopped = host.control.stopped
    if (stopped?.code === ErrorCode.TIMEOUT) {
      const which = full.map((m) => `${m.endpoint} (${m.limit})`).join(', ')
      throw new RouterError(
        ErrorCode.POOL_BUSY,
        `Every backend for model "${host.model ?? '(default)'}" that could take the request was at its max_concurrency for the whole wait (${host.clock.now() - startedAt} ms, until the request's ${host.control.timeoutMs} ms deadline): ${which}. Raise max_concurrency, add pool members, send fewer requests at once, or allow a longer timeoutMs`,
        { cause: stopped, ...(host.model === undefined ? {} : { model: host.model }) },
      )
    }
    if (stopped !== null) throw host.poolStopped(full[0] as PoolMember)
    throw caught
  }
}

function where(m: PoolMember) {
  const target = m.candidate.targets[0]
  return { model: m.candidate.model, backend: target?.kind ?? 'ollama', endpoint: m.endpoint } as const
}

function queueFull(m: PoolMember, maxQueued: number): RouterError {
  return new RouterError(
    ErrorCode.POOL_BUSY,
    `${m.endpoint} is at its max_concurrency (${m.limit}) and ${maxQueued} requests already wait for it (pool.maxQueued); skipped`,
    where(m),
  )
}

function skippedError(
  m: PoolMember,
  code: Exclude<SkipCode, 'OUT_OF_ROTATION'>,
  promptTokens: number,
): RouterError {
  const w = where(m)
  if (code === 'CIRCUIT_OPEN')
    return new RouterError(
      ErrorCode.CIRCUIT_OPEN,
      `${w.backend} at ${m.endpoint} is cooling down after repeated failures; skipped without connecting`,
      w,
    )
  return new RouterError(
    ErrorCode.CONTEXT_TOO_LONG,
    `The prompt (at least ${promptTokens} tokens) does not fit the context_length ${m.contextLength} of ${m.endpoint}; skipped without connecting`,
    w,
  )
}
