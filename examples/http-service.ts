/**
 * An HTTP service that uses the router, with plain node:http (no framework):
 *   POST /generate            {"prompt": "...", "model"?: "...", "maxTokens"?: n, "temperature"?: t, "system"?: "..."}
 *                             -> 200 {"response", "model", "backend", "latencyMs", "usage"}
 *   POST /generate?stream=1   -> 200 text/plain, chunked, written as the model produces it
 *   GET  /health              -> 200 {"ok": true, "config": "<origin of the backend records>"}
 * Router failures become HTTP statuses (see STATUS below) with {"error": {"code", "message"}}.
 * A client that disconnects aborts its generation. SIGINT/SIGTERM: stop accepting, let in-flight
 * requests finish, then router.close() flushes metrics.
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 PORT=3000 node examples/http-service.ts
 *   curl -s localhost:3000/generate -d '{"prompt":"Why is the sky blue?"}'
 *   curl -sN 'localhost:3000/generate?stream=1' -d '{"prompt":"Tell a story"}'
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createLLMRouter, type ErrorCode, type GenerateRequest, isRouterError } from 'llm-backend-router'

const HOST = process.env.HOST ?? '127.0.0.1'
const PORT = Number(process.env.PORT ?? 3000)
const MAX_BODY_BYTES = 64 * 1024

const router = createLLMRouter()

/** HTTP status for each router error code; anything else is a 502 (the backends failed us). */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  BAD_REQUEST: 400,
  MODEL_NOT_CONFIGURED: 404,
  RATE_LIMITED: 429,
  // Nginx's "client closed request": nobody is left to read it, but logs show what happened.
  ABORTED: 499,
  BACKEND_BUSY: 503,
  CIRCUIT_OPEN: 503,
  CLOSED: 503,
  TIMEOUT: 504,
}

class HttpError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  res.end(text)
}

function sendError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    // The status line is gone: cut the connection so the client sees an incomplete body, not a clean end.
    res.destroy()
    return
  }
  if (error instanceof HttpError) {
    sendJson(res, error.status, { error: { code: error.code, message: error.message } })
    return
  }
  if (isRouterError(error)) {
    const headers: Record<string, string> = {}
    if (error.retryAfterMs !== undefined)
      headers['retry-after'] = String(Math.ceil(error.retryAfterMs / 1000))
    sendJson(res, STATUS[error.code] ?? 502, { error: { code: error.code, message: error.message } }, headers)
    return
  }
  console.error(error)
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } })
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'BODY_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk)
  }
  try {
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    if (typeof body === 'object' && body !== null && !Array.isArray(body))
      return body as Record<string, unknown>
  } catch {
    // Reported below.
  }
  throw new HttpError(400, 'INVALID_JSON', 'body must be a JSON object')
}

/** Copies the fields a client may set; the router validates them (INVALID_REQUEST -> 400). */
function toRequest(body: Record<string, unknown>, signal: AbortSignal): GenerateRequest {
  const request: GenerateRequest = { prompt: body.prompt as string, signal }
  if (body.model !== undefined) request.model = body.model as string
  if (body.system !== undefined) request.system = body.system as string
  if (body.maxTokens !== undefined) request.maxTokens = body.maxTokens as number
  if (body.temperature !== undefined) request.temperature = body.temperature as number
  return request
}

async function generate(req: IncomingMessage, res: ServerResponse, stream: boolean): Promise<void> {
  // The client hanging up stops the generation on the backend too.
  const abort = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) abort.abort(new Error('client disconnected'))
  })
  const request = toRequest(await readJson(req), abort.signal)

  if (!stream) {
    const r = await router.generate(request)
    sendJson(
      res,
      200,
      {
        response: r.response,
        model: r.model,
        backend: r.backend,
        latencyMs: Math.round(r.latencyMs),
        usage: r.usage,
      },
      { 'x-llm-backend': r.backend },
    )
    return
  }

  // Headers go out with the first chunk, so a failure before any text (after the router's own
  // fallbacks) still gets a proper status code.
  for await (const chunk of router.stream(request)) {
    if (!res.headersSent) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-llm-backend': chunk.backend })
    }
    res.write(chunk.text)
  }
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
  res.end()
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  let work: Promise<void>
  if (req.method === 'POST' && url.pathname === '/generate') {
    work = generate(req, res, url.searchParams.get('stream') === '1')
  } else if (req.method === 'GET' && url.pathname === '/health') {
    sendJson(res, 200, { ok: true, config: router.config()?.origin ?? null })
    return
  } else {
    work = Promise.reject(new HttpError(404, 'NOT_FOUND', `${req.method} ${url.pathname} is not a route`))
  }
  work.catch((error: unknown) => sendError(res, error))
})

server.listen(PORT, HOST, () => {
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : PORT
  console.log(`listening on http://${HOST}:${port}`)
})

let stopping = false
async function shutdown(signal: string): Promise<void> {
  if (stopping) return
  stopping = true
  console.log(`${signal}: shutting down`)
  // A stuck request must not keep the process alive forever.
  setTimeout(() => process.exit(1), 10_000).unref()
  // Stop accepting; close() waits for responses in flight. Idle keep-alive sockets go now.
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeIdleConnections()
  })
  // Flushes buffered metrics and closes backend connections.
  await router.close()
  console.log('closed')
}
process.once('SIGINT', () => void shutdown('SIGINT'))
process.once('SIGTERM', () => void shutdown('SIGTERM'))
