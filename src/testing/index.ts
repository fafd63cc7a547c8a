/**
 * `llm-backend-router/testing`: protocol-faithful stand-ins for an Ollama server, an OpenAI-compatible
 * server (mlx_lm.server or llama.cpp) and the admin API, as in-process node:http servers with fault
 * switches and request recording, and the wire helpers. The model servers answer generation, chat
 * (text, reasoning, tool calls, structured output) and embeddings, with scripted replies.
 *
 * Needs no msw: the same stand-ins as msw handlers are in `llm-backend-router/testing/msw`.
 *
 * @example
 * import { startOllamaServer, startAdminServer } from 'llm-backend-router/testing'
 * const ollama = await startOllamaServer()
 * const admin = await startAdminServer({ records: [{ model_name: 'llama3.2', backend_type: 'ollama',
 *   endpoint_url: ollama.url, enabled: true, priority: 1 }] })
 * await ollama.setFault({ type: 'reset-mid-body', times: 1 })
 * @module
 */

export type { AdminOptions, AdminRecord, MetricPost } from './core/admin.js'
export { ADMIN_LIST_PATH, ADMIN_METRICS_PATH, ADMIN_MODEL_PATH } from './core/admin.js'
export type {
  ChatContext,
  ChatResponder,
  ConversationOptions,
  EmbeddingResponder,
  ReceivedMessage,
  ScriptedReply,
  ScriptedToolCall,
} from './core/conversation.js'
export { fakeEmbedding } from './core/conversation.js'
export type { HostedOptions } from './core/hosted.js'
export type { OllamaMetrics, OllamaMetricsInput } from './core/metrics.js'
export { makeMetricRecord, ollamaMetrics } from './core/metrics.js'
export type { OllamaOptions } from './core/ollama.js'
export { OLLAMA_BUSY_MESSAGE } from './core/ollama.js'
export type { OpenAIFlavor, OpenAIOptions } from './core/openai.js'
export { countTokens, defaultResponse, tokenize } from './core/text.js'
export type { SseEvent } from './core/wire.js'
export { ndjsonLine, parseNdjson, parseSse, SSE_DONE, sseComment, sseData, sseField } from './core/wire.js'
export type { AdminServerOptions } from './servers/admin.js'
export { AdminServer, startAdminServer } from './servers/admin.js'
export type { StandInServer } from './servers/http-server.js'
export type { OllamaServerOptions } from './servers/ollama.js'
export { OllamaServer, startOllamaServer } from './servers/ollama.js'
export type { OpenAIServerOptions } from './servers/openai.js'
export { OpenAIServer, startMlxServer, startOpenAIServer } from './servers/openai.js'
export type {
  FaultSpec,
  FaultSwitch,
  FaultType,
  GenerationOptions,
  RecordedRequest,
  RecordingOptions,
  RespondContext,
  Responder,
  ServerOptions,
} from './types.js'
export { FAULT_TYPES } from './types.js'
