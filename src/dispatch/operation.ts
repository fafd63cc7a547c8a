/**
 * The operation seam: what differs between `generate()`, `chat()` and `embed()` while the dispatcher
 * runs all of them through the same candidates, retries, failover, circuits, per-attempt limits,
 * abort, deadlines, events and metrics. An operation picks the protocol adapter (and so the path)
 * per backend kind, encodes its request for a target, and turns the adapter's output into its result.
 */
import type { ProtocolAdapter } from '../backends/types.js'
import type { AttemptInfo } from '../errors.js'
import type { BackendKind, Capability, GenerateRequest, Usage } from '../types.js'
import type { AttemptWhere, Timings } from './outcome.js'
import type { Candidate, Target } from './routes.js'

/** The value of `MetricRecord.operation`. */
export type OperationName = 'generate' | 'chat' | 'embed'

/** Request fields the dispatcher itself reads: routing, limits, deadline, abort, metrics. */
export type DispatchRequest = Pick<
  GenerateRequest,
  | 'model'
  | 'signal'
  | 'timeoutMs'
  | 'attemptTimeoutMs'
  | 'headersTimeoutMs'
  | 'firstTokenTimeoutMs'
  | 'idleTimeoutMs'
  | 'fallbackModels'
  | 'metadata'
>

/** Result fields every operation has: what metrics, stats and events read. */
export interface DispatchResult {
  model: string
  backend: BackendKind
  endpoint: string
  usage: Usage
  latencyMs: number
  tokensPerSecond: number
  timeToFirstTokenMs?: number
  loadMs?: number
  attempts: AttemptInfo[]
  cost?: number
}

export interface Operation<Req extends DispatchRequest, Out, Res extends DispatchResult, Delta = string> {
  readonly name: OperationName
  /** The adapter that speaks this operation to `kind`; its `path` is appended to the endpoint's base path. */
  adapter(kind: BackendKind): ProtocolAdapter<Out, Delta>
  /**
   * The capabilities `req` needs from a record (dispatch/capabilities.ts), read once per request.
   * Candidates whose record declares capabilities without one of them are skipped before anything is
   * sent, and the skip is listed in the attempts.
   */
  needs(req: Req): readonly Capability[]
  /**
   * Characters of the request's text the model reads (prompt, system, messages), for the context-length
   * check of records with `context_length` (src/pool/). Absent: such records are not checked.
   */
  promptChars?(req: Req): number
  /** JSON body for one target (computed once per target, reused by its retries). */
  encode(req: Req, candidate: Candidate, target: Target, stream: boolean): string
  /** The caller's result from the adapter's output of the successful attempt. */
  result(out: Out, where: AttemptWhere, attempts: AttemptInfo[], t: Timings): Res
}
