/**
 * The kit's hosted flavor (`flavor: 'hosted'`): the checks a hosted API makes before a model runs (key,
 * path under its prefix, `model`), OpenAI's error bodies, and a router's hosted record against it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type createLLMRouter, hasErrorCode, type LLMRouter } from '../src/index.js'
import { type OpenAIServer, parseSse, startOpenAIServer } from '../src/testing/index.js'
import { createMockNetwork, openAIHandlers } from '../src/testing/msw/index.js'
import { hostedTestRouter } from './helpers/hosted.js'

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()))
})

async function hostedKit(options: Parameters<typeof startOpenAIServer>[0]): Promise<OpenAIServer> {
  const server = await startOpenAIServer({ flavor: 'hosted', ...options })
  cleanups.push(() => server.stop())
  return server
}

function router(options: Parameters<typeof createLLMRouter>[0]): LLMRouter {
  return hostedTestRouter(options, cleanups)
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return {
    status: res.status,
    body: (await res.json()) as { error?: Record<string, unknown> } & Record<string, unknown>,
  }
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] }

describe("kit flavor 'hosted'", () => {
  it('checks the key, the path, then model, with OpenAI error bodies; a wrong key is echoed masked', async () => {
    const api = await hostedKit({ apiKey: 'sk-test-0123456789', models: ['gpt-4o-mini'] })
    expect(api.flavor).toBe('hosted')
    const url = `${api.url}/v1/chat/completions`
    const bearer = { authorization: 'Bearer sk-test-0123456789' }

    const none = await post(url, chat)
    expect(none.status).toBe(401)
    expect(none.body.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_api_key',
      param: null,
    })
    const wrong = await post(url, chat, { authorization: 'Bearer sk-wrong-abcdefgh' })
    expect(wrong.status).toBe(401)
    expect(wrong.body.error?.message).toContain('Incorrect API key provided: sk-***efgh.')
    expect(JSON.stringify(wrong.body)).not.toContain('sk-wrong-abcdefgh')

    const path = await post(`${api.url}/v1/completion`, chat, bearer)
    expect([path.status, path.body.error?.message]).toEqual([404, 'Invalid URL (POST /v1/completion)'])
    const outside = await post(`${api.url}/chat/completions`, chat, bearer)
    expect(outside.status).toBe(404)

    const noModel = await post(url, { messages: chat.messages }, bearer)
    expect([noModel.status, noModel.body.error?.message]).toEqual([400, 'you must provide a model parameter'])
    const unknown = await post(url, { ...chat, model: 'gpt-5' }, bearer)
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toMatchObject({
      code: 'model_not_found',
      message: 'The model `gpt-5` does not exist or you do not have access to it.',
    })
    const broken = await post(url, '{"model":', bearer)
    expect(broken.status).toBe(400)

    const ok = await post(url, chat, bearer)
    expect(ok.status).toBe(200)
    expect(ok.body).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-mini' })
    // Every request is recorded with the path as sent.
    expect(api.requests.map((r) => r.path).at(-1)).toBe('/v1/chat/completions')
  })

  it('needs apiKey', async () => {
    await expect(startOpenAIServer({ flavor: 'hosted' })).rejects.toThrow(/needs apiKey/)
  })

  it("a router's openai record: bearer and model sent, generate/stream/chat through {prefix}/chat/completions, embed through {prefix}/embeddings, backend 'openai'", async () => {
    const api = await hostedKit({ apiKey: 'gsk-kit', prefix: '/openai/v1', models: ['llama-3.1-8b-instant'] })
    const records = [
      {
        model_name: 'groq-8b',
        backend_type: 'openai',
        backend_model: 'llama-3.1-8b-instant',
        endpoint_url: `${api.url}/openai/v1`,
        auth: { bearer_env: 'GROQ_API_KEY' },
      },
    ]
    const r = router({ env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), GROQ_API_KEY: 'gsk-kit' } })
    const generated = await r.generate({ model: 'groq-8b', prompt: 'Hi' })
    expect(generated.backend).toBe('openai')
    expect(generated.response.length).toBeGreaterThan(0)
    const stream = r.stream({ model: 'groq-8b', prompt: 'Hi' })
    let text = ''
    for await (const chunk of stream) text += chunk.text
    expect(text.length).toBeGreaterThan(0)
    expect((await stream.result).usage.completionTokens).toBeGreaterThan(0)
    const answer = await r.chat({ model: 'groq-8b', messages: [{ role: 'user', content: 'Hi' }] })
    expect(answer.message.content.length).toBeGreaterThan(0)
    expect(
      api.requests.map((q) => [q.path, q.headers.authorization, (q.body as { model?: string }).model]),
    ).toEqual(Array(3).fill(['/openai/v1/chat/completions', 'Bearer gsk-kit', 'llama-3.1-8b-instant']))

    const vectors = await r.embed({ model: 'groq-8b', input: ['a', 'b'] })
    expect([vectors.backend, vectors.embeddings.length]).toEqual(['openai', 2])
    expect(api.requests.at(-1)?.path).toBe('/openai/v1/embeddings')
    expect(api.requests.at(-1)?.body).toMatchObject({ model: 'llama-3.1-8b-instant', input: ['a', 'b'] })

    const denied = router({ env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), GROQ_API_KEY: 'gsk-old' } })
    const error = await denied.generate({ model: 'groq-8b', prompt: 'Hi' }).catch((e: unknown) => e)
    expect(hasErrorCode(error, 'UNAUTHORIZED')).toBe(true)
  })

  it('streams usage only when stream_options.include_usage asks for it, as OpenAI does', async () => {
    const api = await hostedKit({ apiKey: 'k' })
    const streamed = async (body: Record<string, unknown>) => {
      const res = await fetch(`${api.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
        body: JSON.stringify({ ...chat, stream: true, ...body }),
      })
      return parseSse(await res.text())
        .map((e) => e.data)
        .filter((d): d is string => d !== undefined && d !== '[DONE]')
        .map((d) => JSON.parse(d) as { usage?: unknown; choices: unknown[] })
    }
    expect((await streamed({})).filter((f) => f.usage !== undefined && f.usage !== null)).toEqual([])
    const withUsage = await streamed({ stream_options: { include_usage: true } })
    expect(withUsage.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: expect.any(Number) } })
  })

  it('as msw handlers too', async () => {
    const network = createMockNetwork(
      ...openAIHandlers({
        baseUrl: 'http://api.hosted.test',
        flavor: 'hosted',
        apiKey: 'k',
        prefix: '/inference/v1',
      }),
    )
    network.enable()
    try {
      const url = 'http://api.hosted.test/inference/v1/chat/completions'
      expect((await post(url, chat)).status).toBe(401)
      expect((await post(url, chat, { authorization: 'Bearer k' })).status).toBe(200)
    } finally {
      network.disable()
    }
  })

  it("Azure's api-key header", async () => {
    const api = await hostedKit({ apiKey: 'azure-key', keyHeader: 'api-key', prefix: '/openai/v1' })
    const url = `${api.url}/openai/v1/chat/completions`
    expect((await post(url, chat, { authorization: 'Bearer azure-key' })).status).toBe(401)
    expect((await post(url, chat, { 'api-key': 'azure-key' })).status).toBe(200)
  })
})
