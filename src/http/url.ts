/**
 * URL helpers shared by everything that talks HTTP to an admin or a backend: one join, one redactor.
 */

/**
 * Appends `path` to the base URL's path, keeping any query string of the base after it
 * (`http://a/x?t=1` + `/p` = `http://a/x/p?t=1`), so an admin URL carrying a token still works.
 * A base that does not parse is joined as text.
 */
export function joinUrl(base: string, path: string): string {
  const suffix = path.startsWith('/') ? path : `/${path}`
  try {
    const url = new URL(base)
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`
    return url.toString()
  } catch {
    return `${base.replace(/\/+$/, '')}${suffix}`
  }
}

/**
 * A URL safe to put in messages, events and metrics: origin and path only. Credentials and the
 * query string are dropped, since either may carry a secret. A value that does not parse is never
 * echoed (it may be a mistyped secret).
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}`
  } catch {
    return '(unparseable URL)'
  }
}

/** Origin only (`scheme://host:port`), for messages that name a server rather than an endpoint. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(unparseable URL)'
  }
}
