/**
 * WarmthCache on its own: answers from the cache at once, refreshes in the background once the TTL
 * has passed (one fetch at a time), matches Ollama's tagged names, forgets on failure.
 */
import { describe, expect, it } from 'vitest'
import { ollamaTagged } from '../src/pool/probe.js'
import { WarmthCache } from '../src/pool/warmth.js'
import { ManualClock } from './helpers/manual-clock.js'

function setup(ttlMs = 1000) {
  const clock = new ManualClock()
  const calls: string[] = []
  let answer: string[] | null | Error = ['llama3.2:latest']
  const pending: (() => void)[] = []
  const cache = new WarmthCache(
    (endpoint) => {
      calls.push(endpoint)
      const value = answer
      return new Promise((resolve, reject) => {
        pending.push(() => (value instanceof Error ? reject(value) : resolve(value)))
      })
    },
    clock,
    ttlMs,
  )
  const settle = async () => {
    for (const p of pending.splice(0)) p()
    await Promise.all(cache.pending)
  }
  return {
    clock,
    calls,
    cache,
    settle,
    set: (v: typeof answer) => {
      answer = v
    },
  }
}

describe('WarmthCache', () => {
  it('answers undefined before the first list, then from the list, without waiting', async () => {
    const { cache, calls, settle } = setup()
    expect(cache.isWarm('http://a', 'llama3.2')).toBeUndefined()
    expect(calls).toEqual(['http://a'])
    // A second lookup while the fetch runs does not start another.
    expect(cache.isWarm('http://a', 'llama3.2')).toBeUndefined()
    expect(calls).toHaveLength(1)
    await settle()
    expect(cache.isWarm('http://a', 'llama3.2')).toBe(true)
    expect(cache.isWarm('http://a', 'llama3.2:latest')).toBe(true)
    expect(cache.isWarm('http://a', 'llama3.2:3b')).toBe(false)
    expect(cache.isWarm('http://a', 'phi3')).toBe(false)
    expect(cache.models('http://a')).toEqual(['llama3.2:latest'])
    expect(calls).toHaveLength(1)
  })

  it('after the TTL: the stale answer at once, one background refresh, then the new answer', async () => {
    const { cache, calls, settle, clock, set } = setup(1000)
    cache.isWarm('http://a', 'm')
    await settle()
    clock.advance(999)
    expect(cache.isWarm('http://a', 'llama3.2')).toBe(true)
    expect(calls).toHaveLength(1)
    clock.advance(1)
    set(['phi3:mini'])
    expect(cache.isWarm('http://a', 'llama3.2')).toBe(true)
    expect(cache.isWarm('http://a', 'llama3.2')).toBe(true)
    expect(calls).toHaveLength(2)
    await settle()
    expect(cache.isWarm('http://a', 'llama3.2')).toBe(false)
    expect(cache.isWarm('http://a', 'phi3:mini')).toBe(true)
  })

  it('a caller that passes `now` sets the TTL check (the clock is not read again)', async () => {
    const { cache, calls, settle, clock } = setup(1000)
    cache.isWarm('http://a', 'm')
    await settle()
    expect(calls).toHaveLength(1)
    expect(cache.isWarm('http://a', 'llama3.2', clock.now() + 999)).toBe(true)
    expect(calls).toHaveLength(1)
    expect(cache.isWarm('http://a', 'llama3.2', clock.now() + 1000)).toBe(true)
    expect(calls).toHaveLength(2)
  })

  it('a failed or unusable fetch makes warmth unknown again', async () => {
    const { cache, settle, clock, set } = setup(1000)
    cache.isWarm('http://a', 'm')
    await settle()
    clock.advance(1000)
    set(new Error('ECONNREFUSED'))
    cache.isWarm('http://a', 'llama3.2')
    await settle()
    expect(cache.isWarm('http://a', 'llama3.2')).toBeUndefined()
    clock.advance(1000)
    set(null)
    cache.isWarm('http://a', 'llama3.2')
    await settle()
    expect(cache.isWarm('http://a', 'llama3.2')).toBeUndefined()
    expect(cache.models('http://a')).toBeNull()
  })

  it('refreshIfStale fetches only past the TTL', async () => {
    const { cache, calls, settle, clock } = setup(1000)
    void cache.refreshIfStale('http://a')
    await settle()
    void cache.refreshIfStale('http://a')
    expect(calls).toHaveLength(1)
    clock.advance(1000)
    void cache.refreshIfStale('http://a')
    expect(calls).toHaveLength(2)
    await settle()
  })
})

describe('ollamaTagged', () => {
  it('adds :latest only when the name has no tag (a registry host port is not a tag)', () => {
    expect(ollamaTagged('llama3.2')).toBe('llama3.2:latest')
    expect(ollamaTagged('llama3.2:3b')).toBe('llama3.2:3b')
    expect(ollamaTagged('hf.co/bartowski/Llama-3.2-1B-GGUF')).toBe('hf.co/bartowski/Llama-3.2-1B-GGUF:latest')
    expect(ollamaTagged('registry.local:5000/team/model')).toBe('registry.local:5000/team/model:latest')
    expect(ollamaTagged('registry.local:5000/team/model:q4')).toBe('registry.local:5000/team/model:q4')
  })
})
