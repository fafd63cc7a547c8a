/**
 * Server-sent events framing for the OpenAI-compatible stream decoders (`/v1/completions`,
 * `/v1/chat/completions`). Lines end in `\n` or `\r\n` (a bare `\r` terminator is not supported; no
 * server here sends it); `:` comments are ignored (mlx_lm `: keepalive n/m`); `data:` lines of one event
 * are joined with `\n`; an event is dispatched on its blank line. An `error:` field line (llama.cpp) is
 * handed to `errorFrame`. Subclasses read the events.
 */
import type { BackendKind } from '../types.js'
import { isObject, type JsonObject, malformed, preview, streamError } from './common.js'
import { LineDecoder } from './lines.js'
import type { BackendOutput } from './types.js'

type OnDelta<Delta> = (delta: Delta) => void

export abstract class SseDecoder<Out = BackendOutput, Delta = string> extends LineDecoder<Out, Delta> {
  /** Data of the event being read; null when no `data:` line was seen since the last dispatch. */
  private data: string | null = null
  private event = ''

  /** One complete event: its joined data (non-empty) and its `event:` name ('' for none). */
  protected abstract dispatch(data: string, event: string, onDelta: OnDelta<Delta>): void
  /** The error to throw for an error payload found in the stream. */
  protected abstract errorFrame(payload: unknown): Error

  /**
   * One event's data as a JSON object (not `[DONE]`, which the subclass handles). Throws STREAM_ERROR for
   * an event cut off by the end of the body, the subclass's errorFrame for an `event: error` event or an
   * error payload (`error`, or older vLLM's `"object":"error"`), MALFORMED_RESPONSE for anything else.
   * @param stream what the messages call the stream, e.g. `OpenAI-compatible backend chat stream`
   * @param route the path to check the endpoint serves, named in the not-JSON message
   * @param delivered characters handed out so far
   */
  protected parseEvent(
    data: string,
    event: string,
    backend: BackendKind,
    stream: string,
    route: string,
    delivered: number,
  ): JsonObject {
    let parsed: unknown
    try {
      parsed = JSON.parse(data)
    } catch (cause) {
      if (this.atEnd) {
        throw streamError(
          backend,
          `${stream} ended in the middle of an event; ${delivered} characters delivered`,
          delivered,
          cause,
        )
      }
      if (event === 'error') throw this.errorFrame(data)
      throw malformed(
        backend,
        `${stream} event is not JSON: ${preview(data)}; check that the endpoint serves ${route}`,
        cause,
      )
    }
    if (!isObject(parsed)) {
      if (event === 'error') throw this.errorFrame(parsed)
      throw malformed(backend, `${stream} event is not a JSON object: ${preview(data)}`)
    }
    if (event === 'error') throw this.errorFrame(parsed)
    if (isErrorPayload(parsed)) throw this.errorFrame(parsed.error ?? parsed)
    return parsed
  }

  protected onLine(line: string, onText: OnDelta<Delta>): void {
    if (line.length === 0) {
      const data = this.data
      const event = this.event
      this.data = null
      this.event = ''
      if (data !== null && data.length > 0) this.dispatch(data, event, onText)
      return
    }
    // Fast path: the usual `data: {...}` line.
    if (line.startsWith('data:')) {
      const value = line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5)
      this.data = this.data === null ? value : `${this.data}\n${value}`
      return
    }
    if (line.charCodeAt(0) === 0x3a /* : */) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    if (field === 'data') {
      // A bare `data` line (no colon) is an empty data line per the SSE spec.
      this.data = this.data === null ? '' : `${this.data}\n`
    } else if (field === 'event') {
      this.event = fieldValue(line, colon)
    } else if (field === 'error') {
      // llama.cpp: an `error:` field line carrying a JSON error object, followed by `data: [DONE]`.
      const raw = fieldValue(line, colon)
      let payload: unknown = raw
      try {
        payload = JSON.parse(raw)
      } catch {
        // Not JSON: the raw text is the message.
      }
      throw this.errorFrame(payload)
    }
    // `id:`, `retry:` and unknown fields carry nothing a completion needs.
  }

  protected onEof(onText: OnDelta<Delta>): void {
    // Per the SSE spec an event without its blank line is dropped; we dispatch it instead so that a body
    // ending in `data: [DONE]` without the final blank line still counts as complete.
    const data = this.data
    const event = this.event
    this.data = null
    if (data !== null && data.length > 0) this.dispatch(data, event, onText)
  }
}

/** An OpenAI-dialect error payload: `error` set, or older vLLM's flat `{"object":"error",...}`. */
export function isErrorPayload(object: JsonObject): boolean {
  return (object.error !== undefined && object.error !== null) || object.object === 'error'
}

/** Value of an SSE field line: after the first colon, minus one leading space. */
function fieldValue(line: string, colon: number): string {
  if (colon === -1) return ''
  return line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1)
}
