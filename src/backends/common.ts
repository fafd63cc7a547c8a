/**
 * Pieces shared by the protocol adapters: error-body reading and the RouterError factories they throw.
 * Pure functions; nothing here does I/O.
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { BackendKind } from '../types.js'

export type OnText = (text: string) => void
export type JsonObject = Record<string, unknown>

/** Longest message taken from a structured (JSON) error body. */
const MAX_JSON_MESSAGE = 500
/** Longest message taken from a plain-text or HTML error body. */
const MAX_TEXT_MESSAGE = 200
/** Only this much of a text/HTML body is looked at: error pages can be large and only the start matters. */
const TEXT_SCAN_LIMIT = 8192

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Non-negative finite number, else 0: servers omit zero metrics (Ollama `omitempty`) or send junk. */
export function count(value: unknown): number {
  return typeof value === 'number' && value >= 0 && value !== Number.POSITIVE_INFINITY ? value : 0
}

/** Cut to `max` characters with an ellipsis, never inside a surrogate pair. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text
  let end = max - 1
  const code = text.charCodeAt(end - 1)
  if (code >= 0xd800 && code <= 0xdbff) end--
  return `${text.slice(0, end).trimEnd()}…`
}

/**
 * The human-readable message inside an error payload, whatever shape the server chose:
 * a bare string, `{"error":"text"}` (Ollama, mlx_lm), `{"error":{"message":...}}` (llama.cpp, newer vLLM,
 * Ollama /v1), flat `{"object":"error","message":...}` (older vLLM), FastAPI `{"detail":...}`.
 * Returns undefined when no message can be found.
 */
export function payloadMessage(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (!isObject(value)) return undefined
  const error = value.error
  if (typeof error === 'string') return error
  if (isObject(error)) {
    if (typeof error.message === 'string') return error.message
    return clip(JSON.stringify(error), MAX_JSON_MESSAGE)
  }
  if (typeof value.message === 'string') return value.message
  const detail = value.detail
  if (typeof detail === 'string') return detail
  if (Array.isArray(detail)) {
    const parts: string[] = []
    for (const item of detail) {
      if (isObject(item) && typeof item.msg === 'string') parts.push(item.msg)
      else if (typeof item === 'string') parts.push(item)
    }
    if (parts.length > 0) return parts.join('; ')
  }
  return undefined
}

/** Message of an error value found inside a stream frame; falls back to its JSON. */
export function describeStreamError(value: unknown): string {
  const message = payloadMessage(value)
  if (message !== undefined && message.trim().length > 0) return clip(message.trim(), MAX_JSON_MESSAGE)
  return clip(typeof value === 'string' ? value : String(JSON.stringify(value)), MAX_JSON_MESSAGE)
}

const SCRIPT_OR_STYLE = /<(script|style)\b[^>]*>[\s\S]*?<\/\1\s*>/gi
const TAG = /<[^>]*>/g
const ENTITY = /&(amp|lt|gt|quot|#39|apos|nbsp);/g
const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  '#39': "'",
  apos: "'",
  nbsp: ' ',
}
const SPACE = /\s+/g

function plainText(text: string): string {
  let out = text
  if (out.includes('<')) out = out.replace(SCRIPT_OR_STYLE, ' ').replace(TAG, ' ')
  if (out.includes('&')) out = out.replace(ENTITY, (_, name: string) => ENTITIES[name] ?? '')
  return out.replace(SPACE, ' ').trim()
}

/**
 * Human-readable message from a non-2xx body, shared by both adapters: the JSON error shapes listed in
 * {@link payloadMessage}, else the body as text with HTML tags and extra whitespace removed, cut to about
 * 200 characters. An empty body (Ollama's 403, a dropped proxy response) gives `HTTP <status>`.
 */
export function errorMessage(status: number, body: string): string {
  const fallback = `HTTP ${status}`
  const first = firstNonSpace(body)
  if (first === -1) return fallback
  const code = body.charCodeAt(first)
  if (code === 0x7b /* { */ || code === 0x5b /* [ */ || code === 0x22 /* " */) {
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch {
      parsed = undefined
    }
    const message = payloadMessage(Array.isArray(parsed) ? parsed[0] : parsed)
    if (message !== undefined) {
      const trimmed = message.replace(SPACE, ' ').trim()
      return trimmed.length === 0 ? fallback : clip(trimmed, MAX_JSON_MESSAGE)
    }
  }
  const text = plainText(body.length > TEXT_SCAN_LIMIT ? body.slice(0, TEXT_SCAN_LIMIT) : body)
  return text.length === 0 ? fallback : clip(text, MAX_TEXT_MESSAGE)
}

function firstNonSpace(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && c !== 0xfeff) return i
  }
  return -1
}

/** Short, single-line preview of an offending frame for error messages. */
export function preview(text: string): string {
  return JSON.stringify(clip(text, 80))
}

export function malformed(backend: BackendKind, message: string, cause?: unknown): RouterError {
  return new RouterError(
    ErrorCode.MALFORMED_RESPONSE,
    message,
    cause === undefined ? { backend } : { backend, cause },
  )
}

export function streamError(
  backend: BackendKind,
  message: string,
  delivered: number,
  cause?: unknown,
): RouterError {
  return new RouterError(
    ErrorCode.STREAM_ERROR,
    message,
    cause === undefined ? { backend, delivered } : { backend, delivered, cause },
  )
}

/** Parse a complete body once; a parse failure is MALFORMED_RESPONSE with the SyntaxError as cause. */
export function parseBody(backend: BackendKind, label: string, body: string): unknown {
  try {
    return JSON.parse(body)
  } catch (cause) {
    throw malformed(
      backend,
      `${label} answered 2xx but the body is not JSON (starts with ${preview(body)}); ` +
        'check that the endpoint URL points at the right kind of server',
      cause,
    )
  }
}

/**
 * An in-band error that says the request itself is wrong: `code` 400/422 or `type`
 * `invalid_request_error` (llama-server answers a streamed prompt longer than its context with HTTP 200,
 * then `error: {"code":400,...,"type":"invalid_request_error"}`). Another backend would reject it too.
 */
export function rejectsRequest(payload: unknown): boolean {
  if (!isObject(payload)) return false
  const inner = isObject(payload.error) ? payload.error : payload
  const code = inner.code
  return code === 400 || code === 422 || inner.type === 'invalid_request_error'
}

/** BAD_REQUEST for an in-band error that rejects the request, with the server's message. */
export function rejectedInBand(backend: BackendKind, label: string, payload: unknown): RouterError {
  return new RouterError(
    ErrorCode.BAD_REQUEST,
    `${label} rejected the request: ${describeStreamError(payload)} (fix the request: prompt length, stop, maxTokens, options)`,
    { backend, cause: payload },
  )
}

/** A 2xx body that carries an error payload: the backend failed but said so in-band. */
export function inBandError(backend: BackendKind, label: string, payload: unknown): RouterError {
  if (rejectsRequest(payload)) return rejectedInBand(backend, label, payload)
  return new RouterError(
    ErrorCode.BACKEND_ERROR,
    `${label} answered 2xx with an error body: ${describeStreamError(payload)}`,
    { backend, status: 200, cause: payload },
  )
}
