/**
 * Stand-in servers started for one test and stopped after it, and a JSON POST that returns the whole
 * answer, for the testing kit's own tests.
 */
import { request } from 'undici'
import { afterEach } from 'vitest'
import {
  type OllamaServer,
  type OllamaServerOptions,
  type OpenAIServer,
  type OpenAIServerOptions,
  type StandInServer,
  startOllamaServer,
  startOpenAIServer,
} from '../../src/testing/index.js'

/** Registers an afterEach that stops every server started through the returned functions. */
export function standIns(): {
  ollama(options?: OllamaServerOptions): Promise<OllamaServer>
  openai(options?: OpenAIServerOptions): Promise<OpenAIServer>
} {
  const servers: StandInServer[] = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()))
  })
  const track = async <S extends StandInServer>(s: Promise<S>): Promise<S> => {
    const started = await s
    servers.push(started)
    return started
  }
  return {
    ollama: (options = {}) => track(startOllamaServer(options)),
    openai: (options = {}) => track(startOpenAIServer(options)),
  }
}

/** A whole answer. */
export interface Res {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

/** POSTs `body` as JSON (a string is sent as it is) and reads the whole answer. */
export async function post(url: string, body: unknown): Promise<Res> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}
