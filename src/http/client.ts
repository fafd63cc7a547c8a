/**
 * The one stateless JSON-over-HTTP client for the admin API: `getJson` (config, with ETag
 * revalidation; src/config/admin-fetch.ts) and `postJson` (metric records; src/metrics/post.ts).
 * It never throws and never emits: every call ends in one `HttpOutcome`, and the caller turns that
 * into its own error code and message. Bodies are read to the end (up to a cap), so keep-alive
 * sockets are reused; `createAdminAgent` (./agent.ts) is the pool an owner can cut off at close.
 *
 * Why the abort is raced here: undici does not settle a request whose TCP connect is still pending
 * when its signal fires; it settles only when the connect finishes or times out (10 s by default).
 * A timeout or a `close()` must end the call at once, so the call races its own abort promise and,
 * when the abort wins, lets undici finish in the background and destroys whatever it returns.
 */
import { type Dispatcher, request } from 'undici'
import type { Clock } from '../internal/clock.js'
import { parseRetryAfter } from './retry-after.js'

/** How much of an error body is read (for the caller's message); the rest is discarded. */
export const ERROR_BODY_LIMIT = 64 * 1024

export interface HttpCallOptions {
  url: string
  dispatcher: Dispatcher
  clock: Clock
  /** Whole-call deadline: connect, headers and body. */
  timeoutMs: number
  /** Cap on a 2xx body; a larger one ends in `too-large`. */
  maxBodyBytes: number
  headers?: Readonly<Record<string, string>>
  /** Ends the call at once with `aborted` (e.g. the owner was closed). */
  signal?: AbortSignal
}

export interface GetJsonOptions extends HttpCallOptions {
  /** Sent as If-None-Match; a 304 then ends in `not-modified`. */
  etag?: string | null
}

export interface PostJsonOptions extends HttpCallOptions {
  /** The JSON text to send. */
  body: string
}

export type HttpOutcome =
  /** A 2xx with its body parsed as JSON (a leading BOM is ignored). */
  | { kind: 'json'; status: number; value: unknown; etag: string | null }
  /** A 2xx whose body is not JSON (an empty body included). */
  | { kind: 'not-json'; status: number; error: unknown }
  /** 304 to a request that sent If-None-Match. */
  | { kind: 'not-modified'; etag: string | null }
  /** Any other status; `text` is at most ERROR_BODY_LIMIT bytes of the body. */
  | { kind: 'status'; status: number; text: string; retryAfterMs: number | undefined }
  /** A 2xx body over `maxBodyBytes`; `detail` says how it was noticed. */
  | { kind: 'too-large'; status: number; detail: string }
  /** No response: refused, reset, DNS, TLS. `description` is `CODE: message`. */
  | { kind: 'network'; error: unknown; description: string }
  /** The response broke off while its body was being read. */
  | { kind: 'broken-body'; status: number; error: unknown; description: string }
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'aborted'; reason: unknown }

const noop = () => {}

/** `CODE: message` of a socket error, or its message. */
export function describeNetworkError(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code
    const message = (error as { message?: unknown }).message
    if (typeof code === 'string' && typeof message === 'string') return `${code}: ${message}`
    if (typeof message === 'string') return message
  }
  return String(error)
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  return Array.isArray(value) ? (value[0] ?? null) : value
}

/** Destroys a body nobody will read; the listener keeps undici's AbortError from going unhandled. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', noop)
  body.destroy()
}

const TIMED_OUT = Symbol('timeout')

/** Reads the body up to `limit` bytes. `truncate`: stop there (error bodies); else report too large. */
async function readBody(
  body: Dispatcher.ResponseData['body'],
  limit: number,
  truncate: boolean,
): Promise<{ text: string } | { tooLarge: true }> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buf = chunk as Buffer
    if (size + buf.length > limit) {
      discard(body)
      if (!truncate) return { tooLarge: true }
      chunks.push(buf.subarray(0, limit - size))
      size = limit
      break
    }
    size += buf.length
    chunks.push(buf)
  }
  return { text: Buffer.concat(chunks, size).toString('utf8') }
}

