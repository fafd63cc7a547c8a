/**
 * The `llms` and `providers` admin schemas end to end: seed-shaped payloads served by the kit's admin,
 * requests routed to a strict hosted stand-in (key and `model` required) and the kit's Ollama, all on
 * 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { fernetEncrypt, fernetGenerateKey } from '../src/config/fernet.js'
import { parseRows } from '../src/config/schemas/index.js'
import { createLLMRouter, hasErrorCode, isRouterError, type LLMRouter } from '../src/index.js'
import { createOpenTelemetrySink } from '../src/metrics/sinks.js'
import { startAdminServer, startOllamaServer } from '../src/testing/index.js'
import { llmsSeedRows, providersSeed } from './fixtures/seed-tables.js'
import { collect, ROUTER_EVENTS } from './helpers/events.js'
import { type HostedServer, hostedTestRouter, startHostedServer } from './helpers/hosted.js'

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()))
})

async function hosted(options: Parameters<typeof startHostedServer>[0]): Promise<HostedServer> {
  const server = await startHostedServer(options)
  cleanups.push(() => server.close())
  return server
}

async function ollama() {
  const server = await startOllamaServer()
  cleanups.push(() => server.stop())
  return server
}

async function admin(payload: unknown, listPath?: string) {
  const server = await startAdminServer(listPath === undefined ? {} : { listPath })
  server.setPayload(payload)
  cleanups.push(() => server.stop())
  return server
}

function router(options: Parameters<typeof createLLMRouter>[0]): LLMRouter {
  return hostedTestRouter(options, cleanups)
}

/** The message of the error that ended the last attempt (ALL_BACKENDS_FAILED carries it as cause). */
function causeText(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause
  return cause instanceof Error ? cause.message : String(error)
}

