// Stand-in backends for `npm run bench`, run as their own process (pinned to its own core by the bench).
//
// - Ollama `POST /api/generate`: JSON (`"stream":false`) or NDJSON (chunked).
// - OpenAI-compatible `POST /v1/completions`: JSON or SSE (chunked).
// - Chat on the same servers: Ollama `POST /api/chat`, OpenAI-compatible `POST /v1/chat/completions`.
// - Streams come whole in one write, or one write per token under the `/tokens` path prefix.
// - Admin API: `GET /api/llm-backends/public` (records, ETag/304), `POST /api/llm-backends/metrics` (counted),
//   and bench controls under `/_bench/` (counters, reset, server CPU).
// - A second admin (`adminSingle`) like seed 004's FastAPI one: the same list, but ONE metric record per POST
//   (`{"id": N, "status": "created"}`); an array gets 422 with FastAPI's `detail`, so the sink learns single mode.
// - A "counting" port that accepts and drops every connection (counts accepts), and a refused port.
//
// HTTP/1.1 keep-alive everywhere. The server speaks HTTP over `node:net` with precomputed response bytes
// instead of `node:http`: on one core `node:http` costs about as much per request as the client under test,
// so at concurrency 64 it would be the bottleneck and every client would measure the same. Here a
// request costs the server a few microseconds; the bench reports the server's CPU share to prove it.
//
// Prints one JSON line with the ports on stdout, then serves until stdin closes or SIGTERM.
import net from 'node:net'
import {
  adminRecords,
  ollamaChatJson,
  ollamaChatStreamLines,
  ollamaJson,
  ollamaStreamLines,
  openaiChatJson,
  openaiChatSseEvents,
  openaiJson,
  openaiSseEvents,
} from './lib/canned.mjs'

const DATE = 'Mon, 23 Nov 2026 12:00:00 GMT'

function head(status, type, extra) {
  return Buffer.from(`HTTP/1.1 ${status}\r\nContent-Type: ${type}\r\nDate: ${DATE}\r\n${extra}\r\n`, 'latin1')
}

function fixed(status, type, body, more = '') {
  const bytes = Buffer.from(body, 'utf8')
  return Buffer.concat([head(status, type, `${more}Content-Length: ${bytes.length}\r\n`), bytes])
}

/** One HTTP chunk per element, so every token leaves in its own write (as a model server sends it). */
function chunked(type, parts, more = '') {
  const out = [head('200 OK', type, `${more}Transfer-Encoding: chunked\r\n`)]
  for (const p of parts) {
    const bytes = Buffer.from(p, 'utf8')
    out.push(Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]))
  }
  out.push(Buffer.from('0\r\n\r\n'))
  return out
}

const OLLAMA_JSON = fixed('200 OK', 'application/json; charset=utf-8', ollamaJson())
const OLLAMA_STREAM = chunked('application/x-ndjson', ollamaStreamLines())
const OPENAI_JSON = fixed('200 OK', 'application/json', openaiJson())
const OPENAI_STREAM = chunked('text/event-stream', openaiSseEvents(), 'Cache-Control: no-cache\r\n')
const OLLAMA_CHAT_JSON = fixed('200 OK', 'application/json; charset=utf-8', ollamaChatJson())
const OLLAMA_CHAT_STREAM = chunked('application/x-ndjson', ollamaChatStreamLines())
const OPENAI_CHAT_JSON = fixed('200 OK', 'application/json', openaiChatJson())
const OPENAI_CHAT_STREAM = chunked('text/event-stream', openaiChatSseEvents(), 'Cache-Control: no-cache\r\n')
const NOT_FOUND = fixed('404 Not Found', 'application/json', '{"error":"not found"}')
const BAD = fixed(
  '400 Bad Request',
  'application/json',
  '{"error":"bad request: expected a JSON body with a prompt"}',
)
const OK = fixed('200 OK', 'application/json', '{"ok":true}')
const NOT_MODIFIED = Buffer.from(
  `HTTP/1.1 304 Not Modified\r\nDate: ${DATE}\r\nETag: "bench-1"\r\n\r\n`,
  'latin1',
)

const counters = {
  adminList: 0,
  metricsPosts: 0,
  metricsRecords: 0,
  countingAccepts: 0,
  singlePosts: 0,
  singleRecords: 0,
  singleArraysRejected: 0,
  backendRequests: 0,
  bad: 0,
}
let adminList = null

const STREAM_TRUE = Buffer.from('"stream":true')
const PROMPT_KEY = Buffer.from('"prompt":')
const MESSAGES_KEY = Buffer.from('"messages":')

function send(socket, parts) {
  if (Buffer.isBuffer(parts)) socket.write(parts)
  else for (const p of parts) socket.write(p)
}

