import { delay, HttpResponse, http } from 'msw'
import { afterEach, describe, expect, it } from 'vitest'
import { createLLMRouter, hasErrorCode, type LLMRouter } from '../src/index.js'
import type { Clock } from '../src/internal/clock.js'
import type { BackendRecord, MetricRecord } from '../src/types.js'
import { collect } from './helpers/events.js'
import { ManualClock, until } from './helpers/manual-clock.js'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()

const OLLAMA = 'http://ollama.test:11434'
const MLX = 'http://mlx.test:8080'

function ollamaOk(text = 'Hello there', extra: Record<string, unknown> = {}) {
  return {
    model: 'phi3:mini',
    created_at: '2026-01-01T00:00:00Z',
    response: text,
    done: true,
    done_reason: 'stop',
    prompt_eval_count: 7,
    prompt_eval_duration: 1_000_000,
    eval_count: 20,
    eval_duration: 500_000_000,
    load_duration: 3_000_000,
    total_duration: 600_000_000,
    ...extra,
  }
}

function mlxOk(text = 'From MLX') {
  return {
    id: 'cmpl-1',
    object: 'text_completion',
    model: 'default_model',
    created: 1,
    choices: [{ index: 0, text, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 8, total_tokens: 13 },
  }
}

function record(over: Partial<BackendRecord> & { model_name: string }): Record<string, unknown> {
  return {
    backend_type: 'ollama',
    endpoint_url: OLLAMA,
    enabled: true,
    priority: 100,
    max_tokens: 256,
    temperature_default: 0.7,
    timeout_seconds: 60,
    ...over,
  }
}

let routers: LLMRouter[] = []
/**
 * The default clock is a ManualClock that no test advances: retry waits and attempt limits never
 * fire on their own, whatever the machine's load. Tests about time pass their own and advance it.
 * It starts at the real time so metric timestamps compare with Date.now().
 */
function makeRouter(
  records: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
  clock: Clock = new ManualClock(Date.now()),
) {
  const router = createLLMRouter(
    {
      env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) },
      metrics: false,
      retry: { baseDelayMs: 500 },
      ...extra,
    },
    { clock },
  )
  routers.push(router)
  return router
}

afterEach(async () => {
  await Promise.all(routers.map((r) => r.close()))
  routers = []
})

describe('ollama records', () => {
  it('sends stream:false with the record defaults and maps the result', async () => {
    const bodies: unknown[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        bodies.push(await request.json())
        return HttpResponse.json(ollamaOk())
      }),
    )
    const router = makeRouter([record({ model_name: 'phi3:mini' })])
    const result = await router.generate({
      model: 'phi3:mini',
      prompt: 'Hi',
      system: 'Be brief',
      stop: ['\n'],
    })
    expect(bodies[0]).toMatchObject({
      model: 'phi3:mini',
      prompt: 'Hi',
      system: 'Be brief',
      stream: false,
      options: { num_predict: 256, temperature: 0.7, stop: ['\n'] },
    })
    expect(result).toMatchObject({
      response: 'Hello there',
      model: 'phi3:mini',
      backend: 'ollama',
      endpoint: OLLAMA,
      doneReason: 'stop',
      usage: { promptTokens: 7, completionTokens: 20 },
    })
    expect(result.tokensPerSecond).toBeCloseTo(40, 5) // 20 tokens / 0.5 s of eval
    expect(result.loadMs).toBeCloseTo(3)
    expect(result.attempts).toHaveLength(1)
    expect(result.attempts[0]).toMatchObject({ ok: true, backend: 'ollama', attempt: 1 })
  })

  it('lets the request override temperature, maxTokens and pass backend options', async () => {
    const bodies: Record<string, unknown>[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        bodies.push((await request.json()) as Record<string, unknown>)
        return HttpResponse.json(ollamaOk())
      }),
    )
    const router = makeRouter([record({ model_name: 'phi3:mini' })])
    await router.generate({
      model: 'phi3:mini',
      prompt: 'Hi',
      temperature: 0,
      maxTokens: 3,
      options: { top_k: 5, num_ctx: 4096, keep_alive: '10m' },
    })
    expect(bodies[0]).toMatchObject({
      keep_alive: '10m',
      options: { num_predict: 3, temperature: 0, top_k: 5, num_ctx: 4096 },
    })
  })

  it('uses the highest-priority enabled record when no model is given', async () => {
    const models: string[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        models.push(((await request.json()) as { model: string }).model)
        return HttpResponse.json(ollamaOk())
      }),
    )
    const router = makeRouter([
      record({ model_name: 'big', priority: 200 }),
      record({ model_name: 'off', priority: 1, enabled: false }),
      record({ model_name: 'small', priority: 50 }),
    ])
    const r = await router.generate({ prompt: 'x' })
    expect(r.model).toBe('small')
    expect(models).toEqual(['small'])
  })
})

