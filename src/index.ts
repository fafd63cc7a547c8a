/**
 * llm-backend-router: route LLM generation requests to Ollama or OpenAI-compatible backends
 * configured from an admin API. Every public name is listed here by hand.
 * @module
 */

export type {
  AssistantMessage,
  ChatBackendOptions,
  ChatFunctionTool,
  ChatMessage,
  ChatRequest,
  ChatResult,
  ChatRole,
  ChatStream,
  ChatStreamChunk,
  ChatTool,
  ChatUsage,
  ToolCall,
  ToolChoice,
} from './chat/types.js'
export type { EmbedRequest, EmbedResult } from './embed/types.js'
export type { AttemptInfo } from './errors.js'
export { ErrorCode, hasErrorCode, isRouterError, RouterError } from './errors.js'
// The callback, fan-out and OpenTelemetry sinks are in `llm-backend-router/sinks` (src/metrics/sinks.ts).
export type { HttpMetricsSink, HttpSinkOptions, HttpSinkStats, StatsEntry } from './metrics/index.js'
export { createHttpSink } from './metrics/index.js'
export type { RouterOptions } from './options.js'
export type { ConfigInfo, LLMRouter, ResolvedRoute } from './router.js'
export { createLLMRouter } from './router.js'
export type {
  BackendAuth,
  BackendKind,
  BackendRecord,
  BackendType,
  Capability,
  CircuitInfo,
  CircuitState,
  ConfigOrigin,
  GenerateRequest,
  GenerateResult,
  GenerateStream,
  MetricRecord,
  MetricsSink,
  RequestMetadata,
  RouterEvents,
  SinkContext,
  StreamChunk,
  Usage,
} from './types.js'