/** Minimal HTTP/1.1 request reader: content-length bodies, keep-alive, requests handled in order. */
function httpServer(handle) {
  return net.createServer({ noDelay: true }, (socket) => {
    let buf = null
    socket.on('error', () => {})
    socket.on('data', (chunk) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end === -1) return
        const text = buf.toString('latin1', 0, end)
        const sp1 = text.indexOf(' ')
        const sp2 = text.indexOf(' ', sp1 + 1)
        const method = text.slice(0, sp1)
        const path = text.slice(sp1 + 1, sp2)
        const lower = text.toLowerCase()
        const cl = lower.indexOf('\r\ncontent-length:')
        if (lower.includes('\r\ntransfer-encoding:')) {
          // Never sent by the router or undici for string bodies; refuse loudly rather than mis-frame.
          socket.end(BAD)
          return
        }
        let length = 0
        if (cl !== -1) {
          const eol = lower.indexOf('\r\n', cl + 2)
          length = Number.parseInt(lower.slice(cl + 17, eol === -1 ? lower.length : eol), 10)
          if (!Number.isSafeInteger(length) || length < 0) {
            socket.end(BAD)
            return
          }
        }
        if (buf.length < end + 4 + length) return
        const body = buf.subarray(end + 4, end + 4 + length)
        const rest = buf.length === end + 4 + length ? null : buf.subarray(end + 4 + length)
        handle(socket, method, path, body, lower)
        if (rest === null) {
          buf = null
          return
        }
        buf = rest
      }
    })
  })
}

/**
 * A backend. Streams under `/tokens/...` leave one write per token (as a model server paces them, so the
 * client reads many small packets); under the plain path the whole stream leaves in one write, which keeps
 * the server cheap enough never to be the bottleneck and puts the client's line parsing in focus.
 */
function backend(path, json, stream, chat) {
  const tokensPath = `/tokens${path}`
  const whole = Buffer.concat(stream)
  const chatWhole = Buffer.concat(chat.stream)
  return httpServer((socket, method, p, body) => {
    const isChat = p === chat.path
    if (method !== 'POST' || (p !== path && p !== tokensPath && !isChat)) return send(socket, NOT_FOUND)
    if (body.indexOf(isChat ? MESSAGES_KEY : PROMPT_KEY) === -1) {
      counters.bad++
      return send(socket, BAD)
    }
    counters.backendRequests++
    if (body.indexOf(STREAM_TRUE) === -1) return send(socket, isChat ? chat.json : json)
    if (isChat) return send(socket, chatWhole)
    send(socket, p === path ? whole : stream)
  })
}

const ollama = backend('/api/generate', OLLAMA_JSON, OLLAMA_STREAM, {
  path: '/api/chat',
  json: OLLAMA_CHAT_JSON,
  stream: OLLAMA_CHAT_STREAM,
})
const openai = backend('/v1/completions', OPENAI_JSON, OPENAI_STREAM, {
  path: '/v1/chat/completions',
  json: OPENAI_CHAT_JSON,
  stream: OPENAI_CHAT_STREAM,
})

const admin = httpServer((socket, method, path, body, lower) => {
  if (method === 'GET' && path === '/api/llm-backends/public') {
    counters.adminList++
    if (lower.includes('\r\nif-none-match: "bench-1"')) return send(socket, NOT_MODIFIED)
    return send(socket, adminList)
  }
  if (method === 'POST' && path === '/api/llm-backends/metrics') {
    counters.metricsPosts++
    try {
      const parsed = JSON.parse(body.toString('utf8'))
      counters.metricsRecords += Array.isArray(parsed) ? parsed.length : 1
    } catch {
      counters.bad++
      return send(socket, BAD)
    }
    return send(socket, OK)
  }
  if (path === '/_bench/stats') {
    const cpu = process.cpuUsage()
    return send(
      socket,
      fixed('200 OK', 'application/json', JSON.stringify({ ...counters, cpuUs: cpu.user + cpu.system })),
    )
  }
  if (method === 'POST' && path === '/_bench/reset') {
    for (const k of Object.keys(counters)) counters[k] = 0
    return send(socket, OK)
  }
  send(socket, NOT_FOUND)
})

const ARRAY_REJECTED = fixed(
  '422 Unprocessable Entity',
  'application/json',
  '{"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]}',
)

/** Seed 004's admin: the record list, and one metric record per POST (an array is a 422). */
const adminSingle = httpServer((socket, method, path, body) => {
  if (method === 'GET' && path === '/api/llm-backends/public') {
    counters.adminList++
    return send(socket, adminList)
  }
  if (method === 'POST' && path === '/api/llm-backends/metrics') {
    let parsed
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      counters.bad++
      return send(socket, BAD)
    }
    if (Array.isArray(parsed)) {
      counters.singleArraysRejected++
      return send(socket, ARRAY_REJECTED)
    }
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.model !== 'string') {
      counters.bad++
      return send(socket, BAD)
    }
    counters.singlePosts++
    counters.singleRecords++
    return send(
      socket,
      fixed('200 OK', 'application/json', `{"id":${counters.singleRecords},"status":"created"}`),
    )
  }
  send(socket, NOT_FOUND)
})

// Accepts and drops every connection: an MLX endpoint that is "up" at TCP level but useless, so the
// bench can count how many connections the router still makes once the circuit is open.
const counting = net.createServer((socket) => {
  counters.countingAccepts++
  socket.on('error', () => {})
  socket.destroy()
})

const listen = (server) =>
  new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => resolve(server.address().port))
  })

/** A port that refuses connections: bound once to get a free number, then closed. */
async function refusedPort() {
  const s = net.createServer()
  const port = await listen(s)
  await new Promise((r) => s.close(r))
  return port
}

const ports = {
  ollama: await listen(ollama),
  openai: await listen(openai),
  admin: await listen(admin),
  adminSingle: await listen(adminSingle),
  counting: await listen(counting),
  refused: await refusedPort(),
}
adminList = fixed('200 OK', 'application/json', JSON.stringify(adminRecords(ports)), 'ETag: "bench-1"\r\n')
process.stdout.write(`${JSON.stringify(ports)}\n`)

const stop = () => process.exit(0)
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
