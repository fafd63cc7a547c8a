import { describe, expect, it } from 'vitest'
import { ANY_MODEL, defaultOllamaUrl, envRecords, parseHostEnv } from '../src/config/env.js'

describe('parseHostEnv (Ollama OLLAMA_HOST convention)', () => {
  it.each([
    ['0.0.0.0:11434', 'http://127.0.0.1:11434'],
    ['0.0.0.0', 'http://127.0.0.1:11434'],
    ['http://0.0.0.0:11434', 'http://127.0.0.1:11434'],
    ['example:1234', 'http://example:1234'],
    ['example', 'http://example:11434'],
    ['https://x', 'https://x'],
    ['http://x', 'http://x'],
    ['https://x:8443/', 'https://x:8443'],
    [':8000', 'http://127.0.0.1:8000'],
    ['127.0.0.1', 'http://127.0.0.1:11434'],
    ['localhost:11434/prefix/', 'http://localhost:11434/prefix'],
    ['[::1]:9000', 'http://[::1]:9000'],
    ['::1', 'http://[::1]:11434'],
    ['[::]:11434', 'http://127.0.0.1:11434'],
    ['  "example:1234"  ', 'http://example:1234'],
    ['HTTP://Example:1', 'http://Example:1'],
  ])('%j -> %s', (value, expected) => {
    expect(parseHostEnv(value, 11434)).toBe(expected)
  })

  it.each(['', '   ', 'ftp://x', 'x:notaport', 'x:99999', 'user:pw@x:1', 'ho st'])('rejects %j', (value) => {
    expect(parseHostEnv(value, 11434)).toBeNull()
  })

  it('uses the given default port', () => {
    expect(parseHostEnv('mlx-box', 8080)).toBe('http://mlx-box:8080')
    expect(parseHostEnv(undefined, 8080)).toBeNull()
  })

  it('defaultOllamaUrl: OLLAMA_HOST or http://localhost:11434', () => {
    expect(defaultOllamaUrl({})).toBe('http://localhost:11434')
    expect(defaultOllamaUrl({ OLLAMA_HOST: '  ' })).toBe('http://localhost:11434')
    expect(defaultOllamaUrl({ OLLAMA_HOST: 'box:1' })).toBe('http://box:1')
    expect(defaultOllamaUrl({ OLLAMA_HOST: 'ftp://bad' })).toBe('http://localhost:11434')
  })
})

// The seed's defaults for a model without a record (issue 10, defect 6).
const SEED = { max_tokens: 2048, temperature_default: 0.7, timeout_seconds: 60 }

describe('envRecords', () => {
  it('nothing set: default Ollama at http://localhost:11434 for any model', () => {
    const r = envRecords({})
    expect(r.origin).toBe('default')
    expect(r.invalid).toEqual([])
    expect(r.records).toEqual([
      {
        model_name: ANY_MODEL,
        backend_type: 'ollama',
        endpoint_url: 'http://localhost:11434',
        enabled: true,
        priority: 100,
        ...SEED,
      },
    ])
    expect(ANY_MODEL).toBe('*')
  })

  it('OLLAMA_HOST only: one ollama record', () => {
    const r = envRecords({ OLLAMA_HOST: '0.0.0.0:11434' })
    expect(r.origin).toBe('env')
    expect(r.records).toEqual([
      expect.objectContaining({ backend_type: 'ollama', endpoint_url: 'http://127.0.0.1:11434' }),
    ])
    expect(r.reason).toContain('OLLAMA_HOST')
  })

  it('MLX_HOST only: one mlx record on port 8080 by default', () => {
    const r = envRecords({ MLX_HOST: 'mac-studio' })
    expect(r.records).toEqual([
      expect.objectContaining({
        model_name: '*',
        backend_type: 'mlx',
        endpoint_url: 'http://mac-studio:8080',
      }),
    ])
    expect(r.records[0]?.fallback_url).toBeUndefined()
  })

  it('MLX_HOST and OLLAMA_HOST: one auto record, MLX first, Ollama as fallback_url', () => {
    const r = envRecords({ MLX_HOST: ':8081', OLLAMA_HOST: 'example:1234' })
    expect(r.origin).toBe('env')
    expect(r.records).toEqual([
      {
        model_name: '*',
        backend_type: 'auto',
        endpoint_url: 'http://127.0.0.1:8081',
        fallback_url: 'http://example:1234',
        enabled: true,
        priority: 100,
        ...SEED,
      },
    ])
  })

  it('LLM_ROUTER_BACKENDS wins and is validated with the record schema', () => {
    const backends = [
      { model_name: 'a', backend_type: 'mlx', endpoint_url: 'http://127.0.0.1:8080/' },
      { model_name: 'bad', backend_type: 'gpt', endpoint_url: 'http://127.0.0.1:1' },
    ]
    const r = envRecords({ LLM_ROUTER_BACKENDS: JSON.stringify(backends), OLLAMA_HOST: 'x:1' })
    expect(r.origin).toBe('env')
    expect(r.reason).toContain('LLM_ROUTER_BACKENDS')
    expect(r.records).toEqual([
      {
        model_name: 'a',
        backend_type: 'mlx',
        endpoint_url: 'http://127.0.0.1:8080',
        enabled: true,
        priority: 100,
        ...SEED,
      },
    ])
    expect(r.invalid).toEqual([
      expect.objectContaining({ index: 1, modelName: 'bad', field: 'LLM_ROUTER_BACKENDS[1].backend_type' }),
    ])
  })

  it('invalid JSON in LLM_ROUTER_BACKENDS is reported and falls through to OLLAMA_HOST', () => {
    const r = envRecords({ LLM_ROUTER_BACKENDS: '[{oops', OLLAMA_HOST: 'box:7' })
    expect(r.records[0]?.endpoint_url).toBe('http://box:7')
    expect(r.invalid).toEqual([expect.objectContaining({ field: 'LLM_ROUTER_BACKENDS' })])
    expect(r.invalid[0]?.message).toContain('not valid JSON')
  })

  it('a non-list or empty LLM_ROUTER_BACKENDS falls through to the default', () => {
    for (const value of ['{"x":1}', '[]', '"str"']) {
      const r = envRecords({ LLM_ROUTER_BACKENDS: value })
      expect(r.origin).toBe('default')
      expect(r.invalid).toHaveLength(1)
    }
  })

  it('an unusable OLLAMA_HOST is reported and ignored', () => {
    const r = envRecords({ OLLAMA_HOST: 'ftp://nope' })
    expect(r.origin).toBe('default')
    expect(r.invalid).toEqual([expect.objectContaining({ field: 'OLLAMA_HOST' })])
  })
})
