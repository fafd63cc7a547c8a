/**
 * NDJSON and SSE framing used by the stand-ins, plus small parsers that tests can use to read what a
 * stand-in (or the router) produced.
 * @module
 */

/** One NDJSON line: the JSON text followed by `\n` (Ollama ends every line with it, the last one too). */
export function ndjsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`
}

/** One SSE `data:` event (`data: <json>\n\n`). Strings are sent as they are (e.g. `[DONE]`). */
export function sseData(value: unknown): string {
  return `data: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`
}

/** One SSE comment (`: <text>\n\n`), as mlx_lm.server sends its `keepalive n/m` progress. */
export function sseComment(text: string): string {
  return `: ${text}\n\n`
}

/** One SSE event with a named field other than `data` (llama.cpp sends mid-stream errors as `error:`). */
export function sseField(field: string, value: unknown): string {
  return `${field}: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`
}

/** The OpenAI stream terminator. */
export const SSE_DONE = 'data: [DONE]\n\n'

/** Parses NDJSON text into values; blank lines are skipped, a line that is not JSON throws. */
export function parseNdjson(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as unknown)
}

/** One parsed SSE event. */
export interface SseEvent {
  /** `data` lines joined with `\n`; undefined when the event had none. */
  data?: string
  /** Other named fields (`event`, `id`, `error`, ...). */
  fields: Record<string, string>
  /** Comment lines (without the leading `:` and one space). */
  comments: string[]
}

/** Parses SSE text into events (blank-line separated). */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = []
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (block.trim().length === 0) continue
    const ev: SseEvent = { fields: {}, comments: [] }
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        ev.comments.push(line.slice(1).replace(/^ /, ''))
        continue
      }
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'data') data.push(value)
      else ev.fields[field] = value
    }
    if (data.length > 0) ev.data = data.join('\n')
    events.push(ev)
  }
  return events
}
