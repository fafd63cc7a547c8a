/**
 * Validation of `chat()` / `streamChat()` requests, before anything is sent: each failure is
 * INVALID_REQUEST naming the field (`messages[2].toolCallId`). Hand-written like generate's checks.
 */
import { fail, validateShared } from '../dispatch/request.js'
import type { ChatFunctionTool, ChatRequest, ChatTool } from './types.js'

const ROLES = new Set(['system', 'user', 'assistant', 'tool'])
const THINK_LEVELS = new Set(['low', 'medium', 'high'])
/** OpenAI's rule for function names, which the OpenAI-compatible servers inherit. */
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/
const OPTION_DIALECTS = new Set(['ollama', 'openai'])

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function numberIn(r: Record<string, unknown>, key: string, min: number, max: number): void {
  const v = r[key]
  if (v === undefined) return
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    fail(key, `must be a number from ${min} to ${max}`)
}

function integer(r: Record<string, unknown>, key: string, positive: boolean): void {
  const v = r[key]
  if (v === undefined) return
  if (typeof v !== 'number' || !Number.isInteger(v) || (positive && v <= 0))
    fail(key, positive ? 'must be a positive integer' : 'must be an integer')
}

/** The function of a tool in either accepted shape (flat, or `{ type: 'function', function }`). */
export function toolFunction(tool: ChatTool): ChatFunctionTool {
  return 'function' in tool && isPlainObject(tool.function) ? tool.function : (tool as ChatFunctionTool)
}

function validateTools(r: Record<string, unknown>): Set<string> {
  const names = new Set<string>()
  if (r.tools === undefined) return names
  if (!Array.isArray(r.tools)) fail('tools', 'must be an array of function tools')
  r.tools.forEach((tool: unknown, i) => {
    const path = `tools[${i}]`
    if (!isPlainObject(tool)) fail(path, 'must be an object: { name, description?, parameters? }')
    if ('type' in tool && tool.type !== 'function') fail(`${path}.type`, "must be 'function'")
    const fn = 'function' in tool ? tool.function : tool
    const at = 'function' in tool ? `${path}.function` : path
    if (!isPlainObject(fn)) fail(at, 'must be an object: { name, description?, parameters? }')
    if (typeof fn.name !== 'string' || !TOOL_NAME.test(fn.name))
      fail(`${at}.name`, 'must be 1-64 letters, digits, _ or -')
    if (names.has(fn.name)) fail(`${at}.name`, `duplicates the tool "${fn.name}"`)
    names.add(fn.name)
    if (fn.description !== undefined && typeof fn.description !== 'string')
      fail(`${at}.description`, 'must be a string')
    if (fn.parameters !== undefined && !isPlainObject(fn.parameters))
      fail(`${at}.parameters`, 'must be a JSON schema object')
  })
  return names
}

function validateToolChoice(r: Record<string, unknown>, names: Set<string>): void {
  const c = r.toolChoice
  if (c === undefined) return
  if (names.size === 0) fail('toolChoice', 'needs tools')
  if (c === 'auto' || c === 'none' || c === 'required') return
  if (!isPlainObject(c) || typeof c.name !== 'string')
    fail('toolChoice', "must be 'auto', 'none', 'required' or { name }")
  if (!names.has(c.name)) fail('toolChoice.name', `names no tool in tools ("${c.name}")`)
}

