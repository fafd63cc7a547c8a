/**
 * Member choice as pure functions (src/pool/select.ts, affinity.ts, load.ts): the pool is compiled
 * from real records the way the router does it, the load is set by hand, and randomness is a seeded
 * generator, so every share below is exact for its seed and checked against what the rule promises.
 */
import { describe, expect, it } from 'vitest'
import { parseRecord } from '../src/config/schema.js'
import { CircuitRegistry } from '../src/dispatch/circuit.js'
import { type Candidate, compileCandidate } from '../src/dispatch/routes.js'
import { hashString, rendezvousScore, SessionPins } from '../src/pool/affinity.js'
import { assignPools, bindPool } from '../src/pool/groups.js'
import { LoadRegistry } from '../src/pool/load.js'
import { type PickInput, type Pool, type PoolMember, pickMember } from '../src/pool/select.js'
import { type MemberSignals, NO_MEMBER_SIGNALS } from '../src/pool/signals.js'
import type { BackendRecord } from '../src/types.js'
import { ManualClock } from './helpers/manual-clock.js'
import { seeded } from './helpers/random.js'

function rec(over: Record<string, unknown>): BackendRecord {
  const parsed = parseRecord({ model_name: 'm', backend_type: 'ollama', endpoint_url: 'http://x', ...over })
  if (!parsed.ok) throw new Error(parsed.message)
  return parsed.record
}

function poolOf(records: Record<string, unknown>[], circuits = new CircuitRegistry(null, new ManualClock())) {
  const load = new LoadRegistry()
  const list: Candidate[] = records.map((r) => compileCandidate(rec(r), 'm', {}, circuits))
  assignPools(list)
  const pool = list[0]?.pool as Pool
  bindPool(pool, load)
  return {
    pool,
    load,
    list,
    byUrl: (url: string) => pool.members.find((m) => m.endpoint === url) as PoolMember,
  }
}

const urls = (n: number) => Array.from({ length: n }, (_, i) => `http://127.0.0.1:${11000 + i}`)

function input(pool: Pool, over: Partial<PickInput> = {}): PickInput {
  return {
    pool,
    tried: [],
    signals: NO_MEMBER_SIGNALS,
    now: 0,
    promptTokens: 0,
    sessionHash: null,
    pinned: undefined,
    random: seeded(1),
    ...over,
  }
}

function signals(over: Partial<MemberSignals>): MemberSignals {
  return { ...NO_MEMBER_SIGNALS, ...over }
}

describe('record fields', () => {
  const check = (over: Record<string, unknown>) =>
    parseRecord({ model_name: 'm', backend_type: 'ollama', endpoint_url: 'http://x', ...over })

  it('accepts weight, max_concurrency, keep_alive (seconds or a Go duration) and context_length', () => {
    const ok = check({ weight: 0.5, max_concurrency: 4, keep_alive: '1h30m', context_length: 32768 })
    expect(ok).toMatchObject({
      ok: true,
      record: { weight: 0.5, max_concurrency: 4, keep_alive: '1h30m', context_length: 32768 },
    })
    for (const keep of [-1, 0, 300, '5m', '-1s', '0', '300ms', '1.5h'])
      expect(check({ keep_alive: keep }).ok, String(keep)).toBe(true)
    // SQL-backed admins send null for "not set".
    expect(
      check({ weight: null, max_concurrency: null, keep_alive: null, context_length: null }),
    ).toMatchObject({
      ok: true,
    })
  })

  it.each([
    [{ weight: 0 }, 'weight: must be a positive number'],
    [{ weight: '2' }, 'weight: must be a positive number'],
    [{ max_concurrency: 1.5 }, 'max_concurrency: must be a positive integer'],
    [{ max_concurrency: 0 }, 'max_concurrency: must be a positive integer'],
    [{ keep_alive: '300' }, 'keep_alive: must be seconds'],
    [{ keep_alive: '5 minutes' }, 'keep_alive: must be seconds'],
    [{ keep_alive: true }, 'keep_alive: must be seconds'],
    [{ context_length: 0 }, 'context_length: must be a positive integer (tokens)'],
  ])('rejects %j', (over, message) => {
    const result = check(over)
    expect(result.ok).toBe(false)
    expect(result.ok ? '' : result.message).toContain(message)
  })
})

