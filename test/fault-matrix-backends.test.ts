/**
 * Fault matrix, backends: every wire fault the testing kit can inject, against the real node:http
 * stand-ins on 127.0.0.1, for both backend kinds, generate and stream, with one candidate and with a
 * second candidate to fall over to. Each row asserts what a caller relies on: the error code (or the
 * fallback), the virtual time it took, exactly one metric, and no sockets or timers left after close().
 *
 * Time is a ManualClock: it moves only when a row advances it, by exactly the waits the row expects
 * (a deadline, a Retry-After, a backoff), once the router has set that timer. Real time only bounds
 * how long the test waits for the router to get there, so a busy machine cannot fire a deadline.
 *
 * The README's "fault -> behaviour" table mirrors the ROWS below.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ErrorCode } from '../src/errors.js'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import {
  type FaultSpec,
  type OllamaServer,
  type OpenAIServer,
  startOllamaServer,
  startOpenAIServer,
} from '../src/testing/index.js'
import type { GenerateResult, MetricRecord } from '../src/types.js'
import { collect } from './helpers/events.js'
import { LeakCheck } from './helpers/leaks.js'
import { ManualClock, until } from './helpers/manual-clock.js'

/** Deadline (virtual ms) of rows whose expected outcome is TIMEOUT. */
const SHORT_DEADLINE = 3000
/** Deadline (virtual ms) of every other row, far above what they wait. */
const LONG_DEADLINE = 60_000
/** The default retry backoff (500 ms base, doubling) at ManualClock's jitter of 0.5: 500 * 0.875, 1000 * 0.875. */
const BACKOFF = [438, 875]
const MAX_RESPONSE_BYTES = 16 * 1024

type Kind = 'ollama' | 'mlx'
type Mode = 'generate' | 'stream'

/** What a request with a single candidate ends with. */
type Outcome =
  | { ok: true }
  | {
      ok: false
      code: ErrorCode
      /** Codes of the attempts, in order. */
      attempts: ErrorCode[]
      /** Stream rows: text was delivered before the failure. */
      delivered?: boolean
    }

type PerKind<T> = T | { ollama: T; mlx: T }
type PerMode<T> = T | { generate: PerKind<T>; stream: PerKind<T> }

interface Row {
  name: string
  fault: (clock: { now(): number }) => FaultSpec
  outcome: PerMode<Outcome>
  /** Retry waits the router must take (virtual ms), checked on `request:retry` events. */
  retryDelays?: (delays: number[]) => void
  timeoutMs?: number
  /**
   * The waits (virtual ms) the request takes, in order; each is advanced once the router has set
   * that timer. Default: the backoff between the retried attempts of the single-candidate outcome.
   */
  waits?: number[]
}

const fail = (code: ErrorCode, attempts: ErrorCode[], delivered?: boolean): Outcome =>
  delivered === undefined ? { ok: false, code, attempts } : { ok: false, code, attempts, delivered }
const all = (...attempts: ErrorCode[]): Outcome => fail('ALL_BACKENDS_FAILED', attempts)
const times = (n: number, code: ErrorCode): ErrorCode[] => Array.from({ length: n }, () => code)

