/**
 * `npm run demo` as a user runs it: a child process against its own stand-ins, then pointed at
 * "your" servers (stand-ins started here), where the steps that need control of a server are skipped.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import {
  type AdminServer,
  type OllamaServer,
  type OpenAIServer,
  startAdminServer,
  startMlxServer,
  startOllamaServer,
} from '../src/testing/index.js'
import { ensureBuilt } from './helpers/build.js'
import { run } from './helpers/run.js'

const DEMO = 'scripts/demo.mjs'

beforeAll(() => ensureBuilt(), 120_000)

describe.concurrent('npm run demo', () => {
  it('runs every step against its stand-ins and exits 0', async () => {
    const r = await run([DEMO], {}, 40_000)
    expect(r.stderr).toBe('')
    expect(r.code, r.stdout).toBe(0)
    const out = r.stdout
    for (let n = 1; n <= 8; n++) expect(out).toContain(`[${n}/8]`)
    expect(out).toMatch(/✓ llama3\.2 → ollama @ 127\.0\.0\.1:\d+ · .* · cold load/)
    expect(out).toMatch(/✓ qwen2\.5 → mlx @/)
    expect(out).toContain('event request:fallback  mlx → ollama  (BACKEND_UNREACHABLE)')
    expect(out).toMatch(/✓ gemma3 → ollama @/)
    expect(out).toContain('MLX stand-in restarted')
    expect(out).toMatch(/right away: llama3\.2 → ollama/)
    expect(out).toMatch(/event config:refreshed {2}changed=true/)
    expect(out).toMatch(/✓ llama3\.2 moved from ollama to mlx/)
    expect(out).toMatch(/│ Every night for forty years/)
    expect(out).toMatch(/assistant calls get_weather\(\{"city":"Lisbon"\}\) id \S+/)
    expect(out).toMatch(/✓ llama3\.2 → mlx @ .* \(POST \/v1\/chat\/completions, two turns\)/)
    expect(out).toContain('assistant: It is 19 °C and clear in Lisbon.')
    expect(out).toMatch(/✓ \d+ POSTs, (\d+) records: every request the router made is accounted for/)
    expect(out).toMatch(/backend +model +endpoint +requests +errors +p50 +p95 +tok\/s/)
    expect(out).not.toMatch(/^ *✗/m)
    expect(out).not.toContain('\x1b[')
    expect(out).toMatch(/✓ demo passed in [\d.]+ s\n$/)
  })

  it('uses your Ollama from OLLAMA_HOST and still falls back to it from the stopped MLX stand-in', async () => {
    const ollama = await startOllamaServer({ models: ['llama3.2:latest'] })
    try {
      const r = await run([DEMO], { OLLAMA_HOST: ollama.url }, 40_000)
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.stdout).toContain(`ollama  ${ollama.url}  (yours)`)
      expect(r.stdout).toMatch(/✓ llama3\.2:latest → ollama @/)
      expect(r.stdout).toContain('event request:fallback  mlx → ollama')
      expect(r.stdout).not.toContain('skipped')
      expect(ollama.requests.filter((q) => q.path === '/api/generate').length).toBeGreaterThanOrEqual(3)
    } finally {
      await ollama.stop()
    }
  })

  it('skips the steps that would change your servers when all three are yours', async () => {
    let ollama: OllamaServer | undefined
    let mlx: OpenAIServer | undefined
    let admin: AdminServer | undefined
    try {
      ollama = await startOllamaServer()
      mlx = await startMlxServer()
      admin = await startAdminServer({
        records: [
          {
            model_name: 'mine',
            backend_type: 'ollama',
            endpoint_url: ollama.url,
            enabled: true,
            priority: 1,
          },
          { model_name: 'fast', backend_type: 'mlx', endpoint_url: mlx.url, enabled: true, priority: 2 },
        ],
      })
      const r = await run(
        [DEMO, '--admin-url', admin.url, '--ollama', ollama.url, '--mlx', mlx.url],
        {},
        40_000,
      )
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.stdout).toContain('skipped: using your admin API (the demo needs its own auto record)')
      expect(r.stdout).toContain('skipped: using your admin API (the demo will not change your records)')
      expect(r.stdout).toMatch(/✓ mine → ollama @/)
      expect(r.stdout).toMatch(/✓ fast → mlx @/)
      expect(r.stdout).toMatch(/✓ 4 metric records sent to your admin/)
      expect(r.stdout).toContain('(2 skipped)')
      expect(admin.metricsReceived).toBe(4)
      expect(admin.records).toHaveLength(2)
    } finally {
      await Promise.all([ollama?.stop(), mlx?.stop(), admin?.stop()])
    }
  })

  it('exits 1 with a ✗ line when a step fails (unreachable admin)', async () => {
    const r = await run([DEMO, '--admin-url', 'http://127.0.0.1:1'], {}, 40_000)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(
      '✗ no records from the admin: Could not reach the admin API at http://127.0.0.1:1',
    )
    expect(r.stdout).toMatch(/✗ \d steps? failed\n$/)
  })

  it('prints help, and rejects unknown flags with exit code 2', async () => {
    const help = await run([DEMO, '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--admin-url <url>')
    const bad = await run([DEMO, '--nope'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("Unknown option '--nope'")
  })
})
