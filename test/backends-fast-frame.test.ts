import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { completionDelta, ollamaDelta } from '../src/backends/fast-frame.js'

const ollamaLine = (response: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: 'llama3.2:latest',
    created_at: '2025-10-26T17:15:24.097767Z',
    response,
    ...extra,
    done: false,
  })
const mlxChunk = (text: string, finish: string | null = null) =>
  JSON.stringify({
    id: 'cmpl-1',
    system_fingerprint: 'fp',
    object: 'text_completion',
    model: 'default_model',
    created: 1,
    choices: [{ index: 0, finish_reason: finish, text }],
  })
const llamaChunk = (text: string) =>
  JSON.stringify({
    choices: [{ text, index: 0, logprobs: null, finish_reason: null }],
    created: 1,
    model: 'gpt-3.5-turbo',
    system_fingerprint: 'b1',
    object: 'text_completion',
    id: 'chatcmpl-1',
  })

describe('fast frame extraction', () => {
  it('extracts simple deltas without parsing', () => {
    expect(ollamaDelta(ollamaLine(' world 🌍'))).toBe(' world 🌍')
    expect(ollamaDelta(ollamaLine(''))).toBe('')
    expect(completionDelta(mlxChunk(' there'))).toBe(' there')
    expect(completionDelta(llamaChunk('héllo'))).toBe('héllo')
  })

  it('declines frames that need a full parse', () => {
    expect(ollamaDelta(ollamaLine('say \\"hi\\"'))).toBeUndefined() // escapes
    expect(ollamaDelta(ollamaLine('a"b'))).toBeUndefined()
    expect(ollamaDelta(JSON.stringify({ model: 'm', response: 'x', done: true }))).toBeUndefined()
    expect(ollamaDelta(JSON.stringify({ error: 'boom', done: false }))).toBeUndefined()
    expect(
      ollamaDelta(JSON.stringify({ model: 'm', options: { response: 'x' }, response: 'y', done: false })),
    ).toBeUndefined()
    expect(completionDelta(mlxChunk('', 'stop'))).toBeUndefined()
    expect(completionDelta(JSON.stringify({ choices: [], usage: { prompt_tokens: 1 } }))).toBeUndefined()
    expect(
      completionDelta(
        JSON.stringify({ choices: [{ text: 'x', finish_reason: null }], usage: { completion_tokens: 1 } }),
      ),
    ).toBeUndefined()
    expect(completionDelta(JSON.stringify({ error: { message: 'x' } }))).toBeUndefined()
    expect(completionDelta(mlxChunk('code { x }'))).toBeUndefined() // braces in text: parse instead
  })

  it('never disagrees with JSON.parse (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string(), (text, model) => {
        const line = JSON.stringify({ model, created_at: 't', response: text, done: false })
        const fast = ollamaDelta(line)
        if (fast !== undefined) expect(fast).toBe(text)
        for (const chunk of [mlxChunk(text), llamaChunk(text)]) {
          const d = completionDelta(chunk)
          if (d !== undefined) expect(d).toBe(text)
        }
      }),
      { numRuns: 2000 },
    )
  })

  it('takes the fast path for ordinary text', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-zA-Z0-9 .,!?'éü🌍-]{0,40}$/u), (text) => {
        expect(ollamaDelta(ollamaLine(text))).toBe(text)
        expect(completionDelta(mlxChunk(text))).toBe(text)
      }),
      { numRuns: 300 },
    )
  })
})
