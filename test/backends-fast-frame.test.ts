import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameShape, ShapeMemo } from '../src/backends/fast-frame.js'
import { ollamaAdapter } from '../src/backends/ollama.js'
import { ErrorCode, isRouterError } from '../src/errors.js'

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

describe('ShapeMemo (a shape learned by one stream starts the next)', () => {
  it('lets a new stream read its first line without a parse, and relearns for another model', () => {
    const memo = new ShapeMemo()
    const first = new FrameShape('"response":"', 'created_at', memo)
    expect(run(first, ollamaLine('a'), ollamaText).fast).toBe(false)
    const second = new FrameShape('"response":"', 'created_at', memo)
    expect(run(second, ollamaLine('b', 'other-ts'), ollamaText)).toEqual({ text: 'b', fast: true })
    const other = (text: string) =>
      JSON.stringify({ model: 'qwen3', created_at: 't', response: text, done: false })
    const third = new FrameShape('"response":"', 'created_at', memo)
    expect(run(third, other('c'), ollamaText)).toEqual({ text: 'c', fast: false })
    expect(run(new FrameShape('"response":"', 'created_at', memo), other('d'), ollamaText).fast).toBe(true)
    // Without a memo a shape starts unlearned, whatever other shapes learned.
    expect(run(new FrameShape('"response":"', 'created_at'), other('e'), ollamaText).fast).toBe(false)
  })
})

describe('FrameShape.matchBytes (lines read before they are decoded)', () => {
  const bytes = (s: string) => Buffer.from(s, 'utf8')
  const learned = () => {
    const shape = new FrameShape('"response":"', 'created_at')
    const first = ollamaLine('Hel')
    shape.learn(first, 'Hel')
    return shape
  }

  it('reads the text of a same-shaped line from its bytes, multi-byte characters included', () => {
    const shape = learned()
    for (const text of ['lo', ' café', ' 🚀 done', '', ' naïve — ok', 'x'.repeat(40)]) {
      const line = bytes(ollamaLine(text, '2025-10-26T17:15:24.2Z'))
      expect(shape.matchBytes(line, 0, line.length)).toBe(text)
    }
    // A range inside a larger buffer: only [start, end) is read.
    const two = bytes(`${ollamaLine('a')}\n${ollamaLine('bc')}\n`)
    const cut = two.indexOf(0x0a)
    expect(shape.matchBytes(two, 0, cut)).toBe('a')
    expect(shape.matchBytes(two, cut + 1, two.length - 1)).toBe('bc')
    // Two lines offered as one range are declined (the newline is a control byte).
    expect(shape.matchBytes(two, 0, two.length - 1)).toBeUndefined()
  })

  it('declines raw control bytes, escapes, quotes and other shapes, as JSON.parse would', () => {
    const shape = learned()
    const raw = (text: string, ts = 't') =>
      bytes(`{"model":"llama3.2:latest","created_at":"${ts}","response":"${text}","done":false}`)
    for (const line of [raw('a\tb'), raw('a\nb'), raw('ok', 'a\u0001b'), raw('a\\"b'), raw('say \\"hi\\"')]) {
      expect(shape.matchBytes(line, 0, line.length)).toBeUndefined()
    }
    expect(() => JSON.parse(raw('a\tb').toString())).toThrow()
    const done = bytes(
      JSON.stringify({ model: 'llama3.2:latest', created_at: 't', response: 'x', done: true }),
    )
    expect(shape.matchBytes(done, 0, done.length)).toBeUndefined()
    expect(new FrameShape('"response":"').matchBytes(raw('a'), 0, raw('a').length)).toBeUndefined()
  })

  it('never disagrees with JSON.parse of the decoded line, whatever bytes it holds (property)', () => {
    const junk = fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b))
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string(), junk, fc.nat(), (text, ts, extra, at) => {
        const shape = learned()
        const line = bytes(ollamaLine(text, ts))
        // Splice arbitrary bytes (raw control bytes, quotes, invalid UTF-8) in anywhere.
        const p = at % (line.length + 1)
        const mutated = Buffer.concat([line.subarray(0, p), extra, line.subarray(p)])
        const got = shape.matchBytes(mutated, 0, mutated.length)
        if (got === undefined) return
        expect((JSON.parse(mutated.toString('utf8')) as { response: string }).response).toBe(got)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('Ollama stream decoder on bytes', () => {
  const feed = (chunks: Uint8Array[]) => {
    const decoder = ollamaAdapter.createStreamDecoder()
    const deltas: string[] = []
    for (const c of chunks) decoder.push(c, (t) => deltas.push(t))
    return { deltas, output: decoder.end((t) => deltas.push(t)) }
  }
  const final = `${JSON.stringify({ model: 'llama3.2:latest', created_at: 't', response: '', done: true, eval_count: 3 })}\n`
  const body = `${ollamaLine('a')}\n${ollamaLine(' b')}\n${ollamaLine(' ç')}\n${final}`

  it('gives the same deltas for one line per chunk, all lines in one chunk, and byte-by-byte', () => {
    const whole = Buffer.from(body)
    const lines = body.split(/(?<=\n)/).map((l) => Buffer.from(l))
    const bytewise = [...whole].map((b) => Uint8Array.of(b))
    for (const chunks of [[whole], lines, bytewise]) {
      const { deltas, output } = feed(chunks)
      expect(deltas.join('')).toBe('a b ç')
      expect(output.text).toBe('a b ç')
      expect(output.completionTokens).toBe(3)
    }
    // Two delta lines in one chunk after the shape is learned: both texts, in order.
    expect(feed([lines[0]!, Buffer.concat([lines[1]!, lines[2]!]), lines[3]!]).deltas).toEqual([
      'a',
      ' b',
      ' ç',
    ])
  })

  it('drops a byte-order mark at the start of the body only, as TextDecoder does, also when split', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf])
    const withBom = Buffer.concat([bom, Buffer.from(body)])
    expect(feed([withBom]).output.text).toBe('a b ç')
    expect(feed([withBom.subarray(0, 2), withBom.subarray(2)]).output.text).toBe('a b ç')
    const late = Buffer.from(`${ollamaLine('a')}\n\ufeff${ollamaLine('b')}\n${final}`)
    expect(() => feed([late])).toThrow(/not JSON/)
  })

  it('turns invalid UTF-8 into U+FFFD like a TextDecoder over the whole body', () => {
    const bad = Buffer.from([0x20, 0xe2, 0x82, 0x78, 0xff])
    const line = Buffer.concat([
      Buffer.from(ollamaLine('__').split('__')[0]!),
      bad,
      Buffer.from(ollamaLine('__').split('__')[1]!),
    ])
    const stream = Buffer.concat([Buffer.from(`${ollamaLine('a')}\n`), line, Buffer.from(`\n${final}`)])
    const expected = (JSON.parse(new TextDecoder().decode(line)) as { response: string }).response
    expect(feed([stream]).deltas).toEqual(['a', expected])
    expect(feed([...stream].map((b) => Uint8Array.of(b))).deltas.join('')).toBe(`a${expected}`)
  })

  it('rejects a learned-shape line with a raw control byte in its text, as JSON.parse does', () => {
    const raw = Buffer.from(
      `${ollamaLine('a')}\n{"model":"llama3.2:latest","created_at":"t","response":"x\ty","done":false}\n${final}`,
    )
    let error: unknown
    try {
      feed([raw])
    } catch (e) {
      error = e
    }
    expect(isRouterError(error) && error.code).toBe(ErrorCode.MALFORMED_RESPONSE)
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
