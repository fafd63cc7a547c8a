/**
 * In-process admin API stand-in on node:http.
 * @module
 */
import type { MetricRecord } from '../../types.js'
import { AdminCore, type AdminOptions, type AdminRecord, type MetricPost } from '../core/admin.js'
import type { ServerOptions } from '../types.js'
import { HttpStandIn } from './http-server.js'

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions extends AdminOptions, ServerOptions {}

/** A running admin API stand-in. See {@link startAdminServer}. */
export class AdminServer extends HttpStandIn<AdminCore> {
  /** Use {@link startAdminServer}. */
  constructor(options: AdminServerOptions = {}) {
    super(new AdminCore(options), { ...options, keepAlive: true })
  }

  /** The records served now. */
  get records(): AdminRecord[] {
    return this.core.records
  }

  /** Replaces the served records (the ETag changes with them). Clears {@link setPayload}. */
  setRecords(records: AdminRecord[]): void {
    this.core.setRecords(records)
  }

  /** Serves any JSON value instead of the records (e.g. `{ data: [...] }`, `{}`, `"garbage"`). */
  setPayload(value: unknown): void {
    this.core.setPayload(value)
  }

  /** Every metric record accepted, in arrival order, as sent. */
  get metrics(): MetricRecord[] {
    return this.core.metrics
  }

  /** Metric records accepted since start (or `reset()`), kept in `metrics` or not. */
  get metricsReceived(): number {
    return this.core.metricsReceived
  }

  /** Every metrics POST, accepted or rejected (array vs single, record count, status). */
  get metricPosts(): MetricPost[] {
    return this.core.metricPosts
  }
}

/**
 * Starts an admin API on 127.0.0.1.
 *
 * Routes: `GET /api/llm-backends/public` (the records; no ETag unless `etag: true`, then If-None-Match → 304),
 * `GET /api/llm-backends/model/:name` (the best record for that model, 404 when absent),
 * `POST /api/llm-backends/metrics` (a JSON array or a single object; with `acceptArrays: false` arrays
 * get 422). Faults apply to every route unless the fault's `path` says otherwise.
 *
 * @example
 * const admin = await startAdminServer({ records: [{ model_name: 'llama3.2', backend_type: 'ollama',
 *   endpoint_url: ollama.url, enabled: true, priority: 1 }] })
 * admin.setRecords([...]) // takes effect on the router's next refresh
 * expect(admin.metrics).toHaveLength(3)
 */
export async function startAdminServer(options: AdminServerOptions = {}): Promise<AdminServer> {
  const server = new AdminServer(options)
  await server.listen()
  return server
}