describe("admin.schema 'llms'", () => {
  it('routes the seed rows: the default (GPT-4) to the hosted API with its key and model_name, Ollama Llama2 to Ollama', async () => {
    const api = await hosted({ key: 'sk-openai-test', models: ['gpt-4', 'gpt-3.5-turbo'] })
    const local = await ollama()
    const adm = await admin(llmsSeedRows())
    const env = { OPENAI_API_KEY: 'sk-openai-test', OPENAI_API_BASE: api.url, OLLAMA_BASE_URL: local.url }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    const invalid = collect(r, 'config:invalid-record')

    const first = await r.generate({ prompt: 'Hi' })
    expect(first.model).toBe('OpenAI GPT-4')
    expect(first.response).toBe('Hello from gpt-4')
    expect(first.endpoint).toBe(api.url)
    const sent = api.requests[0]
    expect(sent?.headers.authorization).toBe('Bearer sk-openai-test')
    expect(sent?.path).toBe('/v1/chat/completions')
    expect(sent?.body).toMatchObject({
      model: 'gpt-4',
      max_tokens: 2000,
      temperature: 0,
      messages: [{ role: 'user', content: 'Hi' }],
    })

    const second = await r.generate({ model: 'Ollama Llama2', prompt: 'Hi' })
    expect(second.backend).toBe('ollama')
    expect(local.requests.at(-1)?.body).toMatchObject({ model: 'llama2', options: { temperature: 0.7 } })

    expect(invalid.map((i) => i.modelName)).toEqual([
      'Claude 3 Haiku',
      'Claude 3 Sonnet',
      'Claude 3 Opus',
      'Bedrock Claude v2',
    ])
    const info = r.config()
    expect(info?.records.map((x) => x.model_name)).toEqual([
      'OpenAI GPT-4',
      'OpenAI GPT-3.5 Turbo',
      'Ollama Llama2',
    ])
  })

  it('hosted records: generate with a system prompt, stream and chat all go through chat completions with model and key', async () => {
    const api = await hosted({ key: 'sk-openai-test', models: ['gpt-4'] })
    const adm = await admin(llmsSeedRows().slice(0, 1))
    const env = { OPENAI_API_KEY: 'sk-openai-test', OPENAI_API_BASE: api.url }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    const generated = await r.generate({
      model: 'OpenAI GPT-4',
      system: 'Be brief.',
      prompt: 'Hi',
      maxTokens: 50,
    })
    // The kit counts words: `Be brief.` + `Hi` in, `Hello from gpt-4` out.
    expect(generated.usage).toEqual({ promptTokens: 3, completionTokens: 3 })
    expect(api.requests[0]?.body).toEqual({
      model: 'gpt-4',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 50,
      temperature: 0,
      stream: false,
    })
    const stream = r.stream({ prompt: 'Hi' })
    let text = ''
    for await (const chunk of stream) text += chunk.text
    expect(text).toBe('Hello from gpt-4')
    expect((await stream.result).usage.completionTokens).toBe(3)
    expect(api.requests[1]?.body).toMatchObject({
      model: 'gpt-4',
      stream: true,
      stream_options: { include_usage: true },
    })
    const chat = await r.chat({ model: 'OpenAI GPT-4', messages: [{ role: 'user', content: 'Hello?' }] })
    expect(chat.message).toEqual({ role: 'assistant', content: 'Hello from gpt-4' })
    expect(api.requests[2]?.path).toBe('/v1/chat/completions')
    const chatStream = r.streamChat({
      model: 'OpenAI GPT-4',
      messages: [{ role: 'user', content: 'Hello?' }],
    })
    let chatText = ''
    for await (const chunk of chatStream) chatText += chunk.text
    expect(chatText).toBe('Hello from gpt-4')
    expect(api.requests[3]?.body).toMatchObject({ model: 'gpt-4', stream: true })
    expect(api.requests.map((q) => q.headers.authorization)).toEqual(Array(4).fill('Bearer sk-openai-test'))
  })

  it("fallbackModels 'priority' walks the rows by priority across providers (GPT-4, GPT-3.5, then Ollama Llama2)", async () => {
    const api = await hosted({ key: 'sk-openai-test', models: [] })
    const local = await ollama()
    const adm = await admin(llmsSeedRows())
    const env = { OPENAI_API_KEY: 'sk-openai-test', OPENAI_API_BASE: api.url, OLLAMA_BASE_URL: local.url }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    const result = await r.generate({ prompt: 'Hi', fallbackModels: 'priority' })
    expect(result.attempts.map((a) => [a.model, a.code ?? 'ok'])).toEqual([
      ['OpenAI GPT-4', 'MODEL_NOT_FOUND'],
      ['OpenAI GPT-3.5 Turbo', 'MODEL_NOT_FOUND'],
      ['Ollama Llama2', 'ok'],
    ])
  })

  it('reads _env references per request: a changed OPENAI_API_BASE is used by the next request, an unset key is MISSING_CREDENTIAL naming it', async () => {
    const a = await hosted({ key: 'sk-a' })
    const b = await hosted({ key: 'sk-b' })
    const adm = await admin(llmsSeedRows().slice(0, 1))
    const env: Record<string, string | undefined> = { OPENAI_API_KEY: 'sk-a', OPENAI_API_BASE: a.url }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    await r.generate({ prompt: 'one' })
    env.OPENAI_API_BASE = b.url
    env.OPENAI_API_KEY = 'sk-b'
    const moved = await r.generate({ prompt: 'two' })
    expect(moved.endpoint).toBe(b.url)
    expect([a.requests.length, b.requests.length]).toEqual([1, 1])

    env.OPENAI_API_BASE = undefined
    const resolved = await r.resolve()
    expect(resolved.targets[0]).toMatchObject({ endpoint: 'https://api.openai.com/v1', sendModel: 'gpt-4' })

    env.OPENAI_API_BASE = b.url
    env.OPENAI_API_KEY = undefined
    const error = await r.generate({ prompt: 'three' }).catch((e: unknown) => e)
    expect(hasErrorCode(error, 'MISSING_CREDENTIAL')).toBe(true)
    expect(causeText(error)).toContain('environment variable OPENAI_API_KEY, which is not set')
    expect(b.requests.length).toBe(1)
  })

  it('Azure: {endpoint}/openai/v1, the deployment name from its env var as model, the key in api-key; unset endpoint names the variable', async () => {
    const api = await hosted({ key: 'azure-key', prefix: '/openai/v1', keyHeader: 'api-key' })
    const rows = llmsSeedRows().filter((row) => row.provider === 'azure')
    ;(rows[0] as { enabled: boolean }).enabled = true
    const adm = await admin(rows)
    const base = api.url.replace(/\/openai\/v1$/, '')
    const env: Record<string, string | undefined> = {
      AZURE_OPENAI_API_KEY: 'azure-key',
      AZURE_OPENAI_API_BASE: base,
      AZURE_OPENAI_DEPLOYMENT_NAME: 'my-gpt35-deployment',
      AZURE_OPENAI_API_VERSION: '2024-10-21',
    }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    const result = await r.generate({ model: 'Azure OpenAI', prompt: 'Hi' })
    expect(result.endpoint).toBe(`${base}/openai/v1`)
    expect(api.requests[0]?.headers['api-key']).toBe('azure-key')
    expect(api.requests[0]?.headers.authorization).toBeUndefined()
    expect(api.requests[0]?.body.model).toBe('my-gpt35-deployment')

    // A variable that already ends with /openai/v1 is used as is.
    env.AZURE_OPENAI_API_BASE = api.url
    await r.generate({ model: 'Azure OpenAI', prompt: 'Hi' })
    expect(api.requests[1]?.path).toBe('/openai/v1/chat/completions')

    env.AZURE_OPENAI_API_BASE = undefined
    const error = await r.generate({ model: 'Azure OpenAI', prompt: 'Hi' }).catch((e: unknown) => e)
    expect(hasErrorCode(error, 'MISSING_CREDENTIAL')).toBe(true)
    expect(causeText(error)).toContain('environment variable AZURE_OPENAI_API_BASE, which is not set')
    expect((error as { attempts: { endpoint: string }[] }).attempts[0]?.endpoint).toBe(
      'env:AZURE_OPENAI_API_BASE',
    )
    expect(api.requests.length).toBe(2)
  })

  it('scope: only that scope and global are used, and its default serves requests without a model', async () => {
    const local = await ollama()
    const rows = [
      ...llmsSeedRows(),
      {
        name: 'Tenant Phi',
        provider: 'ollama',
        model_name: 'phi3:mini',
        auth_meta: { base_url_env: 'OLLAMA_BASE_URL' },
        enabled: true,
        is_default: true,
        priority: 90,
        scope: 'tenant-a',
      },
      {
        name: 'Tenant B',
        provider: 'ollama',
        model_name: 'qwen',
        enabled: true,
        is_default: true,
        scope: 'tenant-b',
      },
    ]
    const adm = await admin(rows)
    const r = router({
      adminUrl: adm.url,
      admin: { schema: 'llms' },
      scope: 'tenant-a',
      env: { OLLAMA_BASE_URL: local.url },
    })
    const result = await r.generate({ prompt: 'Hi' })
    expect(result.model).toBe('Tenant Phi')
    expect(local.requests.at(-1)?.body).toMatchObject({ model: 'phi3:mini' })
    expect(r.config()?.allRecords.map((x) => x.model_name)).not.toContain('Tenant B')
  })
})

