/**
 * Every file in examples/ runs as a user would run it (`node examples/<file>.ts` on the built package),
 * against testing-kit stand-ins started here and passed in through the environment, so examples
 * cannot rot.
 */
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fernetEncrypt, fernetGenerateKey } from '../src/config/fernet.js'
import {
  type AdminServer,
  type OllamaServer,
  type OpenAIServer,
  startAdminServer,
  startMlxServer,
  startOllamaServer,
} from '../src/testing/index.js'
import { llmsSeedRows, providersSeed } from './fixtures/seed-tables.js'
import { ensureBuilt, root } from './helpers/build.js'
import { redisAvailable, startRedis } from './helpers/redis-server.js'
import { run, start } from './helpers/run.js'

let ollama: OllamaServer
let mlx: OpenAIServer
let admin: AdminServer
/** A port nothing listens on (a stopped stand-in's). */
let deadUrl: string

const example = (name: string) => `examples/${name}.ts`
const generateCalls = (s: OllamaServer | OpenAIServer) =>
  s.requests.filter((r) => r.path === '/api/generate' || r.path === '/v1/completions').length

beforeAll(async () => {
  await ensureBuilt()
  ollama = await startOllamaServer({ respond: 'Blue light scatters most.' })
  mlx = await startMlxServer({ respond: 'Answer from MLX.' })
  const dead = await startOllamaServer()
  deadUrl = dead.url
  await dead.stop()
  admin = await startAdminServer({
    records: [
      {
        model_name: 'llama3.2',
        backend_type: 'ollama',
        endpoint_url: ollama.url,
        enabled: true,
        priority: 1,
      },
      { model_name: 'qwen2.5', backend_type: 'mlx', endpoint_url: mlx.url, enabled: true, priority: 2 },
      {
        model_name: 'gemma3',
        backend_type: 'auto',
        endpoint_url: mlx.url,
        fallback_url: ollama.url,
        enabled: true,
        priority: 3,
      },
      { model_name: 'broken', backend_type: 'ollama', endpoint_url: deadUrl, enabled: true, priority: 4 },
    ],
  })
}, 120_000)

afterAll(async () => {
  await Promise.all([ollama?.stop(), mlx?.stop(), admin?.stop()])
})

const withAdmin = () => ({ LLM_ROUTER_ADMIN_URL: admin.url })

it('covers every file in examples/ (a new example needs a test here)', () => {
  const files = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts'))
  expect(files.sort()).toEqual(
    [
      'auto-fallback.ts',
      'basic-generate.ts',
      'chat-tools.ts',
      'structured-output.ts',
      'custom-sink.ts',
      'embeddings.ts',
      'env-only.ts',
      'fleet-limits.ts',
      'http-service.ts',
      'opentelemetry.ts',
      'pool-canary.ts',
      'streaming.ts',
      'testing-with-msw.ts',
      'llms-schema.ts',
      'providers-schema.ts',
    ].sort(),
  )
})

