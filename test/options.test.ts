import { describe, expect, it } from 'vitest'
import { resolveOptions } from '../src/options.js'

describe('resolveOptions', () => {
  it('builds the metrics URL from the admin URL, keeping its query string after the path', () => {
    const o = resolveOptions({ adminUrl: 'http://admin.test:8000/base/?token=abc', env: {} })
    expect(o.metrics).toMatchObject({
      url: 'http://admin.test:8000/base/api/llm-backends/metrics?token=abc',
    })
    // The sink's own default (auto) applies.
    expect((o.metrics as { mode?: string }).mode).toBeUndefined()
    const plain = resolveOptions({ adminUrl: 'http://admin.test', env: {} })
    expect(plain.metrics).toMatchObject({ url: 'http://admin.test/api/llm-backends/metrics' })
  })

  it('has no metrics sink without an admin URL, and metrics:false turns it off', () => {
    expect(resolveOptions({ env: {} }).metrics).toBe(false)
    expect(resolveOptions({ adminUrl: 'http://a.test', env: {}, metrics: false }).metrics).toBe(false)
  })

  it("keeps the caller's env object (credentials are read at request time) and reads the admin URL from it", () => {
    const env: Record<string, string> = { ADMIN_API_URL: 'http://from-env.test/' }
    const o = resolveOptions({ env })
    expect(o.env).toBe(env)
    expect(o.adminUrl).toBe('http://from-env.test')
    expect(
      resolveOptions({ env: { LLM_ROUTER_ADMIN_URL: 'http://a.test', ADMIN_API_URL: 'http://b.test' } })
        .adminUrl,
    ).toBe('http://a.test')
  })

  it('fills every default', () => {
    const o = resolveOptions({ env: {} })
    expect(o).toMatchObject({
      cacheTtlMs: 60_000,
      defaultTimeoutMs: 120_000,
      retry: { maxRetries: 2, baseDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60_000 },
      circuitBreaker: { threshold: 3, cooldownMs: 10_000 },
      admin: { listPath: '/api/llm-backends/public', lookup: 'list', timeoutMs: 5000 },
      closeTimeoutMs: 10_000,
    })
  })

  it('takes only environment variable names in admin.bearerTokenEnv and admin.encryptionKeyEnv, never a secret', () => {
    for (const option of ['bearerTokenEnv', 'encryptionKeyEnv']) {
      expect(
        resolveOptions({ admin: { [option]: 'ADMIN_TOKEN_2' }, env: { ADMIN_TOKEN_2: 't' } }).admin,
      ).toBeDefined()
      expect(() => resolveOptions({ admin: { [option]: 'sk-live-123' }, env: {} })).toThrow(
        expect.objectContaining({
          code: 'INVALID_OPTIONS',
          issues: [expect.objectContaining({ path: `admin.${option}` })],
        }),
      )
    }
  })
})
