/**
 * One `router.embed()` call: the inputs split into batches, each batch run through the dispatcher like any
 * request (candidates, retries, failover, circuits, limits, abort), at most `concurrency` at once, and the
 * vectors put back in input order. The call records ONE metric record: each batch's record is collected
 * here instead of reaching the sink, and the call's record is assembled from them.
 *
 * Vectors of different models live in different spaces, so a call never mixes them: the first batch runs
 * alone, and every later batch is pinned to the model that answered it (fallback models are not tried again).
 */
import type { ConfigSnapshot } from '../config/contract.js'
import type { RequestControl } from '../dispatch/attempt.js'
import { type DispatchCore, runRequest } from '../dispatch/dispatcher.js'
import { ErrorCode, isRouterError, RouterError } from '../errors.js'
import type { MetricRecord } from '../types.js'
import { type Batch, mapBounded, splitBatches } from './batches.js'
import { type EmbedBatchRequest, type EmbedBatchResult, embedBatchOperation } from './operation.js'
import type { EmbedRequest, EmbedResult } from './types.js'

/** Where a batch gets its config: the model (and fallback models) it routes with. */
export type SnapshotFor = (
  model: string | undefined,
  fallbackModels: EmbedRequest['fallbackModels'],
) => ConfigSnapshot | Promise<ConfigSnapshot>

function batchRequest(
  req: EmbedRequest,
  batch: Batch,
  timeoutMs: number,
  pinned: string | null,
): EmbedBatchRequest {
  const out: EmbedBatchRequest = { inputs: batch.inputs, timeoutMs }
  const model = pinned ?? req.model
  if (model !== undefined) out.model = model
  if (pinned === null && req.fallbackModels !== undefined) out.fallbackModels = req.fallbackModels
  if (req.signal !== undefined) out.signal = req.signal
  if (req.attemptTimeoutMs !== undefined) out.attemptTimeoutMs = req.attemptTimeoutMs
  if (req.headersTimeoutMs !== undefined) out.headersTimeoutMs = req.headersTimeoutMs
  if (req.metadata !== undefined) out.metadata = req.metadata
  if (req.dimensions !== undefined) out.dimensions = req.dimensions
  if (req.keepAlive !== undefined) out.keepAlive = req.keepAlive
  if (req.options !== undefined) out.options = req.options
  return out
}

/** The call's one metric record, from its batches' records (in batch order, the failing one included). */
function callMetric(
  records: readonly MetricRecord[],
  timestampSec: number,
  latencyMs: number,
  result: EmbedResult | null,
  error: RouterError | null,
): MetricRecord {
  const lead = records[0]!
  const failed = error === null ? undefined : records.find((r) => r.outcome !== 'success')
  const where = failed ?? lead
  let promptTokens = 0
  let attempts = 0
  let load: number | null = null
  for (const r of records) {
    promptTokens += r.prompt_tokens
    attempts += r.attempts
    if (r.load_seconds !== null) load = Math.max(load ?? 0, r.load_seconds)
  }
  return {
    ...lead,
    timestamp: timestampSec,
    model: result?.model ?? where.model,
    backend: result?.backend ?? where.backend,
    endpoint: result?.endpoint ?? where.endpoint,
    latency_seconds: latencyMs / 1000,
    tokens: 0,
    tokens_per_second: 0,
    prompt_tokens: result === null ? 0 : promptTokens,
    outcome: result !== null ? 'success' : error?.code === ErrorCode.ABORTED ? 'aborted' : 'error',
    error_code: error?.code ?? null,
    attempts,
    fallback: records.some((r) => r.fallback),
    streamed: false,
    time_to_first_token_seconds: null,
    load_seconds: load,
    operation: 'embed',
  }
}

/** Every vector of one call has the same length; a batch that differs was answered by another model. */
function checkDimensions(results: readonly EmbedBatchResult[], batches: readonly Batch[]): void {
  const dims = results[0]!.embeddings[0]!.length
  for (let b = 0; b < results.length; b++) {
    const r = results[b]!
    for (let i = 0; i < r.embeddings.length; i++) {
      if (r.embeddings[i]!.length !== dims) {
        throw new RouterError(
          ErrorCode.MALFORMED_RESPONSE,
          `${r.backend} at ${r.endpoint} answered input ${batches[b]!.start + i} with a ${r.embeddings[i]!.length}-dimension vector where the call's others have ${dims}; the model "${r.model}" is not the same on every backend it names`,
          { backend: r.backend, endpoint: r.endpoint, model: r.model },
        )
      }
    }
  }
}