describe('mlx records', () => {
  it('omits model unless backend_model is set, and sends stop as an array', async () => {
    const bodies: Record<string, unknown>[] = []
    net.use(
      http.post(`${MLX}/v1/completions`, async ({ request }) => {
        bodies.push((await request.json()) as Record<string, unknown>)
        return HttpResponse.json(mlxOk())
      }),
    )
    const router = makeRouter([
      record({ model_name: 'qwen', backend_type: 'mlx', endpoint_url: MLX }),
      record({
        model_name: 'llama',
        backend_type: 'mlx',
        endpoint_url: MLX,
        backend_model: 'mlx-community/Llama-3.2-3B-Instruct-4bit',
      }),
    ])
    const a = await router.generate({ model: 'qwen', prompt: 'Hi', stop: ['END'] })
    await router.generate({ model: 'llama', prompt: 'Hi' })
    expect(bodies[0]).not.toHaveProperty('model')
    expect(bodies[0]).toMatchObject({
      prompt: 'Hi',
      max_tokens: 256,
      temperature: 0.7,
      stop: ['END'],
      stream: false,
    })
    expect(bodies[1]).toMatchObject({ model: 'mlx-community/Llama-3.2-3B-Instruct-4bit' })
    expect(a).toMatchObject({
      response: 'From MLX',
      backend: 'mlx',
      usage: { promptTokens: 5, completionTokens: 8 },
    })
    expect(a.tokensPerSecond).toBeGreaterThan(0)
  })
})

