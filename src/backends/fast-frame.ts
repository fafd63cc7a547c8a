/**
 * Fast path for the frames that make up almost all of a stream: a small JSON object carrying one text
 * delta, identical from frame to frame except for that text (and, for Ollama, a timestamp). After a
 * frame has been fully parsed and found to be a plain delta frame, its shape is learned: the exact
 * bytes before the text value and after it. A later frame with exactly that prefix and suffix, and a
 * value with no `"` or `\`, has the same JSON structure by construction (the value cannot close its
 * string early), so its text is the raw slice: no `JSON.parse`, which dominates a stream's client CPU.
 * Anything else (escapes, another shape, the final frame, errors, usage) falls back to a full parse.
 *
 * Kept because it pays: without it an OpenAI-compatible stream costs 1.10-1.35x the client CPU
 * (`npm run bench -- --only router-mlx-tokens,router-mlx-tokens-noframes`). Ollama NDJSON, whose lines
 * also vary in `created_at` (skipped via `varyingKey`), costs 1.06x (c=1) to 1.10x (c=64) without it,
 * whole answer in one packet; it was the top item of that stream's profile (issue 16).
 */

const QUOTE = '"'
const BACKSLASH = '\\'
const QUOTE_BYTE = 0x22
const BACKSLASH_BYTE = 0x5c
/** ASCII values up to this length are built in JS; a native decode call costs more than the loop. */
const SHORT_ASCII = 16

/** `buf[start, end)` equals `pattern`. */
function bytesAt(buf: Buffer, at: number, pattern: Buffer): boolean {
  const n = pattern.length
  for (let i = 0; i < n; i++) if (buf[at + i] !== pattern[i]) return false
  return true
}

/** UTF-8 text of `buf[start, end)`; `ascii`: every byte is below 0x80. */
function textOf(buf: Buffer, start: number, end: number, ascii: boolean): string {
  if (!ascii) return buf.toString('utf8', start, end)
  if (end - start > SHORT_ASCII) return buf.toString('latin1', start, end)
  let text = ''
  for (let i = start; i < end; i++) text += String.fromCharCode(buf[i]!)
  return text
}

/**
 * `frame.startsWith(pattern, at)`, as an O(1) slice compared with `===`. Measured on 60-frame streams,
 * this is 3–7x faster than the `startsWith` builtin and than a charCodeAt loop, both of which crawl
 * when the frame is a slice of a two-byte string (any chunk holding a character above U+00FF).
 */
function startsAt(frame: string, pattern: string, at: number): boolean {
  const n = pattern.length
  return at + n <= frame.length && frame.slice(at, at + n) === pattern
}

/** A learned shape: what `match` compares, as strings and as UTF-8 bytes. Never changed once made. */
interface Learned {
  /** Exact frame prefix up to the varying field's value, or up to the text value. */
  head: string
  /** With a varying field: from the closing quote of that field's value up to the text value. */
  mid: string | null
  /** Exact frame suffix after the text value (starts with its closing quote). */
  tail: string
  headBytes: Buffer
  midBytes: Buffer | null
  tailBytes: Buffer
}

/**
 * The last shape learned by any stream of one protocol. A new stream's FrameShape starts from it, so its
 * first line is read without JSON.parse too: a shape learned from any fully parsed frame proves the same
 * structure, whichever stream that frame came from. A stream to another model or server simply does not
 * match it, parses, and learns its own (which then becomes the memo).
 */
export class ShapeMemo {
  last: Learned | null = null
}

export class FrameShape {
  private shape: Learned | null

  /**
   * @param marker the text field as it appears before its value, e.g. `"text":"`
   * @param varyingKey a string field whose value changes per frame (Ollama's `created_at`), skipped when matching
   * @param memo shared with the other streams of the same protocol (see ShapeMemo); none: start unlearned
   */
  constructor(
    private readonly marker: string,
    private readonly varyingKey: string | null = null,
    private readonly memo: ShapeMemo | null = null,
  ) {
    this.shape = memo?.last ?? null
  }

  /** The text of a frame shaped like the learned one, or undefined when it needs a full parse. */
  match(frame: string): string | undefined {
    const shape = this.shape
    if (shape === null || !startsAt(frame, shape.head, 0)) return undefined
    let start = shape.head.length
    if (shape.mid !== null) {
      const q = frame.indexOf(QUOTE, start)
      if (q === -1 || !startsAt(frame, shape.mid, q)) return undefined
      start = q + shape.mid.length
    }
    const end = frame.length - shape.tail.length
    if (end < start || !startsAt(frame, shape.tail, end)) return undefined
    // One forward scan covers the skipped field and the value: an escape anywhere means a full parse.
    if (frame.indexOf(BACKSLASH, shape.head.length) !== -1) return undefined
    const value = frame.slice(start, end)
    return value.includes(QUOTE) ? undefined : value
  }

  /**
   * `match` on the undecoded bytes `buf[start, end)` of one frame. It also declines any byte below 0x20
   * (JSON forbids them unescaped in strings, and it proves to the line splitter that the range holds no
   * `\n`: lines.ts), so a range it accepts is one frame whatever the chunking; only the text is decoded.
   */
  matchBytes(buf: Buffer, start: number, end: number): string | undefined {
    const shape = this.shape
    if (shape === null) return undefined
    const head = shape.headBytes
    const tail = shape.tailBytes
    const mid = shape.midBytes
    if (end - start < head.length + tail.length || !bytesAt(buf, start, head)) return undefined
    let i = start + head.length
    if (mid !== null) {
      // The varying value (a timestamp): up to its closing quote, which starts `mid`.
      for (; ; i++) {
        if (i >= end) return undefined
        const b = buf[i]!
        if (b === QUOTE_BYTE) break
        if (b === BACKSLASH_BYTE || b < 0x20) return undefined
      }
      if (i + mid.length > end || !bytesAt(buf, i, mid)) return undefined
      i += mid.length
    }
    const valueEnd = end - tail.length
    if (valueEnd < i || !bytesAt(buf, valueEnd, tail)) return undefined
    let ascii = true
    for (let k = i; k < valueEnd; k++) {
      const b = buf[k]!
      if (b < 0x20 || b === QUOTE_BYTE || b === BACKSLASH_BYTE) return undefined
      if (b >= 0x80) ascii = false
    }
    return textOf(buf, i, valueEnd, ascii)
  }

  /** Call after a full parse found `frame` to be a plain delta frame whose text is `value`. */
  learn(frame: string, value: string): void {
    this.shape = null
    if (frame.includes(BACKSLASH)) return
    const token = `${this.marker}${value}${QUOTE}`
    const at = frame.indexOf(token)
    if (at === -1 || frame.indexOf(token, at + 1) !== -1) return
    const valueStart = at + this.marker.length
    let head = frame.slice(0, valueStart)
    let mid: string | null = null
    if (this.varyingKey !== null) {
      const key = `${QUOTE}${this.varyingKey}":"`
      const k = head.indexOf(key)
      if (k !== -1) {
        const q = head.indexOf(QUOTE, k + key.length)
        if (q === -1) return
        mid = head.slice(q)
        head = head.slice(0, k + key.length)
      }
    }
    const tail = frame.slice(valueStart + value.length)
    const last = this.memo?.last
    if (last != null && last.head === head && last.mid === mid && last.tail === tail) {
      this.shape = last
      return
    }
    this.shape = {
      head,
      mid,
      tail,
      headBytes: Buffer.from(head),
      midBytes: mid === null ? null : Buffer.from(mid),
      tailBytes: Buffer.from(tail),
    }
    if (this.memo !== null) this.memo.last = this.shape
  }
}
