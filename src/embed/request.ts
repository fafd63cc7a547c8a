/**
 * Validation of `router.embed()` requests, before anything is sent. The fields an embed request shares with
 * `generate()` (model, timeouts, signal, fallbackModels, metadata) go through the same checks as there
 * (dispatch/request.ts `validateShared`), so their messages are the same.
 */
import { fail, validateShared } from '../dispatch/request.js'

function positiveInt(r: Record<string, unknown>, key: string): void {
  const v = r[key]
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v <= 0))
    fail(key, 'must be a positive integer')
}

/** Checks an `EmbedRequest` (src/embed/types.ts); returns its inputs as a list (a single string becomes a list of one). */
export function validateEmbedRequest(req: unknown): string[] {
  if (typeof req !== 'object' || req === null) fail('request', 'must be an object with an input')
  const r = req as Record<string, unknown>
  const input = r.input
  let inputs: string[]
  if (typeof input === 'string') {
    if (input.length === 0) fail('input', 'must not be an empty string')
    inputs = [input]
  } else if (Array.isArray(input)) {
    if (input.length === 0) fail('input', 'must not be an empty list')
    for (let i = 0; i < input.length; i++) {
      const item: unknown = input[i]
      if (typeof item !== 'string') fail(`input[${i}]`, 'must be a string')
      if (item.length === 0) fail(`input[${i}]`, 'must not be an empty string')
    }
    inputs = input as string[]
  } else {
    fail('input', 'must be a string or a list of strings')
  }
  positiveInt(r, 'dimensions')
  positiveInt(r, 'batchSize')
  positiveInt(r, 'concurrency')
  const keepAlive = r.keepAlive
  if (
    keepAlive !== undefined &&
    typeof keepAlive !== 'string' &&
    (typeof keepAlive !== 'number' || !Number.isFinite(keepAlive))
  )
    fail('keepAlive', "must be a duration string such as '10m' or a number of seconds")
  validateShared(r)
  const options = r.options
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options)))
    fail('options', 'must be a plain object')
  return inputs
}