describe('pool membership', () => {
  it('records of one model and priority form a pool; a lone record stays plain unless it sets max_concurrency', () => {
    const circuits = new CircuitRegistry(null, new ManualClock())
    const list = [
      rec({ endpoint_url: 'http://a', priority: 1 }),
      rec({ endpoint_url: 'http://b', priority: 1, weight: 3 }),
      rec({ endpoint_url: 'http://c', priority: 2 }),
      rec({ endpoint_url: 'http://d', priority: 3, max_concurrency: 2 }),
    ].map((r) => compileCandidate(r, 'm', {}, circuits))
    assignPools(list)
    const [a, b, c, d] = list as [Candidate, Candidate, Candidate, Candidate]
    expect(a.pool).toBe(b.pool)
    expect(a.pool?.members.map((m) => [m.endpoint, m.weight])).toEqual([
      ['http://a', 1],
      ['http://b', 3],
    ])
    expect(c.pool).toBeNull()
    expect(d.pool?.members.map((m) => m.limit)).toEqual([2])
  })

  it('keep_alive and context_length become the Ollama body fields keep_alive and num_ctx', () => {
    const circuits = new CircuitRegistry(null, new ManualClock())
    const c = compileCandidate(rec({ keep_alive: '30m', context_length: 8192 }), 'm', {}, circuits)
    expect(c.targets[0]?.extras).toEqual({ keep_alive: '30m', num_ctx: 8192 })
    const plain = compileCandidate(rec({}), 'm', {}, circuits)
    expect(plain.targets[0]?.extras).toBeNull()
    // OpenAI-compatible servers have no such fields: only an auto record's Ollama fallback gets them.
    const auto = compileCandidate(
      rec({ backend_type: 'auto', fallback_url: 'http://o', keep_alive: -1 }),
      'm',
      {},
      circuits,
    )
    expect(auto.targets.map((t) => [t.kind, t.extras])).toEqual([
      ['mlx', null],
      ['ollama', { keep_alive: -1 }],
    ])
  })
})