function validateMessages(r: Record<string, unknown>): void {
  const messages = r.messages
  if (!Array.isArray(messages)) fail('messages', 'must be an array of messages')
  if (messages.length === 0) fail('messages', 'must not be empty')
  const callIds = new Set<string>()
  messages.forEach((m: unknown, i) => {
    const path = `messages[${i}]`
    if (!isPlainObject(m)) fail(path, 'must be an object: { role, content }')
    if (typeof m.role !== 'string')
      fail(`${path}.role`, "is required: 'system', 'user', 'assistant' or 'tool'")
    if (!ROLES.has(m.role)) fail(`${path}.role`, "must be 'system', 'user', 'assistant' or 'tool'")
    const calls = m.toolCalls
    if (m.content !== undefined && typeof m.content !== 'string') fail(`${path}.content`, 'must be a string')
    if (m.content === undefined && !(m.role === 'assistant' && Array.isArray(calls) && calls.length > 0))
      fail(`${path}.content`, 'is required (only an assistant turn with toolCalls may leave it out)')
    if (m.images !== undefined) {
      if (!Array.isArray(m.images)) fail(`${path}.images`, 'must be an array of base64 strings')
      if (m.role !== 'user') fail(`${path}.images`, 'are only allowed on user messages')
      m.images.forEach((img: unknown, j) => {
        if (typeof img !== 'string' || img.length === 0)
          fail(`${path}.images[${j}]`, 'must be a non-empty base64 string or data: URL')
      })
    }
    if (calls !== undefined) {
      if (m.role !== 'assistant') fail(`${path}.toolCalls`, 'are only allowed on assistant messages')
      if (!Array.isArray(calls)) fail(`${path}.toolCalls`, 'must be an array of { id, name, arguments }')
      calls.forEach((c: unknown, j) => {
        const at = `${path}.toolCalls[${j}]`
        if (!isPlainObject(c)) fail(at, 'must be an object: { id, name, arguments }')
        if (typeof c.id !== 'string' || c.id.length === 0) fail(`${at}.id`, 'must be a non-empty string')
        if (typeof c.name !== 'string' || c.name.length === 0)
          fail(`${at}.name`, 'must be a non-empty string')
        if (!isPlainObject(c.arguments)) fail(`${at}.arguments`, 'must be an object (parsed arguments)')
        callIds.add(c.id)
      })
    }
    if (m.role === 'tool') {
      if (typeof m.toolCallId !== 'string' || m.toolCallId.length === 0)
        fail(`${path}.toolCallId`, 'is required on a tool message: the id of the call it answers')
      if (!callIds.has(m.toolCallId))
        fail(`${path}.toolCallId`, `matches no tool call of an earlier assistant message ("${m.toolCallId}")`)
    } else if (m.toolCallId !== undefined) {
      fail(`${path}.toolCallId`, 'is only allowed on tool messages')
    }
  })
}

function validateOptions(r: Record<string, unknown>): void {
  const o = r.options
  if (o === undefined) return
  if (!isPlainObject(o)) fail('options', 'must be { ollama?: {...}, openai?: {...} }')
  for (const key of Object.keys(o)) {
    if (!OPTION_DIALECTS.has(key))
      fail(`options.${key}`, 'is not a backend dialect: use options.ollama or options.openai')
    if (o[key] !== undefined && !isPlainObject(o[key])) fail(`options.${key}`, 'must be a plain object')
  }
}

export function validateChatRequest(req: unknown): asserts req is ChatRequest {
  if (!isPlainObject(req)) fail('request', 'must be an object with at least messages')
  const r = req
  validateMessages(r)
  validateShared(r)
  validateToolChoice(r, validateTools(r))
  if (r.format !== undefined && r.format !== 'json' && !isPlainObject(r.format))
    fail('format', "must be 'json' or a JSON schema object")
  if (r.think !== undefined && typeof r.think !== 'boolean' && !THINK_LEVELS.has(r.think as string))
    fail('think', "must be true, false, 'low', 'medium' or 'high'")
  numberIn(r, 'topP', 0, 1)
  numberIn(r, 'minP', 0, 1)
  numberIn(r, 'presencePenalty', -2, 2)
  numberIn(r, 'frequencyPenalty', -2, 2)
  integer(r, 'topK', true)
  integer(r, 'seed', false)
  integer(r, 'numCtx', true)
  if (r.keepAlive !== undefined && typeof r.keepAlive !== 'string' && typeof r.keepAlive !== 'number')
    fail('keepAlive', "must be a duration string ('5m') or a number of seconds")
  validateOptions(r)
}
