import { describe, expect, it } from 'vitest'
import { fernetEncrypt, fernetGenerateKey } from '../src/config/fernet.js'
import { parseRecord } from '../src/config/schema.js'
import { parseRows, type SchemaContext } from '../src/config/schemas/index.js'
import { llmsSeedRows, providersSeed } from './fixtures/seed-tables.js'

const ctx = (over: Partial<SchemaContext> = {}): SchemaContext => ({
  scope: 'global',
  env: {},
  encryptionKeyEnv: 'LLM_ROUTER_ENCRYPTION_KEY',
  ...over,
})

const URLS = {
  groq: 'https://api.groq.com/openai/v1',
  cerebras: 'https://api.cerebras.ai/v1',
  ollama: 'http://localhost:11434/v1',
  google: 'https://generativelanguage.googleapis.com/v1beta/openai/',
  mistral: 'https://api.mistral.ai/v1',
}

describe("admin.schema 'llms' (seed 002)", () => {
  it('maps the seed rows field by field and reports the providers without an OpenAI-compatible API', () => {
    const { records, invalid } = parseRows('llms', llmsSeedRows(), ctx())
    expect(records[0]).toEqual({
      id: '7c0e1d6a-0001-4000-8000-000000000001',
      model_name: 'OpenAI GPT-4',
      backend_type: 'openai',
      endpoint_url: 'https://api.openai.com/v1',
      enabled: true,
      priority: 10,
      max_tokens: 2000,
      temperature_default: 0,
      description: 'Primary production LLM',
      backend_model: 'gpt-4',
      auth: { bearer_env: 'OPENAI_API_KEY' },
      endpoint_url_env: 'OPENAI_API_BASE',
      is_default: true,
    })
    expect(records.some((r) => 'provider' in r)).toBe(false)
    const azure = records.find((r) => r.model_name === 'Azure OpenAI')
    expect(azure).toMatchObject({
      backend_type: 'openai',
      endpoint_url: '',
      endpoint_url_env: 'AZURE_OPENAI_API_BASE',
      endpoint_path: '/openai/v1',
      backend_model: 'gpt-35-turbo',
      backend_model_env: 'AZURE_OPENAI_DEPLOYMENT_NAME',
      auth: { header: 'api-key', value_env: 'AZURE_OPENAI_API_KEY' },
      enabled: false,
      priority: 30,
    })
    expect(records.find((r) => r.model_name === 'Google Gemini Pro')).toMatchObject({
      backend_type: 'openai',
      endpoint_url: 'https://generativelanguage.googleapis.com/v1beta/openai',
      auth: { bearer_env: 'GOOGLE_API_KEY' },
    })
    expect(records.find((r) => r.model_name === 'Mixtral 8x7B')).toMatchObject({
      endpoint_url: 'https://api.fireworks.ai/inference/v1',
      backend_model: 'accounts/fireworks/models/mixtral-8x7b-instruct',
    })
    expect(records.find((r) => r.model_name === 'Ollama Llama2')).toEqual({
      id: '7c0e1d6a-0010-4000-8000-000000000010',
      model_name: 'Ollama Llama2',
      backend_type: 'ollama',
      endpoint_url: 'http://localhost:11434',
      enabled: true,
      priority: 80,
      temperature_default: 0.7,
      backend_model: 'llama2',
      endpoint_url_env: 'OLLAMA_BASE_URL',
      is_default: false,
    })
    expect(records.map((r) => r.model_name)).toEqual([
      'OpenAI GPT-4',
      'OpenAI GPT-3.5 Turbo',
      'Azure OpenAI',
      'Google Gemini Pro',
      'Mixtral 8x7B',
      'Ollama Llama2',
      'Ollama Llama3',
    ])
    expect(invalid).toEqual([
      expect.objectContaining({ index: 3, modelName: 'Claude 3 Haiku', field: 'provider' }),
      expect.objectContaining({ index: 4, modelName: 'Claude 3 Sonnet', field: 'provider' }),
      expect.objectContaining({ index: 5, modelName: 'Claude 3 Opus', field: 'provider' }),
      expect.objectContaining({ index: 6, modelName: 'Bedrock Claude v2', field: 'provider' }),
    ])
    expect(invalid[0]?.message).toMatch(/anthropic is not supported: .*not OpenAI-compatible/)
    expect(invalid[3]?.message).toMatch(/bedrock is not supported: .*SigV4/)
  })

  it('keeps rows of the scope and global; the scope default wins over the global one', () => {
    const rows = [
      ...llmsSeedRows(),
      {
        name: 'Tenant Llama',
        provider: 'ollama',
        model_name: 'llama3.2',
        enabled: true,
        is_default: true,
        scope: 'tenant-a',
        priority: 90,
      },
      { name: 'Other Tenant', provider: 'ollama', model_name: 'phi3', enabled: true, scope: 'tenant-b' },
    ]
    const global = parseRows('llms', rows, ctx())
    expect(global.records.map((r) => r.model_name)).not.toContain('Tenant Llama')
    expect(global.records.filter((r) => r.is_default).map((r) => r.model_name)).toEqual(['OpenAI GPT-4'])
    const tenant = parseRows('llms', rows, ctx({ scope: 'tenant-a' }))
    const names = tenant.records.map((r) => r.model_name)
    expect(names).toContain('Tenant Llama')
    expect(names).toContain('OpenAI GPT-4')
    expect(names).not.toContain('Other Tenant')
    expect(tenant.records.filter((r) => r.is_default).map((r) => r.model_name)).toEqual(['Tenant Llama'])
  })

  it('reports what cannot be mapped, under the row field names, never echoing values', () => {
    const bad = [
      { name: 'No provider', model_name: 'x' },
      {
        name: 'Secret in auth',
        provider: 'openai',
        model_name: 'gpt-4',
        auth_meta: { api_key: 'sk-should-not-echo' },
      },
      {
        name: 'Bad env',
        provider: 'openai',
        model_name: 'gpt-4',
        auth_meta: { api_key_env: 'sk-not a name' },
      },
      { name: 'Azure no endpoint', provider: 'azure', model_name: 'gpt-4o', auth_meta: { api_key_env: 'K' } },
      { name: 'Bad temp', provider: 'openai', model_name: 'gpt-4', config: { temperature: -1 } },
      { name: 'Mystery', provider: 'cohere', model_name: 'command' },
      { name: 'Org', provider: 'openai', model_name: 'gpt-4', auth_meta: { organization_env: 'OPENAI_ORG' } },
      'not a row',
    ]
    const { records, invalid } = parseRows('llms', bad, ctx())
    expect(records).toEqual([])
    expect(invalid.map((i) => [i.index, i.field])).toEqual([
      [0, 'provider'],
      [1, 'auth_meta.api_key'],
      [2, 'auth_meta.api_key_env'],
      [3, 'auth_meta.endpoint_env'],
      [4, 'config.temperature'],
      [5, 'provider'],
      [6, 'auth_meta.organization_env'],
      [7, '(record)'],
    ])
    expect(JSON.stringify(invalid)).not.toContain('sk-should-not-echo')
    expect(JSON.stringify(invalid)).not.toContain('sk-not a name')
    expect(invalid[5]?.message).toContain('expected openai, azure, fireworks, google, ollama')
  })
})

