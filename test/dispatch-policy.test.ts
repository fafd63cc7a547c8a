/**
 * The failure policy as a table: classified failure + attempt number + time left + policy -> retry
 * after N ms | next candidate | fail with which error. Pure functions, no network, no timers.
 */
import { describe, expect, it } from 'vitest'
import { networkError } from '../src/dispatch/classify.js'
import {
  chargesCircuit,
  classifyFailure,
  type Decision,
  decide,
  type Failure,
  STALE_SOCKET_WINDOW_MS,
} from '../src/dispatch/policy.js'
import { type ErrorCode, hasErrorCode, RouterError } from '../src/errors.js'

const RETRY = { maxRetries: 2, baseDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60_000 }
const WHERE = { model: 'm', backend: 'mlx' as const, endpoint: 'http://127.0.0.1:8080' }

function err(code: ErrorCode, extra: { retryAfterMs?: number } = {}): RouterError {
  return new RouterError(code, `${code} happened`, { ...WHERE, ...extra })
}

function failure(error: RouterError, over: Partial<Failure> = {}): Failure {
  return { error, stopped: false, staleSocket: false, ...over }
}

function run(f: Failure, attempt = 1, timeLeftMs = 100_000, delivered = 0): Decision {
  return decide({
    failure: f,
    attempt,
    timeLeftMs,
    delivered,
    retry: RETRY,
    random: () => 0,
    where: WHERE,
    deadlineMs: 120_000,
  })
}

type Row = [name: string, f: Failure, attempt: number, timeLeft: number, delivered: number, expected: string]

const ROWS: Row[] = [
  // Transient server trouble: retried with backoff (500 ms, 1000 ms at random 0), then the next candidate.
  ['503, first attempt', failure(err('BACKEND_BUSY')), 1, 100_000, 0, 'retry 500'],
  ['503, second attempt', failure(err('BACKEND_BUSY')), 2, 100_000, 0, 'retry 1000'],
  ['503, retries used up', failure(err('BACKEND_BUSY')), 3, 100_000, 0, 'next'],
  ['5xx, backoff longer than the time left', failure(err('BACKEND_ERROR')), 1, 400, 0, 'next'],
  [
    '429 with Retry-After 2 s',
    failure(err('RATE_LIMITED', { retryAfterMs: 2000 })),
    1,
    100_000,
    0,
    'retry 2000',
  ],
  [
    '429 Retry-After over the cap',
    failure(err('RATE_LIMITED', { retryAfterMs: 3_600_000 })),
    1,
    100_000,
    0,
    'next',
  ],
  // Not worth a retry on the same endpoint, another backend may do.
  ['refused', failure(err('BACKEND_UNREACHABLE')), 1, 100_000, 0, 'next'],
  ['model missing there', failure(err('MODEL_NOT_FOUND')), 1, 100_000, 0, 'next'],
  ['per-attempt limit fired', failure(err('TIMEOUT')), 1, 100_000, 0, 'next'],
  ['stream error before any text', failure(err('STREAM_ERROR')), 1, 100_000, 0, 'next'],
  ['circuit open', failure(err('CIRCUIT_OPEN')), 1, 100_000, 0, 'next'],
  // A stale keep-alive socket: replayed at once, once.
  ['stale socket', failure(err('BACKEND_UNREACHABLE'), { staleSocket: true }), 1, 100_000, 0, 'retry 0'],
  // The caller's own fault or choice: fail with that error.
  ['400', failure(err('BAD_REQUEST')), 1, 100_000, 0, 'fail BAD_REQUEST'],
  ['aborted', failure(err('ABORTED'), { stopped: true }), 1, 100_000, 0, 'fail ABORTED'],
  ['overall deadline', failure(err('TIMEOUT'), { stopped: true }), 1, 0, 0, 'fail TIMEOUT'],
  ['closed', failure(err('CLOSED'), { stopped: true }), 1, 100_000, 0, 'fail CLOSED'],
  // Text already delivered: nothing is resumed elsewhere, whatever the failure.
  ['stream error after text', failure(err('STREAM_ERROR')), 1, 100_000, 12, 'fail STREAM_INTERRUPTED'],
  ['idle stall after text', failure(err('TIMEOUT')), 1, 100_000, 12, 'fail STREAM_INTERRUPTED'],
  ['503 after text', failure(err('BACKEND_BUSY')), 1, 100_000, 12, 'fail STREAM_INTERRUPTED'],
  [
    'abort after text keeps ABORTED',
    failure(err('ABORTED'), { stopped: true }),
    1,
    100_000,
    12,
    'fail ABORTED',
  ],
]

function show(d: Decision): string {
  if (d.action === 'retry') return `retry ${d.delayMs}`
  if (d.action === 'next') return 'next'
  return `fail ${d.error.code}`
}

