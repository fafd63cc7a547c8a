import type { z } from 'zod'
import { ErrorCode, RouterError } from '../errors.js'

/**
 * The one INVALID_OPTIONS error for a failed zod parse of options (router and standalone sink alike):
 * every bad option named with its path, unknown keys listed, zod's error as the cause.
 */
export function invalidOptions(label: string, error: z.ZodError): RouterError {
  const issues = error.issues.map((i) => ({
    path: i.path.length > 0 ? i.path.join('.') : '(options)',
    message: i.code === 'unrecognized_keys' ? `unknown option(s): ${i.keys.join(', ')}` : i.message,
  }))
  return new RouterError(
    ErrorCode.INVALID_OPTIONS,
    `Invalid ${label} options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    { issues, cause: error },
  )
}
