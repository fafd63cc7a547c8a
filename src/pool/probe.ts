/**
 * One active health probe of one member, and the Ollama loaded-models fetch. Probes never run a
 * generation (LiteLLM's `/health` does, and pays for it): Ollama `GET /api/version`, an
 * OpenAI-compatible server `GET /health` (mlx_lm.server, llama.cpp's llama-server, vLLM all serve
 * it; llama-server and vLLM answer 503 while loading or dead), falling back to `GET /v1/models` for
 * servers without `/health` (LM Studio, hosted APIs), remembered per member.
 *
 * Calls go through the admin HTTP client (`getJson`: whole-call deadline on the injected clock,
 * size cap, abort that settles during a hung connect) on the prober's own pool, so a probe never
 * queues behind long generations in the request pool and is not failed by them.
 */
import type { Dispatcher } from 'undici'
import type { Target } from '../dispatch/routes.js'
import { getJson, type HttpOutcome } from '../http/client.js'
import type { Clock } from '../internal/clock.js'

/** What one probe needs to know about its member. */
export interface ProbeTarget {
  kind: Target['kind']
  /** Endpoint base URL (no credentials), as in results. */
  endpoint: string
  /** Headers for the member: static ones plus auth; null when its credential is missing (the reason says which). */
  headers: Record<string, string> | null
  /** Why `headers` is null. */
  headersError?: string
}

export interface ProbeContext {
  dispatcher: Dispatcher
  clock: Clock
  timeoutMs: number
  signal: AbortSignal
}

export type ProbeResult = { ok: true; latencyMs: number } | { ok: false; reason: string }

/** Probe answers are tiny; a bigger one is not the server we think it is. */
const PROBE_BODY_LIMIT = 256 * 1024
/** `/api/ps` lists loaded models with their details: a few KiB per model. */
const PS_BODY_LIMIT = 1024 * 1024

function describe(outcome: HttpOutcome, path: string): string {
  switch (outcome.kind) {
    case 'status':
      return `GET ${path} answered ${outcome.status}${outcome.text ? `: ${outcome.text.slice(0, 200)}` : ''}`
    case 'network':
      return `GET ${path} failed: ${outcome.description}`
    case 'timeout':
      return `GET ${path} did not answer within ${outcome.timeoutMs} ms`
    case 'broken-body':
      return `GET ${path} broke off: ${outcome.description}`
    case 'too-large':
      return `GET ${path} answered with a body over ${PROBE_BODY_LIMIT} bytes`
    case 'not-json':
      return `GET ${path} answered ${outcome.status} with a body that is not JSON`
    case 'aborted':
      return `GET ${path} was stopped (router closing)`
    case 'json':
      return `GET ${path} answered ${outcome.status} with an unexpected body`
    case 'not-modified':
      return `GET ${path} answered 304`
  }
}

function get(target: ProbeTarget, path: string, ctx: ProbeContext, limit: number): Promise<HttpOutcome> {
  return getJson({
    url: `${target.endpoint}${path}`,
    dispatcher: ctx.dispatcher,
    clock: ctx.clock,
    timeoutMs: ctx.timeoutMs,
    maxBodyBytes: limit,
    headers: target.headers ?? {},
    signal: ctx.signal,
  })
}

/** Which path an OpenAI-compatible member answers probes on, learned on its first probe. */
export type OpenAIProbePath = '/health' | '/v1/models'

/**
 * Probes one member. `openaiPath` is the path learned so far for an OpenAI-compatible member;
 * the result says which one to use next time.
 */
export async function probeMember(
  target: ProbeTarget,
  ctx: ProbeContext,
  openaiPath: OpenAIProbePath = '/health',
): Promise<{ result: ProbeResult; openaiPath: OpenAIProbePath }> {
  if (target.headers === null) {
    return { result: { ok: false, reason: target.headersError ?? 'missing credential' }, openaiPath }
  }
  const t0 = performance.now()
  if (target.kind === 'ollama') {
    const out = await get(target, '/api/version', ctx, PROBE_BODY_LIMIT)
    if (out.kind !== 'json')
      return { result: { ok: false, reason: describe(out, '/api/version') }, openaiPath }
    const version = (out.value as { version?: unknown } | null)?.version
    if (typeof version !== 'string') {
      return {
        result: { ok: false, reason: 'GET /api/version answered without a version: not an Ollama server?' },
        openaiPath,
      }
    }
    return { result: { ok: true, latencyMs: performance.now() - t0 }, openaiPath }
  }
  let path = openaiPath
  let out = await get(target, path, ctx, PROBE_BODY_LIMIT)
  if (path === '/health' && out.kind === 'status' && (out.status === 404 || out.status === 405)) {
    // No /health here (LM Studio, hosted APIs): /v1/models is what every OpenAI-compatible server has.
    path = '/v1/models'
    out = await get(target, path, ctx, PROBE_BODY_LIMIT)
  }
  // vLLM's /health is a 200 with an empty body: any 2xx is healthy there. /v1/models must be a list.
  const healthy =
    path === '/health'
      ? out.kind === 'json' || out.kind === 'not-json'
      : out.kind === 'json' && Array.isArray((out.value as { data?: unknown } | null)?.data)
  if (healthy) return { result: { ok: true, latencyMs: performance.now() - t0 }, openaiPath: path }
  const reason =
    out.kind === 'json' ? `GET ${path} answered without a model list (no "data" array)` : describe(out, path)
  return { result: { ok: false, reason }, openaiPath: path }
}

/** Tagged Ollama name: a request for `llama3.2` runs `llama3.2:latest`. */
export function ollamaTagged(name: string): string {
  const slash = name.lastIndexOf('/')
  return name.indexOf(':', slash + 1) >= 0 ? name : `${name}:latest`
}

/**
 * The models loaded on an Ollama server (`GET /api/ps`: `{"models":[{"name","model","expires_at",...}]}`),
 * tagged; null when the answer is not that list. `expires_at` is not read: Ollama drops a runner from
 * the list when it unloads, and writes odd values there while a model loads or is kept forever.
 */
export async function fetchLoadedModels(target: ProbeTarget, ctx: ProbeContext): Promise<string[] | null> {
  if (target.headers === null) return null
  const out = await get(target, '/api/ps', ctx, PS_BODY_LIMIT)
  if (out.kind !== 'json') return null
  const models = (out.value as { models?: unknown } | null)?.models
  if (!Array.isArray(models)) return null
  const names: string[] = []
  for (const m of models) {
    if (typeof m !== 'object' || m === null) continue
    const { name, model } = m as { name?: unknown; model?: unknown }
    const id = typeof name === 'string' ? name : typeof model === 'string' ? model : null
    if (id !== null) names.push(ollamaTagged(id))
  }
  return names
}
