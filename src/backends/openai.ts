/**
 * OpenAI-compatible `POST /v1/completions`: mlx_lm.server, llama.cpp's llama-server, vLLM, LM Studio,
 * Ollama's `/v1` (see shared/notes/protocols.md §2 and §4). Backend kind `mlx`.
 *
 * Request: `{model?, prompt, max_tokens, temperature, stop:[...], stream, stream_options?, <extras>}`.
 * - `model` only when `WireRequest.model` is set: mlx_lm.server loads any other value from disk or the hub.
 * - `/v1/completions` has no system field, so a system prompt is prepended: `system + "\n\n" + prompt`.
 * - `stream_options: {include_usage: true}` only when streaming (vLLM rejects it otherwise); without it
 *   mlx_lm, vLLM and LM Studio send no usage in a stream.
 * - Caller extras (`top_p`, `top_k`, `seed`, `repetition_penalty`, ...) go top-level, after the derived
 *   keys, so an explicit caller `max_tokens` wins; `model`, `prompt`, `stream`, `stream_options` are never
 *   taken from the extras.
 *
 * Responses: `choices[0].text`, `finish_reason` (null allowed), `usage` (absent = 0). A JSON array of
 * completions (llama.cpp with a list prompt) yields its first element. A 2xx body carrying an error payload
 * is BACKEND_ERROR (status 200).
 *
 * Streams (SSE): lines end in `\n` or `\r\n` (a bare `\r` terminator is not supported; no server here sends
 * it); `:` comments are ignored (mlx_lm `: keepalive n/m`); `data:` lines of one event are joined with
 * `\n`; an event is dispatched on its blank line. `[DONE]` ends the stream, but only counts as a clean end
 * when some chunk carried a `finish_reason` (llama.cpp sends `error:` then `[DONE]`; a parser that ignores
 * the error would see a clean end). Usage is taken from the last chunk with non-zero usage (Ollama's `/v1`
 * sends zeroed usage on every chunk and the real numbers in a final `choices:[]` chunk). An `error:` field,
 * an `event: error` event, or a data chunk with `error` (string or object) or `"object":"error"` (older
 * vLLM) is STREAM_ERROR.
 */
import {
  count,
  describeStreamError,
  errorMessage,
  inBandError,
  isObject,
  type JsonObject,
  malformed,
  type OnText,
  parseBody,
  preview,
  rejectedInBand,
  rejectsRequest,
  streamError,
} from './common.js'
import { FrameShape, ShapeMemo } from './fast-frame.js'
import { isErrorPayload, SseDecoder } from './sse.js'
import type { BackendAdapter, BackendOutput, StreamDecoder, WireRequest } from './types.js'

const LABEL = 'OpenAI-compatible backend'
const STREAM = `${LABEL} stream`

/** Keys the adapter controls; the same keys in caller extras are ignored. */
export const OPENAI_RESERVED_FIELDS: ReadonlySet<string> = new Set([
  'model',
  'prompt',
  'stream',
  'stream_options',
])

const INCLUDE_USAGE = { include_usage: true } as const

function encode(request: WireRequest): string {
  const body: JsonObject = {}
  if (request.model !== undefined) body.model = request.model
  body.prompt =
    request.system !== undefined && request.system.length > 0
      ? `${request.system}\n\n${request.prompt}`
      : request.prompt
  if (request.maxTokens !== undefined) body.max_tokens = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.stop !== undefined && request.stop.length > 0) body.stop = request.stop
  body.stream = request.stream
  if (request.stream) body.stream_options = INCLUDE_USAGE
  const extras = request.options
  if (extras !== undefined) {
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value !== undefined && !OPENAI_RESERVED_FIELDS.has(key)) body[key] = value
    }
  }
  return JSON.stringify(body)
}

