/**
 * Deterministic text and token generation for the stand-ins, so the counters they report
 * (`eval_count`, `completion_tokens`, ...) always match the text they send.
 * @module
 */
import type { RespondContext, Responder } from '../types.js'

/**
 * Cuts text into word-ish tokens: each token is a run of non-space characters with the whitespace
 * before it, so `tokenize(t).join('') === t` for any text that does not end in whitespace (trailing
 * whitespace becomes its own token).
 */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? []
}

/** Prompt token count as the stand-ins report it: word-ish tokens, at least 1. */
export function countTokens(text: string): number {
  return Math.max(1, tokenize(text).length)
}

const FILLER = [
  'Here is a short answer from the stand-in model.',
  'It streams word by word so that clients can measure time to first token and tokens per second.',
  'Nothing here comes from a real language model.',
]

/** The default responder: a deterministic sentence that quotes the start of the prompt. */
export function defaultResponse(prompt: string): string {
  const words = prompt.trim().split(/\s+/).filter(Boolean).slice(0, 8).join(' ')
  const quoted =
    words.length > 0 ? `You asked: "${words}${prompt.trim().split(/\s+/).length > 8 ? '…' : ''}".` : 'Hello.'
  return [quoted, ...FILLER].join(' ')
}

/** The outcome of one simulated generation. */
export interface Generation {
  /** Token pieces; their concatenation is `text`. */
  tokens: string[]
  text: string
  /** `stop` when the text ended or a stop string matched, `length` when `maxTokens` cut it. */
  doneReason: 'stop' | 'length'
  promptTokens: number
}

export interface GenerateInput {
  prompt: string
  /** Extra prompt text counted as prompt tokens (e.g. Ollama `system`). */
  system?: string
  /** Max generated tokens; negative or undefined = unlimited. */
  maxTokens?: number
  stop?: string[]
  respond?: Responder | undefined
  context: RespondContext
}

/** Runs the responder, applies stop strings (removed from the output) and the token limit. */
export function generate(input: GenerateInput): Generation {
  const { respond } = input
  let text =
    typeof respond === 'string'
      ? respond
      : typeof respond === 'function'
        ? respond(input.prompt, input.context)
        : defaultResponse(input.prompt)
  let doneReason: Generation['doneReason'] = 'stop'
  for (const s of input.stop ?? []) {
    if (s.length === 0) continue
    const at = text.indexOf(s)
    if (at >= 0) text = text.slice(0, at)
  }
  let tokens = tokenize(text)
  const max = input.maxTokens
  if (max !== undefined && max >= 0 && tokens.length > max) {
    tokens = tokens.slice(0, max)
    doneReason = 'length'
  }
  const promptTokens = countTokens(`${input.system ?? ''} ${input.prompt}`)
  return { tokens, text: tokens.join(''), doneReason, promptTokens }
}

/** Stable fake token ids for Ollama's `context` array. */
export function fakeTokenIds(pieces: string[]): number[] {
  return pieces.map((p) => {
    let h = 7
    for (let i = 0; i < p.length; i++) h = (h * 31 + p.charCodeAt(i)) % 32_000
    return h + 1
  })
}
