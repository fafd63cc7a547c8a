/**
 * Property tests for the stream decoders: any split of a transcript's bytes (including splits inside
 * multi-byte UTF-8 characters and inside `\r\n`) gives the same deltas and output as the whole body, and a
 * transcript cut before its final frame always ends in STREAM_ERROR.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ollamaAdapter } from '../src/backends/ollama.js'
import { openaiAdapter } from '../src/backends/openai.js'
import type { BackendAdapter, BackendOutput } from '../src/backends/types.js'
import { ErrorCode, isRouterError } from '../src/errors.js'

const RUNS = 500
const enc = new TextEncoder()

interface Transcript {
  body: string
  /** Text the transcript delivers. */
  text: string
  output: BackendOutput
  /** Byte length of the shortest prefix that holds the whole final frame. */
  finalEnd: number
}

/** Text pieces that make multi-byte characters likely, plus JSON-escape-worthy ones. */
const piece = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom(
    '😀',
    '日本語',
    'é',
    '𝄞',
    '🦙🦙',
    '\n',
    '\r\n',
    '"',
    '\\',
    'data: [DONE]',
    '{"done":true}',
    '',
  ),
)

const cuts = fc.array(fc.nat(), { maxLength: 24 })

/** Feed `bytes` split at `points` (taken modulo the length); returns the deltas and the output or error. */
function feed(adapter: BackendAdapter, bytes: Uint8Array, points: readonly number[]) {
  const positions = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b)
  const decoder = adapter.createStreamDecoder()
  const deltas: string[] = []
  const onText = (t: string) => deltas.push(t)
  try {
    let start = 0
    for (const end of positions) {
      decoder.push(bytes.subarray(start, end), onText)
      start = end
    }
    decoder.push(bytes.subarray(start), onText)
    return { deltas, output: decoder.end(onText), error: undefined }
  } catch (error) {
    return { deltas, output: undefined, error }
  }
}

const optionalCount = fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined })

const ollamaTranscript: fc.Arbitrary<Transcript> = fc
  .record({
    deltas: fc.array(piece, { maxLength: 10 }),
    last: piece,
    reason: fc.option(fc.constantFrom('stop', 'length', 'load'), { nil: undefined }),
    prompt: optionalCount,
    completion: optionalCount,
    evalNs: optionalCount,
    loadNs: optionalCount,
    crlf: fc.boolean(),
    blankLines: fc.boolean(),
    trailingNewline: fc.boolean(),
  })
  .map((t) => {
    const nl = t.crlf ? '\r\n' : '\n'
    const lines = t.deltas.map((response, i) =>
      JSON.stringify({ model: 'gemma4', created_at: `2025-10-26T17:15:24.${i}Z`, response, done: false }),
    )
    if (t.blankLines) lines.splice(Math.floor(lines.length / 2), 0, '')
    const final = JSON.stringify({
      model: 'gemma4',
      created_at: '2025-10-26T17:15:24.166576Z',
      response: t.last,
      done: true,
      done_reason: t.reason,
      context: [1, 2, 3],
      total_duration: 174560334,
      load_duration: t.loadNs,
      prompt_eval_count: t.prompt,
      eval_count: t.completion,
      eval_duration: t.evalNs,
    })
    const head = lines.map((l) => l + nl).join('')
    const text = t.deltas.join('') + t.last
    const output: BackendOutput = {
      text,
      doneReason: t.reason ?? null,
      promptTokens: t.prompt ?? 0,
      completionTokens: t.completion ?? 0,
    }
    if (t.evalNs !== undefined) output.evalDurationNs = t.evalNs
    if (t.loadNs !== undefined) output.loadDurationNs = t.loadNs
    return {
      body: head + final + (t.trailingNewline ? nl : ''),
      text,
      output,
      finalEnd: enc.encode(head + final).length,
    }
  })

