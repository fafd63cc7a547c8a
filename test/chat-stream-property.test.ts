/**
 * Property tests for the chat stream decoders: a generated conversation turn (text, reasoning and tool
 * calls with arbitrary text, the OpenAI dialect's argument strings cut into arbitrary fragments), sent
 * in the server's framing and split at arbitrary byte positions, always decodes to the same text,
 * reasoning and tool calls, with and without the frame-shape fast path.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ChatAdapter, ChatDelta } from '../src/backends/chat-common.js'
import { ollamaChatAdapter } from '../src/backends/ollama-chat.js'
import { openaiChatAdapter } from '../src/backends/openai-chat.js'

const RUNS = 300
const enc = new TextEncoder()

const piece = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.constantFrom('😀', '日本語', 'é', '\n', '"', '\\', 'data: [DONE]', '{"done":true}', '"content":"'),
)

type Part =
  | { kind: 'text'; value: string }
  | { kind: 'reasoning'; value: string }
  | { kind: 'tool'; name: string; args: Record<string, string>; cuts: number[] }

const part: fc.Arbitrary<Part> = fc.oneof(
  fc.record({ kind: fc.constant('text' as const), value: piece }),
  fc.record({ kind: fc.constant('reasoning' as const), value: piece }),
  fc.record({
    kind: fc.constant('tool' as const),
    name: fc.constantFrom('get_weather', 'lookup', 'f'),
    args: fc.dictionary(fc.constantFrom('city', 'q', 'ünï'), piece, { maxKeys: 3 }),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
  }),
)

function feed(adapter: ChatAdapter, body: string, points: readonly number[], fast: boolean) {
  const bytes = enc.encode(body)
  const positions = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b)
  const decoder = adapter.createStreamDecoder(fast)
  const deltas: ChatDelta[] = []
  const on = (d: ChatDelta) => deltas.push(d)
  let start = 0
  for (const end of positions) {
    decoder.push(bytes.subarray(start, end), on)
    start = end
  }
  decoder.push(bytes.subarray(start), on)
  const output = decoder.end(on)
  return {
    text: deltas.map((d) => d.text).join(''),
    reasoning: deltas.map((d) => d.reasoning ?? '').join(''),
    calls: deltas.flatMap((d) => d.toolCalls ?? []).map((c) => [c.name, c.arguments]),
    output,
  }
}

function expected(parts: Part[]) {
  return {
    text: parts.map((p) => (p.kind === 'text' ? p.value : '')).join(''),
    reasoning: parts.map((p) => (p.kind === 'reasoning' ? p.value : '')).join(''),
    calls: parts.flatMap((p) => (p.kind === 'tool' ? [[p.name, p.args]] : [])),
  }
}

function ollamaBody(parts: Part[]): string {
  let tick = 0
  // created_at differs per line, as Ollama's does (the fast path must skip it).
  const line = (message: object, extra: object = {}) =>
    `${JSON.stringify({ model: 'm', created_at: `2025-05-27T22:54:${tick++}Z`, message: { role: 'assistant', ...message }, done: false, ...extra })}\n`
  let body = ''
  for (const p of parts) {
    if (p.kind === 'text') body += line({ content: p.value })
    else if (p.kind === 'reasoning') body += line({ content: '', thinking: p.value })
    else body += line({ content: '', tool_calls: [{ function: { name: p.name, arguments: p.args } }] })
  }
  return body + line({ content: '' }, { done: true, done_reason: 'stop', eval_count: 3 })
}

/** llama.cpp-style: tool arguments as string fragments at the generated cut points, joined by index. */
function openaiBody(parts: Part[]): string {
  const event = (delta: object, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
  let body = ': keepalive\n\n'
  let index = 0
  for (const p of parts) {
    if (p.kind === 'text') body += event({ content: p.value })
    else if (p.kind === 'reasoning') body += event({ reasoning_content: p.value })
    else {
      const args = JSON.stringify(p.args)
      const at = [...new Set(p.cuts.map((c) => c % (args.length + 1)))].sort((a, b) => a - b)
      const pieces: string[] = []
      let from = 0
      for (const c of [...at, args.length]) {
        pieces.push(args.slice(from, c))
        from = c
      }
      pieces.forEach((fragment, i) => {
        const fn = i === 0 ? { name: p.name, arguments: fragment } : { arguments: fragment }
        body += event({
          tool_calls: [{ index, ...(i === 0 ? { id: '', type: 'function' } : {}), function: fn }],
        })
      })
      index++
    }
  }
  return `${body}${event({}, 'stop')}data: {"id":"c","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}\n\ndata: [DONE]\n\n`
}

describe.each([
  ['Ollama /api/chat NDJSON', ollamaChatAdapter, ollamaBody],
  ['OpenAI-compatible chat SSE', openaiChatAdapter, openaiBody],
])('%s under arbitrary splits', (_name, adapter, build) => {
  it('gives the same text, reasoning and tool calls as the turn that was sent', () => {
    fc.assert(
      fc.property(
        fc.array(part, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 24 }),
        fc.boolean(),
        (parts, points, fast) => {
          const got = feed(adapter, build(parts), points, fast)
          const want = expected(parts)
          expect({ text: got.text, reasoning: got.reasoning, calls: got.calls }).toEqual(want)
          expect(got.output.text).toBe(want.text)
          expect(got.output.reasoning).toBe(want.reasoning)
          expect(got.output.toolCalls.map((c) => [c.name, c.arguments])).toEqual(want.calls)
          for (const c of got.output.toolCalls) expect(c.id.length).toBeGreaterThan(0)
        },
      ),
      { numRuns: RUNS },
    )
  })
})
