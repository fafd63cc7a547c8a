/**
 * An admin that serves seed 002's `llms` table (name, provider, model_name, auth_meta with `_env`
 * references, config, enabled, is_default, priority, scope): `admin.schema: 'llms'`, no mapping code.
 * Callers ask for a row's `name`; `model_name` is what the backend gets; secrets and base URLs come
 * from the environment variables `auth_meta` names, read per request.
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 LLMS_LIST_PATH=/api/llms OPENAI_API_KEY=sk-... \
 *     OLLAMA_BASE_URL=http://127.0.0.1:11434 node examples/llms-schema.ts
 * Optional: MODEL (a row's name; default: the scope's is_default row), SCOPE (default global).
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

const router = createLLMRouter({
  admin: { schema: 'llms', listPath: process.env.LLMS_LIST_PATH ?? '/api/llm-backends/public' },
  scope: process.env.SCOPE ?? 'global',
})
// Rows that cannot be mapped (anthropic, bedrock, a secret written into auth_meta, ...) are reported, not guessed.
router.on('config:invalid-record', (e) =>
  console.log(`not used: row ${e.index} "${e.modelName}" ${e.field}: ${e.message}`),
)

try {
  await router.refresh()
  for (const r of router.config()?.records ?? []) {
    const url =
      r.endpoint_url_env === undefined
        ? r.endpoint_url
        : `$${r.endpoint_url_env} (else ${r.endpoint_url || 'none'})`
    console.log(
      `"${r.model_name}": ${r.backend_type} ${r.backend_model} at ${url}, priority ${r.priority}${r.is_default ? ', default' : ''}`,
    )
  }
  const model = process.env.MODEL
  const result = await router.generate({
    ...(model === undefined ? {} : { model }),
    prompt: 'Say hello in five words.',
    maxTokens: 50,
  })
  console.log(`${result.model} (${result.backend} at ${result.endpoint}): ${result.response}`)
} catch (error) {
  if (isRouterError(error)) {
    console.error(`${error.code}: ${error.message}`)
    // ALL_BACKENDS_FAILED: the last attempt's error says what to fix (e.g. which variable is unset).
    if (error.cause instanceof Error) console.error(`  last error: ${error.cause.message}`)
  } else console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
