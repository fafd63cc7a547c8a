/**
 * Fast path for the frames that make up almost all of a stream: one small JSON object carrying a
 * text delta. Pulling the delta out with a few `indexOf` scans costs a fraction of `JSON.parse`, and
 * parsing dominates a stream's client CPU. Every check here only decides whether the fast path may be
 * used; whenever a frame is not provably simple (an escape in the value, a nested object, an `error`
 * or `usage` key, a final frame), the caller parses it normally.
 *
 * Why a match is a real key: inside a JSON string every `"` is escaped, so the sequence `,"key":"` or
 * `{"key":"` (a quote not preceded by a backslash) cannot occur inside a string value.
 */

const BACKSLASH = '\\'

/** The raw value of `"key":"..."` at `marker` (`"key":"`), or undefined when it is not simple. */
function simpleValue(frame: string, marker: string): string | undefined {
  const at = frame.indexOf(marker)
  if (at <= 0) return undefined
  const before = frame.charCodeAt(at - 1)
  if (before !== 0x2c && before !== 0x7b) return undefined // ',' or '{'
  const start = at + marker.length
  const end = frame.indexOf('"', start)
  if (end === -1) return undefined
  const value = frame.slice(start, end)
  return value.includes(BACKSLASH) ? undefined : value
}

function braces(frame: string): number {
  let n = 0
  for (let i = frame.indexOf('{'); i !== -1; i = frame.indexOf('{', i + 1)) n++
  return n
}

const OLLAMA_TAIL = ',"done":false}'

/**
 * The `response` delta of an intermediate Ollama NDJSON line (`{...,"response":"...","done":false}`),
 * or undefined when the line needs a full parse. `"done":false}` closing the line is a top-level key.
 */
export function ollamaDelta(line: string): string | undefined {
  if (line.charCodeAt(0) !== 0x7b || !line.endsWith(OLLAMA_TAIL)) return undefined
  if (braces(line) !== 1 || line.includes('"error"')) return undefined
  return simpleValue(line, '"response":"')
}

/**
 * The `text` delta of an intermediate OpenAI-compatible completion chunk with one choice, no usage,
 * no error and `finish_reason: null`, or undefined when the chunk needs a full parse.
 */
export function completionDelta(data: string): string | undefined {
  if (data.charCodeAt(0) !== 0x7b || braces(data) !== 2) return undefined
  if (!data.includes('"finish_reason":null') || data.includes('"usage"') || data.includes('"error"'))
    return undefined
  if (!data.includes('"choices":[{')) return undefined
  return simpleValue(data, '"text":"')
}
