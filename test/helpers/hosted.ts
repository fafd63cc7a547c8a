/**
 * The tests' hosted API: the kit's hosted flavor (`startOpenAIServer({ flavor: 'hosted' })`, see
 * src/testing/core/hosted.ts) with the defaults these tests rely on: the answer `Hello from <model>`,
 * and `url` including the API's path prefix, as a user would configure it.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { createLLMRouter, type LLMRouter } from '../../src/index.js'
import { type OpenAIServer, startOpenAIServer } from '../../src/testing/index.js'
import { ManualClock } from './manual-clock.js'

export interface HostedRequest {
  path: string
  headers: IncomingHttpHeaders
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
  /** Quote a wrong key in full in the 401 (as some proxies do), so redaction is tested. */
  echoKey?: boolean
  /** Answer 503 (the kit's fault, in OpenAI's error body) instead of a completion. */
  failWith?: 503
}

export interface HostedServer {
  /** Base URL including the prefix, as a user would configure it. */
  url: string
  readonly requests: HostedRequest[]
  server: OpenAIServer
  close(): Promise<void>
}

export async function startHostedServer(options: HostedOptions): Promise<HostedServer> {
  const prefix = options.prefix ?? '/v1'
  const reply = options.reply ?? ((model: string) => `Hello from ${model}`)
  const server = await startOpenAIServer({
    flavor: 'hosted',
    apiKey: options.key,
    prefix,
    ...(options.keyHeader === undefined ? {} : { keyHeader: options.keyHeader }),
    ...(options.models === undefined ? {} : { models: options.models }),
    ...(options.echoKey === undefined ? {} : { echoKey: options.echoKey }),
    chat: ({ model }) => reply(model),
  })
  if (options.failWith !== undefined) await server.setFault('503')
  return {
    url: `${server.url}${prefix}`,
    get requests() {
      return server.requests as unknown as HostedRequest[]
    },
    server,
    close: () => server.stop(),
  }
}

/** A router for the hosted-API tests: no metrics, no retries, a manual clock; closed by `cleanups`. */
export function hostedTestRouter(
  options: Parameters<typeof createLLMRouter>[0],
  cleanups: (() => Promise<unknown>)[],
): LLMRouter {
  const r = createLLMRouter(
    { metrics: false, retry: { maxRetries: 0 }, ...options },
    { clock: new ManualClock(Date.now()) },
  )
  cleanups.push(() => r.close())
  return r
}