describe('auto records and fallback', () => {
  it('tries MLX first, then falls back to Ollama with model_name when MLX is down', async () => {
    const seen: string[] = []
    net.use(
      http.post(`${MLX}/v1/completions`, () => {
        seen.push('mlx')
        return HttpResponse.error()
      }),
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        seen.push(`ollama:${((await request.json()) as { model: string }).model}`)
        return HttpResponse.json(ollamaOk('from ollama'))
      }),
    )
    const router = makeRouter([
      record({
        model_name: 'llama3.1:8b',
        backend_type: 'auto',
        endpoint_url: MLX,
        fallback_url: OLLAMA,
        backend_model: 'mlx/llama',
      }),
    ])
    const fallbacks = collect(router, 'request:fallback')
    const r = await router.generate({ model: 'llama3.1:8b', prompt: 'Hi' })
    expect(r.backend).toBe('ollama')
    expect(r.response).toBe('from ollama')
    expect(seen[seen.length - 1]).toBe('ollama:llama3.1:8b')
    // msw's network error looks like a reset before any response: replayed once at once, then fall over.
    expect(r.attempts.map((a) => [a.backend, a.ok, a.code])).toEqual([
      ['mlx', false, 'BACKEND_UNREACHABLE'],
      ['mlx', false, 'BACKEND_UNREACHABLE'],
      ['ollama', true, undefined],
    ])
    expect(fallbacks).toHaveLength(1)
    expect(fallbacks[0]).toMatchObject({
      from: { backend: 'mlx' },
      to: { backend: 'ollama', endpoint: OLLAMA },
      code: 'BACKEND_UNREACHABLE',
    })
  })

  it('an auto record without fallback_url falls back to OLLAMA_HOST', async () => {
    net.use(
      http.post(`${MLX}/v1/completions`, () => HttpResponse.json({ error: 'boom' }, { status: 404 })),
      http.post('http://other-ollama.test:11434/api/generate', () =>
        HttpResponse.json(ollamaOk('env ollama')),
      ),
    )
    const router = createLLMRouter(
      {
        env: {
          LLM_ROUTER_BACKENDS: JSON.stringify([
            record({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX }),
          ]),
          OLLAMA_HOST: 'other-ollama.test:11434',
        },
        metrics: false,
      },
      { clock: new ManualClock(Date.now()) },
    )
    routers.push(router)
    const r = await router.generate({ model: 'm', prompt: 'x' })
    expect(r).toMatchObject({
      response: 'env ollama',
      backend: 'ollama',
      endpoint: 'http://other-ollama.test:11434',
    })
    expect(r.attempts[0]).toMatchObject({ code: 'MODEL_NOT_FOUND', status: 404 })
  })

  it("does not retry or fall over on the caller's 400", async () => {
    let ollamaHits = 0
    let mlxHits = 0
    net.use(
      http.post(`${MLX}/v1/completions`, () => {
        mlxHits++
        return HttpResponse.json({ error: 'Invalid JSON in request body' }, { status: 400 })
      }),
      http.post(`${OLLAMA}/api/generate`, () => {
        ollamaHits++
        return HttpResponse.json(ollamaOk())
      }),
    )
    const router = makeRouter([
      record({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA }),
    ])
    const err = await router.generate({ model: 'm', prompt: 'x' }).catch((e) => e)
    expect(err.code).toBe('BAD_REQUEST')
    expect(err.status).toBe(400)
    expect(err.message).toContain('Invalid JSON in request body')
    expect(err.attempts).toHaveLength(1)
    expect(mlxHits).toBe(1)
    expect(ollamaHits).toBe(0)
  })

  it('walks fallbackModels in order, and "priority" walks the enabled records', async () => {
    const hit: string[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        const model = ((await request.json()) as { model: string }).model
        hit.push(model)
        if (model !== 'c') return HttpResponse.json({ error: `model '${model}' not found` }, { status: 404 })
        return HttpResponse.json(ollamaOk('from c'))
      }),
    )
    const router = makeRouter([
      record({ model_name: 'a', priority: 1 }),
      record({ model_name: 'b', priority: 2 }),
      record({ model_name: 'c', priority: 3 }),
    ])
    const noFallback = await router.generate({ model: 'a', prompt: 'x' }).catch((e) => e)
    expect(noFallback.code).toBe('ALL_BACKENDS_FAILED')
    hit.length = 0
    const listed = await router.generate({ model: 'a', prompt: 'x', fallbackModels: ['c'] })
    expect(listed.model).toBe('c')
    expect(hit).toEqual(['a', 'c'])
    hit.length = 0
    const byPriority = await router.generate({ model: 'b', prompt: 'x', fallbackModels: 'priority' })
    expect(byPriority.model).toBe('c')
    expect(hit).toEqual(['b', 'a', 'c'])
  })

  it('reports every attempt when everything fails', async () => {
    net.use(
      http.post(`${MLX}/v1/completions`, () => HttpResponse.error()),
      http.post(`${OLLAMA}/api/generate`, () =>
        HttpResponse.json({ error: "model 'm' not found" }, { status: 404 }),
      ),
    )
    const router = makeRouter([
      record({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA }),
    ])
    const err = await router.generate({ model: 'm', prompt: 'x' }).catch((e) => e)
    expect(err.code).toBe('ALL_BACKENDS_FAILED')
    expect(err.attempts.map((a: { code: string }) => a.code)).toEqual([
      'BACKEND_UNREACHABLE',
      'BACKEND_UNREACHABLE',
      'MODEL_NOT_FOUND',
    ])
    expect(err.cause.code).toBe('MODEL_NOT_FOUND')
    expect(err.message).toContain('mlx http://mlx.test:8080')
    // Two backends failing differently: the top code speaks for the request.
    expect(hasErrorCode(err, 'ALL_BACKENDS_FAILED')).toBe(true)
    expect(hasErrorCode(err, 'MODEL_NOT_FOUND')).toBe(false)
  })

  it("hasErrorCode sees the only candidate's code through ALL_BACKENDS_FAILED", async () => {
    net.use(
      http.post(`${OLLAMA}/api/generate`, () =>
        HttpResponse.json({ error: "model 'm' not found" }, { status: 404 }),
      ),
    )
    const router = makeRouter([record({ model_name: 'm' })])
    const err = await router.generate({ model: 'm', prompt: 'x' }).catch((e) => e)
    expect(err.code).toBe('ALL_BACKENDS_FAILED')
    expect(hasErrorCode(err, 'ALL_BACKENDS_FAILED')).toBe(true)
    expect(hasErrorCode(err, 'MODEL_NOT_FOUND')).toBe(true)
    expect(hasErrorCode(err, 'BACKEND_BUSY')).toBe(false)
  })
})

