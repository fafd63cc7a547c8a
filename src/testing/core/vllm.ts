/**
 * vLLM's OpenAI-compatible answers for the stand-in (`flavor: 'vllm'`): pydantic-shaped bodies with
 * every optional field present as `null`, nested `{"error":{message,type,param,code}}` errors named
 * after the exception class, the served model name checked (`The model \`x\` does not exist.`), usage
 * in a separate `choices: []` chunk only with `stream_options.include_usage`, `delta.reasoning`, tool
 * calls streamed as an `{id: "chatcmpl-tool-…", type, index, function: {name}}` head then argument
 * pieces, and `data: {"error": …}` then `[DONE]` when a stream fails.
 *
 * Read from vLLM's OpenAI server (entrypoints/openai: protocol.py, serving_chat.py, serving_completion.py)
 * and from answers real vLLM servers gave; treat it as one recent version, not a contract.
 * @module
 */
import { randomBytes } from 'node:crypto'
import type { FaultSpec } from '../types.js'
import { type Action, type Frame, jsonReply, type Reply, streamReply } from './reply.js'
import { SSE_DONE, sseData } from './wire.js'

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8' }

/** vLLM's error `type`: the name of the exception class behind the status. */
export function vllmErrorType(status: number): string {
  if (status === 404) return 'NotFoundError'
  if (status === 429) return 'RateLimitError'
  if (status === 503) return 'ServiceUnavailableError'
  if (status >= 500) return 'InternalServerError'
  return 'BadRequestError'
}

/** A vLLM error body. */
export function vllmError(status: number, message: string, param: string | null = null): Reply {
  return jsonReply(status, { error: { message, type: vllmErrorType(status), param, code: status } })
}

/** Random lower-case hex, as vLLM's request and tool call ids use. */
export function vllmHex(bytes = 8): string {
  return randomBytes(bytes).toString('hex')
}

function vllmUsage(promptTokens: number, completionTokens: number): Record<string, unknown> {
  return {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
    prompt_tokens_details: null,
  }
}

function includeUsage(body: Record<string, unknown>): boolean {
  const so = body.stream_options
  return typeof so === 'object' && so !== null && (so as Record<string, unknown>).include_usage === true
}

/** The failed stream's tail: an error `data:` event, then `[DONE]`. */
function streamError(fault: FaultSpec | null): Frame[] {
  const error = {
    error: {
      message: fault?.message ?? 'generation failed',
      type: 'InternalServerError',
      param: null,
      code: 500,
    },
  }
  return [
    { data: sseData(error), delayMs: 0, role: 'final' },
    { data: SSE_DONE, delayMs: 0, role: 'final' },
  ]
}

/** What every vLLM writer is told about the request it answers. */
interface VllmRequest {
  model: string
  promptTokens: number
  finish: string
  streaming: boolean
  body: Record<string, unknown>
  fault: FaultSpec | null
  /** Pause before the status line, and between pieces. */
  startMs: number
  perTokenMs: number
  /** The `invalid-json` fault's answer for a whole body. */
  invalidJson: (streaming: boolean, value: unknown) => Reply
}

/** What the conversation logic hands to the vLLM writer. */
export interface VllmChatTurn extends VllmRequest {
  completionTokens: number
  content: string
  reasoning: string
  contentTokens: string[]
  reasoningTokens: string[]
  calls: { index: number; id: string; name: string; arguments: string }[]
}

