/**
 * Turns a stand-in {@link Action} into what an msw resolver returns. msw can express delays, status,
 * headers, streamed bodies, a body that errors part-way and a network error; it cannot express a
 * refused port or a TCP reset precisely, which is why the node:http servers exist too.
 * @module
 */
import { HttpResponse } from 'msw'
import { delay } from '../core/delay.js'
import type { Action, Frame, IncomingRequest } from '../core/reply.js'
import type { ServiceCore } from '../core/service.js'

const NULL_BODY = new Set([101, 204, 205, 304])
const encoder = new TextEncoder()

/** Resolves when the signal aborts; never otherwise (a hung server). */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), { once: true })
  })
}

function bytes(data: Frame['data']): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : data
}

/** Reads an msw request into the transport-neutral shape. */
export async function toIncoming(request: Request): Promise<IncomingRequest> {
  const url = new URL(request.url)
  const method = request.method.toUpperCase()
  const rawBody = method === 'GET' || method === 'HEAD' ? '' : await request.text()
  const headers: Record<string, string> = {}
  request.headers.forEach((v, k) => {
    headers[k.toLowerCase()] = v
  })
  return { method, path: url.pathname, url: url.pathname + url.search, headers, rawBody }
}

/** Converts an Action into a Response (or a network error). */
export async function toResponse(action: Action, signal: AbortSignal): Promise<Response> {
  if (action.kind === 'drop') return HttpResponse.error()
  if (action.kind === 'hang') {
    await untilAborted(signal)
    return HttpResponse.error()
  }
  if (action.delayMs > 0) await delay(action.delayMs, signal)
  const init = { status: action.status, headers: action.headers }
  if (NULL_BODY.has(action.status)) return new HttpResponse(null, init)
  const frames = action.frames
  if (
    !action.streaming &&
    action.ending === 'end' &&
    Array.isArray(frames) &&
    frames.every((f) => f.delayMs === 0)
  ) {
    const body = Buffer.concat(frames.map((f) => bytes(f.data)))
    return new HttpResponse(body, init)
  }
  if (init.headers['content-length'] === undefined) {
    // The interceptor frames a body of unknown length by connection close, where a reset reads as a clean
    // end; chunked framing makes a cut body detectable, as it is on the node:http stand-ins.
    init.headers = { ...init.headers, 'transfer-encoding': 'chunked' }
  }
  const it = frames[Symbol.iterator]()
  const ending = action.ending
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = it.next()
      if (next.done === true) {
        if (ending === 'end') controller.close()
        else if (ending === 'reset') {
          await delay(15, signal)
          controller.error(Object.assign(new Error('socket reset by the stand-in'), { code: 'ECONNRESET' }))
        } else {
          await untilAborted(signal)
          controller.error(new Error('request aborted'))
        }
        return
      }
      if (next.value.delayMs > 0) await delay(next.value.delayMs, signal)
      controller.enqueue(bytes(next.value.data))
    },
  })
  return new HttpResponse(body, init)
}

/** An msw resolver that records, applies faults and answers from a stand-in core. */
export function resolverFor(core: ServiceCore): (info: { request: Request }) => Promise<Response> {
  return async ({ request }) => toResponse(core.handle(await toIncoming(request)), request.signal)
}
