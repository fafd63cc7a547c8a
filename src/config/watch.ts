/**
 * `admin.watchPath`: a server-sent-events change stream on the admin. Any event (a block of fields
 * ended by a blank line; `:` comments are keep-alives and do not count) means "refetch now", so a
 * change is applied within a round trip instead of at the next TTL. The stream is reconnected with
 * backoff (1 s doubling to 30 s, reset once a stream delivered an event) and polling by TTL goes on
 * regardless, so a broken stream only costs the speed-up. It has its own pool (./http/agent.ts), so
 * `close()` cuts it off even while its connect hangs.
 */
import { request } from 'undici'
import { createAdminAgent } from '../http/agent.js'
import { joinUrl } from '../http/url.js'
import type { Clock } from '../internal/clock.js'

export interface WatchOptions {
  adminUrl: string
  watchPath: string
  headers: Readonly<Record<string, string>>
  /** Limit for the stream's connect and headers (the body has none: it stays open). */
  timeoutMs: number
  clock: Clock
  /** Called on every event. */
  onChange(): void
}

export interface Watch {
  close(): Promise<void>
}

const MIN_BACKOFF_MS = 1000
const MAX_BACKOFF_MS = 30_000

export function watchAdmin(options: WatchOptions): Watch {
  const pool = createAdminAgent(options.timeoutMs)
  const controller = new AbortController()
  const url = joinUrl(options.adminUrl, options.watchPath)
  let backoff = MIN_BACKOFF_MS
  let timer: unknown = null

  const schedule = () => {
    if (controller.signal.aborted) return
    timer = options.clock.setTimeout(() => {
      timer = null
      void connect()
    }, backoff)
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)
  }

  const connect = async () => {
    try {
      const res = await request(url, {
        dispatcher: pool.dispatcher,
        headers: { ...options.headers, accept: 'text/event-stream', 'cache-control': 'no-cache' },
        headersTimeout: options.timeoutMs,
        bodyTimeout: 0,
        signal: controller.signal,
      })
      const type = String(res.headers['content-type'] ?? '')
      if (res.statusCode !== 200 || !type.startsWith('text/event-stream')) {
        res.body.resume()
        schedule()
        return
      }
      res.body.setEncoding('utf8')
      let buffer = ''
      let fields = false
      for await (const chunk of res.body as AsyncIterable<string>) {
        buffer += chunk
        let nl = buffer.search(/\r\n|\r|\n/)
        while (nl !== -1) {
          const line = buffer.slice(0, nl)
          buffer = buffer.slice(buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? nl + 2 : nl + 1)
          if (line === '') {
            if (fields) {
              fields = false
              backoff = MIN_BACKOFF_MS
              try {
                options.onChange()
              } catch {
                // The router's refresh never throws here; a bug must not end the stream.
              }
            }
          } else if (!line.startsWith(':')) fields = true
          nl = buffer.search(/\r\n|\r|\n/)
        }
        if (buffer.length > 64 * 1024) buffer = ''
      }
    } catch {
      // Refused, reset, timed out or closed: try again later (or stop, when closed).
    }
    schedule()
  }

  void connect()
  return {
    async close() {
      controller.abort()
      if (timer !== null) options.clock.clearTimeout(timer)
      await pool.destroy()
    },
  }
}
