/**
 * Router options: one zod schema (validated once, at `createLLMRouter()`), resolved into a type with
 * no optional fields so the rest of the code never re-checks defaults.
 */
import { z } from 'zod'
import { ENV_NAME } from './config/schema.js'
import { type AdminSchema, DEFAULT_ENCRYPTION_KEY_ENV, SCHEMA_LIST_PATH } from './config/schemas/index.js'
import { ErrorCode, RouterError } from './errors.js'
import { joinUrl } from './http/url.js'
import { type Env, readEnv } from './internal/env.js'
import { invalidOptions } from './internal/options-error.js'
import { type HttpSinkOptions, httpSinkOptionsSchema } from './metrics/options.js'
import {
  type HealthCheckSettings,
  healthCheckSchema,
  resolveHealthCheck,
  resolveWarmth,
  type WarmthSettings,
  warmthSchema,
} from './pool/health-options.js'
import type { MetricsSink } from './types.js'

/** An environment variable's name (the records' `*_env` fields use the same pattern). */
const envVarName = z.string().regex(ENV_NAME)
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
const nonNegInt = z.number().int().nonnegative()
const posInt = z.number().int().positive()

const headersSchema = z.record(z.string(), z.string())

const adminSchema = z
  .object({
    /** @default '/api/llm-backends/public' */
    listPath: z.string().startsWith('/').optional(),
    /** @default '/api/llm-backends/model/{model}' */
    modelPath: z.string().startsWith('/').includes('{model}').optional(),
    /** @default 'list' */
    lookup: z.enum(['list', 'model']).optional(),
    headers: headersSchema.optional(),
    /** Env var holding a bearer token for the admin API (sent as `Authorization: Bearer ...`). */
    bearerTokenEnv: envVarName.optional(),
    /** @default 5000 */
    timeoutMs: posInt.optional(),
    /** @default 1 MiB */
    maxPayloadBytes: posInt.optional(),
    mapPayload: z
      .custom<(payload: unknown) => unknown>((v) => typeof v === 'function', 'must be a function')
      .optional(),
    /** @default 1000 */
    retryBaseMs: posInt.optional(),
    /** @default 60000 */
    retryMaxMs: posInt.optional(),
    /** File that keeps the last good config across restarts (used before env when the admin is down at start). */
    snapshotFile: z.string().min(1).optional(),
    /** Path of a server-sent-events change stream on the admin; any event means "refetch now". Off by default. */
    watchPath: z.string().startsWith('/').optional(),
    /** Payload shape: seed 000's `llm_backends` records, seed 002's `llms` rows, seed 003's providers. @default 'llm_backends' */
    schema: z.enum(['llm_backends', 'llms', 'providers']).optional(),
    /** Env var holding the Fernet key for `api_key_encrypted` (providers schema). @default 'LLM_ROUTER_ENCRYPTION_KEY' */
    encryptionKeyEnv: envVarName.optional(),
  })
  .strict()

// The HTTP sink's own schema, so every option `createHttpSink()` takes is accepted here too; the URL
// defaults to `{adminUrl}{path}`.
const httpSinkSchema = httpSinkOptionsSchema.extend({
  url: httpUrl.optional(),
  /** @default '/api/llm-backends/metrics' */
  path: z.string().startsWith('/').optional(),
})

const sinkSchema = z.custom<MetricsSink>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    typeof (v as MetricsSink).write === 'function' &&
    typeof (v as MetricsSink).flush === 'function' &&
    typeof (v as MetricsSink).close === 'function',
  'must be a sink object with write(), flush() and close()',
)

const redisUrl = z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
const redisSchema = z
  .object({
    url: redisUrl,
    /** Prefix of every key and channel, so several apps can share one Redis. @default 'llm-router:' */
    prefix: z.string().optional(),
    /** Time budget of one store call on a request's path; slower answers fall back to local state. @default 100 */
    timeoutMs: posInt.optional(),
  })
  .strict()

