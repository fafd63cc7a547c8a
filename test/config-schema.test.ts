import { describe, expect, it } from 'vitest'
import {
  DEFAULT_PRIORITY,
  defaultMapPayload,
  parseRecord,
  parseRecords,
  sortEnabled,
} from '../src/config/schema.js'
import { isRouterError } from '../src/errors.js'
import type { BackendRecord } from '../src/types.js'

/** The production payload from issue 2, verbatim. */
const PRODUCTION_PAYLOAD = `[{"id":1,"model_name":"phi3:mini","backend_type":"ollama","endpoint_url":"http://192.168.10.167:11434",
  "enabled":true,"priority":100,"max_tokens":2048,"temperature_default":0.7,"timeout_seconds":60,
  "description":"Phi-3 Mini (Q4) - Fast classification and quick responses"},
 {"id":2,"model_name":"llama3.1:8b-q4","backend_type":"ollama","endpoint_url":"http://192.168.10.167:11434",
  "enabled":true,"priority":200,"max_tokens":4096,"temperature_default":0.7,"timeout_seconds":90,
  "description":"Llama 3.1 8B (Q4) - Complex reasoning and detailed responses"}]`

const base = { model_name: 'm', backend_type: 'ollama', endpoint_url: 'http://127.0.0.1:11434' }

function fieldOf(input: unknown): string | null {
  const r = parseRecord(input)
  return r.ok ? null : r.field
}

describe('parseRecords', () => {
  it('parses the production payload verbatim', () => {
    const { records, invalid } = parseRecords(JSON.parse(PRODUCTION_PAYLOAD))
    expect(invalid).toEqual([])
    expect(records).toEqual([
      {
        id: 1,
        model_name: 'phi3:mini',
        backend_type: 'ollama',
        endpoint_url: 'http://192.168.10.167:11434',
        enabled: true,
        priority: 100,
        max_tokens: 2048,
        temperature_default: 0.7,
        timeout_seconds: 60,
        description: 'Phi-3 Mini (Q4) - Fast classification and quick responses',
      },
      {
        id: 2,
        model_name: 'llama3.1:8b-q4',
        backend_type: 'ollama',
        endpoint_url: 'http://192.168.10.167:11434',
        enabled: true,
        priority: 200,
        max_tokens: 4096,
        temperature_default: 0.7,
        timeout_seconds: 90,
        description: 'Llama 3.1 8B (Q4) - Complex reasoning and detailed responses',
      },
    ])
  })

  it('drops unknown fields and treats null optional fields as absent', () => {
    const r = parseRecord({
      ...base,
      avg_tokens_per_sec: 41.2,
      avg_latency_ms: 900,
      total_requests: 10,
      total_errors: 0,
      created_at: '2026-01-01T00:00:00Z',
      description: null,
      fallback_url: null,
      backend_model: null,
    })
    expect(r).toEqual({ ok: true, record: { ...base, enabled: true, priority: DEFAULT_PRIORITY } })
  })

  it('keeps good records and reports the bad one with index, model name and field', () => {
    const payload = [
      base,
      { ...base, model_name: 'broken', endpoint_url: 'not a url' },
      { ...base, model_name: 'ok2' },
    ]
    const { records, invalid } = parseRecords(payload)
    expect(records.map((r) => r.model_name)).toEqual(['m', 'ok2'])
    expect(invalid).toHaveLength(1)
    expect(invalid[0]).toMatchObject({ index: 1, modelName: 'broken', field: 'endpoint_url' })
  })

  it('reports non-object entries without a model name', () => {
    const { records, invalid } = parseRecords([42, null, base])
    expect(records).toHaveLength(1)
    expect(invalid).toEqual([
      expect.objectContaining({ index: 0, modelName: null, field: '(record)' }),
      expect.objectContaining({ index: 1, modelName: null, field: '(record)' }),
    ])
  })

  it.each([{}, 'x', null, 3, { data: 'nope' }])(
    'throws CONFIG_INVALID for a non-list payload %#',
    (payload) => {
      try {
        parseRecords(payload)
        expect.unreachable()
      } catch (error) {
        expect(isRouterError(error) && error.code).toBe('CONFIG_INVALID')
      }
    },
  )
})