/** `POST /v1/chat/completions` as vLLM answers it. */
export function vllmChat(t: VllmChatTurn): Action {
  const id = `chatcmpl-${vllmHex()}`
  const created = Math.floor(Date.now() / 1000)
  const usage = vllmUsage(t.promptTokens, t.completionTokens)
  const whole = {
    id,
    object: 'chat.completion',
    created,
    model: t.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: t.content === '' && t.calls.length > 0 ? null : t.content,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: t.calls.map((c) => ({
            id: c.id,
            type: 'function',
            function: { name: c.name, arguments: c.arguments },
          })),
          reasoning: t.reasoning === '' ? null : t.reasoning,
          reasoning_content: t.reasoning === '' ? null : t.reasoning,
        },
        logprobs: null,
        finish_reason: t.finish,
        stop_reason: null,
        token_ids: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage,
    prompt_logprobs: null,
    prompt_token_ids: null,
    kv_transfer_params: null,
  }
  if (t.fault?.type === 'invalid-json') return t.invalidJson(t.streaming, whole)
  if (!t.streaming) {
    if (t.fault?.type === 'error-mid-stream') {
      return vllmError(500, t.fault.message ?? 'generation failed')
    }
    return { ...jsonReply(200, whole), delayMs: t.startMs + t.perTokenMs * t.completionTokens }
  }

  const frames: Frame[] = []
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sseData({ id, object: 'chat.completion.chunk', created, model: t.model, choices, ...extra })
  const push = (delta: Record<string, unknown>, role: Frame['role'] = 'content') => {
    frames.push({
      data: chunk([{ index: 0, delta, logprobs: null, finish_reason: null }]),
      delayMs: frames.length === 0 ? 0 : t.perTokenMs,
      role,
    })
  }
  push({ role: 'assistant', content: '' }, 'meta')
  for (const r of t.reasoningTokens) push({ reasoning: r })
  for (const c of t.contentTokens) push({ content: c })
  for (const c of t.calls) {
    push({ tool_calls: [{ id: c.id, type: 'function', index: c.index, function: { name: c.name } }] })
    for (let i = 0; i < c.arguments.length; i += 6) {
      push({ tool_calls: [{ index: c.index, function: { arguments: c.arguments.slice(i, i + 6) } }] })
    }
  }
  frames.push({
    data: chunk([
      { index: 0, delta: { content: '' }, logprobs: null, finish_reason: t.finish, stop_reason: null },
    ]),
    delayMs: t.perTokenMs,
    role: 'final',
  })
  if (includeUsage(t.body)) frames.push({ data: chunk([], { usage }), delayMs: 0, role: 'final' })
  frames.push({ data: SSE_DONE, delayMs: 0, role: 'final' })
  return streamReply(200, SSE_HEADERS, frames, { delayMs: t.startMs, midStreamError: streamError(t.fault) })
}

/** What the completion logic hands to the vLLM writer. */
export interface VllmCompletion extends VllmRequest {
  tokens: string[]
  text: string
}

/** `POST /v1/completions` as vLLM answers it (the last text piece carries the finish reason). */
export function vllmCompletion(c: VllmCompletion): Action {
  const id = `cmpl-${vllmHex(16)}`
  const created = Math.floor(Date.now() / 1000)
  const usage = vllmUsage(c.promptTokens, c.tokens.length)
  const envelope = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
    id,
    object: 'text_completion',
    created,
    model: c.model,
    choices,
    ...extra,
  })
  const whole = envelope(
    [
      {
        index: 0,
        text: c.text,
        logprobs: null,
        finish_reason: c.finish,
        stop_reason: null,
        prompt_logprobs: null,
      },
    ],
    { service_tier: null, system_fingerprint: null, usage, kv_transfer_params: null },
  )
  if (c.fault?.type === 'invalid-json') return c.invalidJson(c.streaming, whole)
  if (!c.streaming) {
    if (c.fault?.type === 'error-mid-stream') return vllmError(500, c.fault.message ?? 'generation failed')
    return { ...jsonReply(200, whole), delayMs: c.startMs + c.perTokenMs * c.tokens.length }
  }
  const pieces = c.tokens.length > 0 ? c.tokens : ['']
  const frames: Frame[] = pieces.map((text, i) => {
    const last = i === pieces.length - 1
    return {
      data: sseData(
        envelope([
          last
            ? { index: 0, text, logprobs: null, finish_reason: c.finish, stop_reason: null }
            : { index: 0, text, logprobs: null, finish_reason: null, stop_reason: null },
        ]),
      ),
      delayMs: i === 0 ? 0 : c.perTokenMs,
      role: last ? 'final' : 'content',
    }
  })
  if (includeUsage(c.body)) frames.push({ data: sseData(envelope([], { usage })), delayMs: 0, role: 'final' })
  frames.push({ data: SSE_DONE, delayMs: 0, role: 'final' })
  return streamReply(200, SSE_HEADERS, frames, { delayMs: c.startMs, midStreamError: streamError(c.fault) })
}

/** `POST /v1/embeddings` as vLLM answers it for an embedding model. */
export function vllmEmbeddings(model: string, vectors: (number[] | string)[], promptTokens: number): Reply {
  return jsonReply(200, {
    id: `embd-${vllmHex(16)}`,
    object: 'list',
    created: Math.floor(Date.now() / 1000),
    model,
    data: vectors.map((embedding, index) => ({ index, object: 'embedding', embedding })),
    usage: {
      prompt_tokens: promptTokens,
      total_tokens: promptTokens,
      completion_tokens: 0,
      prompt_tokens_details: null,
    },
  })
}