describe("admin.schema 'providers'", () => {
  async function seedServers() {
    const groq = await hosted({ key: 'gsk-groq', prefix: '/openai/v1' })
    const cerebras = await hosted({ key: 'csk-cerebras', models: ['llama3.1-8b'] })
    const google = await hosted({ key: 'AIza-google', prefix: '/v1beta/openai' })
    const mistral = await hosted({ key: 'mistral-key' })
    const local = await ollama()
    return { groq, cerebras, google, mistral, local }
  }

  it('the champion is the default; fallbackModels priority tries the same provider by fallback_priority first; decrypted keys as bearer', async () => {
    const s = await seedServers()
    const key = fernetGenerateKey()
    const payload = providersSeed(
      {
        groq: s.groq.url,
        cerebras: s.cerebras.url,
        ollama: s.local.url,
        google: s.google.url,
        mistral: s.mistral.url,
      },
      {
        groq: fernetEncrypt('gsk-groq', key),
        cerebras: fernetEncrypt('csk-cerebras', key),
        google: fernetEncrypt('AIza-google', key),
        mistral: fernetEncrypt('mistral-key', key),
      },
    )
    const adm = await admin(payload, '/api/providers/all')
    const r = router({
      adminUrl: adm.url,
      admin: { schema: 'providers' },
      env: { LLM_ROUTER_ENCRYPTION_KEY: key },
    })

    const byDefault = await r.generate({ prompt: 'Hi' })
    expect(byDefault.model).toBe('llama-3.3-70b-versatile')
    expect(s.groq.requests[0]?.headers.authorization).toBe('Bearer gsk-groq')

    // Cerebras' champion is not served there (404 model_not_found): its next model, not Groq's, answers.
    const fell = await r.generate({ model: 'gpt-oss-120b', prompt: 'Hi', fallbackModels: 'priority' })
    expect(fell.model).toBe('llama3.1-8b')
    expect(fell.attempts.map((a) => [a.model, a.ok])).toEqual([
      ['gpt-oss-120b', false],
      ['llama3.1-8b', true],
    ])
    expect(s.cerebras.requests.map((q) => q.headers.authorization)).toEqual([
      'Bearer csk-cerebras',
      'Bearer csk-cerebras',
    ])

    const gemini = await r.generate({ model: 'gemini-2.5-flash', prompt: 'Hi' })
    expect(gemini.endpoint).toBe(s.google.url)
    expect(s.google.requests[0]?.path).toBe('/v1beta/openai/chat/completions')

    const info = r.config()
    expect(info?.records.find((x) => x.model_name === 'gpt-oss-120b')).toMatchObject({ rpm: 600, tpm: 48000 })
  })

  it('a wrong key makes the provider invalid (reported); an unset key env is MISSING_CREDENTIAL naming it', async () => {
    const s = await seedServers()
    const key = fernetGenerateKey()
    const urls = {
      groq: s.groq.url,
      cerebras: s.cerebras.url,
      ollama: s.local.url,
      google: s.google.url,
      mistral: s.mistral.url,
    }
    const adm = await admin(
      providersSeed(urls, { groq: fernetEncrypt('gsk-groq', fernetGenerateKey()) }),
      '/api/providers/all',
    )
    const r = router({
      adminUrl: adm.url,
      admin: { schema: 'providers' },
      env: { LLM_ROUTER_ENCRYPTION_KEY: key },
    })
    const invalid = collect(r, 'config:invalid-record')
    await r.refresh()
    expect(invalid.map((i) => [i.modelName, i.field])).toEqual([
      ['llama-3.3-70b-versatile', 'api_key_encrypted'],
      ['llama-3.1-8b-instant', 'api_key_encrypted'],
    ])
    expect(invalid[0]?.message).toMatch(/^provider groq: cannot be decrypted .*wrong key/)
    // A request for one of its models says why it has no record (strictModels: nothing is sent).
    const strict = router({
      adminUrl: adm.url,
      admin: { schema: 'providers' },
      env: { LLM_ROUTER_ENCRYPTION_KEY: key },
      strictModels: true,
    })
    const refused = await strict
      .generate({ model: 'llama-3.1-8b-instant', prompt: 'Hi' })
      .catch((e: unknown) => e)
    expect(hasErrorCode(refused, 'MODEL_NOT_CONFIGURED')).toBe(true)
    const route = await r.resolve('llama-3.1-8b-instant')
    expect(route.defaultReason).toMatch(/its only record is invalid \(provider groq: cannot be decrypted/)

    const adm2 = await admin(
      providersSeed(urls, { mistral: fernetEncrypt('mistral-key', key) }),
      '/api/providers/all',
    )
    const r2 = router({
      adminUrl: adm2.url,
      admin: { schema: 'providers', encryptionKeyEnv: 'PROVIDER_KEYS_FERNET' },
      env: {},
    })
    const error = await r2.generate({ model: 'mistral-small-latest', prompt: 'Hi' }).catch((e: unknown) => e)
    expect(isRouterError(error) && hasErrorCode(error, 'MISSING_CREDENTIAL')).toBe(true)
    expect(causeText(error)).toContain(
      'the environment variable PROVIDER_KEYS_FERNET (the Fernet key) is not set',
    )
    expect(s.mistral.requests.length).toBe(0)
  })

  it('the decrypted key never shows: not in events, errors, metrics, logs or router.config(), even when the API echoes it', async () => {
    const plaintext = 'csk-PLAINTEXT-never-leak-4242'
    const s = await seedServers()
    const key = fernetGenerateKey()
    const echoing = await hosted({ key: 'a-different-key', echoKey: true })
    const good = await hosted({ key: plaintext, models: ['llama3.1-8b'] })
    const urls = {
      groq: echoing.url,
      cerebras: good.url,
      ollama: s.local.url,
      google: s.google.url,
      mistral: s.mistral.url,
    }
    const tokens = { cerebras: fernetEncrypt(plaintext, key), groq: fernetEncrypt(plaintext, key) }
    const adm = await admin(providersSeed(urls, tokens), '/api/providers/all')
    const seen: unknown[] = []
    const logs: string[] = []
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) => {
      const original = console[level]
      console[level] = (...args: unknown[]) => {
        logs.push(args.map(String).join(' '))
      }
      return () => {
        console[level] = original
      }
    })
    try {
      const sink = {
        write: (record: unknown) => seen.push(record),
        flush: async () => {},
        close: async () => {},
      }
      const r = router({
        adminUrl: adm.url,
        admin: { schema: 'providers' },
        env: { LLM_ROUTER_ENCRYPTION_KEY: key },
        metrics: sink,
      })
      for (const name of ROUTER_EVENTS) r.on(name, (payload: unknown) => seen.push({ name, payload }))
      // Cerebras accepts the key (llama3.1-8b); the echoing API answers 401 "Incorrect API key provided: <key>".
      const ok = await r.generate({ model: 'llama3.1-8b', prompt: 'Hi' })
      expect(good.requests[0]?.headers.authorization).toBe(`Bearer ${plaintext}`)
      seen.push(ok)
      const denied = await r
        .generate({ model: 'llama-3.3-70b-versatile', prompt: 'Hi' })
        .catch((e: unknown) => e)
      expect(hasErrorCode(denied, 'UNAUTHORIZED')).toBe(true)
      expect(echoing.requests[0]?.headers.authorization).toBe(`Bearer ${plaintext}`)
      const streamed = r.stream({ model: 'gpt-oss-120b', prompt: 'Hi' })
      const streamError = await streamed.result.catch((e: unknown) => e)
      seen.push(r.config(), r.stats(), r.circuits(), await r.resolve('llama3.1-8b'))
      const errorText = (e: unknown): string => {
        if (!(e instanceof Error)) return String(e)
        const attempts = (e as { attempts?: unknown }).attempts
        return `${e.message} ${e.stack} ${JSON.stringify(attempts)} ${errorText((e as { cause?: unknown }).cause)}`
      }
      const everything = `${JSON.stringify(seen)} ${errorText(denied)} ${errorText(streamError)} ${logs.join('\n')}`
      expect(everything).toContain('Incorrect API key provided: [redacted]')
      expect(everything).not.toContain(plaintext)
      expect(seen.some((x) => (x as { name?: string }).name === 'metric')).toBe(true)
    } finally {
      for (const restore of spies) restore()
    }
  })

  it('accepts {"providers": [...]} and {"data": [...]} wrappers', async () => {
    const local = await ollama()
    const rows = [{ id: 'ollama', base_url: local.url, models: [{ id: 'llama3.2', fallback_priority: 1 }] }]
    for (const payload of [{ providers: rows }, { data: rows }]) {
      const adm = await admin(payload, '/api/providers/all')
      const r = router({ adminUrl: adm.url, admin: { schema: 'providers' } })
      const result = await r.generate({ model: 'llama3.2', prompt: 'Hi' })
      expect(result.endpoint).toBe(local.url)
    }
  })

  it('rejects lookup: model with a non-default schema', () => {
    expect(() =>
      createLLMRouter({ adminUrl: 'http://127.0.0.1:1', admin: { schema: 'providers', lookup: 'model' } }),
    ).toThrow(/'model' works with the llm_backends schema only/)
  })
})