export const routerOptionsSchema = z
  .object({
    /** Admin API base URL. Default: env LLM_ROUTER_ADMIN_URL, else ADMIN_API_URL. */
    adminUrl: httpUrl.optional(),
    admin: adminSchema.optional(),
    /** @default 60000 */
    cacheTtlMs: nonNegInt.optional(),
    /** Where every environment variable is read from. @default process.env */
    env: z.record(z.string(), z.string().optional()).optional(),
    /** `llms` schema: use the rows of this scope and of `global` (this scope's default wins). @default 'global' */
    scope: z.string().trim().min(1).optional(),
    /** Reject models that have no record of their own instead of sending them to the default backend. @default false */
    strictModels: z.boolean().optional(),
    /** Overall deadline of a request that sets no `timeoutMs` (all attempts, retries and waits). @default 120000 */
    defaultTimeoutMs: posInt.optional(),
    /** Limit of one attempt when neither the request nor the record (`timeout_seconds`) sets one; null = none. @default null */
    attemptTimeoutMs: posInt.nullable().optional(),
    /** Non-streams: limit until the response headers; null = none (Ollama and mlx_lm send them only at the end). @default null */
    headersTimeoutMs: posInt.nullable().optional(),
    /** Streams: limit until the first text, covering a cold model load; null = none. @default 60000 */
    firstTokenTimeoutMs: posInt.nullable().optional(),
    /** Streams: longest silence between body bytes once the headers came; null = none. @default 30000 */
    idleTimeoutMs: posInt.nullable().optional(),
    retry: z
      .object({
        /** Retries per endpoint for transient failures (5xx, 503, 429). @default 2 */
        maxRetries: nonNegInt.optional(),
        /** @default 500 */
        baseDelayMs: nonNegInt.optional(),
        /** @default 8000 */
        maxDelayMs: nonNegInt.optional(),
        /** Longest Retry-After honoured; longer waits fall over to the next candidate instead. @default 60000 */
        maxRetryAfterMs: nonNegInt.optional(),
      })
      .strict()
      .optional(),
    circuitBreaker: z
      .union([
        z.literal(false),
        z
          .object({
            /** @default 3 */
            threshold: posInt.optional(),
            /** @default 10000 */
            cooldownMs: nonNegInt.optional(),
          })
          .strict(),
      ])
      .optional(),
    /** @default 32 MiB */
    maxResponseBytes: posInt.optional(),
    /** Sockets per backend origin; null = unlimited. @default 4 */
    connectionsPerEndpoint: posInt.nullable().optional(),
    /** Per-origin overrides of connectionsPerEndpoint, keyed `scheme://host:port`. */
    connectionsByOrigin: z.record(httpUrl, posInt.nullable()).optional(),
    /** @default 10000 */
    connectTimeoutMs: posInt.optional(),
    /** false: no sink. A sink object: use it. An object: options of the built-in HTTP sink. */
    metrics: z.union([z.literal(false), sinkSchema, httpSinkSchema]).optional(),
    /** Samples kept per model/backend/endpoint for `router.stats()`. @default 1000 */
    statsWindow: posInt.optional(),
    /** How long `close()` lets in-flight requests finish before stopping them with CLOSED. @default 10000 */
    closeTimeoutMs: nonNegInt.optional(),
    /** `embed()`: most inputs per backend request; longer input lists are split into batches. @default 64 */
    embedBatchSize: posInt.optional(),
    /** `embed()`: most batch requests of one call in flight at once. @default 4 */
    embedConcurrency: posInt.optional(),
    /** Shared state for a fleet of instances (limits, circuits, config). Default: env LLM_ROUTER_REDIS_URL, else in-memory. */
    redis: redisSchema.optional(),
    /** Waiting when every candidate is at a limit (rpm, tpm, token_budget, max_concurrency). */
    limits: z
      .object({
        /** Longest a request waits in total for a limit to lift, within its deadline. @default 30000 */
        maxWaitMs: nonNegInt.optional(),
        /** Requests that may wait at once; more fail at once with RATE_LIMITED. @default 1000 */
        maxQueue: nonNegInt.optional(),
      })
      .strict()
      .optional(),
    /** Pools (records of one model and priority; README "Pools"). */
    pool: z
      .object({
        /** Requests that may wait for a slot on one member at its max_concurrency; beyond it POOL_BUSY. @default 1000 */
        maxQueued: nonNegInt.optional(),
        /** A session (metadata.sessionId) unused this long is placed afresh by its hash. @default 3600000 */
        sessionTtlMs: posInt.optional(),
        /** Sessions remembered per router (least recently used go first). @default 10000 */
        maxSessions: posInt.optional(),
      })
      .strict()
      .optional(),
    /** Active probes of every endpoint (never a generation); false/absent = off. */
    healthCheck: healthCheckSchema.optional(),
    /** Ollama `/api/ps` for members of pools, so warm members are preferred; false = off. */
    warmth: warmthSchema.optional(),
  })
  .strict()

export type RouterOptions = z.input<typeof routerOptionsSchema>

/** The HTTP sink's options as the user gave them, with the URL and headers resolved. */
export type ResolvedHttpSinkOptions = HttpSinkOptions & { headers: Record<string, string> }

