import { it } from 'vitest'
import { parseRecord } from '../src/config/schema.js'
import { CircuitRegistry } from '../src/dispatch/circuit.js'
import { compileCandidate } from '../src/dispatch/routes.js'
import { hashString } from '../src/pool/affinity.js'
import { assignPools, bindPool } from '../src/pool/groups.js'
import { LoadRegistry } from '../src/pool/load.js'
import { type Pool, pickMember } from '../src/pool/select.js'
import { NO_MEMBER_SIGNALS } from '../src/pool/signals.js'
import { ManualClock } from './helpers/manual-clock.js'

it('cost', () => {
  const circuits = new CircuitRegistry({ threshold: 3, cooldownMs: 1000 }, new ManualClock())
  const list = [0, 1, 2, 3].map((i) => {
    const p = parseRecord({
      model_name: 'm',
      backend_type: 'ollama',
      endpoint_url: `http://127.0.0.1:${11000 + i}`,
      weight: i + 1,
    })
    if (!p.ok) throw 0
    return compileCandidate(p.record, 'm', {}, circuits)
  })
  assignPools(list)
  const pool = list[0]!.pool as Pool
  bindPool(pool, new LoadRegistry())
  const base = {
    pool,
    tried: [],
    signals: NO_MEMBER_SIGNALS,
    now: 0,
    promptTokens: 0,
    sessionHash: null as number | null,
    pinned: undefined as string | undefined,
    random: Math.random,
  }
  for (const [name, inp] of [
    ['plain', base],
    ['session', { ...base, sessionHash: hashString('abc') }],
    ['pinned', { ...base, sessionHash: hashString('abc'), pinned: 'http://127.0.0.1:11003' }],
  ] as const) {
    for (let i = 0; i < 200000; i++) pickMember(inp)
    const n = 1_000_000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) pickMember(inp)
    console.log('COST', name, (((performance.now() - t0) * 1000) / n).toFixed(3), 'us')
  }
})
