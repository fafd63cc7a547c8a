/**
 * Env-only configuration: no admin API. The backends come from environment variables, in this order:
 *   1. LLM_ROUTER_BACKENDS: a JSON array of backend records (the same shape the admin API serves)
 *   2. MLX_HOST and OLLAMA_HOST both set: one `auto` backend (MLX first, Ollama as fallback)
 *   3. MLX_HOST or OLLAMA_HOST alone: that backend
 *   4. nothing: Ollama at http://localhost:11434
 * Every model without a record of its own goes to the default backend from 2-4.
 *
 * Run (leave LLM_ROUTER_ADMIN_URL unset):
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/env-only.ts
 *   LLM_ROUTER_BACKENDS='[{"model_name":"qwen","backend_type":"mlx","endpoint_url":"http://127.0.0.1:8080",
 *     "backend_model":"default_model","enabled":true,"priority":1}]' MODEL=qwen node examples/env-only.ts
 */
import { createLLMRouter } from 'llm-backend-router'

const model = process.env.MODEL ?? 'llama3.2'
const router = createLLMRouter({
  // Without an admin there is nowhere to post metrics by default; router.stats() still works locally.
  metrics: false,
})
router.on('config:invalid-record', (e) => console.warn(`ignored ${e.field}: ${e.message}`))

try {
  const route = await router.resolve(model)
  const config = router.config()
  console.log(`config origin: ${config?.origin} (${config?.records.length} record(s))`)
  for (const r of config?.records ?? [])
    console.log(`  ${r.model_name}: ${r.backend_type} at ${r.endpoint_url}`)
  console.log(`${model} -> ${route.targets.map((t) => `${t.backend} (${t.endpoint})`).join(' -> ')}`)

  const result = await router.generate({ model, prompt: 'Say hello in five words.', maxTokens: 50 })
  console.log(`${result.backend}: ${result.response}`)
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