// protocols.md §1.3
const OLLAMA_DOC: Transcript = (() => {
  const body =
    '{"model":"gemma4","created_at":"2025-10-26T17:15:24.097767Z","response":"That","done":false}\n' +
    '{"model":"gemma4","created_at":"2025-10-26T17:15:24.109172Z","response":"\'s","done":false}\n' +
    '{"model":"gemma4","created_at":"2025-10-26T17:15:24.166576Z","response":"!","done":true,"done_reason":"stop","context":[1,2,3],"total_duration":174560334,"load_duration":101397084,"prompt_eval_count":11,"prompt_eval_duration":13074791,"eval_count":18,"eval_duration":52479709}\n'
  return {
    body,
    text: "That's!",
    output: {
      text: "That's!",
      doneReason: 'stop',
      promptTokens: 11,
      completionTokens: 18,
      evalDurationNs: 52479709,
      loadDurationNs: 101397084,
    },
    finalEnd: enc.encode(body).length - 1,
  }
})()

type SseStyle = 'mlx' | 'llamacpp' | 'ollama-v1' | 'multiline'

const sseTranscript: fc.Arbitrary<Transcript> = fc
  .record({
    style: fc.constantFrom<SseStyle>('mlx', 'llamacpp', 'ollama-v1', 'multiline'),
    deltas: fc.array(piece, { maxLength: 10 }),
    last: piece,
    reason: fc.constantFrom('stop', 'length'),
    prompt: fc.nat({ max: 100_000 }),
    completion: fc.nat({ max: 100_000 }),
    crlf: fc.boolean(),
    keepalives: fc.nat({ max: 3 }),
    finalBlankLine: fc.boolean(),
  })
  .map((t) => {
    const nl = t.crlf ? '\r\n' : '\n'
    const usage = {
      prompt_tokens: t.prompt,
      completion_tokens: t.completion,
      total_tokens: t.prompt + t.completion,
    }
    const zero = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }
    const chunk = (text: string, finish: string | null, extra: Record<string, unknown> = {}) => ({
      id: 'cmpl-5d0f',
      object: 'text_completion',
      model: 'default_model',
      created: 1755849600,
      choices: [{ index: 0, finish_reason: finish, text }],
      ...extra,
    })
    const objects: object[] = []
    for (const d of t.deltas) objects.push(chunk(d, null, t.style === 'ollama-v1' ? { usage: zero } : {}))
    if (t.style === 'llamacpp') {
      objects.push(
        chunk(t.last, t.reason, { usage, timings: { predicted_per_second: 99.5, prompt_n: t.prompt } }),
      )
    } else if (t.style === 'ollama-v1') {
      objects.push(chunk(t.last, t.reason, { usage: zero }))
      objects.push({ id: 'cmpl-5d0f', object: 'text_completion', choices: [], usage })
    } else {
      objects.push(chunk(t.last, t.reason))
      objects.push({ id: 'cmpl-5d0f', object: 'chat.completion', choices: [], usage })
    }
    const events: string[] = []
    for (let i = 0; i < t.keepalives; i++) events.push(`: keepalive ${i}/3`)
    for (const o of objects) {
      const json = t.style === 'multiline' ? JSON.stringify(o, null, 1) : JSON.stringify(o)
      events.push(
        json
          .split('\n')
          .map((l) => `data: ${l}`)
          .join(nl),
      )
    }
    const head = events.map((e) => e + nl + nl).join('')
    const text = t.deltas.join('') + t.last
    return {
      body: `${head}data: [DONE]${t.finalBlankLine ? nl + nl : ''}`,
      text,
      output: { text, doneReason: t.reason, promptTokens: t.prompt, completionTokens: t.completion },
      finalEnd: enc.encode(`${head}data: [DONE]`).length,
    }
  })

// protocols.md §2.3
const MLX_DOC: Transcript = (() => {
  const head = [
    ': keepalive 2048/3000',
    'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":null,"text":" there"}]}',
    'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":null,"text":" was"}]}',
    'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":"stop","text":""}]}',
    'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"chat.completion","model":"default_model","created":1755849600,"choices":[],"usage":{"prompt_tokens":3000,"completion_tokens":3,"total_tokens":3003,"prompt_tokens_details":{"cached_tokens":0}}}',
  ]
    .map((e) => `${e}\n\n`)
    .join('')
  return {
    body: `${head}data: [DONE]\n\n`,
    text: ' there was',
    output: { text: ' there was', doneReason: 'stop', promptTokens: 3000, completionTokens: 3 },
    finalEnd: enc.encode(`${head}data: [DONE]`).length,
  }
})()