describe('retries', () => {
  it('retries 503 with exponential backoff and then succeeds', async () => {
    let n = 0
    net.use(
      http.post(`${OLLAMA}/api/generate`, () => {
        n++
        if (n <= 2)
          return HttpResponse.json(
            { error: 'server busy, please try again.  maximum pending requests exceeded' },
            { status: 503 },
          )
        return HttpResponse.json(ollamaOk())
      }),
    )
    const clock = new ManualClock(Date.now())
    const router = makeRouter([record({ model_name: 'm' })], {}, clock)
    const retries = collect(router, 'request:retry')
    const pending = router.generate({ model: 'm', prompt: 'x' })
    // ManualClock's random() is 0.5: delay = base * 2^(n-1) * (1 - 0.125). Each retry waits on the
    // clock until the test advances it by exactly that delay.
    await clock.untilTimer(438)
    expect(n).toBe(1) // nothing re-sent before the wait is over
    clock.advance(438)
    await clock.untilTimer(875)
    expect(n).toBe(2)
    clock.advance(875)
    const r = await pending
    expect(n).toBe(3)
    expect(r.attempts.map((a) => a.code ?? 'ok')).toEqual(['BACKEND_BUSY', 'BACKEND_BUSY', 'ok'])
    expect(retries.map((e) => e.delayMs)).toEqual([438, 875])
  })

  it('gives up after maxRetries and falls over to the next candidate', async () => {
    let mlx = 0
    net.use(
      http.post(`${MLX}/v1/completions`, () => {
        mlx++
        return new HttpResponse('<html><body><h1>500 Internal Server Error</h1></body></html>', {
          status: 500,
          headers: { 'content-type': 'text/html' },
        })
      }),
      http.post(`${OLLAMA}/api/generate`, () => HttpResponse.json(ollamaOk())),
    )
    const router = makeRouter(
      [record({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA })],
      // No backoff: this test is about the retry count, not the wait.
      { retry: { maxRetries: 1, baseDelayMs: 0 }, circuitBreaker: false },
    )
    const r = await router.generate({ model: 'm', prompt: 'x' })
    expect(mlx).toBe(2)
    expect(r.backend).toBe('ollama')
    expect(r.attempts[0]?.message).toContain('500 Internal Server Error')
  })

  it('honours Retry-After (seconds) and falls over when it exceeds the cap', async () => {
    let n = 0
    net.use(
      http.post(`${OLLAMA}/api/generate`, () => {
        n++
        if (n === 1)
          return HttpResponse.json(
            { error: 'rate limit exceeded' },
            { status: 429, headers: { 'retry-after': '2' } },
          )
        return HttpResponse.json(ollamaOk())
      }),
    )
    const clock = new ManualClock(Date.now())
    const router = makeRouter([record({ model_name: 'm' })], {}, clock)
    const retries = collect(router, 'request:retry')
    const first = router.generate({ model: 'm', prompt: 'x' })
    // The retry waits the full 2 s on the clock: nothing is re-sent a millisecond earlier.
    await clock.untilTimer(2000)
    expect(n).toBe(1)
    clock.advance(2000)
    await first
    expect(n).toBe(2)
    expect(retries[0]).toMatchObject({ delayMs: 2000, code: 'RATE_LIMITED' })

    n = 0
    let other = 0
    net.use(
      http.post(`${OLLAMA}/api/generate`, () =>
        HttpResponse.json(
          { error: 'rate limit exceeded' },
          { status: 429, headers: { 'retry-after': '3600' } },
        ),
      ),
      http.post('http://ollama2.test:11434/api/generate', () => {
        other++
        return HttpResponse.json(ollamaOk('second'))
      }),
    )
    const router2 = makeRouter([
      record({ model_name: 'm' }),
      record({ model_name: 'm', priority: 200, endpoint_url: 'http://ollama2.test:11434' }),
    ])
    const retries2 = collect(router2, 'request:retry')
    const r = await router2.generate({ model: 'm', prompt: 'x' })
    expect(r.response).toBe('second')
    expect(other).toBe(1)
    expect(retries2).toHaveLength(0)
  })
})

