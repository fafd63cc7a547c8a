/**
 * In-process Ollama stand-in on node:http.
 * @module
 */
import { OllamaCore, type OllamaOptions } from '../core/ollama.js'
import type { ServerOptions } from '../types.js'
import { HttpStandIn } from './http-server.js'

/** Options of {@link startOllamaServer}. */
export interface OllamaServerOptions extends OllamaOptions, ServerOptions {}

/** A running Ollama stand-in. See {@link startOllamaServer}. */
export class OllamaServer extends HttpStandIn<OllamaCore> {
  /** Use {@link startOllamaServer}. */
  constructor(options: OllamaServerOptions = {}) {
    super(new OllamaCore(options), { ...options, keepAlive: true })
  }

  /** Tagged names of the models currently loaded (what `GET /api/ps` lists). */
  get loadedModels(): string[] {
    return [...this.core.loaded.keys()]
  }

  /** Unloads every model, so the next request pays `loadMs` (reported as `load_duration`) again. */
  unloadAll(): void {
    this.core.unloadAll()
  }
}

/**
 * Starts an Ollama-compatible server on 127.0.0.1 (a free port unless `port` is given).
 *
 * Routes: `POST /api/generate` (NDJSON stream by default, JSON with `stream:false`; metrics in integer
 * ns with zero values omitted; final `done:true` line with `done_reason`, metrics and `context`),
 * `POST /api/chat` (the same framing; `message.content`, `message.thinking` for models in `thinking`,
 * `message.tool_calls` whole in one chunk with object arguments and no id, `format` answered with JSON;
 * scripted with `chat`), `POST /api/embed` (unit vectors in input order) and the legacy
 * `POST /api/embeddings`, `GET /` (`Ollama is running`), `GET /api/version`, `GET /api/tags`, `GET /api/ps`. Unknown models
 * (when `models` is set) get 404 `{"error":"model 'x' not found"}`. Honours `options.num_predict`,
 * `options.stop`, `system`, `raw` and `keep_alive` (0 unloads).
 *
 * @example
 * const ollama = await startOllamaServer({ models: ['llama3.2:latest'], tokensPerSecond: 40 })
 * await ollama.setFault({ type: '503', times: 1 })
 * // ... point the router at ollama.url ...
 * await ollama.stop()
 */
export async function startOllamaServer(options: OllamaServerOptions = {}): Promise<OllamaServer> {
  const server = new OllamaServer(options)
  await server.listen()
  return server
}