const ROWS: Row[] = [
  {
    name: 'refused port',
    fault: () => ({ type: 'down' }),
    outcome: all('BACKEND_UNREACHABLE'),
  },
  {
    name: 'accepts and never answers',
    fault: () => ({ type: 'hang' }),
    outcome: fail('TIMEOUT', ['TIMEOUT']),
    timeoutMs: SHORT_DEADLINE,
    waits: [SHORT_DEADLINE],
  },
  {
    name: 'headers, then a stalled body',
    fault: () => ({ type: 'stall-body' }),
    outcome: {
      generate: fail('TIMEOUT', ['TIMEOUT']),
      stream: fail('TIMEOUT', ['TIMEOUT'], true),
    },
    timeoutMs: SHORT_DEADLINE,
    waits: [SHORT_DEADLINE],
  },
  {
    name: 'reset mid-body',
    fault: () => ({ type: 'reset-mid-body' }),
    outcome: {
      generate: all('BACKEND_UNREACHABLE'),
      stream: {
        ollama: fail('STREAM_INTERRUPTED', ['BACKEND_UNREACHABLE'], true),
        // mlx_lm.server streams end with the connection, so a reset reads as a stream without its end.
        mlx: fail('STREAM_INTERRUPTED', ['STREAM_ERROR'], true),
      },
    },
  },
  {
    name: '500 with an HTML body',
    fault: () => ({ type: '500-html' }),
    outcome: all(...times(3, 'BACKEND_ERROR')),
  },
  {
    name: '503 busy',
    fault: () => ({ type: '503' }),
    outcome: all(...times(3, 'BACKEND_BUSY')),
  },
  {
    name: '429, Retry-After in seconds',
    fault: () => ({ type: '429', retryAfter: 2 }),
    outcome: all(...times(3, 'RATE_LIMITED')),
    retryDelays: (d) => expect(d).toEqual([2000, 2000]),
    waits: [2000, 2000],
  },
  {
    name: '429, Retry-After as an HTTP-date',
    fault: (clock) => ({ type: '429', retryAfter: new Date(clock.now() + 4000).toUTCString() }),
    outcome: all(...times(3, 'RATE_LIMITED')),
    retryDelays: (d) => {
      expect(d).toHaveLength(2)
      // The date has 1 s resolution: on a moving clock about 3-4 s, then whatever is left.
      expect(d[0]).toBeGreaterThan(1000)
      expect(d[0]).toBeLessThanOrEqual(4000)
      expect(d[1]).toBeGreaterThanOrEqual(0)
      expect(d[1]).toBeLessThanOrEqual(d[0]!)
      // The clock stands still between the 429s: the full 4 s, then nothing left to wait.
      expect(d).toEqual([4000, 0])
    },
    // A wait of 0 retries at once, without a timer.
    waits: [4000],
  },
  {
    name: '429, Retry-After above retry.maxRetryAfterMs',
    fault: () => ({ type: '429', retryAfter: 3600 }),
    outcome: all('RATE_LIMITED'),
    retryDelays: (d) => expect(d).toEqual([]),
    waits: [],
  },
  {
    name: '404 model not found',
    fault: () => ({ type: '404-model' }),
    outcome: all('MODEL_NOT_FOUND'),
  },
  {
    name: '400 bad request',
    fault: () => ({ type: '400' }),
    outcome: fail('BAD_REQUEST', ['BAD_REQUEST']),
  },
  {
    name: 'invalid JSON',
    fault: () => ({ type: 'invalid-json' }),
    outcome: all('MALFORMED_RESPONSE'),
  },
  {
    name: 'body far over maxResponseBytes',
    fault: () => ({ type: 'oversize', bytes: 4 * 1024 * 1024 }),
    outcome: all('RESPONSE_TOO_LARGE'),
  },
  {
    name: 'stream cut without its final line',
    fault: () => ({ type: 'cut-stream' }),
    outcome: {
      // Non-stream answers: half the JSON body with a matching Content-Length.
      generate: all('MALFORMED_RESPONSE'),
      stream: fail('STREAM_INTERRUPTED', ['STREAM_ERROR'], true),
    },
  },
  {
    name: 'error line mid-stream',
    fault: () => ({ type: 'error-mid-stream' }),
    outcome: {
      // Non-stream requests get the server's pre-stream error: Ollama 500, mlx a dropped socket.
      generate: { ollama: all(...times(3, 'BACKEND_ERROR')), mlx: all('BACKEND_UNREACHABLE') },
      stream: fail('STREAM_INTERRUPTED', ['STREAM_ERROR'], true),
    },
  },
  {
    name: 'very slow trickle, past the deadline',
    fault: () => ({ type: 'trickle', chunkBytes: 16, delayMs: 20 }),
    outcome: fail('TIMEOUT', ['TIMEOUT']),
    timeoutMs: SHORT_DEADLINE,
    waits: [SHORT_DEADLINE],
  },
  {
    name: 'slow trickle within the deadline',
    fault: () => ({ type: 'trickle', chunkBytes: 256, delayMs: 2 }),
    outcome: { ok: true },
  },
  {
    name: 'headers later than the deadline',
    fault: () => ({ type: 'slow', delayMs: 2000 }),
    outcome: fail('TIMEOUT', ['TIMEOUT']),
    timeoutMs: SHORT_DEADLINE,
    waits: [SHORT_DEADLINE],
  },
  {
    name: 'socket dropped without a response',
    fault: () => ({ type: 'drop-socket' }),
    // A fresh connection dropped before any response is not replayed: only a reused keep-alive socket
    // failing fast is (the server may have crashed on this very request).
    outcome: all('BACKEND_UNREACHABLE'),
  },
]

function pick<T extends object>(value: PerKind<T>, kind: Kind): T {
  return 'ollama' in value && 'mlx' in value ? (value as { ollama: T; mlx: T })[kind] : (value as T)
}

function outcomeOf(row: Row, kind: Kind, mode: Mode): Outcome {
  const o = row.outcome
  const perMode = 'generate' in o && 'stream' in o ? o[mode] : (o as PerKind<Outcome>)
  return pick(perMode, kind)
}

/** With a second candidate: an outcome, or success after the first candidate's failed attempts. */
type Expected = Exclude<Outcome, { ok: true }> | { ok: true; after?: ErrorCode[] }

/**
 * The failure policy applied to a second candidate: what falls over (ALL_BACKENDS_FAILED with one
 * candidate) succeeds on the next one; everything else ends the request as before.
 */
