/**
 * The `generate` operation (`router.generate()` / `router.stream()`): a prompt to Ollama's
 * `/api/generate` or an OpenAI-compatible `/v1/completions`, with the record's defaults filled in.
 */
import { adapterFor } from '../backends/index.js'
import type { BackendOutput, WireRequest } from '../backends/types.js'
import type { GenerateRequest, GenerateResult } from '../types.js'
import type { Operation } from './operation.js'
import { buildResult } from './outcome.js'
import type { Candidate, Target } from './routes.js'

const NO_NEEDS: readonly [] = []

function toWire(req: GenerateRequest, candidate: Candidate, target: Target, stream: boolean): WireRequest {
  const record = candidate.record
  const wire: WireRequest = { prompt: req.prompt, stream }
  if (req.system !== undefined) wire.system = req.system
  const temperature = req.temperature ?? record.temperature_default
  if (temperature !== undefined) wire.temperature = temperature
  const maxTokens = req.maxTokens ?? record.max_tokens
  if (maxTokens !== undefined) wire.maxTokens = maxTokens
  if (req.stop !== undefined) wire.stop = req.stop
  // The record's Ollama fields (keep_alive, num_ctx) first, so the request's own options win.
  const extras = target.extras
  if (extras !== null) wire.options = req.options === undefined ? extras : { ...extras, ...req.options }
  else if (req.options !== undefined) wire.options = req.options
  if (target.sendModel !== undefined) wire.model = target.sendModel
  return wire
}

export const generateOperation: Operation<GenerateRequest, BackendOutput, GenerateResult> = {
  name: 'generate',
  adapter: adapterFor,
  // A prompt needs no capability: every record can complete one.
  needs: () => NO_NEEDS,
  promptChars: (req) => req.prompt.length + (req.system?.length ?? 0),
  encode: (req, candidate, target, stream) =>
    adapterFor(target.kind).encode(toWire(req, candidate, target, stream)),
  result: (out, where, attempts, t) =>
    buildResult({ response: out.text, doneReason: out.doneReason }, out, where, attempts, t),
}