function splitProperty(adapter: BackendAdapter, transcripts: fc.Arbitrary<Transcript>) {
  fc.assert(
    fc.property(transcripts, cuts, (t, points) => {
      const bytes = enc.encode(t.body)
      const whole = feed(adapter, bytes, [])
      const split = feed(adapter, bytes, points)
      expect(whole.error).toBeUndefined()
      expect(split.error).toBeUndefined()
      expect(split.deltas.join('')).toBe(t.text)
      expect(split.output).toEqual(whole.output)
      expect(split.output).toEqual(t.output)
      expect(split.deltas.every((d) => d.length > 0)).toBe(true)
    }),
    { numRuns: RUNS },
  )
}

function truncationProperty(adapter: BackendAdapter, transcripts: fc.Arbitrary<Transcript>) {
  fc.assert(
    fc.property(transcripts, fc.nat(), cuts, (t, cutAt, points) => {
      const bytes = enc.encode(t.body).subarray(0, cutAt % t.finalEnd)
      const result = feed(adapter, bytes, points)
      expect(result.output).toBeUndefined()
      expect(isRouterError(result.error) && result.error.code).toBe(ErrorCode.STREAM_ERROR)
      // Whatever was delivered before the cut is a prefix of the full text.
      expect(t.text.startsWith(result.deltas.join(''))).toBe(true)
    }),
    { numRuns: RUNS },
  )
}

describe('ollama NDJSON decoder under arbitrary splits', () => {
  it('matches the un-split parse for the documented and generated transcripts', () => {
    splitProperty(ollamaAdapter, fc.oneof(fc.constant(OLLAMA_DOC), ollamaTranscript))
  })

  it('always throws STREAM_ERROR when cut before the final line is complete', () => {
    truncationProperty(ollamaAdapter, fc.oneof(fc.constant(OLLAMA_DOC), ollamaTranscript))
  })

  it('throws STREAM_ERROR at an error line after delivering exactly the text before it', () => {
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 8 }),
        fc.string({ minLength: 1 }),
        cuts,
        (deltas, message, points) => {
          const body =
            deltas.map((response) => `${JSON.stringify({ model: 'm', response, done: false })}\n`).join('') +
            `${JSON.stringify({ error: message })}\n` +
            `${JSON.stringify({ model: 'm', response: 'never', done: true })}\n`
          const result = feed(ollamaAdapter, enc.encode(body), points)
          expect(isRouterError(result.error) && result.error.code).toBe(ErrorCode.STREAM_ERROR)
          expect(result.deltas.join('')).toBe(deltas.join(''))
          expect(isRouterError(result.error) && result.error.delivered).toBe(deltas.join('').length)
        },
      ),
      { numRuns: RUNS },
    )
  })
})

describe('OpenAI SSE decoder under arbitrary splits', () => {
  it('matches the un-split parse for the documented and generated transcripts', () => {
    splitProperty(openaiAdapter, fc.oneof(fc.constant(MLX_DOC), sseTranscript))
  })

  it('always throws STREAM_ERROR when cut before [DONE] is complete', () => {
    truncationProperty(openaiAdapter, fc.oneof(fc.constant(MLX_DOC), sseTranscript))
  })

  it('throws STREAM_ERROR on an error frame after delivering exactly the text before it', () => {
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 8 }),
        fc.constantFrom(
          'data: {"error":"x"}',
          'data: {"object":"error","message":"x"}',
          'error: {"message":"x"}',
        ),
        cuts,
        (deltas, frame, points) => {
          const events = deltas.map(
            (text) => `data: ${JSON.stringify({ choices: [{ text, finish_reason: null }] })}\n\n`,
          )
          const body = `${events.join('')}${frame}\n\ndata: [DONE]\n\n`
          const result = feed(openaiAdapter, enc.encode(body), points)
          expect(isRouterError(result.error) && result.error.code).toBe(ErrorCode.STREAM_ERROR)
          expect(result.deltas.join('')).toBe(deltas.join(''))
        },
      ),
      { numRuns: RUNS },
    )
  })
})