/** An Ollama that holds every request and never answers; `held()` counts the requests it holds. */
function hangingOllama(): { held: () => number } {
  let held = 0
  net.use(
    http.post(`${OLLAMA}/api/generate`, async () => {
      held++
      await delay('infinite')
      return HttpResponse.json(ollamaOk())
    }),
  )
  return { held: () => held }
}

describe('deadlines, aborts and circuits', () => {
  it('the overall deadline (timeoutMs) covers the request: a hanging backend fails with TIMEOUT', async () => {
    const backend = hangingOllama()
    const clock = new ManualClock(Date.now())
    const router = makeRouter([record({ model_name: 'm' })], {}, clock)
    const started = Date.now()
    const pending = router.generate({ model: 'm', prompt: 'x', timeoutMs: 3000 }).catch((e) => e)
    // The deadline passes only once the backend holds the request, so the attempt is really hanging.
    await until(() => backend.held() === 1, 'the request at the backend')
    await clock.advanceWhenSet(3000)
    const err = await pending
    expect(err.code).toBe('TIMEOUT')
    expect(err.message).toContain('3000 ms')
    expect(err.attempts).toHaveLength(1)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it("a record's timeout_seconds bounds one attempt: its only backend hanging ends in ALL_BACKENDS_FAILED of TIMEOUT", async () => {
    const backend = hangingOllama()
    const clock = new ManualClock(Date.now())
    const router = makeRouter([record({ model_name: 'm', timeout_seconds: 3 })], {}, clock)
    const pending = router.generate({ model: 'm', prompt: 'x' }).catch((e) => e)
    await until(() => backend.held() === 1, 'the request at the backend')
    await clock.advanceWhenSet(3000)
    const err = await pending
    expect(err.code).toBe('ALL_BACKENDS_FAILED')
    expect(hasErrorCode(err, 'TIMEOUT')).toBe(true)
    expect(err.attempts[0]).toMatchObject({ code: 'TIMEOUT', backend: 'ollama' })
    expect(err.attempts[0].message).toContain('3000 ms')
  })

  it("the caller's AbortSignal cancels promptly", async () => {
    hangingOllama()
    const router = makeRouter([record({ model_name: 'm' })])
    const ac = new AbortController()
    const p = router.generate({ model: 'm', prompt: 'x', signal: ac.signal })
    setTimeout(() => ac.abort(new Error('user left')), 20)
    const err = await p.catch((e) => e)
    expect(err.code).toBe('ABORTED')
    expect(err.cause).toBeInstanceOf(Error)
    const pre = await router
      .generate({ model: 'm', prompt: 'x', signal: AbortSignal.abort() })
      .catch((e) => e)
    expect(pre.code).toBe('ABORTED')
  })

  it('opens the circuit after repeated failures, skips the endpoint, then probes after the cooldown', async () => {
    let mlxHits = 0
    net.use(
      http.post(`${MLX}/v1/completions`, () => {
        mlxHits++
        return HttpResponse.error()
      }),
      http.post(`${OLLAMA}/api/generate`, () => HttpResponse.json(ollamaOk())),
    )
    // A manual clock: the cooldown passes when the test says so, not when a busy machine gets to it
    // (a scaled wall clock made this test flaky under load).
    const clock = new ManualClock()
    const router = makeRouter(
      [record({ model_name: 'm', backend_type: 'auto', endpoint_url: MLX, fallback_url: OLLAMA })],
      { circuitBreaker: { threshold: 3, cooldownMs: 10_000 } },
      clock,
    )
    const opened = collect(router, 'circuit:open')
    // Each request: a reset-style failure is replayed once (the first does not count), so 2 hits, 1 failure.
    for (let i = 0; i < 3; i++) await router.generate({ model: 'm', prompt: 'x' })
    expect(mlxHits).toBe(6)
    expect(opened).toHaveLength(1)
    expect(opened[0]).toMatchObject({ state: 'open', failures: 3, lastError: 'BACKEND_UNREACHABLE' })
    const r = await router.generate({ model: 'm', prompt: 'x' })
    expect(mlxHits).toBe(6) // skipped: no connection attempt
    expect(r.attempts[0]).toMatchObject({ code: 'CIRCUIT_OPEN', backend: 'mlx' })
    expect(router.circuits().find((c) => c.endpoint.includes('mlx'))?.state).toBe('open')

    // Just before the cooldown ends the endpoint is still skipped; after it one probe goes through.
    clock.advance(9_999)
    expect((await router.generate({ model: 'm', prompt: 'x' })).attempts[0]).toMatchObject({
      code: 'CIRCUIT_OPEN',
    })
    net.use(http.post(`${MLX}/v1/completions`, () => HttpResponse.json(mlxOk())))
    clock.advance(1)
    const closedEvents = collect(router, 'circuit:close')
    const probe = await router.generate({ model: 'm', prompt: 'x' })
    expect(probe.backend).toBe('mlx')
    expect(closedEvents).toHaveLength(1)
    expect(router.circuits().find((c) => c.endpoint.includes('mlx'))?.state).toBe('closed')
  })
})

describe('models, validation and lifecycle', () => {
  it('sends models without a record to the default backend, unless strictModels', async () => {
    const models: string[] = []
    net.use(
      http.post('http://default-ollama.test:11434/api/generate', async ({ request }) => {
        models.push(((await request.json()) as { model: string }).model)
        return HttpResponse.json(ollamaOk())
      }),
    )
    const env = {
      LLM_ROUTER_BACKENDS: JSON.stringify([record({ model_name: 'known' })]),
      OLLAMA_HOST: 'default-ollama.test',
    }
    const router = createLLMRouter({ env, metrics: false })
    routers.push(router)
    const r = await router.generate({ model: 'mistral:7b', prompt: 'x' })
    expect(models).toEqual(['mistral:7b'])
    expect(r.endpoint).toBe('http://default-ollama.test:11434')
    expect((await router.resolve('mistral:7b')).usesDefault).toBe(true)

    const strict = createLLMRouter({ env, metrics: false, strictModels: true })
    routers.push(strict)
    const err = await strict.generate({ model: 'mistral:7b', prompt: 'x' }).catch((e) => e)
    expect(err.code).toBe('MODEL_NOT_CONFIGURED')
  })

  it('rejects bad requests with INVALID_REQUEST naming the field', async () => {
    const router = makeRouter([record({ model_name: 'm' })])
    const cases: [unknown, string][] = [
      [{}, 'prompt'],
      [{ prompt: 'x', temperature: -1 }, 'temperature'],
      [{ prompt: 'x', maxTokens: 1.5 }, 'maxTokens'],
      [{ prompt: 'x', stop: ['a', 3] }, 'stop[1]'],
      [{ prompt: 'x', timeoutMs: 0 }, 'timeoutMs'],
      [{ prompt: 'x', fallbackModels: 'all' }, 'fallbackModels'],
      [{ prompt: 'x', metadata: { userId: 5 } }, 'metadata.userId'],
      [{ prompt: 'x', model: '' }, 'model'],
    ]
    for (const [req, field] of cases) {
      const err = await router.generate(req as never).catch((e) => e)
      expect(err.code, field).toBe('INVALID_REQUEST')
      expect(err.issues[0].path).toBe(field)
      expect(err.message).toContain(field)
    }
    // Like generate(): no synchronous throw; the stream fails on first use.
    const bad = router.stream({} as never)[Symbol.asyncIterator]()
    await expect(bad.next()).rejects.toMatchObject({ code: 'INVALID_REQUEST' })
    await expect(router.stream({} as never).result).rejects.toThrow(/prompt/)
  })

  it('validates options and names each bad option', () => {
    let err: { code?: string; issues?: { path: string }[] } = {}
    try {
      createLLMRouter({ adminUrl: 'ftp://admin', cacheTtlMs: -5, bogus: 1 } as never)
    } catch (e) {
      err = e as typeof err
    }
    expect(err.code).toBe('INVALID_OPTIONS')
    const paths = err.issues?.map((i) => i.path)
    expect(paths).toContain('adminUrl')
    expect(paths).toContain('cacheTtlMs')
    expect(String((err as Error).message)).toContain('bogus')
    expect(() => createLLMRouter({ env: { LLM_ROUTER_ADMIN_URL: 'not a url' } })).toThrow(
      /LLM_ROUTER_ADMIN_URL/,
    )
  })

  it('close() lets in-flight requests finish, then stops the rest with CLOSED after the grace period', async () => {
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        const body = (await request.json()) as { prompt: string }
        if (body.prompt === 'hang') await delay('infinite')
        await delay(30)
        return HttpResponse.json(ollamaOk('finished'))
      }),
    )
    const router = createLLMRouter({
      env: { LLM_ROUTER_BACKENDS: JSON.stringify([record({ model_name: 'm' })]) },
      metrics: false,
      closeTimeoutMs: 200,
    })
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const quick = router.generate({ model: 'm', prompt: 'quick' })
    const hung = router.generate({ model: 'm', prompt: 'hang' }).catch((e) => e)
    await new Promise((r) => setTimeout(r, 5))
    const started = Date.now()
    await router.close()
    expect(Date.now() - started).toBeLessThan(2000)
    expect((await quick).response).toBe('finished')
    const err = await hung
    expect(err.code).toBe('CLOSED')
    expect(metrics.map((m) => m.outcome).sort()).toEqual(['error', 'success'])
  })

  it('close() is idempotent and later calls fail fast with CLOSED', async () => {
    const router = makeRouter([record({ model_name: 'm' })])
    const a = router.close()
    const b = router.close()
    expect(a).toBe(b)
    await a
    expect(router.closed).toBe(true)
    const err = await router.generate({ model: 'm', prompt: 'x' }).catch((e) => e)
    expect(err.code).toBe('CLOSED')
    const s = router.stream({ model: 'm', prompt: 'x' })
    await expect(s.result).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(s[Symbol.asyncIterator]().next()).rejects.toThrow(/closed/)
  })
})

