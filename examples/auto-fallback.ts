/**
 * Auto fallback: an `auto` backend tries MLX first and falls back to Ollama when MLX is down, busy or
 * failing. Events show what happened; `result.attempts` lists every try.
 *
 * Run with both hosts set (no admin needed: MLX_HOST + OLLAMA_HOST make an `auto` default backend);
 * stop your MLX server to see the fallback:
 *   MLX_HOST=127.0.0.1:8080 OLLAMA_HOST=127.0.0.1:11434 node examples/auto-fallback.ts
 * Or with an admin API whose record for MODEL has backend_type "auto" (and fallback_url):
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 MODEL=gemma3 node examples/auto-fallback.ts
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

const router = createLLMRouter()
const model = process.env.MODEL ?? 'llama3.2'

router.on('request:fallback', ({ from, to, code }) => {
  console.log(
    `fallback: ${from.backend} at ${from.endpoint} failed (${code}); trying ${to.backend} at ${to.endpoint}`,
  )
})
router.on('circuit:open', (c) =>
  console.log(`circuit open for ${c.endpoint} until ${new Date(c.openUntil ?? 0).toISOString()}`),
)

try {
  // Which backends this model would try, in order.
  const route = await router.resolve(model)
  console.log(
    `route for ${route.model}: ${route.targets.map((t) => `${t.backend} (${t.endpoint})`).join(' -> ')}`,
  )

  const result = await router.generate({ model, prompt: 'Name three primary colours.', maxTokens: 100 })
  for (const a of result.attempts) {
    console.log(
      `attempt ${a.backend} ${a.endpoint}: ${a.ok ? 'ok' : `failed ${a.code}`} in ${Math.round(a.latencyMs)} ms`,
    )
  }
  console.log(`answered by ${result.backend}: ${result.response}`)
} catch (error) {
  // ALL_BACKENDS_FAILED when MLX and Ollama both failed; `attempts` says how each one did.
  if (isRouterError(error)) {
    console.error(`${error.code}: ${error.message}`)
    for (const a of error.attempts)
      console.error(`  ${a.backend} ${a.endpoint}: ${a.code} ${a.message ?? ''}`)
  } else console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