describe("admin.schema 'providers' (seed 003)", () => {
  it('maps every model of every provider, with limits, priorities and the champion as default', () => {
    const { records, invalid } = parseRows(
      'providers',
      providersSeed({ ...URLS, google: 'https://generativelanguage.googleapis.com/v1beta' }),
      ctx(),
    )
    // One report per model the provider's error leaves without a record, each naming the provider.
    expect(invalid).toEqual(
      ['gemini-2.5-flash', 'gemini-2.5-pro'].map((modelName) =>
        expect.objectContaining({
          index: 3,
          modelName,
          field: 'base_url',
          message: expect.stringMatching(
            /^provider google: is Google's native Gemini API, .*not OpenAI-compatible/,
          ),
        }),
      ),
    )
    const cerebras = records.filter((r) => r.provider === 'cerebras')
    expect(cerebras).toEqual([
      {
        model_name: 'gpt-oss-120b',
        backend_type: 'openai',
        endpoint_url: 'https://api.cerebras.ai/v1',
        enabled: true,
        priority: 1,
        backend_model: 'gpt-oss-120b',
        provider: 'cerebras',
        rpm: 600,
        tpm: 48000,
        is_default: true,
      },
      {
        model_name: 'llama3.1-8b',
        backend_type: 'openai',
        endpoint_url: 'https://api.cerebras.ai/v1',
        enabled: true,
        priority: 2,
        backend_model: 'llama3.1-8b',
        provider: 'cerebras',
        rpm: 600,
        tpm: 48000,
      },
    ])
    const limits = Object.fromEntries(records.map((r) => [r.provider, [r.rpm, r.tpm]]))
    expect(limits).toEqual({
      groq: [25, 5500],
      cerebras: [600, 48000],
      ollama: [60, 10000],
      mistral: [60, 32000],
    })
    const ollama = records.find((r) => r.provider === 'ollama')
    expect(ollama).toMatchObject({
      backend_type: 'ollama',
      endpoint_url: 'http://localhost:11434',
      backend_model: 'llama3.2:3b',
    })
    expect(records.filter((r) => r.is_default).map((r) => r.model_name)).toEqual([
      'llama-3.3-70b-versatile',
      'gpt-oss-120b',
      'llama3.2:3b',
      'mistral-small-latest',
    ])
  })

  it("accepts Gemini's OpenAI-compatible endpoint; a disabled provider disables its models; a disabled champion yields default_model", () => {
    const seed = providersSeed(URLS)
    ;(seed[4] as { enabled: boolean }).enabled = false
    ;(seed[1] as { models: { enabled: boolean }[] }).models[0]!.enabled = false
    const { records, invalid } = parseRows('providers', seed, ctx())
    expect(invalid).toEqual([])
    expect(records.find((r) => r.provider === 'google')?.endpoint_url).toBe(
      'https://generativelanguage.googleapis.com/v1beta/openai',
    )
    expect(records.filter((r) => r.provider === 'mistral').every((r) => !r.enabled)).toBe(true)
    expect(records.filter((r) => r.provider === 'cerebras' && r.is_default).map((r) => r.model_name)).toEqual(
      ['llama3.1-8b'],
    )
  })

  it('checks api_key_encrypted against the key when it is set: a wrong key or tampered token is reported', () => {
    const key = fernetGenerateKey()
    const token = fernetEncrypt('csk-plaintext-key', key)
    const seed = providersSeed(URLS, { cerebras: token, groq: `${token.slice(0, 20)}A${token.slice(21)}` })
    const ok = parseRows('providers', seed, ctx({ env: { LLM_ROUTER_ENCRYPTION_KEY: key } }))
    expect(ok.records.find((r) => r.provider === 'cerebras')?.auth).toEqual({
      bearer_encrypted: token,
      key_env: 'LLM_ROUTER_ENCRYPTION_KEY',
    })
    expect(ok.invalid).toEqual([
      expect.objectContaining({ index: 0, modelName: 'llama-3.3-70b-versatile', field: 'api_key_encrypted' }),
      expect.objectContaining({ index: 0, modelName: 'llama-3.1-8b-instant', field: 'api_key_encrypted' }),
    ])
    expect(ok.invalid[0]?.message).toMatch(
      /cannot be decrypted with the key in LLM_ROUTER_ENCRYPTION_KEY: .*(signature|base64)/,
    )
    const wrong = parseRows(
      'providers',
      providersSeed(URLS, { cerebras: token }),
      ctx({ env: { LLM_ROUTER_ENCRYPTION_KEY: fernetGenerateKey() } }),
    )
    expect(wrong.invalid).toEqual(
      ['gpt-oss-120b', 'llama3.1-8b'].map((modelName) =>
        expect.objectContaining({
          modelName,
          field: 'api_key_encrypted',
          message: expect.stringMatching(/^provider cerebras: cannot be decrypted .*wrong key/),
        }),
      ),
    )
    // Without the key the token cannot be checked: the records stay, the request says what is missing.
    const unset = parseRows('providers', providersSeed(URLS, { cerebras: token }), ctx())
    expect(unset.invalid).toEqual([])
    expect(JSON.stringify([ok, wrong, unset])).not.toContain('csk-plaintext-key')
  })

  it('takes api_key_encrypted trimmed; a blank or non-string one is reported for each model, and a provider without an id by its index', () => {
    const key = fernetGenerateKey()
    const token = fernetEncrypt('csk-plaintext-key', key)
    const row = (api_key_encrypted: unknown, id: unknown = 'acme') => ({
      id,
      base_url: 'https://api.example.test/v1',
      api_key_encrypted,
      models: [{ id: 'm1' }, { id: 'm2' }],
    })
    const env = { LLM_ROUTER_ENCRYPTION_KEY: key }
    const padded = parseRows('providers', [row(`  ${token}\n`)], ctx({ env }))
    expect(padded.invalid).toEqual([])
    expect(padded.records.map((r) => r.auth)).toEqual([
      { bearer_encrypted: token, key_env: 'LLM_ROUTER_ENCRYPTION_KEY' },
      { bearer_encrypted: token, key_env: 'LLM_ROUTER_ENCRYPTION_KEY' },
    ])
    for (const bad of [42, '   ']) {
      const result = parseRows('providers', [row(bad)], ctx({ env }))
      expect(result.records).toEqual([])
      expect(result.invalid).toEqual(
        ['m1', 'm2'].map((modelName) => ({
          index: 0,
          modelName,
          field: 'api_key_encrypted',
          message: 'provider acme: must be a Fernet token (a string)',
        })),
      )
    }
    expect(parseRows('providers', [row(token, 7)], ctx({ env })).invalid).toEqual(
      ['m1', 'm2'].map((modelName) => ({
        index: 0,
        modelName,
        field: 'id',
        message: 'provider #0: must be a non-empty string',
      })),
    )
  })

  it('reports bad providers and models by their ids', () => {
    const seed = [
      { id: 'anthropic', base_url: 'https://api.anthropic.com/v1', models: [{ id: 'claude' }] },
      { id: 'groq', models: [] },
      { id: 'x', base_url: 'https://x.test/v1', rpm_limit: -5, models: [] },
      {
        id: 'cerebras',
        base_url: 'https://api.cerebras.ai/v1',
        models: [
          { id: 'a', fallback_priority: 'high' },
          { provider_id: 'cerebras' },
          { id: 'b', provider_id: 'groq' },
          { id: 'c' },
        ],
      },
    ]
    const { records, invalid } = parseRows('providers', seed, ctx())
    expect(records.map((r) => r.model_name)).toEqual(['c'])
    expect(invalid.map((i) => [i.index, i.modelName, i.field])).toEqual([
      [0, 'claude', 'id'],
      [1, 'groq', 'base_url'],
      [2, 'x', 'rpm_limit'],
      [3, 'a', 'models[0].fallback_priority'],
      [3, null, 'models[1].id'],
      [3, 'b', 'models[2].provider_id'],
    ])
  })
})

