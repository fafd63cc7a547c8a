import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameShape } from '../src/backends/fast-frame.js'

const ollamaLine = (
  response: string,
  ts = '2025-10-26T17:15:24.097767Z',
  extra: Record<string, unknown> = {},
) => JSON.stringify({ model: 'llama3.2:latest', created_at: ts, response, ...extra, done: false })
const mlxChunk = (text: string, finish: string | null = null) =>
  JSON.stringify({
    id: 'cmpl-1',
    object: 'text_completion',
    model: 'default_model',
    created: 1,
    choices: [{ index: 0, finish_reason: finish, text }],
  })
const llamaChunk = (text: string) =>
  JSON.stringify({
    choices: [{ text, index: 0, logprobs: null, finish_reason: null }],
    created: 1,
    object: 'text_completion',
    id: 'chatcmpl-1',
  })

/** What a decoder does: fast path when the shape matches, else parse and learn. */
function run(
  shape: FrameShape,
  frame: string,
  field: (o: Record<string, unknown>) => string,
): { text: string; fast: boolean } {
  const fast = shape.match(frame)
  if (fast !== undefined) return { text: fast, fast: true }
  const text = field(JSON.parse(frame))
  shape.learn(frame, text)
  return { text, fast: false }
}
const ollamaText = (o: Record<string, unknown>) => o.response as string
const choiceText = (o: Record<string, unknown>) => (o.choices as { text: string }[])[0]!.text

describe('FrameShape', () => {
  it('learns a plain delta frame and then reads same-shaped frames without parsing', () => {
    const shape = new FrameShape('"response":"', 'created_at')
    expect(run(shape, ollamaLine('Hel'), ollamaText)).toEqual({ text: 'Hel', fast: false })
    expect(run(shape, ollamaLine('lo 🌍', '2025-10-26T17:15:24.2Z'), ollamaText)).toEqual({
      text: 'lo 🌍',
      fast: true,
    })
    const sse = new FrameShape('"text":"')
    expect(run(sse, mlxChunk('a'), choiceText)).toEqual({ text: 'a', fast: false })
    expect(run(sse, mlxChunk(' b 🌍'), choiceText)).toEqual({ text: ' b 🌍', fast: true })
    const llama = new FrameShape('"text":"')
    expect(run(llama, llamaChunk('x'), choiceText).fast).toBe(false)
    expect(run(llama, llamaChunk('yz'), choiceText)).toEqual({ text: 'yz', fast: true })
  })

  it('declines frames that differ in shape or contain escapes', () => {
    const shape = new FrameShape('"response":"', 'created_at')
    run(shape, ollamaLine('x'), ollamaText)
    expect(shape.match(ollamaLine('say "hi"'))).toBeUndefined()
    expect(shape.match(ollamaLine('back\\slash'))).toBeUndefined()
    expect(shape.match(ollamaLine('x', 'a"b'))).toBeUndefined()
    expect(
      shape.match(JSON.stringify({ model: 'llama3.2:latest', created_at: 't', response: 'x', done: true })),
    ).toBeUndefined()
    expect(shape.match(JSON.stringify({ error: 'boom' }))).toBeUndefined()
    expect(shape.match(ollamaLine('x', 't', { thinking: 'hmm' }))).toBeUndefined()
    const sse = new FrameShape('"text":"')
    run(sse, mlxChunk('a'), choiceText)
    expect(sse.match(mlxChunk('say "hi"'))).toBeUndefined()
    expect(sse.match(mlxChunk('back\\slash'))).toBeUndefined()
    expect(sse.match(mlxChunk('', 'stop'))).toBeUndefined()
    expect(sse.match(llamaChunk('a'))).toBeUndefined()
    expect(sse.match(JSON.stringify({ error: 'boom' }))).toBeUndefined()
    expect(sse.match(JSON.stringify({ choices: [], usage: { prompt_tokens: 1 } }))).toBeUndefined()
  })

  it('never disagrees with JSON.parse over any sequence of frames (property)', () => {
    const frame = fc.record({
      kind: fc.constantFrom('mlx' as const, 'llama' as const),
      text: fc.string({ unit: 'grapheme' }),
    })
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 30 }), (frames) => {
        const sse = new FrameShape('"text":"')
        for (const f of frames) {
          const data = f.kind === 'mlx' ? mlxChunk(f.text) : llamaChunk(f.text)
          expect(run(sse, data, choiceText).text).toBe(f.text)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('never disagrees with JSON.parse over any sequence of Ollama lines, timestamps included (property)', () => {
    const line = fc.record({
      text: fc.string({ unit: 'grapheme' }),
      ts: fc.string(),
      thinking: fc.option(fc.string({ unit: 'grapheme' }), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
        const shape = new FrameShape('"response":"', 'created_at')
        for (const l of lines) {
          const extra = l.thinking === undefined ? {} : { thinking: l.thinking }
          expect(run(shape, ollamaLine(l.text, l.ts, extra), ollamaText).text).toBe(l.text)
        }
      }),
      { numRuns: 1000 },
    )
  })
})

describe('withoutContext', () => {
  it('drops the context array before parsing, and nothing else', async () => {
    const { withoutContext } = await import('../src/backends/ollama.js')
    const final = { model: 'm', response: '!', done: true, context: [1, 2, 3], eval_count: 4 }
    expect(JSON.parse(withoutContext(JSON.stringify(final)))).toEqual({
      model: 'm',
      response: '!',
      done: true,
      eval_count: 4,
    })
    const first = { context: [7, 8], response: 'x', done: true }
    expect(JSON.parse(withoutContext(JSON.stringify(first)))).toEqual({ response: 'x', done: true })
    const inText = { response: 'the "context":[1] key', done: true }
    expect(JSON.parse(withoutContext(JSON.stringify(inText)))).toEqual(inText)
    const notInts = '{"done":true,"context":["a"]}'
    expect(withoutContext(notInts)).toBe(notInts)
    fc.assert(
      fc.property(fc.string(), fc.array(fc.integer()), (response, context) => {
        const o = { model: 'm', response, done: true, context, eval_count: 1 }
        const { context: _dropped, ...rest } = o
        expect(JSON.parse(withoutContext(JSON.stringify(o)))).toEqual(rest)
      }),
      { numRuns: 500 },
    )
  })
})
