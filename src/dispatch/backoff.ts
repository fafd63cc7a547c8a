/**
 * Exponential backoff with jitter, openai-node's shape: base * 2^(attempt-1), capped, times a
 * factor in [0.75, 1] so synchronized clients spread out.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(exp * (1 - 0.25 * random()))
}
