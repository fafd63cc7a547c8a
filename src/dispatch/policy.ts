/**
 * The failure policy as pure functions, cockatiel-style: a failed attempt is classified once
 * (`classifyFailure`), then `decide` answers retry (after how long), next candidate, or fail (with
 * which error), and `chargesCircuit` says whether the endpoint's circuit counts it. No I/O, no
 * timers, no clock reads: everything comes in as arguments, so the whole policy is table-tested
 * (test/dispatch-policy.test.ts).
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'
import { backoffDelay } from './backoff.js'
import { policyOf } from './classify.js'

/**
 * A pooled keep-alive socket the server had just closed fails on the first write, within a round
 * trip. A reset that comes later is a server that crashed while working on the request (mlx_lm.server
 * sends headers only at the end of a non-streamed generation): replaying it would pay the whole
 * generation again.
 */
export const STALE_SOCKET_WINDOW_MS = 1000

export interface RetryPolicy {
  maxRetries: number
  baseDelayMs: number
  maxDelayMs: number
  maxRetryAfterMs: number
}

/** A failed attempt, with what the policy needs to know about how it failed. */
export interface Failure {
  error: RouterError
  /** The request as a whole stopped (its deadline, the caller's abort, close()): the caller's, not the backend's. */
  stopped: boolean
  /** A reset on a reused socket before any response, fast: replay once at once, not the backend's fault. */
  staleSocket: boolean
}

/** What attempt.ts knows about a socket failure (set on the error by `networkError`). */
interface NetworkHints {
  resetBeforeResponse?: boolean
  /** undefined when the transport could not say. */
  socketReused?: boolean
}

/**
 * Classifies one failed attempt. `stopped` is the request's stop reason, if it stopped; `attempt` is
 * 1-based against this target; `elapsedMs` is how long the attempt ran.
 */
export function classifyFailure(
  error: RouterError,
  stopped: RouterError | null,
  attempt: number,
  elapsedMs: number,
): Failure {
  if (stopped !== null) return { error: stopped, stopped: true, staleSocket: false }
  const hints = error as RouterError & NetworkHints
  const staleSocket =
    hints.resetBeforeResponse === true &&
    attempt === 1 &&
    elapsedMs < STALE_SOCKET_WINDOW_MS &&
    hints.socketReused !== false
  return { error, stopped: false, staleSocket }
}

/** Does this failure count against the endpoint's circuit? (Otherwise a half-open probe is just released.) */
export function chargesCircuit(failure: Failure): boolean {
  if (failure.stopped || failure.staleSocket) return false
  return policyOf(failure.error.code).unhealthy
}

export type Decision =
  | { action: 'retry'; delayMs: number }
  | { action: 'next' }
  | { action: 'fail'; error: RouterError }

export interface DecisionInput {
  failure: Failure
  /** 1-based attempt number against the current target. */
  attempt: number
  /** Milliseconds until the request's overall deadline. */
  timeLeftMs: number
  /** Characters of the answer already handed to a stream's consumer. */
  delivered: number
  retry: RetryPolicy
  /** Uniform in [0, 1), for backoff jitter. */
  random: () => number
  /** The target that failed, for the messages of the errors this builds. */
  where: { model: string; backend: BackendKind; endpoint: string }
  /** The overall deadline in ms, for the TIMEOUT message. */
  deadlineMs: number
}

export function decide(input: DecisionInput): Decision {
  const { failure, where } = input
  const error = failure.error
  if (failure.stopped) {
    if (error.code === ErrorCode.TIMEOUT) return { action: 'fail', error: deadlineError(input) }
    return {
      action: 'fail',
      error: input.delivered > 0 ? error.withDetails({ delivered: input.delivered }) : error,
    }
  }
  // Text already reached the consumer: another backend would answer differently, so nothing is resumed.
  // Broken tool-call arguments are not an interruption (the stream ended): they keep their own code.
  if (input.delivered > 0 && error.code !== ErrorCode.INVALID_TOOL_ARGUMENTS) {
    return {
      action: 'fail',
      error: new RouterError(
        ErrorCode.STREAM_INTERRUPTED,
        `The stream from ${where.backend} at ${where.endpoint} failed after ${input.delivered} characters were delivered (${error.code}: ${error.message}); the partial answer cannot be resumed elsewhere`,
        { cause: error, delivered: input.delivered, ...where },
      ),
    }
  }
  if (failure.staleSocket) return { action: 'retry', delayMs: 0 }
  const rule = policyOf(error.code)
  if (rule.retry && input.attempt <= input.retry.maxRetries) {
    const asked = error.retryAfterMs
    // A server asking for a longer wait than we honour: another backend is the faster answer.
    if (asked !== undefined && asked > input.retry.maxRetryAfterMs) return { action: 'next' }
    const delayMs =
      asked ?? backoffDelay(input.attempt, input.retry.baseDelayMs, input.retry.maxDelayMs, input.random)
    if (delayMs >= input.timeLeftMs) return rule.fallover ? { action: 'next' } : { action: 'fail', error }
    return { action: 'retry', delayMs }
  }
  return rule.fallover ? { action: 'next' } : { action: 'fail', error }
}

function deadlineError(input: DecisionInput): RouterError {
  const { where, delivered } = input
  return new RouterError(
    ErrorCode.TIMEOUT,
    `The request for model "${where.model}" exceeded its ${input.deadlineMs} ms deadline (last tried ${where.backend} at ${where.endpoint}); raise timeoutMs or defaultTimeoutMs`,
    { ...where, ...(delivered > 0 ? { delivered } : {}) },
  )
}