function withSecondCandidate(single: Outcome): Expected {
  if (single.ok || single.code !== 'ALL_BACKENDS_FAILED') return single
  return { ok: true, after: single.attempts }
}

let ollama: OllamaServer
let mlx: OpenAIServer
beforeAll(async () => {
  ollama = await startOllamaServer()
  mlx = await startOpenAIServer()
})
afterAll(async () => {
  await Promise.all([ollama.stop(), mlx.stop()])
})

let router: LLMRouter | null = null
afterEach(async () => {
  await router?.close()
  router = null
  await Promise.all([ollama.clearFault(), mlx.clearFault()])
  ollama.reset()
  mlx.reset()
})

interface Run {
  result: GenerateResult | null
  error: (Error & { code: ErrorCode; attempts: { code?: ErrorCode }[]; delivered?: number }) | null
  text: string
  /** Virtual time from the start of the request to its end. */
  virtualMs: number
}

/** What a running request has done so far, for the driver that advances the clock. */
interface Progress {
  text: string
  settled: boolean
}

async function run(
  r: LLMRouter,
  clock: ManualClock,
  mode: Mode,
  req: Parameters<LLMRouter['generate']>[0],
  progress: Progress,
): Promise<Run> {
  const t0 = clock.now()
  const end = (): number => {
    progress.settled = true
    return clock.now() - t0
  }
  try {
    let result: GenerateResult
    if (mode === 'generate') {
      result = await r.generate(req)
      progress.text = result.response
    } else {
      const s = r.stream(req)
      for await (const c of s) progress.text += c.text
      result = await s.result
    }
    return { result, error: null, text: progress.text, virtualMs: end() }
  } catch (error) {
    return { result: null, error: error as Run['error'], text: progress.text, virtualMs: end() }
  }
}

/**
 * Advances `clock` through `waits`, each once the router has set that timer. A request must still
 * be running before each step: a deadline that fired early, or a wait the router skipped, fails here.
 */
async function drive(clock: ManualClock, waits: readonly number[], progress: Progress, textFirst: boolean) {
  for (const ms of waits) {
    // A stall after some text: advance only once that text has reached the caller.
    if (textFirst && ms === waits.at(-1)) await until(() => progress.text.length > 0, 'text before the stall')
    await clock.untilTimer(ms)
    expect(progress.settled).toBe(false)
    clock.advance(ms)
  }
}

const generationRequests = (s: OllamaServer | OpenAIServer) =>
  s.requests.filter((q) => q.method === 'POST').length