describe.concurrent('examples', () => {
  it('basic-generate: routes by the admin records', async () => {
    const before = generateCalls(ollama)
    const r = await run([example('basic-generate')], withAdmin())
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('Blue light scatters most.')
    expect(r.stdout).toMatch(
      /\[llama3\.2 on ollama at http:\/\/127\.0\.0\.1:\d+: \d+ ms, 4 tokens, [\d.]+ tok\/s\]/,
    )
    expect(generateCalls(ollama)).toBeGreaterThan(before)
  })

  it('basic-generate: prints the RouterError code and exits 1 when the backend is down', async () => {
    const r = await run([example('basic-generate')], { ...withAdmin(), MODEL: 'broken' })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^(ALL_BACKENDS_FAILED|BACKEND_UNREACHABLE): /m)
  })

  it('chat-tools: runs the tool the model asks for and prints the final answer', async () => {
    const scripted = await startOllamaServer({
      thinking: ['qwen3'],
      chat: ({ turn, messages }) =>
        turn === 0
          ? {
              reasoning: 'Need the weather.',
              toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
            }
          : `It is ${String(JSON.parse(String(messages.at(-1)?.content)).celsius)} °C in Paris.`,
    })
    try {
      const r = await run([example('chat-tools')], { OLLAMA_HOST: scripted.url })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toContain('[reasoning] Need the weather.')
      expect(r.stdout).toContain(
        '[tool] get_weather({"city":"Paris"}) -> {"city":"Paris","celsius":21,"sky":"sunny"}',
      )
      expect(r.stdout).toContain('[qwen3 on ollama] It is 21 °C in Paris.')
      const chats = scripted.requests.filter((q) => q.path === '/api/chat')
      expect(chats).toHaveLength(2)
      expect((chats[1]!.body as { messages: { role: string }[] }).messages.map((m) => m.role)).toEqual([
        'system',
        'user',
        'assistant',
        'tool',
      ])
    } finally {
      await scripted.stop()
    }
  })

  it('structured-output: the answer parses and has the schema fields (Ollama format)', async () => {
    const r = await run([example('structured-output')], { OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^\[llama3\.2 on ollama\] \{/m)
    expect(r.stdout).toMatch(/^city=\S.* country=\S.* population=\d+/m)
    const last = ollama.requests.filter((q) => q.path === '/api/chat').at(-1)
    expect(last?.body).toMatchObject({ format: { title: 'CityFacts', type: 'object' } })
  })

  it('streaming: prints chunks and the totals', async () => {
    const r = await run([example('streaming')], { ...withAdmin(), MODEL: 'qwen2.5' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(
      /^Answer from MLX\.\n\n\[qwen2\.5 on mlx: first token after \d+ ms, 3 tokens in \d+ ms\]/,
    )
  })

  it('auto-fallback: falls back from a dead MLX to Ollama (env-only auto backend)', async () => {
    const r = await run([example('auto-fallback')], { MLX_HOST: deadUrl, OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`route for llama3.2: mlx (${deadUrl}) -> ollama (${ollama.url})`)
    expect(r.stdout).toContain(`fallback: mlx at ${deadUrl} failed (BACKEND_UNREACHABLE); trying ollama`)
    expect(r.stdout).toContain(`attempt mlx ${deadUrl}: failed BACKEND_UNREACHABLE`)
    expect(r.stdout).toContain('answered by ollama: Blue light scatters most.')
  })

  it('auto-fallback: an auto admin record answers from MLX while it is up', async () => {
    const r = await run([example('auto-fallback')], { ...withAdmin(), MODEL: 'gemma3' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`route for gemma3: mlx (${mlx.url}) -> ollama (${ollama.url})`)
    expect(r.stdout).not.toContain('fallback:')
    expect(r.stdout).toContain('answered by mlx: Answer from MLX.')
  })

  it('env-only: OLLAMA_HOST alone is the default backend', async () => {
    const r = await run([example('env-only')], { OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('config origin: env (1 record(s))')
    expect(r.stdout).toContain(`  *: ollama at ${ollama.url}`)
    expect(r.stdout).toContain('ollama: Blue light scatters most.')
  })

  it('env-only: LLM_ROUTER_BACKENDS records', async () => {
    const backends = JSON.stringify([
      { model_name: 'qwen', backend_type: 'mlx', endpoint_url: mlx.url, enabled: true, priority: 1 },
    ])
    const r = await run([example('env-only')], { LLM_ROUTER_BACKENDS: backends, MODEL: 'qwen' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('config origin: env (1 record(s))')
    expect(r.stdout).toContain(`qwen -> mlx (${mlx.url})`)
    expect(r.stdout).toContain('mlx: Answer from MLX.')
  })

  it('custom-sink: a callback sink and a hand-written MetricsSink both see every record', async () => {
    const r = await run([example('custom-sink')], { OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    const records = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { model: string; backend: string; outcome: string; tokens: number })
    expect(records).toHaveLength(3)
    for (const m of records)
      expect(m).toMatchObject({ model: 'llama3.2', backend: 'ollama', outcome: 'success' })
    expect(r.stdout).toMatch(/llama3\.2 on ollama: 3 requests, 0 errors, 12 tokens, avg \d+ ms/)
  })

  it('opentelemetry: records into the meter from @opentelemetry/api', async () => {
    const r = await run([example('opentelemetry')], { OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(
      /otel histogram gen_ai\.client\.operation\.duration [\d.e-]+ \{gen_ai\.operation\.name=text_completion gen_ai\.provider\.name=ollama gen_ai\.request\.model=llama3\.2 gen_ai\.response\.model=llama3\.2 server\.address=127\.0\.0\.1 server\.port=\d+\}/,
    )
    expect(r.stdout).toMatch(
      /otel histogram gen_ai\.client\.token\.usage \d+ \{.* gen_ai\.token\.type=output\}/,
    )
    expect(r.stdout).toMatch(/otel histogram gen_ai\.client\.operation\.time_to_first_chunk [\d.e-]+ /)
    expect(r.stdout).toContain('streamed: Blue light scatters most.')
  })

  it('embeddings: batches, input order, and a ranking (Ollama as the default backend)', async () => {
    // Examples run concurrently: count only this one's requests (its model).
    const mine = () =>
      ollama.requests.filter(
        (r) => r.path === '/api/embed' && (r.body as { model?: string }).model === 'nomic-embed-text',
      ).length
    const before = mine()
    const r = await run([example('embeddings')], { OLLAMA_HOST: ollama.url })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(
      `embedded 6 documents with nomic-embed-text on ollama at ${ollama.url}: 2 batches, `,
    )
    expect(r.stdout).toMatch(/ input tokens, 8 dimensions\n/)
    expect(r.stdout).toContain('closest to "Why is the sky blue?":')
    expect(r.stdout.match(/^ {2}-?\d\.\d{3} {2}\S/gm)).toHaveLength(3)
    // Two batches of documents and one question.
    expect(mine() - before).toBe(3)
  })

  it('embeddings: an auto record falls over from mlx_lm.server (no embeddings route) to Ollama', async () => {
    const r = await run([example('embeddings')], { ...withAdmin(), MODEL: 'gemma3' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`embedded 6 documents with gemma3 on ollama at ${ollama.url}: 2 batches`)
    expect(r.stdout).toContain(`attempt mlx ${mlx.url}: UNSUPPORTED_OPERATION`)
  })

  it('pool-canary: about 10 % of sessions on the canary, a conversation stays on one member', async () => {
    const main = await startOllamaServer({ respond: 'main' })
    const canary = await startOllamaServer({ respond: 'canary' })
    try {
      const r = await run([example('pool-canary')], {
        OLLAMA_MAIN_URL: main.url,
        OLLAMA_CANARY_URL: canary.url,
      })
      expect(r.code, r.stderr).toBe(0)
      const share = Number(/canary share: ([\d.]+)% of 200 sessions/.exec(r.stdout)?.[1])
      expect(share).toBeGreaterThan(3)
      expect(share).toBeLessThan(20)
      expect(generateCalls(canary)).toBe(
        Math.round((share * 200) / 100) + (r.stdout.includes('user-7: canary') ? 5 : 0),
      )
      expect(r.stdout).toMatch(/session user-7: (main|canary) \(affinity\)(, \1 \(affinity\)){4}\n/)
      expect(r.stdout).toMatch(/why members were chosen: affinity \d+/)
    } finally {
      await Promise.all([main.stop(), canary.stop()])
    }
  })

  it('pool-canary: runs on its own testing-kit stand-ins when no servers are given', async () => {
    const r = await run([example('pool-canary')])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/canary share: [\d.]+% of 200 sessions/)
  })

  it.skipIf(!redisAvailable())(
    'fleet-limits: two processes share rpm 8 through Redis: 8 of 20 answered, the server saw 8',
    async () => {
      const redis = await startRedis()
      const server = await startOllamaServer({ respond: 'Hi!' })
      try {
        const r = await run([example('fleet-limits')], {
          LLM_ROUTER_REDIS_URL: redis.url,
          OLLAMA_URL: server.url,
        })
        expect(r.code, r.stderr).toBe(0)
        expect(r.stdout).toContain('fleet: 8 of 20 answered (rpm 8 shared through Redis)')
        expect(r.stdout).toMatch(/instance A: .*RATE_LIMITED \(retry after \d+ s\)/)
        expect(generateCalls(server)).toBe(8)
      } finally {
        await Promise.all([server.stop(), redis.stop()])
      }
    },
  )

  it('fleet-limits: says what it needs when LLM_ROUTER_REDIS_URL is not set', async () => {
    const r = await run([example('fleet-limits')])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('Set LLM_ROUTER_REDIS_URL')
  })

  it('testing-with-msw: its node:test suite passes without any server', async () => {
    const r = await run([example('testing-with-msw')])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    // Node 24 prints the spec reporter ("ℹ pass 4"), Node 22 TAP ("# pass 4") when piped.
    expect(r.stdout).toMatch(/(ℹ|#) pass 4\n/)
    expect(r.stdout).toMatch(/(ℹ|#) fail 0\n/)
  })

  it('http-service: JSON, streaming, error statuses, graceful shutdown', async () => {
    const metricsBefore = admin.metricsReceived
    const child = start([example('http-service')], { ...withAdmin(), PORT: '0' })
    let stdout = ''
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    const exited = once(child, 'close')
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no "listening on" line: ${stdout}${stderr}`)),
          10_000,
        )
        child.stdout?.setEncoding('utf8').on('data', (d: string) => {
          stdout += d
          const m = /listening on (http:\/\/[\d.:]+)/.exec(stdout)
          if (m?.[1]) {
            clearTimeout(timer)
            resolve(m[1])
          }
        })
      })
      const post = (path: string, body: string) => fetch(`${url}${path}`, { method: 'POST', body })

      const ok = await post('/generate', JSON.stringify({ prompt: 'Why is the sky blue?' }))
      expect(ok.status).toBe(200)
      expect(ok.headers.get('x-llm-backend')).toBe('ollama')
      expect(await ok.json()).toMatchObject({ response: 'Blue light scatters most.', backend: 'ollama' })

      const streamed = await post('/generate?stream=1', JSON.stringify({ prompt: 'hi', model: 'qwen2.5' }))
      expect(streamed.status).toBe(200)
      expect(streamed.headers.get('content-type')).toBe('text/plain; charset=utf-8')
      expect(streamed.headers.get('transfer-encoding')).toBe('chunked')
      expect(await streamed.text()).toBe('Answer from MLX.')

      const invalid = await post('/generate', '{}')
      expect(invalid.status).toBe(400)
      expect(await invalid.json()).toMatchObject({ error: { code: 'INVALID_REQUEST' } })

      const notJson = await post('/generate', 'nope')
      expect(notJson.status).toBe(400)
      expect(await notJson.json()).toMatchObject({ error: { code: 'INVALID_JSON' } })

      const down = await post('/generate', JSON.stringify({ prompt: 'hi', model: 'broken' }))
      expect(down.status).toBe(502)
      expect(((await down.json()) as { error: { code: string } }).error.code).toMatch(
        /^(ALL_BACKENDS_FAILED|BACKEND_UNREACHABLE)$/,
      )

      const downStream = await post('/generate?stream=1', JSON.stringify({ prompt: 'hi', model: 'broken' }))
      expect(downStream.status).toBe(502)
      await downStream.arrayBuffer()

      const health = await fetch(`${url}/health`)
      expect(await health.json()).toEqual({ ok: true, config: 'admin' })
      expect((await fetch(`${url}/nope`)).status).toBe(404)
    } finally {
      child.kill('SIGTERM')
    }
    const [code] = await exited
    expect(code, stderr).toBe(0)
    expect(stdout).toContain('SIGTERM: shutting down\nclosed\n')
    // router.close() flushed the metrics of the requests that reached the router.
    expect(admin.metricsReceived - metricsBefore).toBeGreaterThanOrEqual(4)
  })
})

describe('examples: the llms and providers admin schemas', () => {
  let llmsAdmin: AdminServer
  let providersAdmin: AdminServer
  const fernetKey = fernetGenerateKey()

  beforeAll(async () => {
    llmsAdmin = await startAdminServer({ listPath: '/api/llms', records: llmsSeedRows() })
    const payload = providersSeed(
      { groq: deadUrl, cerebras: `${deadUrl}/v1`, ollama: ollama.url, google: deadUrl, mistral: deadUrl },
      { cerebras: fernetEncrypt('csk-example-plaintext', fernetKey) },
    )
    // Ollama first: its champion is the default; Cerebras' models point at a dead port.
    payload.unshift(...payload.splice(2, 1))
    providersAdmin = await startAdminServer({ listPath: '/api/providers/all', records: payload })
  })

  afterAll(async () => {
    await Promise.all([llmsAdmin?.stop(), providersAdmin?.stop()])
  })

  it('llms-schema: maps the seed rows, reports anthropic/bedrock, answers a row by name', async () => {
    const env = {
      LLM_ROUTER_ADMIN_URL: llmsAdmin.url,
      LLMS_LIST_PATH: '/api/llms',
      OLLAMA_BASE_URL: ollama.url,
      MODEL: 'Ollama Llama2',
    }
    const r = await run([example('llms-schema')], env)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(
      '"OpenAI GPT-4": openai gpt-4 at $OPENAI_API_BASE (else https://api.openai.com/v1), priority 10, default',
    )
    expect(r.stdout).toContain(
      `"Ollama Llama2": ollama llama2 at $OLLAMA_BASE_URL (else http://localhost:11434), priority 80`,
    )
    expect(r.stdout).toMatch(/not used: row 3 "Claude 3 Haiku" provider: provider anthropic is not supported/)
    expect(r.stdout).toMatch(
      /not used: row 6 "Bedrock Claude v2" provider: provider bedrock is not supported/,
    )
    expect(r.stdout).toContain(`Ollama Llama2 (ollama at ${ollama.url}): Blue light scatters most.`)
  })

  it('llms-schema: the default row without its key is MISSING_CREDENTIAL naming the variable', async () => {
    const env = { LLM_ROUTER_ADMIN_URL: llmsAdmin.url, LLMS_LIST_PATH: '/api/llms', OPENAI_API_BASE: deadUrl }
    const r = await run([example('llms-schema')], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^ALL_BACKENDS_FAILED: .*MISSING_CREDENTIAL/m)
    expect(r.stderr).toMatch(/last error: .*environment variable OPENAI_API_KEY, which is not set/)
  })

  it('providers-schema: the champion answers; a dead provider falls back by fallback_priority, then to others; the key never prints', async () => {
    const env = { LLM_ROUTER_ADMIN_URL: providersAdmin.url, LLM_ROUTER_ENCRYPTION_KEY: fernetKey }
    const first = await run([example('providers-schema')], env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toContain(
      `ollama/llama3.2:3b: ollama at ${ollama.url}, priority 1, 60 rpm / 10000 tpm, champion`,
    )
    expect(first.stdout).toContain(
      `cerebras/gpt-oss-120b: openai at ${deadUrl}/v1, priority 1, 600 rpm / 48000 tpm, encrypted key, champion`,
    )
    expect(first.stdout).toContain(
      `llama3.2:3b (ollama at ${ollama.url}, unpriced): Blue light scatters most.`,
    )
    const fell = await run([example('providers-schema')], { ...env, MODEL: 'gpt-oss-120b' })
    expect(fell.code, fell.stderr).toBe(0)
    expect(fell.stdout).toContain(
      'tried: gpt-oss-120b BACKEND_UNREACHABLE -> llama3.1-8b BACKEND_UNREACHABLE -> llama3.2:3b ok',
    )
    expect(first.stdout + first.stderr + fell.stdout + fell.stderr).not.toContain('csk-example-plaintext')
  })
})