describe('choosing without a session', () => {
  it('takes the member with fewer requests in flight', () => {
    const [a, b] = urls(2) as [string, string]
    const { pool, byUrl } = poolOf([{ endpoint_url: a }, { endpoint_url: b }])
    byUrl(a).state.inFlight = 3
    byUrl(b).state.inFlight = 1
    for (let seed = 0; seed < 20; seed++) {
      const pick = pickMember(input(pool, { random: seeded(seed) }))
      expect(pick.member?.endpoint).toBe(b)
      expect(pick.reason).toBe('least-loaded')
    }
  })

  it('a member at max_concurrency is set aside as full; the next one takes the request', () => {
    const [a, b] = urls(2) as [string, string]
    const { pool, byUrl } = poolOf([{ endpoint_url: a, max_concurrency: 4 }, { endpoint_url: b }])
    byUrl(a).state.inFlight = 4
    byUrl(b).state.inFlight = 9
    const pick = pickMember(input(pool))
    expect(pick.member?.endpoint).toBe(b)
    expect(pick.full.map((m) => m.endpoint)).toEqual([a])
    byUrl(b).state.inFlight = 0
    byUrl(b).limit = 0
    const none = pickMember(input(pool))
    expect(none.member).toBeNull()
    expect(none.full.map((m) => m.endpoint)).toEqual([a, b])
  })

  it('idle traffic splits by weight (a 10 % canary), and in-flight load is compared per unit of weight', () => {
    const [main, canary] = urls(2) as [string, string]
    const { pool, byUrl } = poolOf([
      { endpoint_url: main, weight: 9 },
      { endpoint_url: canary, weight: 1 },
    ])
    const random = seeded(7)
    let toCanary = 0
    for (let i = 0; i < 10_000; i++) {
      if (pickMember(input(pool, { random })).member?.endpoint === canary) toCanary++
    }
    expect(toCanary / 10_000).toBeGreaterThan(0.08)
    expect(toCanary / 10_000).toBeLessThan(0.12)
    // 9 in flight on the weight-9 member is the same load as 1 on the weight-1 one; 10 is more.
    byUrl(main).state.inFlight = 10
    byUrl(canary).state.inFlight = 1
    expect(pickMember(input(pool)).member?.endpoint).toBe(canary)
    byUrl(main).state.inFlight = 8
    expect(pickMember(input(pool)).member?.endpoint).toBe(main)
  })

  it('equal load and weight: the clearly faster member by recent latency; close figures stay a coin toss', () => {
    const [a, b] = urls(2) as [string, string]
    const { pool, byUrl } = poolOf([{ endpoint_url: a }, { endpoint_url: b }])
    byUrl(a).state.latencyMs = 900
    byUrl(b).state.latencyMs = 300
    for (let seed = 0; seed < 20; seed++) {
      const pick = pickMember(input(pool, { random: seeded(seed) }))
      expect([pick.member?.endpoint, pick.reason]).toEqual([b, 'latency'])
    }
    byUrl(a).state.latencyMs = 330
    const seen = new Set<string>()
    for (let seed = 0; seed < 40; seed++) {
      const pick = pickMember(input(pool, { random: seeded(seed) }))
      expect(pick.reason).toBe('weight')
      seen.add(pick.member?.endpoint as string)
    }
    expect(seen).toEqual(new Set([a, b]))
  })

  it('prefers warm members: 20 picks with one warm of three all go to the warm one', () => {
    const [a, b, c] = urls(3) as [string, string, string]
    const { pool } = poolOf([{ endpoint_url: a }, { endpoint_url: b }, { endpoint_url: c }])
    const warm = signals({ isWarm: (endpoint) => endpoint === b })
    const random = seeded(3)
    for (let i = 0; i < 20; i++) {
      const pick = pickMember(input(pool, { signals: warm, random }))
      expect([pick.member?.endpoint, pick.reason]).toEqual([b, 'warm'])
    }
  })

  it("reads warmth with the pick's own clock reading (one per pick, not one per member)", () => {
    const { pool } = poolOf(urls(4).map((u) => ({ endpoint_url: u })))
    const nows: (number | undefined)[] = []
    const warm = signals({
      isWarm: (_endpoint, _model, now) => {
        nows.push(now)
        return undefined
      },
    })
    pickMember(input(pool, { signals: warm, now: 12_345 }))
    expect(nows).toEqual([12_345, 12_345, 12_345, 12_345])
  })

  it('asks warmth for the tagged name /api/ps lists, tagged once when the pool is compiled', () => {
    const [a, b] = urls(2) as [string, string]
    const { pool } = poolOf([{ endpoint_url: a }, { endpoint_url: b, backend_model: 'llama3.2:3b' }])
    expect(pool.members.map((m) => m.warmModel)).toEqual(['m:latest', 'llama3.2:3b'])
    const asked: string[] = []
    const warm = signals({
      isWarm: (_endpoint, model) => {
        asked.push(model)
        return undefined
      },
    })
    pickMember(input(pool, { signals: warm }))
    expect(asked).toEqual(['m:latest', 'llama3.2:3b'])
  })

  it('stops favouring a warm member once it holds more than its share of the load', () => {
    const [a, b] = urls(2) as [string, string]
    const { pool, byUrl } = poolOf([{ endpoint_url: a }, { endpoint_url: b }])
    const warm = signals({ isWarm: (endpoint) => endpoint === a })
    byUrl(a).state.inFlight = 10
    // cap = ceil(1.5 * 11 * 1/2) + 2 = 11: still warm-first at 10, not at 11.
    expect(pickMember(input(pool, { signals: warm })).member?.endpoint).toBe(a)
    byUrl(a).state.inFlight = 11
    const pick = pickMember(input(pool, { signals: warm }))
    expect([pick.member?.endpoint, pick.reason]).toEqual([b, 'least-loaded'])
  })

  it('drops members out of rotation, with an open circuit, tried already, or too small for the prompt, saying why', () => {
    const clock = new ManualClock(0)
    const circuits = new CircuitRegistry({ threshold: 1, cooldownMs: 1000 }, clock)
    const [a, b, c, d, e] = urls(5) as [string, string, string, string, string]
    const { pool, byUrl } = poolOf(
      [
        { endpoint_url: a },
        { endpoint_url: b },
        { endpoint_url: c, context_length: 100 },
        { endpoint_url: d },
        { endpoint_url: e, context_length: 4096 },
      ],
      circuits,
    )
    byUrl(b).circuit?.failure('BACKEND_ERROR', 0, { threshold: 1, cooldownMs: 1000 })
    const pick = pickMember(
      input(pool, {
        signals: signals({ inRotation: (endpoint) => endpoint !== a }),
        tried: [byUrl(d)],
        promptTokens: 500,
        now: 10,
      }),
    )
    expect(pick.member?.endpoint).toBe(e)
    expect(pick.reason).toBe('only')
    expect(pick.skipped.map((s) => [s.member.endpoint, s.code])).toEqual([
      [a, 'OUT_OF_ROTATION'],
      [b, 'CIRCUIT_OPEN'],
      [c, 'CONTEXT_TOO_LONG'],
    ])
    // Past the cooldown the open circuit is left to the guard (its half-open probe).
    expect(
      pickMember(input(pool, { now: 2000, tried: [byUrl(c), byUrl(d), byUrl(e)] })).member,
    ).not.toBeNull()
  })
})

