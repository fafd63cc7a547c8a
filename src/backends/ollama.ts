/**
 * Ollama `POST /api/generate` (see shared/notes/protocols.md §1).
 *
 * Request: `{model, prompt, stream, system?, <top-level extras>, options:{num_predict, temperature, stop,
 * <other extras>}}`. `stream` is always sent because Ollama streams when it is absent. Caller extras
 * (`WireRequest.options`) that Ollama reads at the top level (`keep_alive`, `format`, `think`, ... see
 * {@link OLLAMA_TOP_LEVEL_FIELDS}) go there; every other key goes into `options` (`top_k`, `num_ctx`, `seed`),
 * after the derived keys, so an explicit caller `options.num_predict` wins over `maxTokens` (which may be
 * only a record default by the time it reaches the adapter). `model`, `prompt`, `stream` and `options` are
 * never taken from the extras.
 *
 * Responses: metrics come only from the final (`done:true`) object; absent metrics are 0 (token counts)
 * or left out (durations), because Ollama omits zero values. A 2xx non-streaming body with an `error` key is
 * BACKEND_ERROR (status 200): Ollama reports non-streaming failures with a non-2xx status, so an in-band
 * error there is a backend failure, not a protocol violation. In a stream, an `{"error":...}` line is
 * STREAM_ERROR (Ollama writes it after a 200 and ends the body without a `done:true` line).
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
  streamError,
} from './common.js'
import { FrameShape } from './fast-frame.js'
import { LineDecoder } from './lines.js'
import type { BackendAdapter, BackendOutput, StreamDecoder, WireRequest } from './types.js'

const LABEL = 'Ollama'

/** Caller extras that `/api/generate` reads at the top level of the body rather than inside `options`. */
export const OLLAMA_TOP_LEVEL_FIELDS: ReadonlySet<string> = new Set([
  'keep_alive',
  'format',
  'raw',
  'think',
  'suffix',
  'images',
  'template',
  'context',
  'system',
  'truncate',
  'shift',
  'logprobs',
  'top_logprobs',
])

/** Keys the adapter controls; the same keys in caller extras are ignored. */
export const OLLAMA_RESERVED_FIELDS: ReadonlySet<string> = new Set(['model', 'prompt', 'stream', 'options'])

function encode(request: WireRequest): string {
  const body: JsonObject = { model: request.model, prompt: request.prompt, stream: request.stream }
  if (request.system !== undefined) body.system = request.system
  const options: JsonObject = {}
  let hasOptions = false
  if (request.maxTokens !== undefined) {
    options.num_predict = request.maxTokens
    hasOptions = true
  }
  if (request.temperature !== undefined) {
    options.temperature = request.temperature
    hasOptions = true
  }
  if (request.stop !== undefined && request.stop.length > 0) {
    options.stop = request.stop
    hasOptions = true
  }
  const extras = request.options
  if (extras !== undefined) {
    for (const key of Object.keys(extras)) {
      const value = extras[key]
      if (value === undefined || OLLAMA_RESERVED_FIELDS.has(key)) continue
      if (OLLAMA_TOP_LEVEL_FIELDS.has(key)) {
        if (key !== 'system' || request.system === undefined) body[key] = value
      } else {
        options[key] = value
        hasOptions = true
      }
    }
  }
  if (hasOptions) body.options = options
  return JSON.stringify(body)
}

/** Output fields of a final (`done:true` or non-streaming) object. */
export function finalOutput(object: JsonObject, text: string): BackendOutput {
  const reason = object.done_reason
  const output: BackendOutput = {
    text,
    doneReason: typeof reason === 'string' && reason.length > 0 ? reason : null,
    promptTokens: count(object.prompt_eval_count),
    completionTokens: count(object.eval_count),
  }
  if (typeof object.eval_duration === 'number') output.evalDurationNs = count(object.eval_duration)
  if (typeof object.load_duration === 'number') output.loadDurationNs = count(object.load_duration)
  return output
}

function decode(body: string): BackendOutput {
  const parsed = parseBody('ollama', LABEL, withoutContext(body))
  if (!isObject(parsed)) {
    throw malformed('ollama', `${LABEL} answered 2xx with JSON that is not an object: ${preview(body)}`)
  }
  if (parsed.error !== undefined && parsed.error !== null) throw inBandError('ollama', LABEL, parsed.error)
  const text = parsed.response
  if (typeof text !== 'string') {
    throw malformed(
      'ollama',
      `${LABEL} answered 2xx without a string "response" field (${preview(body)}); ` +
        'check that the endpoint is an Ollama server and the request was not streamed',
    )
  }
  return finalOutput(parsed, text)
}