describe('parseRecord fields', () => {
  it('normalises URLs by stripping trailing slashes', () => {
    const r = parseRecord({ ...base, endpoint_url: 'http://h:1/prefix//', fallback_url: 'https://f/' })
    expect(r.ok && r.record.endpoint_url).toBe('http://h:1/prefix')
    expect(r.ok && r.record.fallback_url).toBe('https://f')
  })

  it.each([
    'ftp://h/x',
    'file:///etc/passwd',
    'javascript:alert(1)',
    '127.0.0.1:11434',
    'http://user:pw@h:1',
    'http://h:1/?key=v',
  ])('rejects endpoint_url %s', (url) => {
    expect(fieldOf({ ...base, endpoint_url: url })).toBe('endpoint_url')
  })

  it('never echoes a rejected URL (it may carry credentials)', () => {
    const r = parseRecord({ ...base, endpoint_url: 'http://admin:hunter2@h:1' })
    expect(r.ok).toBe(false)
    expect(JSON.stringify(r)).not.toContain('hunter2')
  })

  it('rejects a non-http fallback_url', () => {
    expect(fieldOf({ ...base, backend_type: 'auto', fallback_url: 'ws://h' })).toBe('fallback_url')
  })

  it('reports an unknown backend_type instead of guessing', () => {
    const r = parseRecord({ ...base, backend_type: 'Ollama' })
    expect(r).toMatchObject({ ok: false, field: 'backend_type' })
    expect(!r.ok && r.message).toContain('unknown backend_type')
    expect(fieldOf({ ...base, backend_type: 'vllm' })).toBe('backend_type')
    for (const t of ['ollama', 'mlx', 'auto']) expect(fieldOf({ ...base, backend_type: t })).toBeNull()
  })

  it('requires model_name, backend_type and endpoint_url', () => {
    expect(fieldOf({ backend_type: 'ollama', endpoint_url: 'http://h' })).toBe('model_name')
    expect(fieldOf({ model_name: 'm', endpoint_url: 'http://h' })).toBe('backend_type')
    expect(fieldOf({ model_name: 'm', backend_type: 'mlx' })).toBe('endpoint_url')
    expect(fieldOf({ ...base, model_name: '  ' })).toBe('model_name')
    const r = parseRecord({ backend_type: 'ollama', endpoint_url: 'http://h' })
    expect(!r.ok && r.message).toContain('model_name: is required')
  })

  it('defaults enabled to true and priority to 100; accepts 0/1 flags', () => {
    const r = parseRecord(base)
    expect(r.ok && [r.record.enabled, r.record.priority]).toEqual([true, 100])
    const off = parseRecord({ ...base, enabled: 0 })
    expect(off.ok && off.record.enabled).toBe(false)
    expect(fieldOf({ ...base, enabled: 'yes' })).toBe('enabled')
  })

  it.each([
    ['priority', -1],
    ['priority', '100'],
    ['max_tokens', 0],
    ['max_tokens', 1.5],
    ['max_tokens', -5],
    ['temperature_default', -0.1],
    ['temperature_default', Number.POSITIVE_INFINITY],
    ['timeout_seconds', 0],
    ['timeout_seconds', -1],
    ['id', true],
  ])('rejects %s = %s', (field, value) => {
    expect(fieldOf({ ...base, [field]: value })).toBe(field)
  })

  it('accepts id as number or string and keeps backend_model', () => {
    const r = parseRecord({ ...base, id: 'abc', backend_model: 'mlx-community/Llama-3.2-3B-Instruct-4bit' })
    expect(r.ok && r.record.id).toBe('abc')
    expect(r.ok && r.record.backend_model).toBe('mlx-community/Llama-3.2-3B-Instruct-4bit')
  })
})

describe('auth', () => {
  it('accepts {bearer_env} and {header, value_env}', () => {
    const a = parseRecord({ ...base, auth: { bearer_env: 'PROXY_TOKEN' } })
    expect(a.ok && a.record.auth).toEqual({ bearer_env: 'PROXY_TOKEN' })
    const b = parseRecord({ ...base, auth: { header: 'X-Api-Key', value_env: '_KEY_1' } })
    expect(b.ok && b.record.auth).toEqual({ header: 'X-Api-Key', value_env: '_KEY_1' })
  })

  it.each([
    [{ bearer_env: 'sk-live-abc123' }, 'auth.bearer_env'],
    [{ bearer_env: '1ABC' }, 'auth.bearer_env'],
    [{ header: 'X-Api-Key', value_env: 'has space' }, 'auth.value_env'],
    [{ header: 'X-Api-Key' }, 'auth.value_env'],
    [{ header: 'bad header', value_env: 'K' }, 'auth.header'],
    [{ header: 'Host', value_env: 'K' }, 'auth.header'],
    [{ bearer_env: 'K', value: 'hunter2-value' }, 'auth'],
    [{ token: 'sk-live-abc123' }, 'auth'],
    ['Bearer sk-live-abc123', 'auth'],
  ])('rejects auth %j (field %s) without echoing the value', (auth, field) => {
    const r = parseRecord({ ...base, auth })
    expect(r).toMatchObject({ ok: false, field })
    expect(JSON.stringify(r)).not.toContain('sk-live-abc123')
    expect(JSON.stringify(r)).not.toContain('hunter2-value')
  })
})

describe('defaultMapPayload and sortEnabled', () => {
  it('unwraps data / backends / records and passes anything else through', () => {
    const list = [base]
    expect(defaultMapPayload(list)).toBe(list)
    expect(defaultMapPayload({ data: list })).toBe(list)
    expect(defaultMapPayload({ backends: list })).toBe(list)
    expect(defaultMapPayload({ records: list })).toBe(list)
    const other = { items: list }
    expect(defaultMapPayload(other)).toBe(other)
    expect(defaultMapPayload('x')).toBe('x')
  })

  it('keeps enabled records only, by priority ascending, stable for ties', () => {
    const mk = (name: string, priority: number, enabled = true): BackendRecord => ({
      model_name: name,
      backend_type: 'ollama',
      endpoint_url: 'http://h',
      enabled,
      priority,
    })
    const sorted = sortEnabled([
      mk('c', 300),
      mk('a1', 100),
      mk('off', 1, false),
      mk('b', 200),
      mk('a2', 100),
    ])
    expect(sorted.map((r) => r.model_name)).toEqual(['a1', 'a2', 'b', 'c'])
  })
})
