/**
 * A stand-in for a hosted OpenAI-compatible API (OpenAI, Groq, Cerebras, Mistral, Fireworks, Gemini's
 * OpenAI endpoint, Azure's v1 API), as strict as those are where mlx_lm.server is lenient:
 * - a key is required: `Authorization: Bearer <key>` (or Azure's `api-key: <key>`); a wrong or missing
 *   one gets 401 with OpenAI's `invalid_api_key` error, echoing the key it got (proxies do; the
 *   router must redact it);
 * - `model` is required (400 "you must provide a model parameter"), unknown models get 404
 *   `model_not_found`;
 * - it serves `{prefix}/chat/completions` and `{prefix}/completions` under the path prefix of its
 *   base URL (`/v1`, `/openai/v1`, `/inference/v1`, `/v1beta/openai`), nothing else.
 * Real node:http on 127.0.0.1, port 0; every request is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface HostedRequest {
  path: string
  headers: IncomingMessage['headers']
  body: Record<string, unknown>
}

export interface HostedOptions {
  /** The key the API accepts. */
  key: string
  /** Path prefix of the API (default `/v1`). */
  prefix?: string
  /** Where the key goes: `bearer` (default) or Azure's `api-key` header. */
  keyHeader?: 'bearer' | 'api-key'
  /** Models served (default: any). */
  models?: string[]
  /** Reply text (default: `Hello from <model>`). */
  reply?: (model: string) => string
  /** Answer this status (with an OpenAI error body) instead of a completion. */
  failWith?: number
}

export interface HostedServer {
  /** Base URL including the prefix, as a user would configure it. */
  url: string
  requests: HostedRequest[]
  options: HostedOptions
  close(): Promise<void>
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function error(res: ServerResponse, status: number, message: string, code: string | null): void {
  send(res, status, { error: { message, type: 'invalid_request_error', param: null, code } })
}

function sse(res: ServerResponse, frames: unknown[]): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  for (const frame of frames) res.write(`data: ${JSON.stringify(frame)}\n\n`)
  res.end('data: [DONE]\n\n')
}

export async function startHostedServer(options: HostedOptions): Promise<HostedServer> {
  const prefix = options.prefix ?? '/v1'
  const requests: HostedRequest[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const path = req.url ?? '/'
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>
      } catch {
        return error(res, 400, 'We could not parse the JSON body of your request.', null)
      }
      requests.push({ path, headers: req.headers, body })
      const chat = path === `${prefix}/chat/completions`
      const legacy = path === `${prefix}/completions`
      if (req.method !== 'POST' || (!chat && !legacy))
        return error(res, 404, `Unknown request URL: ${path}`, 'unknown_url')
      const given =
        options.keyHeader === 'api-key'
          ? (req.headers['api-key'] as string | undefined)
          : /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      if (given !== options.key) {
        return error(
          res,
          401,
          given === undefined
            ? "You didn't provide an API key."
            : `Incorrect API key provided: ${given}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          'invalid_api_key',
        )
      }
      const model = body.model
      if (typeof model !== 'string' || model === '') {
        return error(res, 400, 'you must provide a model parameter', null)
      }
      if (options.models !== undefined && !options.models.includes(model)) {
        return error(
          res,
          404,
          `The model \`${model}\` does not exist or you do not have access to it.`,
          'model_not_found',
        )
      }
      if (options.failWith !== undefined) return error(res, options.failWith, 'Upstream trouble', null)
      const text = options.reply?.(model) ?? `Hello from ${model}`
      const usage = { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 }
      const created = 1_700_000_000
      if (body.stream === true) {
        const object = chat ? 'chat.completion.chunk' : 'text_completion'
        const choice = (delta: string, finish: string | null) =>
          chat
            ? { index: 0, delta: finish === null ? { content: delta } : {}, finish_reason: finish }
            : { index: 0, text: delta, finish_reason: finish }
        const frames: unknown[] = [
          { id: 'x', object, created, model, choices: [choice(text, null)] },
          { id: 'x', object, created, model, choices: [choice('', 'stop')] },
        ]
        const withUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage
        if (withUsage === true) frames.push({ id: 'x', object, created, model, choices: [], usage })
        return sse(res, frames)
      }
      return send(res, 200, {
        id: 'x',
        object: chat ? 'chat.completion' : 'text_completion',
        created,
        model,
        choices: [
          chat
            ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
            : { index: 0, text, finish_reason: 'stop' },
        ],
        usage,
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    requests,
    options,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
