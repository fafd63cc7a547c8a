/**
 * In-process OpenAI-compatible (`/v1/completions`) stand-in on node:http, mlx_lm.server by default.
 * @module
 */
import { openAICoreFor } from '../core/hosted.js'
import type { OpenAICore, OpenAIFlavor, OpenAIOptions } from '../core/openai.js'
import type { ServerOptions } from '../types.js'
import { HttpStandIn } from './http-server.js'

/** Options of {@link startOpenAIServer}. */
export interface OpenAIServerOptions extends OpenAIOptions, ServerOptions {
  /**
   * Keep connections open between responses. Default false for mlx (HTTP/1.0 style: `Connection: close`
   * after every response, streams end by closing the connection), true for the llama.cpp and vLLM flavors.
   * Benchmarks may want true so that connection setup is not what they measure.
   */
  keepAlive?: boolean
}

/** A running OpenAI-compatible stand-in. See {@link startOpenAIServer}. */
export class OpenAIServer extends HttpStandIn<OpenAICore> {
  readonly #flavor: OpenAIFlavor | 'hosted'

  /** Use {@link startOpenAIServer}. */
  constructor(options: OpenAIServerOptions = {}) {
    super(openAICoreFor(options), {
      ...options,
      keepAlive: options.keepAlive ?? (options.flavor !== undefined && options.flavor !== 'mlx'),
    })
    this.#flavor = options.flavor ?? 'mlx'
  }

  /** The imitated server. */
  get flavor(): OpenAIFlavor | 'hosted' {
    return this.#flavor
  }

  /** Unloads every model, so the next request pays `loadMs` again. */
  unloadAll(): void {
    this.core.unloadAll()
  }
}

/**
 * Starts an OpenAI-compatible server on 127.0.0.1 that behaves like mlx_lm.server (or llama-server with
 * `flavor: 'llamacpp'`, vLLM with `flavor: 'vllm'`).
 *
 * Routes: `POST /v1/completions` (JSON, or SSE with `stream:true`: `: keepalive n/m` comments before the
 * first chunk, delta chunks with `finish_reason:null`, a final chunk with the finish reason and
 * `text:""`, a usage chunk with `object:"chat.completion"` and `choices:[]` only when
 * `stream_options.include_usage`, then `data: [DONE]`), `GET /health` (`{"status": "ok"}`),
 * `GET /v1/models`, `POST /v1/chat/completions` (scripted with `chat`: content, reasoning, tool calls,
 * each in the flavor's own stream shape; see core/openai-chat.ts) and `POST /v1/embeddings` (llama.cpp;
 * mlx_lm.server has none and answers 404). mlx flavor: 411 without Content-Length, 400 on invalid JSON, the socket dropped on
 * invalid parameters (e.g. `"stream":"yes"`, missing `prompt`), `model` echoed or `default_model`.
 *
 * @example
 * const mlx = await startOpenAIServer({ tokensPerSecond: 60, timeToFirstTokenMs: 80 })
 * await mlx.stop() // "MLX server stopped": connections are refused
 * await mlx.listen() // back on the same port
 */
export async function startOpenAIServer(options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const server = new OpenAIServer(options)
  await server.listen()
  return server
}

/** Alias of {@link startOpenAIServer} (mlx_lm.server is the default flavor). */
export const startMlxServer: typeof startOpenAIServer = startOpenAIServer