describe('metrics and secrets', () => {
  it('emits exactly one metric per request, success or failure, with the caller ids', async () => {
    net.use(
      http.post(`${OLLAMA}/api/generate`, async ({ request }) => {
        const body = (await request.json()) as { model: string }
        if (body.model === 'missing')
          return HttpResponse.json({ error: "model 'missing' not found" }, { status: 404 })
        return HttpResponse.json(ollamaOk())
      }),
    )
    const router = makeRouter([record({ model_name: 'm' }), record({ model_name: 'missing' })])
    const metrics: MetricRecord[] = []
    router.on('metric', (m) => metrics.push(m))
    const before = Date.now() / 1000
    await router.generate({
      model: 'm',
      prompt: 'x',
      metadata: { requestId: 'r1', sessionId: 's1', userId: 'u1', zone: 'eu', intent: 'chat' },
    })
    await router.generate({ model: 'missing', prompt: 'x' }).catch(() => {})
    expect(metrics).toHaveLength(2)
    expect(metrics[0]).toMatchObject({
      model: 'm',
      backend: 'ollama',
      endpoint: OLLAMA,
      tokens: 20,
      prompt_tokens: 7,
      request_id: 'r1',
      session_id: 's1',
      user_id: 'u1',
      zone: 'eu',
      intent: 'chat',
      outcome: 'success',
      error_code: null,
      attempts: 1,
      fallback: false,
      streamed: false,
      load_seconds: 0.003,
      config_origin: 'env',
      operation: 'generate',
    })
    expect(metrics[0]!.tokens_per_second).toBeCloseTo(40)
    expect(metrics[0]!.timestamp).toBeGreaterThanOrEqual(before - 1)
    expect(metrics[0]!.latency_seconds).toBeGreaterThan(0)
    expect(metrics[1]).toMatchObject({
      model: 'missing',
      outcome: 'error',
      error_code: 'ALL_BACKENDS_FAILED',
      tokens: 0,
      tokens_per_second: 0,
    })
    const stats = router.stats()
    expect(stats.reduce((n, s) => n + s.count, 0)).toBe(2)
  })

  it('sends credentials from env vars and never leaks their values', async () => {
    const SECRET = 'sk-very-secret-value-123'
    const auths: (string | null)[] = []
    net.use(
      http.post(`${OLLAMA}/api/generate`, ({ request }) => {
        auths.push(request.headers.get('authorization'))
        return HttpResponse.json({ error: 'nope' }, { status: 500 })
      }),
      http.post(`${MLX}/v1/completions`, ({ request }) => {
        auths.push(request.headers.get('x-api-key'))
        return HttpResponse.json({ error: 'nope' }, { status: 500 })
      }),
    )
    const records = [
      record({ model_name: 'a', auth: { bearer_env: 'OLLAMA_TOKEN' } }),
      record({
        model_name: 'b',
        backend_type: 'mlx',
        endpoint_url: MLX,
        auth: { header: 'X-Api-Key', value_env: 'MLX_KEY' },
      }),
      record({ model_name: 'c', auth: { bearer_env: 'NOT_SET_VAR' } }),
    ]
    const router = createLLMRouter(
      {
        env: { LLM_ROUTER_BACKENDS: JSON.stringify(records), OLLAMA_TOKEN: SECRET, MLX_KEY: SECRET },
        metrics: false,
        retry: { maxRetries: 0 },
      },
      { clock: new ManualClock(Date.now()) },
    )
    routers.push(router)
    const seen: unknown[] = []
    for (const e of ['metric', 'request:end', 'request:fallback', 'circuit:open'] as const)
      router.on(e, (p) => seen.push(p))
    const errA = await router.generate({ model: 'a', prompt: 'x' }).catch((e) => e)
    const errB = await router.generate({ model: 'b', prompt: 'x' }).catch((e) => e)
    const errC = await router.generate({ model: 'c', prompt: 'x' }).catch((e) => e)
    expect(auths).toEqual([`Bearer ${SECRET}`, SECRET])
    expect(errC.code).toBe('ALL_BACKENDS_FAILED')
    expect(errC.attempts[0].code).toBe('MISSING_CREDENTIAL')
    expect(errC.message + errC.attempts[0].message).toContain('NOT_SET_VAR')
    const dump = JSON.stringify([
      errA,
      errB,
      errC,
      errA.attempts,
      errB.attempts,
      seen,
      String(errA.stack),
      router.config(),
      await router.resolve('a'),
    ])
    expect(dump).not.toContain(SECRET)
  })
})
