/**
 * Incremental line splitting for the stream decoders, on bytes. A line feed byte never occurs inside a
 * multi-byte UTF-8 sequence, so lines are cut in the raw bytes and each complete line is decoded on its
 * own: a character split across chunks is whole again once its line is. Bytes of an unterminated line
 * are kept (copied: the caller may reuse its buffer) and joined once, when the line's `\n` arrives, so a
 * long line arriving over many chunks costs linear time.
 *
 * Why bytes (issue 16): servers send one HTTP chunk per token, so a 60-token answer is 60 chunks. A
 * streaming TextDecoder call per chunk, then slicing the decoded string (a two-byte string whenever the
 * text has a character above U+00FF), cost more client CPU than everything else the router does per
 * stream. Decoders with a learned frame shape (fast-frame.ts) read a plain delta line straight from its
 * bytes (`lineFrame`) and decode only the text value; every other line is decoded and handed to `onLine`.
 *
 * Decoding matches one `TextDecoder` over the whole body: invalid bytes become U+FFFD (decoding a line
 * alone gives the same characters, lines being cut at an ASCII byte), and a byte-order mark at the very
 * start of the body is dropped.
 */

import type { BackendOutput, StreamDecoder } from './types.js'

type OnText<Delta> = (delta: Delta) => void

const LF = 0x0a
const CR = 0x0d
const BOM = 0xfeff

/** The bytes of a chunk as a Buffer (a view, not a copy), for `indexOf` and `toString(enc, start, end)`. */
function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
}

/** `Delta` and `Out`: see StreamDecoder (generate decoders use the defaults: text strings, BackendOutput). */
export abstract class LineDecoder<Out = BackendOutput, Delta = string> implements StreamDecoder<Out, Delta> {
  /** Bytes of the unterminated line so far (copies), oldest first. */
  private partial: Buffer[] = []
  /** True until the first line was decoded: a byte-order mark there is dropped, as TextDecoder does. */
  private atBodyStart = true
  /** The first error thrown; later calls rethrow it rather than parse from a broken state. */
  private failure: unknown = undefined
  private failed = false
  /** Set once the protocol's final frame was seen; later bytes are ignored. */
  protected finished = false
  /**
   * True while end() handles what was left unterminated: a frame that fails to parse there was cut off
   * by the end of the body, which is a truncated stream (STREAM_ERROR), not a garbled one.
   */
  protected atEnd = false

  get done(): boolean {
    return this.finished
  }

  /** One line, without its `\n` or a trailing `\r`. */
  protected abstract onLine(line: string, onText: OnText<Delta>): void
  /** The body ended; flush any frame still pending (the unterminated last line was already passed to onLine). */
  protected abstract onEof(onText: OnText<Delta>): void
  /** The error for a body that ended before the final frame. */
  protected abstract truncated(): Error
  protected abstract output(): Out

  /**
   * Fast path for one complete line as bytes (`buf[start, end)`, without its `\n` or trailing `\r`):
   * return true when it was handled, and `onLine` does not see it. It must decline (return false) any
   * range holding a byte below 0x20: a chunk that ends in `\n` is offered whole before it is split, and
   * that rule is what proves such a range is one line. The default handles nothing.
   */
  protected lineFrame(_buf: Buffer, _start: number, _end: number, _onText: OnText<Delta>): boolean {
    return false
  }

  push(chunk: Uint8Array, onText: OnText<Delta>): void {
    if (this.failed) throw this.failure
    if (this.finished || chunk.length === 0) return
    try {
      this.scan(asBuffer(chunk), onText)
    } catch (error) {
      this.failed = true
      this.failure = error
      throw error
    }
  }

  end(onText: OnText<Delta>): Out {
    if (this.failed) throw this.failure
    try {
      if (!this.finished) {
        this.atEnd = true
        if (this.partial.length > 0) {
          const rest = this.takePending(null, 0, 0)
          this.line(rest, 0, rest.length, onText)
        }
        if (!this.finished) this.onEof(onText)
        if (!this.finished) throw this.truncated()
      }
      return this.output()
    } catch (error) {
      this.failed = true
      this.failure = error
      throw error
    }
  }

  private scan(buf: Buffer, onText: OnText<Delta>): void {
    const length = buf.length
    let start = 0
    if (this.partial.length === 0) {
      // The usual chunk: exactly one line (one token's frame). Offered whole, without a search for `\n`.
      if (buf[length - 1] === LF && this.lineFrame(buf, 0, lineEnd(buf, 0, length - 1), onText)) {
        this.atBodyStart = false
        return
      }
    } else {
      const nl = buf.indexOf(LF)
      if (nl === -1) {
        this.partial.push(Buffer.from(buf))
        return
      }
      const joined = this.takePending(buf, 0, nl)
      this.line(joined, 0, joined.length, onText)
      start = nl + 1
    }
    while (!this.finished && start < length) {
      const nl = buf.indexOf(LF, start)
      if (nl === -1) {
        this.partial.push(Buffer.from(buf.subarray(start)))
        return
      }
      this.line(buf, start, nl, onText)
      start = nl + 1
    }
  }

  /** The pending bytes followed by `buf[start, end)` (buf may be null), as one buffer; clears pending. */
  private takePending(buf: Buffer | null, start: number, end: number): Buffer {
    const parts = this.partial
    this.partial = []
    if (buf !== null && end > start) parts.push(buf.subarray(start, end))
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** One complete line `buf[start, end)`, its `\n` excluded: the fast path, else decoded for onLine. */
  private line(buf: Buffer, start: number, end: number, onText: OnText<Delta>): void {
    const stop = lineEnd(buf, start, end)
    if (this.lineFrame(buf, start, stop, onText)) {
      this.atBodyStart = false
      return
    }
    let text = buf.toString('utf8', start, stop)
    if (this.atBodyStart) {
      this.atBodyStart = false
      if (text.charCodeAt(0) === BOM) text = text.slice(1)
    }
    this.onLine(text, onText)
  }
}

/** End of the line `buf[start, end)` without a trailing `\r`. */
function lineEnd(buf: Buffer, start: number, end: number): number {
  return end > start && buf[end - 1] === CR ? end - 1 : end
}