export interface ResolvedOptions {
  adminUrl: string | null
  admin: {
    listPath: string
    modelPath: string
    lookup: 'list' | 'model'
    headers: Record<string, string>
    timeoutMs: number
    maxPayloadBytes: number
    mapPayload: ((payload: unknown) => unknown) | undefined
    retryBaseMs: number
    retryMaxMs: number
    snapshotFile: string | null
    watchPath: string | null
    schema: AdminSchema
    scope: string
    encryptionKeyEnv: string
  }
  cacheTtlMs: number
  env: Env
  strictModels: boolean
  defaultTimeoutMs: number
  attemptTimeoutMs: number | null
  headersTimeoutMs: number | null
  firstTokenTimeoutMs: number | null
  idleTimeoutMs: number | null
  retry: { maxRetries: number; baseDelayMs: number; maxDelayMs: number; maxRetryAfterMs: number }
  circuitBreaker: { threshold: number; cooldownMs: number } | null
  maxResponseBytes: number
  connectionsPerEndpoint: number | null
  connectionsByOrigin: Record<string, number | null>
  connectTimeoutMs: number
  metrics: false | MetricsSink | ResolvedHttpSinkOptions
  statsWindow: number
  closeTimeoutMs: number
  embedBatchSize: number
  embedConcurrency: number
  /** null: the in-memory store. */
  redis: { url: string; prefix: string; timeoutMs: number } | null
  limits: { maxWaitMs: number; maxQueue: number }
  pool: { maxQueued: number; sessionTtlMs: number; maxSessions: number }
  healthCheck: HealthCheckSettings | null
  warmth: WarmthSettings | null
}

function stripTrailingSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url
}

