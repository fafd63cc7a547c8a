/**
 * Transport-neutral answers. A stand-in's protocol logic returns an {@link Action}; the node:http
 * server and the msw adapter each know how to put one on the wire. Fault switches are applied here, as
 * transformations of an Action, so both transports inject exactly the same faults.
 * @module
 */
import type { FaultSpec } from '../types.js'

/** `content`: carries generated text; `final`: the stream's closing line(s); `meta`: anything else. */
export type FrameRole = 'meta' | 'content' | 'final'

/** One write on the wire, after an optional pause. */
export interface Frame {
  data: string | Uint8Array
  delayMs: number
  role: FrameRole
}

/** A response: status and headers (after `delayMs`), then frames, then an ending. */
export interface Reply {
  kind: 'reply'
  status: number
  /** Lower-case names. `content-length` is set for non-streamed bodies. */
  headers: Record<string, string>
  /** Pause before the status line is sent. */
  delayMs: number
  /** May be lazy (oversize bodies are generated as they are written). */
  frames: Iterable<Frame>
  /** True for NDJSON/SSE streams. */
  streaming: boolean
  /** `end`: finish normally; `reset`: reset the socket; `hang`: write nothing more, keep the socket open. */
  ending: 'end' | 'reset' | 'hang'
  /** Frames that replace the rest of a stream on `error-mid-stream` (protocol-specific). */
  midStreamError?: Frame[]
}

/** What to do with one request. `drop` closes the socket without a response. */
export type Action = Reply | { kind: 'hang' } | { kind: 'drop' }

/** A request as the protocol logic sees it, whatever the transport. */
export interface IncomingRequest {
  method: string
  path: string
  url: string
  headers: Record<string, string>
  rawBody: string
  /** Set by transports that see raw headers: a missing Content-Length is then meaningful (mlx answers 411). */
  checkContentLength?: boolean
}

const encoder = new TextEncoder()

function byteLength(data: string | Uint8Array): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
}

function toBytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : data
}

/** A complete, non-streamed body with its Content-Length. */
export function bodyReply(
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): Reply {
  return {
    kind: 'reply',
    status,
    headers: { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), ...headers },
    delayMs: 0,
    frames: body.length > 0 ? [{ data: body, delayMs: 0, role: 'final' }] : [],
    streaming: false,
    ending: 'end',
  }
}

/** A JSON body (`JSON.stringify(value)`). */
export function jsonReply(status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return bodyReply(status, 'application/json', JSON.stringify(value), headers)
}

/** A body with no content at all (204, 304). */
export function emptyReply(status: number, headers: Record<string, string> = {}): Reply {
  return { kind: 'reply', status, headers, delayMs: 0, frames: [], streaming: false, ending: 'end' }
}

/** A streamed body (no Content-Length). */
export function streamReply(
  status: number,
  headers: Record<string, string>,
  frames: Iterable<Frame>,
  extra: Partial<Pick<Reply, 'delayMs' | 'midStreamError'>> = {},
): Reply {
  return { kind: 'reply', status, headers, delayMs: 0, frames, streaming: true, ending: 'end', ...extra }
}

/** The nginx-style HTML error page used by the `500-html` fault. */
export const HTML_500 =
  '<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n' +
  '<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n'

/** A body of exactly `bytes` bytes that looks like the start of a JSON object, generated lazily. */
export function* oversizeFrames(bytes: number): Generator<Frame> {
  const head = '{"response":"'
  const tail = '"}'
  const piece = 64 * 1024
  const filler = Buffer.alloc(piece, 'x')
  if (bytes <= head.length + tail.length) {
    yield { data: '{}'.padEnd(bytes, ' ').slice(0, bytes), delayMs: 0, role: 'content' }
    return
  }
  yield { data: head, delayMs: 0, role: 'content' }
  let left = bytes - head.length - tail.length
  while (left > 0) {
    const n = Math.min(piece, left)
    yield { data: n === piece ? filler : filler.subarray(0, n), delayMs: 0, role: 'content' }
    left -= n
  }
  yield { data: tail, delayMs: 0, role: 'final' }
}

/** Keeps the frames up to and including the `n`-th content frame (meta frames before it too). */
function keepContent(frames: Iterable<Frame>, n: number): Frame[] {
  const out: Frame[] = []
  let content = 0
  for (const f of frames) {
    if (f.role === 'final') break
    if (f.role === 'content') {
      if (content >= n) break
      content++
    }
    out.push(f)
  }
  return out
}

/** The first half of a complete body, as one frame. */
function halfBody(frames: Iterable<Frame>): Frame[] {
  const parts: Uint8Array[] = []
  for (const f of frames) parts.push(toBytes(f.data))
  const all = Buffer.concat(parts)
  const half = all.subarray(0, Math.floor(all.byteLength / 2))
  return half.byteLength > 0 ? [{ data: half, delayMs: 0, role: 'content' }] : []
}

function* trickle(frames: Iterable<Frame>, chunkBytes: number, delayMs: number): Generator<Frame> {
  for (const f of frames) {
    const bytes = toBytes(f.data)
    let first = true
    for (let i = 0; i < bytes.byteLength; i += chunkBytes) {
      yield {
        data: bytes.subarray(i, i + chunkBytes),
        delayMs: (first ? f.delayMs : 0) + delayMs,
        role: f.role,
      }
      first = false
    }
  }
}

/**
 * Applies the "shape of the body" faults to a normal answer. Faults that replace the answer entirely
 * (`503`, `hang`, ...) are handled before the answer is computed, see `ServiceCore`.
 */
export function applyBodyFault(reply: Reply, fault: FaultSpec): Reply {
  const after = Math.max(0, fault.afterChunks ?? 1)
  switch (fault.type) {
    case 'slow':
      return { ...reply, delayMs: reply.delayMs + (fault.delayMs ?? 1000) }
    case 'trickle':
      return {
        ...reply,
        frames: trickle(reply.frames, Math.max(1, fault.chunkBytes ?? 16), fault.delayMs ?? 50),
      }
    case 'stall-body':
    case 'reset-mid-body': {
      const frames = reply.streaming ? keepContent(reply.frames, after) : halfBody(reply.frames)
      return { ...reply, frames, ending: fault.type === 'stall-body' ? 'hang' : 'reset' }
    }
    case 'cut-stream': {
      if (reply.streaming) return { ...reply, frames: [...reply.frames].filter((f) => f.role !== 'final') }
      const frames = halfBody(reply.frames)
      const length = frames.reduce((n, f) => n + byteLength(f.data), 0)
      return { ...reply, frames, headers: { ...reply.headers, 'content-length': String(length) } }
    }
    case 'error-mid-stream': {
      if (!reply.streaming || reply.midStreamError === undefined) return reply
      return { ...reply, frames: [...keepContent(reply.frames, after), ...reply.midStreamError] }
    }
    default:
      return reply
  }
}
