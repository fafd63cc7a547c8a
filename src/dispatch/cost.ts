/**
 * Cost of one call from the answering record's prices per million tokens (seed 000's "cost tracking
 * if using paid APIs"). A call whose tokens include a kind the record has no price for has no cost
 * (undefined), never a made-up zero.
 */
import type { BackendRecord, Usage } from '../types.js'

export function costOf(record: BackendRecord, usage: Usage): number | undefined {
  const input = record.input_cost_per_million
  const output = record.output_cost_per_million
  if (input === undefined && output === undefined) return undefined
  if (
    (usage.promptTokens > 0 && input === undefined) ||
    (usage.completionTokens > 0 && output === undefined)
  ) {
    return undefined
  }
  return ((input ?? 0) * usage.promptTokens + (output ?? 0) * usage.completionTokens) / 1_000_000
}
