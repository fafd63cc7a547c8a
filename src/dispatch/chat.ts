/**
 * The `chat` operation (`router.chat()` / `router.streamChat()`): messages to Ollama's `/api/chat`
 * or an OpenAI-compatible `/v1/chat/completions` (templated by the server, also for MLX), with the
 * record's defaults filled in, capability routing, and chunks carrying text, reasoning and tool calls.
 */
import { CHAT_WIRE_FIELDS, type ChatDelta, type ChatOutput, type ChatWire } from '../backends/chat-common.js'
import { hostedChatAdapter } from '../backends/hosted.js'
import { ollamaChatAdapter } from '../backends/ollama-chat.js'
import { openaiChatAdapter } from '../backends/openai-chat.js'
import { toolFunction } from '../chat/request.js'
import type { AssistantMessage, ChatRequest, ChatResult, ChatStreamChunk } from '../chat/types.js'
import type { Capability } from '../types.js'
import type { Operation } from './operation.js'
import { buildResult } from './outcome.js'
import type { Candidate, Target } from './routes.js'
import type { ChunkShape } from './stream.js'

/** What a chat request needs from a record's declared capabilities. */
export function chatNeeds(req: ChatRequest): Capability[] {
  const needs: Capability[] = []
  if (req.tools !== undefined && req.tools.length > 0 && req.toolChoice !== 'none') needs.push('tools')
  if (req.messages.some((m) => m.images !== undefined && m.images.length > 0)) needs.push('vision')
  if (req.format !== undefined && req.format !== 'json') needs.push('json_schema')
  if (req.think !== undefined && req.think !== false) needs.push('thinking')
  return needs
}

function toWire(req: ChatRequest, candidate: Candidate, target: Target, stream: boolean): ChatWire {
  const record = candidate.record
  const wire: ChatWire = { messages: req.messages, stream }
  if (target.sendModel !== undefined) wire.model = target.sendModel
  if (req.tools !== undefined) wire.tools = req.tools.map(toolFunction)
  const fields = wire as unknown as Record<string, unknown>
  for (const key of CHAT_WIRE_FIELDS) if (req[key] !== undefined) fields[key] = req[key]
  const temperature = req.temperature ?? record.temperature_default
  if (temperature !== undefined) wire.temperature = temperature
  const maxTokens = req.maxTokens ?? record.max_tokens
  if (maxTokens !== undefined) wire.maxTokens = maxTokens
  if (req.stop !== undefined) wire.stop = req.stop
  // Ollama-only fields: OpenAI-compatible servers have no per-request equivalent (vLLM would only log them as ignored).
  // The record's keep_alive and context_length (src/pool/), compiled into the Ollama target's extras like
  // for generate and embed, are the defaults of keepAlive and numCtx.
  if (target.kind === 'ollama') {
    const extras = target.extras
    const keepAlive = req.keepAlive ?? (extras?.keep_alive as string | number | undefined)
    if (keepAlive !== undefined) wire.keepAlive = keepAlive
    const numCtx = req.numCtx ?? (extras?.num_ctx as number | undefined)
    if (numCtx !== undefined) wire.numCtx = numCtx
  }
  const extras = target.kind === 'ollama' ? req.options?.ollama : req.options?.openai
  if (extras !== undefined) wire.extras = extras
  return wire
}

function messageOf(out: ChatOutput): AssistantMessage {
  const message: AssistantMessage = { role: 'assistant', content: out.text }
  if (out.reasoning.length > 0) message.reasoning = out.reasoning
  if (out.toolCalls.length > 0) message.toolCalls = out.toolCalls
  return message
}

const ADAPTERS = { ollama: ollamaChatAdapter, mlx: openaiChatAdapter, openai: hostedChatAdapter } as const

export const chatOperation: Operation<ChatRequest, ChatOutput, ChatResult, ChatDelta> = {
  name: 'chat',
  adapter: (kind) => ADAPTERS[kind],
  needs: chatNeeds,
  // For records with context_length: the text the model reads (message contents).
  promptChars: (req) => {
    let chars = 0
    for (const m of req.messages) chars += m.content?.length ?? 0
    return chars
  },
  encode: (req, candidate, target, stream) =>
    ADAPTERS[target.kind].encode(toWire(req, candidate, target, stream)),
  result: (out, where, attempts, t) => {
    const result = buildResult(
      { message: messageOf(out), doneReason: out.doneReason },
      out,
      where,
      attempts,
      t,
    ) as ChatResult
    if (out.estimated === true) result.usage.estimated = true
    return result
  },
}

function chunk(delta: ChatDelta, model: string, backend: ChatStreamChunk['backend']): ChatStreamChunk {
  const out: ChatStreamChunk = { text: delta.text, model, backend }
  if (delta.reasoning !== undefined) out.reasoning = delta.reasoning
  if (delta.toolCalls !== undefined) out.toolCalls = delta.toolCalls
  return out
}

/** streamChat chunks: deltas queued while the consumer was busy merge part by part. */
export const chatChunks: ChunkShape<ChatDelta, ChatStreamChunk> = {
  one: chunk,
  many: (deltas, model, backend) => {
    let text = ''
    let reasoning = ''
    const calls = []
    for (const d of deltas) {
      text += d.text
      if (d.reasoning !== undefined) reasoning += d.reasoning
      if (d.toolCalls !== undefined) calls.push(...d.toolCalls)
    }
    const merged: ChatDelta = { text }
    if (reasoning.length > 0) merged.reasoning = reasoning
    if (calls.length > 0) merged.toolCalls = calls
    return chunk(merged, model, backend)
  },
  size: (d) => d.text.length + (d.reasoning?.length ?? 0) + (d.toolCalls?.length ?? 0),
}