describe('sessions', () => {
  const sessions = (n: number) => Array.from({ length: n }, (_, i) => `session-${i}`)

  /** Places each session the way the router does: pinned member if any, pin what answered. */
  function place(pool: Pool, pins: SessionPins, ids: string[], tried: PoolMember[] = []) {
    const out = new Map<string, string>()
    for (const id of ids) {
      const pick = pickMember(
        input(pool, { sessionHash: hashString(id), pinned: pins.get('p', id, 0), tried }),
      )
      const m = pick.member as PoolMember
      if (pick.reason === 'affinity' || pick.reason === 'affinity-moved') pins.set('p', id, m.endpoint, 0)
      out.set(id, m.endpoint)
    }
    return out
  }

  it('40 sessions stay on one member each; removing one member moves only its sessions, and they stay moved', () => {
    const four = urls(4)
    const { pool, byUrl } = poolOf(four.map((u) => ({ endpoint_url: u })))
    const pins = new SessionPins(3_600_000, 10_000)
    const ids = sessions(40)
    const first = place(pool, pins, ids)
    for (let round = 0; round < 4; round++) expect(place(pool, pins, ids)).toEqual(first)
    // Every member gets some sessions (40 over 4 by hash).
    expect(new Set(first.values()).size).toBe(4)
    const gone = four[2] as string
    const moved = ids.filter((id) => first.get(id) === gone)
    const after = place(pool, pins, ids, [byUrl(gone)])
    for (const id of ids) {
      if (first.get(id) === gone) expect(after.get(id)).not.toBe(gone)
      else expect(after.get(id)).toBe(first.get(id))
    }
    expect(moved.length).toBeGreaterThan(0)
    expect(moved.length).toBeLessThanOrEqual(20)
    // The member is back: the moved sessions stay on their new members.
    expect(place(pool, pins, ids)).toEqual(after)
  })

  it('a 10 % canary gets about 10 % of 2,000 sessions, and each session stays on its side', () => {
    const [main, canary] = urls(2) as [string, string]
    const { pool } = poolOf([
      { endpoint_url: main, weight: 9 },
      { endpoint_url: canary, weight: 1 },
    ])
    let onCanary = 0
    for (let i = 0; i < 2000; i++) {
      const hash = hashString(`user-${i}`)
      const pick = pickMember(input(pool, { sessionHash: hash }))
      if (pick.member?.endpoint === canary) onCanary++
      // Same session, other draws and loads: the same side.
      for (let j = 0; j < 3; j++)
        expect(pickMember(input(pool, { sessionHash: hash, random: seeded(j) })).member?.endpoint).toBe(
          pick.member?.endpoint,
        )
    }
    expect(onCanary / 2000).toBeGreaterThan(0.08)
    expect(onCanary / 2000).toBeLessThan(0.12)
  })

  it('over the load cap or full, a session overflows to its next choice for that request only', () => {
    const [a, b, c] = urls(3) as [string, string, string]
    const { pool, byUrl } = poolOf([
      { endpoint_url: a, max_concurrency: 4 },
      { endpoint_url: b },
      { endpoint_url: c },
    ])
    // A session whose first choice is a.
    const id = sessions(200).find((s) => {
      const h = hashString(s)
      const scores = pool.members.map((m) => rendezvousScore(h, m.hash, 1))
      return scores[0] === Math.max(...scores)
    }) as string
    const hash = hashString(id)
    expect(pickMember(input(pool, { sessionHash: hash })).member?.endpoint).toBe(a)
    byUrl(a).state.inFlight = 4
    const full = pickMember(input(pool, { sessionHash: hash, pinned: a }))
    expect(full.reason).toBe('overflow')
    expect(full.member?.endpoint).not.toBe(a)
    // Not full: 4 in flight while the others hold none is within 1.5x its share of 5, plus two (cap 5)...
    byUrl(a).limit = 100
    expect(pickMember(input(pool, { sessionHash: hash, pinned: a })).reason).toBe('affinity')
    // ...5 is not (cap ceil(1.5 * 6 / 3) + 2 = 5).
    byUrl(a).state.inFlight = 5
    const over = pickMember(input(pool, { sessionHash: hash, pinned: a }))
    expect([over.reason, over.member?.endpoint === a]).toEqual(['overflow', false])
  })

  it('pins expire after their TTL and the least recently used go beyond maxSessions', () => {
    const pins = new SessionPins(5000, 2)
    pins.set('pool', 'a', 'x', 0)
    pins.set('pool', 'b', 'y', 0)
    expect(pins.get('pool', 'a', 500)).toBe('x')
    // Refreshing 'a' (past the reorder window) makes 'b' the least recently used.
    pins.set('pool', 'a', 'x', 1500)
    pins.set('pool', 'c', 'z', 1600)
    expect([pins.get('pool', 'a', 1700), pins.get('pool', 'b', 1700), pins.get('pool', 'c', 1700)]).toEqual([
      'x',
      undefined,
      'z',
    ])
    expect(pins.size).toBe(2)
    // Pools are apart: the same session id pins separately (the least recently used, 'a', makes room).
    pins.set('other', 'a', 'w', 1700)
    expect([pins.get('other', 'a', 1700), pins.get('pool', 'a', 1700), pins.get('pool', 'c', 1700)]).toEqual([
      'w',
      undefined,
      'z',
    ])
    expect(pins.size).toBe(2)
    // Unused past the TTL: forgotten.
    expect(pins.get('pool', 'c', 6601)).toBeUndefined()
    expect(pins.get('other', 'a', 6000)).toBe('w')
  })
})

