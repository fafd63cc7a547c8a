/**
 * msw handlers for the three stand-ins, sharing the protocol and fault logic of the node:http servers.
 * @module
 */
import { http, type RequestHandler } from 'msw'
import type { MetricRecord } from '../../types.js'
import { AdminCore, type AdminOptions, type AdminRecord, type MetricPost } from '../core/admin.js'
import { openAICoreFor } from '../core/hosted.js'
import { OllamaCore, type OllamaOptions } from '../core/ollama.js'
import type { OpenAIOptions } from '../core/openai.js'
import type { ServiceCore } from '../core/service.js'
import type { FaultSpec, FaultSwitch, FaultType, RecordedRequest } from '../types.js'
import { resolverFor } from './respond.js'

/** Controls every msw stand-in has. */
export interface MockControls extends FaultSwitch {
  /** The base URL the handlers answer for (no trailing slash). */
  readonly baseUrl: string
  /** Requests the handlers received, in order (the last `maxRecordedRequests`). */
  readonly requests: RecordedRequest[]
  /** Number of requests received, recorded or not. */
  readonly requestCount: number
  /** Forgets recorded requests (and metrics for the admin) and clears the fault. */
  reset(): void
}

/**
 * An array of msw handlers with the stand-in's controls attached: spread it into
 * `createMockNetwork(...)`, `network.use(...)` or `setupServer(...)`.
 */
export type MockHandlers<Extra = object> = RequestHandler[] & MockControls & Extra

/** Option shared by the msw factories. */
export interface MockBaseOptions {
  /** Base URL the handlers answer for, e.g. `http://ollama.test:11434`. */
  baseUrl?: string
}

function build<Extra extends object>(core: ServiceCore, baseUrl: string, extra: Extra): MockHandlers<Extra> {
  const base = baseUrl.replace(/\/+$/, '')
  const resolver = resolverFor(core)
  const handlers: RequestHandler[] = [http.all(`${base}/`, resolver), http.all(`${base}/*`, resolver)]
  const controls: MockControls = {
    baseUrl: base,
    get requests() {
      return core.requests
    },
    get requestCount() {
      return core.requestCount
    },
    get fault() {
      return core.faults.fault
    },
    setFault(fault: FaultSpec | FaultType) {
      core.faults.set(fault)
      return Promise.resolve()
    },
    clearFault() {
      core.faults.clear()
      return Promise.resolve()
    },
    reset() {
      core.reset()
    },
  }
  Object.defineProperties(handlers, Object.getOwnPropertyDescriptors(controls))
  Object.defineProperties(handlers, Object.getOwnPropertyDescriptors(extra))
  return handlers as MockHandlers<Extra>
}

/** Options of {@link ollamaHandlers}. */
export interface OllamaMockOptions extends OllamaOptions, MockBaseOptions {}

/**
 * msw handlers for an Ollama server at `baseUrl` (default `http://ollama.test:11434`), with the same
 * routes, bodies and faults as {@link startOllamaServer}. `down`, `drop-socket` and `hang` become a
 * network error (a hang waits for the request to be aborted first).
 *
 * @example
 * const ollama = ollamaHandlers({ baseUrl: 'http://ollama.test:11434', respond: 'Paris.' })
 * const network = createMockNetwork(...ollama)
 * network.enable()
 * await ollama.setFault({ type: 'error-mid-stream' })
 */
export function ollamaHandlers(options: OllamaMockOptions = {}): MockHandlers<{ unloadAll(): void }> {
  const core = new OllamaCore(options)
  return build(core, options.baseUrl ?? 'http://ollama.test:11434', { unloadAll: () => core.unloadAll() })
}

/** Options of {@link openAIHandlers}. */
export interface OpenAIMockOptions extends OpenAIOptions, MockBaseOptions {}

/**
 * msw handlers for an OpenAI-compatible server (mlx_lm.server by default) at `baseUrl` (default
 * `http://mlx.test:8080`). The 411 check is skipped (msw does not show whether Content-Length was sent),
 * and `Connection: close` is not emulated.
 */
export function openAIHandlers(options: OpenAIMockOptions = {}): MockHandlers<{ unloadAll(): void }> {
  const core = openAICoreFor(options)
  return build(core, options.baseUrl ?? 'http://mlx.test:8080', { unloadAll: () => core.unloadAll() })
}

/** Alias of {@link openAIHandlers}. */
export const mlxHandlers: typeof openAIHandlers = openAIHandlers

/** Extra controls of {@link adminHandlers}. */
export interface AdminMockExtras {
  readonly records: AdminRecord[]
  setRecords(records: AdminRecord[]): void
  setPayload(value: unknown): void
  readonly metrics: MetricRecord[]
  readonly metricPosts: MetricPost[]
  readonly metricsReceived: number
}

/** Options of {@link adminHandlers}. */
export interface AdminMockOptions extends AdminOptions, MockBaseOptions {}

/**
 * msw handlers for the admin API at `baseUrl` (default `http://admin.test`), same behaviour as
 * {@link startAdminServer}: seed-faithful by default (no ETag, 404 `{"detail"}` for an unknown model,
 * one metric record per POST with FastAPI's 422 for arrays and invalid records); `etag: true` and
 * `acceptArrays: true` opt in to the lenient behaviour.
 */
export function adminHandlers(options: AdminMockOptions = {}): MockHandlers<AdminMockExtras> {
  const core = new AdminCore(options)
  const extra: AdminMockExtras = {
    get records() {
      return core.records
    },
    setRecords: (records) => core.setRecords(records),
    setPayload: (value) => core.setPayload(value),
    get metrics() {
      return core.metrics
    },
    get metricPosts() {
      return core.metricPosts
    },
    get metricsReceived() {
      return core.metricsReceived
    },
  }
  return build(core, options.baseUrl ?? 'http://admin.test', extra)
}
