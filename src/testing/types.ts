/**
 * Public types of the testing kit: fault switches, recorded requests and the options shared by the
 * Ollama and OpenAI-compatible stand-ins. Transport-neutral: used by the node:http servers and by the
 * msw handlers alike.
 * @module
 */

/**
 * Every fault a stand-in can inject. What each one does on the wire:
 *
 * | fault | wire behaviour |
 * |---|---|
 * | `down` | node server: the listener is closed, so connects are refused (`ECONNREFUSED`) until `clearFault()` (`times` and `path` do not apply: no request arrives). msw: a network error for each matching request. |
 * | `hang` | the request is read and never answered (socket stays open until the client gives up or the server stops). |
 * | `stall-body` | status and headers, part of the body (the first `afterChunks` stream frames, or half of a JSON body), then nothing more. |
 * | `reset-mid-body` | like `stall-body`, then the socket is reset (RST): the client sees a body error. Exception: on an mlx stream without `keepAlive` the body is delimited by the connection, and undici reads the reset as its end; the client then sees a stream without its final chunk and `[DONE]`. |
 * | `slow` | the normal answer, delayed by `delayMs` (default 1000) before the status line. |
 * | `trickle` | the normal answer, re-cut into `chunkBytes`-byte pieces (default 16) written `delayMs` apart (default 50). |
 * | `500-html` | 500 with an nginx-style `text/html` body. |
 * | `503` | 503 busy. Ollama: `{"error":"server busy, please try again.  maximum pending requests exceeded"}` (two spaces). |
 * | `429` | 429 with a `Retry-After` header (`retryAfter`, default `1`: seconds as a number, or any string such as an HTTP-date). |
 * | `404-model` | the server's own "model not found" 404 for the requested model. |
 * | `400` | the server's own 400 error body. |
 * | `invalid-json` | 200 with the right content type and a body that does not parse (NDJSON/SSE lines that do not parse for streams). |
 * | `oversize` | 200 with a valid-looking JSON body of `bytes` bytes (default 50 MiB), generated lazily in 64 KiB pieces. |
 * | `cut-stream` | a stream that ends cleanly but without its final line (Ollama: no `done:true`; OpenAI: no final chunk, no `[DONE]`). Non-stream answers: the first half of the body with a matching Content-Length. |
 * | `error-mid-stream` | Ollama: `{"error":…}` line after `afterChunks` lines, status 200, no `done` line. mlx: the stream just stops. llama.cpp flavor: an SSE `error:` field then `data: [DONE]`. vLLM flavor: a `data: {"error":…}` event then `data: [DONE]`. Non-stream requests: the server's pre-stream error (500, or a dropped socket for mlx). |
 * | `drop-socket` | the request is read, then the socket is closed without any response (mlx_lm.server on a validation error). |
 */
export type FaultType =
  | 'down'
  | 'hang'
  | 'stall-body'
  | 'reset-mid-body'
  | 'slow'
  | 'trickle'
  | '500-html'
  | '503'
  | '429'
  | '404-model'
  | '400'
  | 'invalid-json'
  | 'oversize'
  | 'cut-stream'
  | 'error-mid-stream'
  | 'drop-socket'

/** Every {@link FaultType}, for table-driven tests. */
export const FAULT_TYPES: readonly FaultType[] = [
  'down',
  'hang',
  'stall-body',
  'reset-mid-body',
  'slow',
  'trickle',
  '500-html',
  '503',
  '429',
  '404-model',
  '400',
  'invalid-json',
  'oversize',
  'cut-stream',
  'error-mid-stream',
  'drop-socket',
]

