/** Path of a `node` older than `minVersion` (e.g. `22.19.0`) on PATH or in /usr/local/bin, /usr/bin; or null. */
export function findOldNode(minVersion: string): string | null
