import type { LLMRouter } from '../../src/router.js'
import type { RouterEvents } from '../../src/types.js'

/**
 * Every event the router emits, for tests that listen to all of them (leak and secrecy checks). Typed
 * as a record of every RouterEvents key, so a new event that is not listed here fails the typecheck.
 */
const ALL: Record<keyof RouterEvents, true> = {
  'circuit:close': true,
  'circuit:open': true,
  'config:failed': true,
  'config:fallback': true,
  'config:invalid-record': true,
  'config:loaded': true,
  'config:refreshed': true,
  'config:restored': true,
  'limit:refused': true,
  'limit:wait': true,
  'member:down': true,
  'member:drained': true,
  'member:undrained': true,
  'member:up': true,
  metric: true,
  'metrics:dropped': true,
  'metrics:flush-failed': true,
  'request:end': true,
  'request:fallback': true,
  'request:retry': true,
  'request:start': true,
  'sink:error': true,
  'store:fallback': true,
  'store:rejoined': true,
}
export const ROUTER_EVENTS = Object.keys(ALL) as (keyof RouterEvents)[]

/** Records every payload of one event, in order. */
export function collect<K extends keyof RouterEvents>(router: LLMRouter, event: K): RouterEvents[K][] {
  const out: RouterEvents[K][] = []
  router.on(event, (p) => out.push(p))
  return out
}