const CONTEXT_KEY = '"context":['
const INT_LIST = /^[\d\s,-]*$/

/**
 * Ollama's final object carries `context`, a deprecated array of every token id of the conversation
 * (thousands of integers on long prompts), which the router never reads. Cutting it out before
 * `JSON.parse` saves most of the parse. Only a top-level-looking `"context":[ints]` is removed (an
 * unescaped quote cannot occur inside a string value); anything else is left for the parser.
 */
export function withoutContext(json: string): string {
  const at = json.indexOf(CONTEXT_KEY)
  if (at <= 0) return json
  const open = at + CONTEXT_KEY.length
  const close = json.indexOf(']', open)
  if (close === -1 || !INT_LIST.test(json.slice(open, close))) return json
  const before = json.charCodeAt(at - 1)
  if (before === 0x2c) return json.slice(0, at - 1) + json.slice(close + 1) // `,"context":[...]`
  if (before === 0x7b && json.charCodeAt(close + 1) === 0x2c) return json.slice(0, at) + json.slice(close + 2) // `{"context":[...],`
  return json
}

class OllamaStreamDecoder extends LineDecoder {
  private text = ''
  private final: JsonObject | undefined = undefined
  /** null: every line takes the full parse (the bench's `-noframes` comparison switch). */
  private readonly shape: FrameShape | null

  constructor(fastFrames = true) {
    super()
    this.shape = fastFrames ? new FrameShape('"response":"', 'created_at') : null
  }

  protected onLine(line: string, onText: OnText): void {
    if (line.length === 0) return
    // Plain delta lines shaped like the last parsed one skip JSON.parse (fast-frame.ts), which was
    // the top item of a stream's client CPU profile.
    const fast = this.shape?.match(line)
    if (fast !== undefined) {
      if (fast.length > 0) {
        this.text += fast
        onText(fast)
      }
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(withoutContext(line))
    } catch (cause) {
      if (line.trim().length === 0) return
      if (this.atEnd) throw this.cutOff(cause)
      throw malformed(
        'ollama',
        `${LABEL} stream line is not JSON: ${preview(line)}; check that the endpoint is an Ollama server`,
        cause,
      )
    }
    if (!isObject(parsed)) {
      throw malformed('ollama', `${LABEL} stream line is not a JSON object: ${preview(line)}`)
    }
    if (parsed.error !== undefined && parsed.error !== null) {
      throw streamError(
        'ollama',
        `${LABEL} reported an error mid-stream after ${this.text.length} characters: ` +
          describeStreamError(parsed.error),
        this.text.length,
        parsed.error,
      )
    }
    const delta = parsed.response
    if (typeof delta === 'string') {
      if (delta.length > 0) {
        this.text += delta
        onText(delta)
      }
      if (parsed.done === false) this.shape?.learn(line, delta)
    } else if (delta !== undefined) {
      throw malformed('ollama', `${LABEL} stream line has a non-string "response": ${preview(line)}`)
    }
    if (parsed.done === true) {
      this.final = parsed
      this.finished = true
    }
  }

  protected onEof(): void {}

  private cutOff(cause: unknown): Error {
    return streamError(
      'ollama',
      `${LABEL} stream ended in the middle of a line; ${this.text.length} characters delivered`,
      this.text.length,
      cause,
    )
  }

  protected truncated(): Error {
    return streamError(
      'ollama',
      `${LABEL} stream ended without its final line (done:true); ${this.text.length} characters delivered`,
      this.text.length,
    )
  }

  protected output(): BackendOutput {
    return finalOutput(this.final ?? {}, this.text)
  }
}

/** Adapter for Ollama's native `/api/generate` (NDJSON when streaming). */
export const ollamaAdapter: BackendAdapter = {
  kind: 'ollama',
  path: '/api/generate',
  encode,
  decode,
  errorMessage,
  createStreamDecoder: (fastFrames?: boolean): StreamDecoder => new OllamaStreamDecoder(fastFrames),
}
