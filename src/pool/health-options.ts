/**
 * Router options of member health: `healthCheck` (active probes, off by default) and `warmth`
 * (Ollama's loaded-models list, on for pools). Kept apart from options.ts so the schema and its
 * defaults sit next to the code that reads them.
 */
import { z } from 'zod'

const posInt = z.number().int().positive()

export const healthCheckSchema = z.union([
  z.literal(false),
  z
    .object({
      /** Time between two probes of one member (each one jittered). */
      intervalMs: z.number().int().min(100),
      /** Limit of one probe (connect, headers and body). @default min(2000, intervalMs) */
      timeoutMs: posInt.optional(),
      /** Each interval is stretched or shrunk by up to this share, so routers do not probe in step. @default 0.1 */
      jitter: z.number().min(0).max(0.5).optional(),
      /** Consecutive failed probes that take a member out of rotation. @default 1 */
      failuresBeforeDown: posInt.optional(),
    })
    .strict(),
])

export const warmthSchema = z.union([
  z.literal(false),
  z
    .object({
      /** How long a fetched `/api/ps` list is used before it is fetched again in the background. @default 5000 */
      ttlMs: posInt.optional(),
      /** Limit of one `/api/ps` fetch. @default 2000 */
      timeoutMs: posInt.optional(),
    })
    .strict(),
])

export interface HealthCheckSettings {
  intervalMs: number
  timeoutMs: number
  jitter: number
  failuresBeforeDown: number
}

export interface WarmthSettings {
  ttlMs: number
  timeoutMs: number
}

export function resolveHealthCheck(
  o: z.output<typeof healthCheckSchema> | undefined,
): HealthCheckSettings | null {
  if (o === undefined || o === false) return null
  return {
    intervalMs: o.intervalMs,
    timeoutMs: o.timeoutMs ?? Math.min(2000, o.intervalMs),
    jitter: o.jitter ?? 0.1,
    failuresBeforeDown: o.failuresBeforeDown ?? 1,
  }
}

export function resolveWarmth(o: z.output<typeof warmthSchema> | undefined): WarmthSettings | null {
  if (o === false) return null
  return { ttlMs: o?.ttlMs ?? 5000, timeoutMs: o?.timeoutMs ?? 2000 }
}