async function call(
  options: HttpCallOptions,
  method: 'GET' | 'POST',
  headers: Record<string, string>,
  body: string | undefined,
): Promise<HttpOutcome> {
  const { clock, timeoutMs } = options
  const controller = new AbortController()
  let settleAbort: (outcome: HttpOutcome) => void = noop
  const abortWins = new Promise<HttpOutcome>((resolve) => {
    settleAbort = resolve
  })
  const onAbort = () => {
    const reason: unknown = controller.signal.reason
    settleAbort(reason === TIMED_OUT ? { kind: 'timeout', timeoutMs } : { kind: 'aborted', reason })
  }
  controller.signal.addEventListener('abort', onAbort, { once: true })
  const outer = options.signal
  const forward = () => controller.abort(outer?.reason)
  if (outer?.aborted) return { kind: 'aborted', reason: outer.reason }
  outer?.addEventListener('abort', forward, { once: true })
  const timer = clock.setTimeout(() => controller.abort(TIMED_OUT), timeoutMs)

  let late: Dispatcher.ResponseData | null = null
  let done = false
  const work = (async (): Promise<HttpOutcome> => {
    let res: Dispatcher.ResponseData
    try {
      res = await request(options.url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        dispatcher: options.dispatcher,
        signal: controller.signal,
      })
    } catch (error) {
      return { kind: 'network', error, description: describeNetworkError(error) }
    }
    if (done) {
      // The abort already answered the caller; this response arrived after it.
      discard(res.body)
      return { kind: 'aborted', reason: controller.signal.reason }
    }
    late = res
    const status = res.statusCode
    const resHeaders = res.headers
    try {
      if (status === 304) {
        await res.body.dump({ limit: ERROR_BODY_LIMIT }).catch(noop)
        return { kind: 'not-modified', etag: headerValue(resHeaders.etag) }
      }
      if (status < 200 || status > 299) {
        const read = await readBody(res.body, ERROR_BODY_LIMIT, true).catch(() => ({ text: '' }))
        const retryAfterMs =
          status === 429 || status === 503
            ? parseRetryAfter(resHeaders['retry-after'], clock.now())
            : undefined
        return {
          kind: 'status',
          status,
          text: 'text' in read ? read.text : '',
          retryAfterMs,
        }
      }
      const max = options.maxBodyBytes
      const declared = Number(headerValue(resHeaders['content-length']) ?? Number.NaN)
      if (Number.isFinite(declared) && declared > max) {
        discard(res.body)
        return { kind: 'too-large', status, detail: `content-length ${declared}` }
      }
      const read = await readBody(res.body, max, false)
      if ('tooLarge' in read) return { kind: 'too-large', status, detail: `more than ${max} bytes received` }
      const text = read.text.charCodeAt(0) === 0xfeff ? read.text.slice(1) : read.text
      try {
        return {
          kind: 'json',
          status,
          value: JSON.parse(text),
          etag: headerValue(resHeaders.etag),
        }
      } catch (error) {
        return { kind: 'not-json', status, error }
      }
    } catch (error) {
      return { kind: 'broken-body', status, error, description: describeNetworkError(error) }
    }
  })()

  try {
    return await Promise.race([work, abortWins])
  } finally {
    done = true
    clock.clearTimeout(timer)
    controller.signal.removeEventListener('abort', onAbort)
    outer?.removeEventListener('abort', forward)
    if (controller.signal.aborted) {
      // Let undici finish in the background; destroy a response that still arrives.
      const pending = late as Dispatcher.ResponseData | null
      if (pending !== null) discard(pending.body)
      work.catch(noop)
    }
  }
}

/** GET `url` as JSON, with If-None-Match when `etag` is given. Never throws. */
export function getJson(options: GetJsonOptions): Promise<HttpOutcome> {
  const headers: Record<string, string> = { accept: 'application/json' }
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value
  if (options.etag) headers['if-none-match'] = options.etag
  return call(options, 'GET', headers, undefined)
}

/** POST `body` (JSON text) to `url`. Never throws. */
export function postJson(options: PostJsonOptions): Promise<HttpOutcome> {
  const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json' }
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value
  return call(options, 'POST', headers, options.body)
}
