/**
 * Incremental line splitting for the stream decoders. Bytes go through one streaming TextDecoder, so a
 * multi-byte UTF-8 character split across chunks decodes correctly; each decoded chunk is scanned once
 * for `\n`, and only the unterminated tail is kept. A long line arriving over many chunks grows the tail
 * by string concatenation (a V8 rope) and is flattened once, when its newline arrives: linear overall.
 */

import type { BackendOutput, StreamDecoder } from './types.js'

type OnText<Delta> = (delta: Delta) => void

const STREAM = { stream: true } as const
const CR = 0x0d

/** `Delta` and `Out`: see StreamDecoder (generate decoders use the defaults: text strings, BackendOutput). */
export abstract class LineDecoder<Out = BackendOutput, Delta = string> implements StreamDecoder<Out, Delta> {
  private readonly decoder = new TextDecoder()
  private tail = ''
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

  push(chunk: Uint8Array, onText: OnText<Delta>): void {
    if (this.failed) throw this.failure
    if (this.finished) return
    try {
      this.scan(this.decoder.decode(chunk, STREAM), onText)
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
        const rest = this.tail + this.decoder.decode()
        this.tail = ''
        if (rest.length > 0) this.emit(rest, onText)
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

  private scan(text: string, onText: OnText<Delta>): void {
    let nl = text.indexOf('\n')
    if (nl === -1) {
      if (text.length > 0) this.tail = this.tail.length === 0 ? text : this.tail + text
      return
    }
    let line = text.slice(0, nl)
    if (this.tail.length > 0) {
      line = this.tail + line
      this.tail = ''
    }
    this.emit(line, onText)
    let start = nl + 1
    while (!this.finished) {
      nl = text.indexOf('\n', start)
      if (nl === -1) {
        if (start < text.length) this.tail = text.slice(start)
        return
      }
      this.emit(text.slice(start, nl), onText)
      start = nl + 1
    }
  }

  private emit(line: string, onText: OnText<Delta>): void {
    const last = line.length - 1
    this.onLine(last >= 0 && line.charCodeAt(last) === CR ? line.slice(0, last) : line, onText)
  }
}