describe('slots and the wait queue', () => {
  it('a freed slot goes to the oldest waiter, never to a newcomer; the queue is bounded', async () => {
    const load = new LoadRegistry()
    const a = load.member('http://a')
    const b = load.member('http://b')
    expect(a.tryAcquire(1)).toBe(true)
    expect(b.tryAcquire(1)).toBe(true)
    const first = load.wait([a, b], [1, 1], 2)
    const second = load.wait([a, b], [1, 1], 2)
    expect(load.wait([a], [1], 2)).toBeNull()
    b.release()
    // The slot was handed over: a newcomer finds b full.
    expect(b.tryAcquire(1)).toBe(false)
    expect(await first?.next()).toBe(b)
    a.release()
    expect(await second?.next()).toBe(a)
    expect([a.inFlight, b.inFlight, a.waiting, b.waiting]).toEqual([1, 1, 0, 0])
    // A waiter that gives up after it was granted hands the slot back.
    const third = load.wait([a], [1], 2)
    a.release()
    expect(third?.cancel()).toBe(a)
    a.release()
    expect(a.inFlight).toBe(0)
    expect(load.inFlight('http://a')).toBe(0)
  })

  it('a nudge wakes every waiter to pick again; each keeps its place in the queue', async () => {
    const load = new LoadRegistry()
    const a = load.member('http://a')
    expect(a.tryAcquire(1)).toBe(true)
    const first = load.wait([a], [1], 4)
    const second = load.wait([a], [1], 4)
    const pending = [first?.next(), second?.next()]
    load.nudge()
    expect(await Promise.all(pending)).toEqual([null, null])
    expect(a.waiting).toBe(2)
    // A nudge while nobody is listening is kept for the next next().
    load.nudge()
    expect(await first?.next()).toBeNull()
    a.release()
    expect(await first?.next()).toBe(a)
    expect(second?.done).toBe(false)
    first?.cancel()?.release()
    expect(await second?.next()).toBe(a)
    expect([a.inFlight, a.waiting]).toEqual([1, 0])
    // Done waiters are not nudged.
    load.nudge()
    expect(await second?.next()).toBe(a)
  })

  it('recent latency is a moving average of successful attempts', () => {
    const load = new LoadRegistry()
    const a = load.member('http://a')
    expect(load.recentLatencyMs('http://a')).toBeNull()
    a.observe(100)
    a.observe(200)
    expect(load.recentLatencyMs('http://a')).toBe(120)
  })
})

describe('cost', () => {
  it('choosing among 4 members takes a few microseconds', () => {
    const { pool, byUrl } = poolOf(urls(4).map((u, i) => ({ endpoint_url: u, weight: i + 1 })))
    byUrl(urls(4)[1] as string).state.inFlight = 2
    const random = seeded(5)
    const plain = input(pool, { random })
    const session = input(pool, { random, sessionHash: hashString('abc'), pinned: urls(4)[3] })
    for (let i = 0; i < 20_000; i++) pickMember(i % 2 ? plain : session)
    const n = 100_000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) pickMember(i % 2 ? plain : session)
    const perPickUs = ((performance.now() - t0) * 1000) / n
    // Budget from the issue ("a few microseconds"); typically well under 1 us here.
    expect(perPickUs).toBeLessThan(5)
  })
})