export async function runEmbed(
  core: DispatchCore,
  req: EmbedRequest,
  inputs: string[],
  snapshotFor: SnapshotFor,
  t0: number,
): Promise<EmbedResult> {
  const timestampSec = core.clock.now() / 1000
  const batches = splitBatches(inputs, req.batchSize ?? core.options.embedBatchSize)
  const concurrency = req.concurrency ?? core.options.embedConcurrency
  // One deadline for the whole call: each batch gets what is left of it.
  const timeoutMs = req.timeoutMs ?? core.options.defaultTimeoutMs
  const deadline = core.clock.now() + timeoutMs
  const records: MetricRecord[] = []
  const batchCore: DispatchCore = { ...core, recordMetric: (m) => records.push(m) }
  const controls = new Set<RequestControl>()
  const results: EmbedBatchResult[] = new Array(batches.length)
  let pinned: string | null = null
  let done = 0
  /** The batch whose failure failed the call (the first to fail; the others were stopped after it). */
  let failedAt = -1

  const runBatch = (batch: Batch, index: number): Promise<EmbedBatchResult> => {
    const left = Math.max(1, deadline - core.clock.now())
    const breq = batchRequest(req, batch, left, pinned)
    let control: RequestControl | null = null
    return runRequest(
      batchCore,
      embedBatchOperation(batch.inputs.length),
      breq,
      snapshotFor(breq.model, breq.fallbackModels),
      null,
      performance.now(),
      (c) => {
        control = c
        controls.add(c)
      },
    ).then(
      (r) => {
        if (control !== null) controls.delete(control)
        results[index] = r
        done++
        return r
      },
      (error: unknown) => {
        if (control !== null) controls.delete(control)
        if (failedAt === -1) failedAt = index
        throw error
      },
    )
  }

  try {
    const first = await runBatch(batches[0]!, 0)
    if (batches.length > 1) {
      pinned = first.model
      await mapBounded(
        batches.slice(1),
        concurrency,
        (batch, i) => runBatch(batch, i + 1),
        () => {
          // The call has failed: the batches still in flight stop now rather than finish for nothing.
          const reason = new RouterError(
            ErrorCode.ABORTED,
            'Stopped because another batch of the same embed() call failed',
          )
          for (const c of controls) c.stop(reason)
        },
      )
    }
    checkDimensions(results, batches)
    const embeddings: number[][] = []
    const attempts = []
    let promptTokens = 0
    let loadMs: number | undefined
    for (const r of results) {
      for (const v of r.embeddings) embeddings.push(v)
      for (const a of r.attempts) attempts.push(a)
      promptTokens += r.usage.promptTokens
      if (r.loadMs !== undefined) loadMs = Math.max(loadMs ?? 0, r.loadMs)
    }
    const result: EmbedResult = {
      embeddings,
      model: first.model,
      backend: first.backend,
      endpoint: first.endpoint,
      usage: { promptTokens, completionTokens: 0 },
      latencyMs: performance.now() - t0,
      batches: batches.length,
      attempts,
    }
    if (loadMs !== undefined) result.loadMs = loadMs
    core.recordMetric(callMetric(records, timestampSec, result.latencyMs, result, null))
    return result
  } catch (caught) {
    let error = isRouterError(caught)
      ? caught
      : new RouterError(ErrorCode.BACKEND_ERROR, 'Unexpected failure while embedding', { cause: caught })
    if (error.code === ErrorCode.TIMEOUT && core.clock.now() >= deadline - 1) {
      error = error.withDetails({
        message: `The embed() call for model "${pinned ?? req.model ?? '(default)'}" exceeded its ${timeoutMs} ms deadline with ${done} of ${batches.length} batches done; raise timeoutMs or defaultTimeoutMs, or send fewer inputs per call`,
      })
    } else if (failedAt > 0 && error.code !== ErrorCode.ABORTED && error.code !== ErrorCode.CLOSED) {
      // A later batch failed on its own: say which inputs. (A first-batch failure is the call's, nothing was
      // embedded yet; an abort or close() stops the call, not one batch.)
      const b = batches[failedAt]!
      error = error.withDetails({
        message: `Batch ${failedAt + 1} of ${batches.length} (inputs ${b.start}-${b.start + b.inputs.length - 1}) failed: ${error.message}`,
      })
    }
    if (records.length > 0)
      core.recordMetric(callMetric(records, timestampSec, performance.now() - t0, null, error))
    throw error
  }
}