describe('cost', () => {
  it('priced records put cost on results, metric records and stats(); unpriced ones report none, not zero', async () => {
    const api = await hosted({ key: 'k', models: ['priced', 'unpriced', 'half'] })
    const adm = await admin(
      [
        {
          id: 'p',
          base_url: api.url,
          models: [
            { id: 'priced', fallback_priority: 1, input_cost_per_million: 0.6, output_cost_per_million: 2.4 },
            { id: 'unpriced', fallback_priority: 2 },
            { id: 'half', fallback_priority: 3, input_cost_per_million: 1 },
          ],
        },
      ],
      '/api/providers/all',
    )
    const metrics: { model: string; cost?: number | null }[] = []
    const sink = {
      write: (m: { model: string; cost?: number | null }) => metrics.push(m),
      flush: async () => {},
      close: async () => {},
    }
    const r = router({
      adminUrl: adm.url,
      admin: { schema: 'providers' },
      metrics: sink,
      env: {},
    })
    // No api_key_encrypted: the stand-in answers 401; the priced call below uses a keyed copy of the records.
    const denied = await r.generate({ model: 'priced', prompt: 'Hi' }).catch((e: unknown) => e)
    expect(hasErrorCode(denied, 'UNAUTHORIZED')).toBe(true)
    expect(metrics.at(-1)?.cost).toBeNull()

    const records = [
      {
        model_name: 'priced',
        backend_type: 'openai',
        endpoint_url: api.url,
        auth: { bearer_env: 'KEY' },
        input_cost_per_million: 0.6,
        output_cost_per_million: 2.4,
      },
      { model_name: 'unpriced', backend_type: 'openai', endpoint_url: api.url, auth: { bearer_env: 'KEY' } },
      {
        model_name: 'half',
        backend_type: 'openai',
        endpoint_url: api.url,
        auth: { bearer_env: 'KEY' },
        input_cost_per_million: 1,
      },
    ]
    const r2 = router({ env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), KEY: 'k' }, metrics: sink })
    const priced = await r2.generate({ model: 'priced', prompt: 'Hi' })
    // Prompt tokens at 0.6/M + completion tokens at 2.4/M, as the API counted them.
    const costOf = (u: { promptTokens: number; completionTokens: number }) =>
      (u.promptTokens * 0.6 + u.completionTokens * 2.4) / 1e6
    expect(priced.usage.promptTokens).toBeGreaterThan(0)
    expect(priced.usage.completionTokens).toBeGreaterThan(0)
    expect(priced.cost).toBeCloseTo(costOf(priced.usage), 15)
    const chat = await r2.chat({ model: 'priced', messages: [{ role: 'user', content: 'Hi' }] })
    expect(chat.cost).toBeCloseTo(costOf(chat.usage), 15)
    const unpriced = await r2.generate({ model: 'unpriced', prompt: 'Hi' })
    expect('cost' in unpriced).toBe(false)
    const half = await r2.generate({ model: 'half', prompt: 'Hi' })
    expect('cost' in half).toBe(false)
    expect(metrics.slice(-4).map((m) => [m.model, m.cost])).toEqual([
      ['priced', priced.cost],
      ['priced', chat.cost],
      ['unpriced', null],
      ['half', null],
    ])
    const stats = Object.fromEntries(r2.stats().map((s) => [s.model, s.cost]))
    expect(stats.priced).toBeCloseTo(costOf(priced.usage) + costOf(chat.usage), 15)
    expect(stats.unpriced).toBeNull()
    expect(stats.half).toBeNull()
  })

  it('the schemas carry prices: llms rows in config, providers per model', () => {
    const llms = parseRows(
      'llms',
      [
        {
          name: 'GPT-4o',
          provider: 'openai',
          model_name: 'gpt-4o',
          config: { input_cost_per_million: 2.5, output_cost_per_million: 10 },
        },
      ],
      { scope: 'global', env: {}, encryptionKeyEnv: 'K' },
    )
    expect(llms.records[0]).toMatchObject({ input_cost_per_million: 2.5, output_cost_per_million: 10 })
    const bad = parseRows(
      'llms',
      [{ name: 'x', provider: 'openai', model_name: 'y', config: { output_cost_per_million: -1 } }],
      {
        scope: 'global',
        env: {},
        encryptionKeyEnv: 'K',
      },
    )
    expect(bad.invalid).toEqual([expect.objectContaining({ field: 'config.output_cost_per_million' })])
    const providers = parseRows(
      'providers',
      [
        {
          id: 'groq',
          base_url: 'https://api.groq.com/openai/v1',
          models: [{ id: 'm', input_cost_per_million: 0.05, output_cost_per_million: 0.08 }],
        },
      ],
      { scope: 'global', env: {}, encryptionKeyEnv: 'K' },
    )
    expect(providers.records[0]).toMatchObject({
      input_cost_per_million: 0.05,
      output_cost_per_million: 0.08,
    })
  })
})