describe.each(['ollama', 'mlx'] as const)('%s backend', (kind) => {
  describe.each(ROWS)('$name', (row) => {
    it.each([
      ['generate', 'one candidate'],
      ['stream', 'one candidate'],
      ['generate', 'a second candidate'],
      ['stream', 'a second candidate'],
    ] as const)('%s, %s', async (mode, scenario) => {
      const faulty = kind === 'ollama' ? ollama : mlx
      const other = kind === 'ollama' ? mlx : ollama
      const second = scenario === 'a second candidate'
      const clock = new ManualClock()
      await faulty.setFault(row.fault(clock))
      const leaks = new LeakCheck([ollama, mlx], clock)

      // mlx falls over inside its `auto` record (MLX first, then Ollama at fallback_url); Ollama
      // falls over to another model's record through `fallbackModels`.
      const records =
        kind === 'mlx'
          ? [
              second
                ? { model_name: 'm', backend_type: 'auto', endpoint_url: mlx.url, fallback_url: ollama.url }
                : { model_name: 'm', backend_type: 'mlx', endpoint_url: mlx.url },
            ]
          : [
              { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url },
              { model_name: 'backup', backend_type: 'mlx', endpoint_url: mlx.url },
            ]
      router = createLLMRouter(
        {
          env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) },
          metrics: false,
          maxResponseBytes: MAX_RESPONSE_BYTES,
        },
        { clock },
      )
      const metrics = collect(router, 'metric')
      const retries = collect(router, 'request:retry')
      const fallbacks = collect(router, 'request:fallback')

      const single = outcomeOf(row, kind, mode)
      const expected: Expected = second ? withSecondCandidate(single) : single
      const codes = (list: readonly { code?: ErrorCode }[]) => list.map((a) => a.code ?? 'ok')
      const waits = row.waits ?? (single.ok ? [] : BACKOFF.slice(0, single.attempts.length - 1))

      const timeoutMs = row.timeoutMs ?? LONG_DEADLINE
      const progress: Progress = { text: '', settled: false }
      const running = run(
        router,
        clock,
        mode,
        {
          model: 'm',
          prompt: 'hello matrix',
          timeoutMs,
          ...(second && kind === 'ollama' ? { fallbackModels: ['backup'] } : {}),
        },
        progress,
      )
      const textFirst = !expected.ok && expected.code === 'TIMEOUT' && expected.delivered === true
      // On a driver failure the test ends here; afterEach's close() ends the request.
      await drive(clock, waits, progress, textFirst)
      const out = await running

      // Bounded time: deadlines cut off at the deadline, everything else after exactly its waits.
      const waited = waits.reduce((a, b) => a + b, 0)
      expect(out.virtualMs).toBe(waited)
      if (!expected.ok && expected.code === 'TIMEOUT') expect(out.virtualMs).toBe(timeoutMs)
      else expect(out.virtualMs).toBeLessThan(timeoutMs)

      // Exactly one metric, matching the outcome.
      expect(metrics).toHaveLength(1)
      const metric = metrics[0] as MetricRecord
      expect(metric.streamed).toBe(mode === 'stream')

      if (expected.ok) {
        expect(out.error).toBeNull()
        expect(out.text.length).toBeGreaterThan(0)
        const after = expected.after
        const fellOver = after !== undefined
        expect(out.result!.backend).toBe(fellOver ? (kind === 'mlx' ? 'ollama' : 'mlx') : kind)
        expect(codes(out.result!.attempts)).toEqual(fellOver ? [...after, 'ok'] : ['ok'])
        expect(metric).toMatchObject({ outcome: 'success', error_code: null, fallback: fellOver })
        expect(metric.attempts).toBe(out.result!.attempts.length)
        expect(fallbacks).toHaveLength(fellOver ? 1 : 0)
        if (fellOver) expect(fallbacks[0]!.code).toBe(after.at(-1))
        expect(generationRequests(other)).toBe(fellOver ? 1 : 0)
      } else {
        expect(out.result).toBeNull()
        expect(out.error).toMatchObject({ name: 'RouterError', code: expected.code })
        expect(codes(out.error!.attempts)).toEqual(expected.attempts)
        if (expected.code === 'ALL_BACKENDS_FAILED') {
          expect((out.error!.cause as { code?: string }).code).toBe(expected.attempts.at(-1))
        }
        if (expected.delivered === true) {
          expect(out.error!.delivered).toBeGreaterThan(0)
          expect(out.text.length).toBe(out.error!.delivered)
        } else if (expected.code !== 'TIMEOUT') {
          expect(out.error!.delivered).toBeUndefined()
        }
        expect(metric).toMatchObject({
          outcome: 'error',
          error_code: expected.code,
          attempts: expected.attempts.length,
          fallback: false,
        })
        // Failures that end the request never reach the other server.
        expect(generationRequests(other)).toBe(0)
      }
      row.retryDelays?.(retries.map((r) => r.delayMs))

      await router.close()
      router = null
      await leaks.expectClean()
    })
  })
})

describe('the leak check itself', () => {
  it('sees the keep-alive socket of a router that was not closed', async () => {
    const leaks = new LeakCheck([ollama])
    const r = createLLMRouter({
      env: {
        LLM_ROUTER_BACKENDS: JSON.stringify([
          { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url },
        ]),
      },
      metrics: false,
    })
    await r.generate({ model: 'm', prompt: 'x' })
    const report = await leaks.report(50)
    expect(report.serverConnections).toEqual([1])
    expect(report.sockets).toBeGreaterThan(0)
    await r.close()
    const after = await new LeakCheck([ollama]).report()
    expect(after.serverConnections).toEqual([0])
  })

  it('sees a pending timer of the injected clock and a timer created by src/', async () => {
    await ollama.setFault('hang')
    const env = {
      LLM_ROUTER_BACKENDS: JSON.stringify([
        { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url },
      ]),
    }
    // A request held open by a server that never answers keeps its deadline timer pending: on the
    // injected clock with a ManualClock, as a real timer set by src/ with the default clock.
    for (const clock of [new ManualClock(), undefined]) {
      const leaks = new LeakCheck([ollama], clock ?? null)
      const r = createLLMRouter({ env, metrics: false }, clock ? { clock } : {})
      const ac = new AbortController()
      const pending = r.generate({ model: 'm', prompt: 'x', timeoutMs: 600_000, signal: ac.signal })
      const settled = pending.catch((e: unknown) => e)
      await until(() => ollama.connections > 0, 'the hanging server to hold the request')
      const report = await leaks.report(30)
      if (clock) expect(report.clockTimers).toBeGreaterThan(0)
      // (The process-wide Timeout count is not asserted here: other timers expiring during the wait
      // can offset it, which made this self-test flaky under load; the two views below are exact.)
      else expect(report.srcTimers.length).toBeGreaterThan(0)
      expect(report.serverConnections).toEqual([1])
      ac.abort()
      expect(await settled).toMatchObject({ code: 'ABORTED' })
      await r.close()
      await new LeakCheck([ollama]).expectClean()
    }
  })
})
