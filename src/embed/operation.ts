/**
 * The `embed` operation for the dispatcher's operation seam (dispatch/operation.ts): one batch of inputs to
 * Ollama's `/api/embed` or an OpenAI-compatible `/v1/embeddings`. One operation object per batch, because
 * the adapter's decode checks that the answer has exactly one vector per input of that batch (a wrong
 * count is MALFORMED_RESPONSE inside the attempt, so it falls over like any garbled answer).
 */
import type { EmbedAdapter, EmbedOutput } from '../backends/embed-types.js'
import { hostedEmbedAdapter } from '../backends/hosted.js'
import { ollamaEmbedAdapter } from '../backends/ollama-embed.js'
import { openaiEmbedAdapter } from '../backends/openai-embed.js'
import type { ProtocolAdapter } from '../backends/types.js'
import type { DispatchRequest, DispatchResult, Operation } from '../dispatch/operation.js'
import { buildResult } from '../dispatch/outcome.js'
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'

/** One batch as the dispatcher runs it: the caller's routing fields plus this batch's inputs. */
export interface EmbedBatchRequest extends DispatchRequest {
  inputs: readonly string[]
  dimensions?: number
  keepAlive?: string | number
  options?: Record<string, unknown>
}

export interface EmbedBatchResult extends DispatchResult {
  embeddings: number[][]
}

const ADAPTERS: Readonly<Record<BackendKind, EmbedAdapter>> = {
  ollama: ollamaEmbedAdapter,
  mlx: openaiEmbedAdapter,
  openai: hostedEmbedAdapter,
}

function embedAdapter(kind: BackendKind): EmbedAdapter {
  const adapter = ADAPTERS[kind]
  if (adapter === undefined || !Object.hasOwn(ADAPTERS, kind)) {
    throw new RouterError(
      ErrorCode.CONFIG_INVALID,
      `Backend kind ${JSON.stringify(kind)} has no embeddings adapter; use "ollama", "mlx" or "openai"`,
    )
  }
  return adapter
}

function noStream(): never {
  throw new RouterError(ErrorCode.INVALID_REQUEST, 'Embeddings are never streamed')
}

const NEEDS_EMBEDDINGS = ['embeddings'] as const

/** The operation that sends one batch of `expected` inputs. */
export function embedBatchOperation(
  expected: number,
): Operation<EmbedBatchRequest, EmbedOutput, EmbedBatchResult, never> {
  const wrapped = new Map<BackendKind, ProtocolAdapter<EmbedOutput, never>>()
  return {
    name: 'embed',
    adapter(kind) {
      let adapter = wrapped.get(kind)
      if (adapter === undefined) {
        const base = embedAdapter(kind)
        adapter = {
          kind: base.kind,
          path: base.path,
          decode: (body) => base.decode(body, expected),
          errorMessage: base.errorMessage,
          statusCode: base.statusCode,
          createStreamDecoder: noStream,
        }
        wrapped.set(kind, adapter)
      }
      return adapter
    },
    // Records that declare capabilities without `embeddings` are skipped (dispatch/capabilities.ts).
    needs: () => NEEDS_EMBEDDINGS,
    encode(req, _candidate, target) {
      const wire: Parameters<EmbedAdapter['encode']>[0] = { inputs: req.inputs }
      if (target.sendModel !== undefined) wire.model = target.sendModel
      if (req.dimensions !== undefined) wire.dimensions = req.dimensions
      // The record's keep_alive (Ollama targets only) like generate and chat; the request's own wins.
      const keepAlive =
        req.keepAlive ??
        (req.options?.keep_alive === undefined
          ? (target.extras?.keep_alive as string | number | undefined)
          : undefined)
      if (keepAlive !== undefined) wire.keepAlive = keepAlive
      if (req.options !== undefined) wire.options = req.options
      return embedAdapter(target.kind).encode(wire)
    },
    result: (out, where, attempts, t) => {
      const counts = { promptTokens: out.promptTokens, completionTokens: 0 }
      const withLoad =
        out.loadDurationNs === undefined ? counts : { ...counts, loadDurationNs: out.loadDurationNs }
      return buildResult({ embeddings: out.embeddings }, withLoad, where, attempts, t)
    },
  }
}
