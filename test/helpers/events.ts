import type { RouterEvents } from '../../src/types.js'

/** Every event the router emits, for tests that listen to all of them (leak and secrecy checks). */
export const ROUTER_EVENTS: (keyof RouterEvents)[] = [
  'config:loaded',
  'config:refreshed',
  'config:failed',
  'config:fallback',
  'config:invalid-record',
  'request:start',
  'request:end',
  'request:retry',
  'request:fallback',
  'circuit:open',
  'circuit:close',
  'metric',
  'metrics:dropped',
  'metrics:flush-failed',
  'sink:error',
]