describe('provider names that are Object.prototype keys', () => {
  it('are unknown llms providers and plain hosted providers, never a lookup of the prototype', () => {
    const llms = parseRows(
      'llms',
      [
        { name: 'a', provider: 'constructor', model_name: 'm' },
        { name: 'b', provider: '__proto__', model_name: 'm' },
      ],
      ctx(),
    )
    expect(llms.records).toEqual([])
    expect(llms.invalid.map((i) => i.message)).toEqual([
      'unknown provider "constructor"; expected openai, azure, fireworks, google, ollama',
      'unknown provider "__proto__"; expected openai, azure, fireworks, google, ollama',
    ])
    const providers = parseRows(
      'providers',
      [{ id: 'constructor', base_url: 'https://api.example.test/v1', models: [{ id: 'm' }] }],
      ctx(),
    )
    expect(providers.invalid).toEqual([])
    expect(providers.records).toMatchObject([
      {
        model_name: 'm',
        provider: 'constructor',
        backend_type: 'openai',
        endpoint_url: 'https://api.example.test/v1',
      },
    ])
  })
})

describe('the new record fields in llm_backends records', () => {
  it('accepts env references, an empty endpoint_url only with endpoint_url_env, and no env references on auto records', () => {
    const base = { model_name: 'm', backend_type: 'openai' }
    expect(parseRecord({ ...base, endpoint_url: '', endpoint_url_env: 'BASE' })).toMatchObject({ ok: true })
    expect(parseRecord({ ...base, endpoint_url: '' })).toMatchObject({ ok: false, field: 'endpoint_url' })
    expect(
      parseRecord({ ...base, endpoint_url: 'http://127.0.0.1:1', endpoint_path: 'openai' }),
    ).toMatchObject({
      ok: false,
      field: 'endpoint_path',
    })
    expect(
      parseRecord({
        model_name: 'm',
        backend_type: 'auto',
        endpoint_url: 'http://127.0.0.1:1',
        endpoint_url_env: 'X',
      }),
    ).toMatchObject({ ok: false, field: 'endpoint_url_env' })
    expect(parseRecord({ ...base, endpoint_url: 'http://127.0.0.1:1', rpm: 0 })).toMatchObject({
      ok: false,
      field: 'rpm',
    })
    expect(
      parseRecord({
        ...base,
        endpoint_url: 'http://127.0.0.1:1',
        auth: { bearer_encrypted: 'gAAAA', key_env: 'sk-x y' },
      }),
    ).toMatchObject({ ok: false, field: 'auth.key_env' })
  })
})