/** Validates and resolves options; throws RouterError(INVALID_OPTIONS) naming every bad option. */
export function resolveOptions(input: unknown): ResolvedOptions {
  const parsed = routerOptionsSchema.safeParse(input ?? {})
  if (!parsed.success) {
    throw invalidOptions('createLLMRouter()', parsed.error)
  }
  const o = parsed.data
  // The caller's own object, not zod's copy: credentials are read at request time, so a value rotated
  // in options.env is used by the next request (as with process.env).
  const env: Env = (input as { env?: Env } | undefined)?.env ?? process.env

  let adminUrl: string | null = o.adminUrl ?? null
  if (adminUrl === null) {
    const fromEnv = readEnv(env, 'LLM_ROUTER_ADMIN_URL') ?? readEnv(env, 'ADMIN_API_URL')
    if (fromEnv !== undefined) {
      const check = httpUrl.safeParse(fromEnv)
      if (!check.success) {
        const name =
          readEnv(env, 'LLM_ROUTER_ADMIN_URL') !== undefined ? 'LLM_ROUTER_ADMIN_URL' : 'ADMIN_API_URL'
        throw new RouterError(
          ErrorCode.INVALID_OPTIONS,
          `Invalid environment variable ${name}: must be an http(s) URL (or pass options.adminUrl)`,
          { issues: [{ path: name, message: 'must be an http(s) URL' }] },
        )
      }
      adminUrl = fromEnv
    }
  }
  if (adminUrl !== null) adminUrl = stripTrailingSlash(adminUrl)

  const adminHeaders: Record<string, string> = { ...(o.admin?.headers ?? {}) }
  if (o.admin?.bearerTokenEnv) {
    const token = readEnv(env, o.admin.bearerTokenEnv)
    if (token === undefined) {
      throw new RouterError(
        ErrorCode.MISSING_CREDENTIAL,
        `admin.bearerTokenEnv names ${o.admin.bearerTokenEnv}, but that environment variable is not set`,
      )
    }
    adminHeaders.authorization = `Bearer ${token}`
  }

  let metrics: ResolvedOptions['metrics'] = false
  if (o.metrics === false) metrics = false
  else if (o.metrics !== undefined && 'write' in o.metrics) metrics = o.metrics as MetricsSink
  else {
    const { path, url: explicitUrl, ...m } = (o.metrics ?? {}) as z.output<typeof httpSinkSchema>
    const url =
      explicitUrl ?? (adminUrl === null ? null : joinUrl(adminUrl, path ?? '/api/llm-backends/metrics'))
    // zod types absent options as `?: T | undefined`; the sink's own schema accepts either.
    if (url !== null) metrics = { ...m, url, headers: m.headers ?? adminHeaders } as ResolvedHttpSinkOptions
  }

  const schema = o.admin?.schema ?? 'llm_backends'
  if (schema !== 'llm_backends' && o.admin?.lookup === 'model') {
    throw new RouterError(
      ErrorCode.INVALID_OPTIONS,
      `Invalid option admin.lookup: 'model' works with the llm_backends schema only; the ${schema} schema is read as one list (remove admin.lookup)`,
      {
        issues: [{ path: 'admin.lookup', message: `'model' is not available with admin.schema '${schema}'` }],
      },
    )
  }

  const cb = o.circuitBreaker
  return {
    adminUrl,
    admin: {
      listPath: o.admin?.listPath ?? SCHEMA_LIST_PATH[schema],
      modelPath: o.admin?.modelPath ?? '/api/llm-backends/model/{model}',
      lookup: o.admin?.lookup ?? 'list',
      headers: adminHeaders,
      timeoutMs: o.admin?.timeoutMs ?? 5000,
      maxPayloadBytes: o.admin?.maxPayloadBytes ?? 1024 * 1024,
      mapPayload: o.admin?.mapPayload,
      retryBaseMs: o.admin?.retryBaseMs ?? 1000,
      retryMaxMs: o.admin?.retryMaxMs ?? 60_000,
      snapshotFile: o.admin?.snapshotFile ?? null,
      watchPath: o.admin?.watchPath ?? null,
      schema,
      scope: o.scope ?? 'global',
      encryptionKeyEnv: o.admin?.encryptionKeyEnv ?? DEFAULT_ENCRYPTION_KEY_ENV,
    },
    cacheTtlMs: o.cacheTtlMs ?? 60_000,
    env,
    strictModels: o.strictModels ?? false,
    defaultTimeoutMs: o.defaultTimeoutMs ?? 120_000,
    attemptTimeoutMs: o.attemptTimeoutMs ?? null,
    headersTimeoutMs: o.headersTimeoutMs ?? null,
    firstTokenTimeoutMs: o.firstTokenTimeoutMs === undefined ? 60_000 : o.firstTokenTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs === undefined ? 30_000 : o.idleTimeoutMs,
    retry: {
      maxRetries: o.retry?.maxRetries ?? 2,
      baseDelayMs: o.retry?.baseDelayMs ?? 500,
      maxDelayMs: o.retry?.maxDelayMs ?? 8000,
      maxRetryAfterMs: o.retry?.maxRetryAfterMs ?? 60_000,
    },
    circuitBreaker:
      cb === false ? null : { threshold: cb?.threshold ?? 3, cooldownMs: cb?.cooldownMs ?? 10_000 },
    maxResponseBytes: o.maxResponseBytes ?? 32 * 1024 * 1024,
    // llama-server serves one connection per HTTP thread (n_parallel + 2) and parks idle keep-alive
    // sockets on them: an unlimited pool stalls it. Local servers run a few generations at a time anyway.
    connectionsPerEndpoint: o.connectionsPerEndpoint === undefined ? 4 : o.connectionsPerEndpoint,
    connectionsByOrigin: Object.fromEntries(
      Object.entries(o.connectionsByOrigin ?? {}).map(([url, n]) => [new URL(url).origin, n]),
    ),
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    metrics,
    statsWindow: o.statsWindow ?? 1000,
    closeTimeoutMs: o.closeTimeoutMs ?? 10_000,
    embedBatchSize: o.embedBatchSize ?? 64,
    embedConcurrency: o.embedConcurrency ?? 4,
    redis: resolveRedis(o.redis, env),
    limits: { maxWaitMs: o.limits?.maxWaitMs ?? 30_000, maxQueue: o.limits?.maxQueue ?? 1000 },
    pool: {
      maxQueued: o.pool?.maxQueued ?? 1000,
      sessionTtlMs: o.pool?.sessionTtlMs ?? 3_600_000,
      maxSessions: o.pool?.maxSessions ?? 10_000,
    },
    healthCheck: resolveHealthCheck(o.healthCheck),
    warmth: resolveWarmth(o.warmth),
  }
}

function resolveRedis(o: z.output<typeof redisSchema> | undefined, env: Env): ResolvedOptions['redis'] {
  let url = o?.url
  if (url === undefined) {
    const fromEnv = readEnv(env, 'LLM_ROUTER_REDIS_URL')
    if (fromEnv === undefined) return null
    if (!redisUrl.safeParse(fromEnv).success) {
      throw new RouterError(
        ErrorCode.INVALID_OPTIONS,
        'Invalid environment variable LLM_ROUTER_REDIS_URL: must be a redis:// or rediss:// URL (or pass options.redis.url)',
        { issues: [{ path: 'LLM_ROUTER_REDIS_URL', message: 'must be a redis:// or rediss:// URL' }] },
      )
    }
    url = fromEnv
  }
  return { url, prefix: o?.prefix ?? 'llm-router:', timeoutMs: o?.timeoutMs ?? 100 }
}