function decode(body: string): BackendOutput {
  let parsed = parseBody('mlx', LABEL, body)
  if (Array.isArray(parsed)) parsed = parsed[0]
  if (!isObject(parsed)) {
    throw malformed(
      'mlx',
      `${LABEL} answered 2xx with JSON that is not a completion object: ${preview(body)}`,
    )
  }
  if (isErrorPayload(parsed)) throw inBandError('mlx', LABEL, parsed.error ?? parsed)
  const choices = parsed.choices
  const choice = Array.isArray(choices) ? choices[0] : undefined
  if (!isObject(choice) || typeof choice.text !== 'string') {
    throw malformed(
      'mlx',
      `${LABEL} answered 2xx without choices[0].text (${preview(body)}); ` +
        'check that the endpoint serves /v1/completions (not only chat completions)',
    )
  }
  const reason = choice.finish_reason
  const usage = parsed.usage
  return {
    text: choice.text,
    doneReason: typeof reason === 'string' && reason.length > 0 ? reason : null,
    promptTokens: isObject(usage) ? count(usage.prompt_tokens) : 0,
    completionTokens: isObject(usage) ? count(usage.completion_tokens) : 0,
  }
}

/** The chunk shape last learned by any SSE stream: the next stream's first chunk needs no parse. */
const LEARNED = new ShapeMemo()

class SseStreamDecoder extends SseDecoder<BackendOutput, string> {
  private text = ''
  /** null: every frame takes the full parse (the bench's comparison switch). */
  private readonly shape: FrameShape | null
  private doneReason: string | null = null
  private sawFinish = false
  private promptTokens = 0
  private completionTokens = 0

  constructor(fastFrames = true) {
    super()
    this.shape = fastFrames ? new FrameShape('"text":"', null, LEARNED) : null
  }

  protected dispatch(data: string, event: string, onText: OnText): void {
    if (data === '[DONE]') {
      if (!this.sawFinish) {
        throw streamError(
          'mlx',
          `${LABEL} stream reached [DONE] without any chunk carrying a finish_reason, so the generation ` +
            `was cut short (the server may have hit an error); ${this.text.length} characters delivered`,
          this.text.length,
        )
      }
      this.finished = true
      return
    }
    if (event === '') {
      const fast = this.shape?.match(data)
      if (fast !== undefined) {
        if (fast.length > 0) {
          this.text += fast
          onText(fast)
        }
        return
      }
    }
    const parsed = this.parseEvent(data, event, 'mlx', STREAM, '/v1/completions', this.text.length)
    const choices = parsed.choices
    if (Array.isArray(choices) && choices.length > 0) {
      const choice = choices[0]
      if (isObject(choice)) {
        const delta = choice.text
        if (typeof delta === 'string' && delta.length > 0) {
          this.text += delta
          onText(delta)
        }
        const reason = choice.finish_reason
        if (typeof reason === 'string' && reason.length > 0) {
          this.doneReason = reason
          this.sawFinish = true
        } else if (
          typeof delta === 'string' &&
          event === '' &&
          choices.length === 1 &&
          parsed.usage === undefined &&
          (reason === null || reason === undefined)
        ) {
          this.shape?.learn(data, delta)
        }
      }
    }
    const usage = parsed.usage
    if (isObject(usage)) {
      const prompt = count(usage.prompt_tokens)
      const completion = count(usage.completion_tokens)
      if (prompt > 0 || completion > 0) {
        this.promptTokens = prompt
        this.completionTokens = completion
      }
    }
  }

  protected errorFrame(payload: unknown): Error {
    if (rejectsRequest(payload)) return rejectedInBand('mlx', LABEL, payload)
    return streamError(
      'mlx',
      `${LABEL} reported an error mid-stream after ${this.text.length} characters: ` +
        describeStreamError(payload),
      this.text.length,
      payload,
    )
  }

  protected truncated(): Error {
    return streamError(
      'mlx',
      `${LABEL} stream ended without [DONE]; ${this.text.length} characters delivered`,
      this.text.length,
    )
  }

  protected output(): BackendOutput {
    return {
      text: this.text,
      doneReason: this.doneReason,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
    }
  }
}

/** Adapter for OpenAI-compatible `/v1/completions` (SSE when streaming). */
export const openaiAdapter: BackendAdapter = {
  kind: 'mlx',
  path: '/v1/completions',
  encode,
  decode,
  errorMessage,
  createStreamDecoder: (fastFrames?: boolean): StreamDecoder => new SseStreamDecoder(fastFrames),
}