describe('decide()', () => {
  it.each(ROWS)('%s -> %s', (_name, f, attempt, timeLeft, delivered, expected) => {
    expect(show(run(f, attempt, timeLeft, delivered))).toBe(expected)
  })

  it('builds the errors it fails with: deadline message, STREAM_INTERRUPTED with delivered and cause', () => {
    const timeout = run(failure(err('TIMEOUT'), { stopped: true }), 1, 0, 5)
    expect(timeout.action === 'fail' && timeout.error.message).toContain('120000 ms deadline')
    expect(timeout.action === 'fail' && timeout.error.delivered).toBe(5)
    const cause = err('STREAM_ERROR')
    const cut = run(failure(cause), 1, 100_000, 7)
    if (cut.action !== 'fail') throw new Error('expected fail')
    expect(cut.error).toMatchObject({ code: 'STREAM_INTERRUPTED', delivered: 7, endpoint: WHERE.endpoint })
    expect(cut.error.cause).toBe(cause)
  })
})

describe('chargesCircuit()', () => {
  it.each([
    ['BACKEND_ERROR', {}, true],
    ['BACKEND_UNREACHABLE', {}, true],
    ['TIMEOUT', {}, true],
    ['BACKEND_UNREACHABLE', { staleSocket: true }, false],
    // The caller's deadline or abort is the caller's: never charged.
    ['TIMEOUT', { stopped: true }, false],
    ['ABORTED', { stopped: true }, false],
    ['RATE_LIMITED', {}, false],
    ['BAD_REQUEST', {}, false],
    ['MODEL_NOT_FOUND', {}, false],
  ] as const)('%s %j -> %s', (code, over, charged) => {
    expect(chargesCircuit(failure(err(code), over))).toBe(charged)
  })
})

describe('classifyFailure()', () => {
  const reset = (reused: boolean | undefined) => {
    const cause = Object.assign(new Error('other side closed'), {
      code: 'UND_ERR_SOCKET',
      ...(reused === undefined ? {} : { socket: { bytesRead: reused ? 1234 : 0 } }),
    })
    return networkError(cause, false, WHERE)
  }

  it('a reset before any response is a stale socket only on a reused socket, fast, on the first attempt', () => {
    expect(classifyFailure(reset(true), null, 1, 5).staleSocket).toBe(true)
    expect(classifyFailure(reset(undefined), null, 1, 5).staleSocket).toBe(true)
    // A fresh connection dropped: the server refused this very request.
    expect(classifyFailure(reset(false), null, 1, 5).staleSocket).toBe(false)
    // A crash after a long generation (mlx_lm.server sends headers only at the end): not replayed.
    expect(classifyFailure(reset(true), null, 1, STALE_SOCKET_WINDOW_MS + 60_000).staleSocket).toBe(false)
    expect(classifyFailure(reset(true), null, 2, 5).staleSocket).toBe(false)
  })

  it('a stopped request is classified by its stop reason', () => {
    const stop = err('ABORTED')
    const f = classifyFailure(err('BACKEND_ERROR'), stop, 1, 5)
    expect(f).toEqual({ error: stop, stopped: true, staleSocket: false })
  })
})

describe('RouterError.withDetails() and hasErrorCode()', () => {
  it('withDetails copies every field and replaces only what it is given', () => {
    const cause = new Error('root')
    const e = new RouterError('BACKEND_BUSY', 'busy', { ...WHERE, cause, status: 503, retryAfterMs: 5 })
    const f = e.withDetails({ delivered: 3, message: 'busier' })
    expect(f).toMatchObject({
      code: 'BACKEND_BUSY',
      message: 'busier',
      status: 503,
      retryAfterMs: 5,
      delivered: 3,
    })
    expect(f.cause).toBe(cause)
    expect(f.endpoint).toBe(WHERE.endpoint)
    expect(e.withDetails({ cause: undefined }).cause).toBeUndefined()
  })

  const attempt = (code: ErrorCode, endpoint = WHERE.endpoint) => ({
    model: 'm',
    backend: 'mlx' as const,
    endpoint,
    attempt: 1,
    ok: false,
    latencyMs: 1,
    code,
  })

  it('sees the code of the only candidate through ALL_BACKENDS_FAILED', () => {
    const only = new RouterError('ALL_BACKENDS_FAILED', 'all failed', {
      cause: err('MODEL_NOT_FOUND'),
      attempts: [attempt('MODEL_NOT_FOUND')],
    })
    expect(hasErrorCode(only, 'ALL_BACKENDS_FAILED')).toBe(true)
    expect(hasErrorCode(only, 'MODEL_NOT_FOUND')).toBe(true)
    expect(hasErrorCode(only, 'BACKEND_BUSY')).toBe(false)
    // One target retried: its last failure decides.
    const retried = new RouterError('ALL_BACKENDS_FAILED', 'all failed', {
      cause: err('BACKEND_ERROR'),
      attempts: [attempt('BACKEND_BUSY'), attempt('BACKEND_ERROR')],
    })
    expect(hasErrorCode(retried, 'BACKEND_ERROR')).toBe(true)
    // Two targets failing differently: neither code speaks for the request.
    const mixed = new RouterError('ALL_BACKENDS_FAILED', 'all failed', {
      cause: err('BACKEND_UNREACHABLE'),
      attempts: [attempt('MODEL_NOT_FOUND'), attempt('BACKEND_UNREACHABLE', 'http://127.0.0.1:11434')],
    })
    expect(hasErrorCode(mixed, 'MODEL_NOT_FOUND')).toBe(false)
    expect(hasErrorCode(mixed, 'BACKEND_UNREACHABLE')).toBe(false)
    expect(hasErrorCode(new Error('x'), 'TIMEOUT')).toBe(false)
  })
})
