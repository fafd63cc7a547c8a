/**
 * Request validation and normalisation. Hand-written checks rather than a schema: this runs on
 * every request, and each check names the field it rejects.
 */
import { ErrorCode, RouterError } from '../errors.js'
import type { GenerateRequest } from '../types.js'

export function fail(path: string, message: string): never {
  throw new RouterError(ErrorCode.INVALID_REQUEST, `Invalid request: ${path} ${message}`, {
    issues: [{ path, message }],
  })
}

const TIMEOUT_KEYS = [
  'timeoutMs',
  'attemptTimeoutMs',
  'headersTimeoutMs',
  'firstTokenTimeoutMs',
  'idleTimeoutMs',
] as const

const METADATA_KEYS = ['requestId', 'sessionId', 'userId', 'zone', 'intent'] as const

export function validateRequest(req: unknown): asserts req is GenerateRequest {
  if (typeof req !== 'object' || req === null) fail('request', 'must be an object with at least a prompt')
  const r = req as Record<string, unknown>
  if (typeof r.prompt !== 'string') fail('prompt', 'must be a string')
  if (r.system !== undefined && typeof r.system !== 'string') fail('system', 'must be a string')
  validateShared(r)
  if (
    r.options !== undefined &&
    (typeof r.options !== 'object' || r.options === null || Array.isArray(r.options))
  )
    fail('options', 'must be a plain object')
}

/** The fields every operation's request shares with generate(): model, sampling basics, limits, signal, fallbacks, metadata. */
export function validateShared(r: Record<string, unknown>): void {
  if (r.model !== undefined && (typeof r.model !== 'string' || r.model === ''))
    fail('model', 'must be a non-empty string')
  if (r.temperature !== undefined) {
    const t = r.temperature
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) fail('temperature', 'must be a number >= 0')
  }
  if (r.maxTokens !== undefined) {
    const m = r.maxTokens
    if (typeof m !== 'number' || !Number.isInteger(m) || m <= 0)
      fail('maxTokens', 'must be a positive integer')
  }
  if (r.stop !== undefined) {
    if (!Array.isArray(r.stop)) fail('stop', 'must be an array of strings')
    for (let i = 0; i < r.stop.length; i++)
      if (typeof r.stop[i] !== 'string') fail(`stop[${i}]`, 'must be a string')
  }
  for (const key of TIMEOUT_KEYS) {
    const t = r[key]
    if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t <= 0))
      fail(key, 'must be a positive number')
  }
  if (r.signal !== undefined) {
    const s = r.signal as AbortSignal
    if (
      typeof s !== 'object' ||
      s === null ||
      typeof s.addEventListener !== 'function' ||
      typeof s.aborted !== 'boolean'
    )
      fail('signal', 'must be an AbortSignal')
  }
  if (r.fallbackModels !== undefined && r.fallbackModels !== 'priority') {
    if (!Array.isArray(r.fallbackModels))
      fail('fallbackModels', "must be an array of model names or 'priority'")
    for (let i = 0; i < r.fallbackModels.length; i++)
      if (typeof r.fallbackModels[i] !== 'string' || r.fallbackModels[i] === '')
        fail(`fallbackModels[${i}]`, 'must be a non-empty string')
  }
  if (r.metadata !== undefined) {
    if (typeof r.metadata !== 'object' || r.metadata === null) fail('metadata', 'must be an object')
    const m = r.metadata as Record<string, unknown>
    for (const key of METADATA_KEYS) {
      if (m[key] !== undefined && typeof m[key] !== 'string') fail(`metadata.${key}`, 'must be a string')
    }
  }
}