/** A fault to inject, with its parameters. `setFault('503')` is short for `setFault({ type: '503' })`. */
export interface FaultSpec {
  type: FaultType
  /** Apply to the next N matching requests only, then clear itself. Default: until `clearFault()`. */
  times?: number
  /**
   * Which requests the fault applies to, by URL path: a string matches paths starting with it, a RegExp
   * is tested, `'*'` means every route. Default: the routes that run a model (Ollama `POST /api/generate`,
   * `/api/chat`, `/api/embed`, `/api/embeddings`; OpenAI-compatible `POST /v1/completions`,
   * `/v1/chat/completions`, `/v1/embeddings`) for the model servers, every route for the admin server. Requests the fault
   * does not apply to are answered normally and do not count towards `times`.
   */
  path?: string | RegExp
  /** `slow`: wait before the status line (default 1000). `trickle`: wait between pieces (default 50). */
  delayMs?: number
  /** `trickle`: piece size in bytes (default 16). */
  chunkBytes?: number
  /** `429`: the Retry-After value: seconds (number) or a raw header string such as an HTTP-date. Default 1. */
  retryAfter?: number | string
  /** `oversize`: body size in bytes. Default 50 MiB. */
  bytes?: number
  /** `stall-body`, `reset-mid-body`, `error-mid-stream`: stream content frames sent before the fault. Default 1. */
  afterChunks?: number
  /** Overrides the error message of `503`, `429`, `400`, `404-model`, `error-mid-stream`. */
  message?: string
}

/** Controls shared by every stand-in (node:http server or msw handler set). */
export interface FaultSwitch {
  /** The active fault, or null. */
  readonly fault: FaultSpec | null
  /**
   * Injects a fault until cleared (or for `times` requests). Resolves once it is in effect: for `down`
   * on a node server, once the listener is closed.
   */
  setFault(fault: FaultSpec | FaultType): Promise<void>
  /** Removes the active fault. For `down` on a node server, resolves once it listens again on the same port. */
  clearFault(): Promise<void>
}

/** One request as a stand-in received it. */
export interface RecordedRequest {
  method: string
  /** URL path without the query string. */
  path: string
  /** Path with the query string. */
  url: string
  /** Lower-cased header names. Repeated headers are joined with `, `. */
  headers: Record<string, string>
  /** The body parsed as JSON, the raw text when it is not JSON, or undefined when empty. */
  body: unknown
  /** The raw body text. */
  rawBody: string
  /** Epoch milliseconds at which the request was fully received. */
  receivedAt: number
  /** The fault applied to this request, if any. */
  fault: FaultType | null
}

/** What a response generator is told about the request it answers. */
export interface RespondContext {
  /** The model name from the request (`default_model` for mlx when absent). */
  model: string
  /** Which stand-in asks. */
  server: 'ollama' | 'openai'
  /** The parsed request body. */
  body: Record<string, unknown>
}

/**
 * Response text: a fixed string, or a function of the prompt. The text is cut into word-ish tokens
 * (a token is a run of non-space characters with its leading whitespace), so counters match the text.
 */
export type Responder = string | ((prompt: string, context: RespondContext) => string)

/** Generation behaviour shared by the Ollama and OpenAI-compatible stand-ins. */
export interface GenerationOptions {
  /** Response text or generator. Default: a deterministic sentence that quotes the prompt. */
  respond?: Responder
  /**
   * Pace of token emission. 0 (default) emits as fast as possible, which is what tests want; the demo
   * passes realistic values (e.g. 40).
   */
  tokensPerSecond?: number
  /**
   * Decode speed written into the backend's own counters (Ollama `eval_duration`, llama.cpp `timings`).
   * Default: `tokensPerSecond`, or 100 when that is 0, so reported speeds are never zero.
   */
  reportedTokensPerSecond?: number
  /** Delay between the request and the first token (prompt processing). Default 0. */
  timeToFirstTokenMs?: number
  /** Extra delay on the first request for a model (cold load; Ollama reports it as `load_duration`). Default 0. */
  loadMs?: number
}

/** How much a stand-in remembers. */
export interface RecordingOptions {
  /**
   * Keep at most this many recorded requests (the oldest are dropped); 0 disables recording. Default
   * 10 000, so soaks and benchmarks keep memory flat. `requestCount` counts every request regardless.
   */
  maxRecordedRequests?: number
  /** Called with every request as it arrives (after the fault is chosen), e.g. to show progress in a demo. */
  onRequest?: (request: RecordedRequest) => void
}

/** Options every stand-in server accepts. */
export interface ServerOptions {
  /** Port to bind on 127.0.0.1. Default 0 (a free port). */
  port?: number
  /** Host to bind. Default `127.0.0.1`. */
  host?: string
}
