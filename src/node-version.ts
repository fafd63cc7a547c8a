/**
 * The Node.js version check every public entry runs before anything else is loaded.
 *
 * undici 8 needs Node 22.19; on an older Node it fails while it is being loaded, with an error that
 * says nothing about versions (`Cannot read properties of undefined (reading 'bind')` on Node 20).
 * The published entries (`dist/index.js`, `dist/testing.js`, ...) are tiny files that import this
 * module first and the implementation second, so this check throws before undici is evaluated, in ESM
 * and in CommonJS alike (see tsup.config.ts: bundling it into the implementation would hoist undici's
 * import above it).
 * @module
 */

/** The oldest supported Node.js version: package.json `engines.node` (a test keeps the two equal). */
export const MIN_NODE_VERSION = '22.19.0'

/** `22.19.0` / `v22.19.0` -> one comparable number; null when it does not parse. */
function rank(version: string): number | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version)
  return m ? Number(m[1]) * 1e6 + Number(m[2]) * 1e3 + Number(m[3]) : null
}

/** True when `version` (e.g. `process.versions.node`) is at least {@link MIN_NODE_VERSION}. Unparsable: true. */
export function isSupportedNode(version: string): boolean {
  const have = rank(version)
  return have === null || have >= (rank(MIN_NODE_VERSION) as number)
}

/** The error an unsupported Node gets; `code` is stable. */
export function unsupportedNodeError(version: string): Error & { code: string } {
  const error = new Error(
    `llm-backend-router requires Node.js >=${MIN_NODE_VERSION} (package.json "engines"), but this is ` +
      `Node.js v${version.replace(/^v/, '')}. Upgrade Node.js to ${MIN_NODE_VERSION} or newer ` +
      '(its HTTP client, undici 8, does not load on older versions).',
  ) as Error & { code: string }
  error.name = 'UnsupportedNodeVersionError'
  error.code = 'UNSUPPORTED_NODE_VERSION'
  return error
}

/** Throws {@link unsupportedNodeError} on a Node.js older than {@link MIN_NODE_VERSION}; no-op elsewhere. */
export function assertSupportedNode(version: string | undefined = globalThis.process?.versions?.node): void {
  if (version !== undefined && !isSupportedNode(version)) throw unsupportedNodeError(version)
}

assertSupportedNode()