describe("hosted records report backend 'openai'", () => {
  it('results, attempts, stream and chat chunks, metric records, stats() and resolve() say openai (llms rows: URL from the env)', async () => {
    const api = await hosted({ key: 'sk-openai-test', models: ['gpt-4'] })
    const adm = await admin(llmsSeedRows().slice(0, 1))
    const env = { OPENAI_API_KEY: 'sk-openai-test', OPENAI_API_BASE: api.url }
    const r = router({ adminUrl: adm.url, admin: { schema: 'llms' }, env })
    const metrics = collect(r, 'metric')

    const route = await r.resolve('OpenAI GPT-4')
    expect(route.targets.map((t) => [t.backend, t.endpoint, t.sendModel])).toEqual([
      ['openai', api.url, 'gpt-4'],
    ])
    const generated = await r.generate({ model: 'OpenAI GPT-4', prompt: 'Hi' })
    expect(generated.backend).toBe('openai')
    expect(generated.attempts.map((a) => a.backend)).toEqual(['openai'])

    const stream = r.stream({ model: 'OpenAI GPT-4', prompt: 'Hi' })
    const streamed: string[] = []
    for await (const chunk of stream) streamed.push(chunk.backend)
    expect(streamed.length).toBeGreaterThan(0)
    expect(new Set(streamed)).toEqual(new Set(['openai']))
    expect((await stream.result).backend).toBe('openai')

    const chat = await r.chat({ model: 'OpenAI GPT-4', messages: [{ role: 'user', content: 'Hi' }] })
    expect(chat.backend).toBe('openai')
    const chatStream = r.streamChat({ model: 'OpenAI GPT-4', messages: [{ role: 'user', content: 'Hi' }] })
    const chatChunks: string[] = []
    for await (const chunk of chatStream) chatChunks.push(chunk.backend)
    expect(new Set(chatChunks)).toEqual(new Set(['openai']))
    expect((await chatStream.result).backend).toBe('openai')

    expect(metrics.map((m) => [m.model, m.backend, m.endpoint])).toEqual(
      Array(4).fill(['OpenAI GPT-4', 'openai', api.url]),
    )
    expect(r.stats().map((s) => [s.model, s.backend, s.count])).toEqual([['OpenAI GPT-4', 'openai', 4]])
  })

  it("the OpenTelemetry sink reports gen_ai.provider.name 'openai' (the conventions' value for OpenAI)", async () => {
    const api = await hosted({ key: 'k', models: ['gpt-4o-mini'] })
    const attrs: Record<string, unknown>[] = []
    const instrument = () => ({
      record: (_: number, a: Record<string, unknown> = {}) => attrs.push(a),
      add: (_: number, a: Record<string, unknown> = {}) => attrs.push(a),
    })
    const sink = createOpenTelemetrySink({
      meter: { createHistogram: instrument, createCounter: instrument },
    })
    const records = [
      {
        model_name: 'gpt-4o-mini',
        backend_type: 'openai',
        endpoint_url: api.url,
        auth: { bearer_env: 'KEY' },
      },
    ]
    const r = router({ env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), KEY: 'k' }, metrics: sink })
    await r.generate({ model: 'gpt-4o-mini', prompt: 'Hi' })
    await r.close()
    expect(attrs.length).toBeGreaterThan(0)
    expect(new Set(attrs.map((a) => a['gen_ai.provider.name']))).toEqual(new Set(['openai']))
  })

  it('retry and fallback events, failed attempts, errors and failed metric records say openai (llm_backends records)', async () => {
    const flaky = await hosted({ key: 'k', failWith: 503 })
    const denied = await hosted({ key: 'other-key' })
    const local = await ollama()
    const records = [
      { model_name: 'hosted', backend_type: 'openai', endpoint_url: flaky.url, auth: { bearer_env: 'KEY' } },
      { model_name: 'denied', backend_type: 'openai', endpoint_url: denied.url, auth: { bearer_env: 'KEY' } },
      { model_name: 'llama3.2', backend_type: 'ollama', endpoint_url: local.url },
    ]
    const r = router({
      env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), KEY: 'k' },
      // No backoff: this test is about labels, not waits.
      retry: { maxRetries: 1, baseDelayMs: 0 },
      circuitBreaker: false,
    })
    const retries = collect(r, 'request:retry')
    const fallbacks = collect(r, 'request:fallback')
    const metrics = collect(r, 'metric')

    const result = await r.generate({ model: 'hosted', prompt: 'Hi', fallbackModels: ['llama3.2'] })
    expect(result.backend).toBe('ollama')
    expect(result.attempts.map((a) => [a.backend, a.code ?? 'ok'])).toEqual([
      ['openai', 'BACKEND_BUSY'],
      ['openai', 'BACKEND_BUSY'],
      ['ollama', 'ok'],
    ])
    expect(retries.map((e) => [e.backend, e.endpoint])).toEqual([['openai', flaky.url]])
    expect(fallbacks.map((e) => [e.from.backend, e.to.backend])).toEqual([['openai', 'ollama']])

    const error = await r.generate({ model: 'denied', prompt: 'Hi' }).catch((e: unknown) => e)
    expect(isRouterError(error)).toBe(true)
    if (!isRouterError(error)) return
    expect(hasErrorCode(error, 'UNAUTHORIZED')).toBe(true)
    expect(error.attempts.map((a) => a.backend)).toEqual(['openai'])
    const last = error.code === 'UNAUTHORIZED' ? error : (error.cause as typeof error)
    expect(last.backend).toBe('openai')
    expect(last.message).toContain(`openai at ${denied.url} answered 401`)
    expect(metrics.map((m) => [m.model, m.backend, m.outcome])).toEqual([
      ['llama3.2', 'ollama', 'success'],
      ['denied', 'openai', 'error'],
    ])
  })
})
