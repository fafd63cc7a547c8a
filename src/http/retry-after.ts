/**
 * The one Retry-After parser (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
 */

/** Retry-After in ms from `nowMs`; undefined when absent or unparseable. A date in the past is 0. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (text === '') return undefined
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowMs)
}
