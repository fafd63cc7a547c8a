/**
 * Realistic fake numbers: Ollama's own counters for a simulated generation, and whole router metric
 * records for testing sinks and admin intake.
 * @module
 */
import type { MetricRecord } from '../../types.js'

/** Inputs of {@link ollamaMetrics}. */
export interface OllamaMetricsInput {
  promptTokens: number
  evalCount: number
  /** Cold load time in ms (0 when the model was loaded). */
  loadMs?: number
  /** Prompt processing time in ms. Default: 1 ms per prompt token. */
  promptMs?: number
  /** Decode speed reported through `eval_duration`. Default 100. */
  tokensPerSecond?: number
}

/** Ollama's metric fields (integer nanoseconds), zero values omitted as Go's `omitempty` does. */
export interface OllamaMetrics {
  total_duration?: number
  load_duration?: number
  prompt_eval_count?: number
  prompt_eval_duration?: number
  eval_count?: number
  eval_duration?: number
}

function ns(ms: number): number {
  return Math.max(0, Math.round(ms * 1e6))
}

/** The metrics of Ollama's final `done:true` chunk for a simulated generation. */
export function ollamaMetrics(input: OllamaMetricsInput): OllamaMetrics {
  const tps = input.tokensPerSecond ?? 100
  const load = ns(input.loadMs ?? 0)
  const prompt = ns(input.promptMs ?? input.promptTokens)
  const evalNs = input.evalCount > 0 && tps > 0 ? Math.round((input.evalCount / tps) * 1e9) : 0
  const all: Required<OllamaMetrics> = {
    total_duration: load + prompt + evalNs,
    load_duration: load,
    prompt_eval_count: input.promptTokens,
    prompt_eval_duration: prompt,
    eval_count: input.evalCount,
    eval_duration: evalNs,
  }
  const out: OllamaMetrics = {}
  for (const [k, v] of Object.entries(all) as [keyof OllamaMetrics, number][]) if (v !== 0) out[k] = v
  return out
}

let seq = 0

/**
 * A plausible successful metric record (an Ollama request of ~0.6 s at ~40 tok/s); pass overrides for
 * the fields a test cares about.
 */
export function makeMetricRecord(overrides: Partial<MetricRecord> = {}): MetricRecord {
  seq++
  return {
    timestamp: Date.now() / 1000,
    model: 'llama3.2',
    backend: 'ollama',
    endpoint: 'http://127.0.0.1:11434',
    latency_seconds: 0.62,
    tokens: 24,
    tokens_per_second: 40,
    prompt_tokens: 12,
    request_id: `req-${seq}`,
    session_id: null,
    user_id: null,
    zone: null,
    intent: null,
    outcome: 'success',
    error_code: null,
    attempts: 1,
    fallback: false,
    streamed: false,
    time_to_first_token_seconds: null,
    load_seconds: null,
    config_origin: 'admin',
    operation: 'generate',
    ...overrides,
  }
}
