/**
 * An admin that serves seed 003's providers and models (`GET /api/providers/all`: base_url, RPM/TPM
 * limits, champion and default models, models with fallback_priority, Fernet-encrypted API keys):
 * `admin.schema: 'providers'`. The Fernet key is read from LLM_ROUTER_ENCRYPTION_KEY (or the variable
 * `admin.encryptionKeyEnv` names) per request; the decrypted API key never shows in config, events,
 * errors or metrics.
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:5000 LLM_ROUTER_ENCRYPTION_KEY=<the admin's Fernet key> \
 *     node examples/providers-schema.ts
 * Optional: MODEL (a model id; default: the champion), PROMPT.
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

const router = createLLMRouter({ admin: { schema: 'providers' } })
router.on('config:invalid-record', (e) =>
  console.log(`not used: provider ${e.index} ${e.modelName} ${e.field}: ${e.message}`),
)

try {
  await router.refresh()
  for (const r of router.config()?.records ?? []) {
    const limits = r.rpm === undefined ? '' : `, ${r.rpm} rpm / ${r.tpm ?? '-'} tpm`
    const key = r.auth !== undefined && 'bearer_encrypted' in r.auth ? ', encrypted key' : ''
    console.log(
      `${r.provider}/${r.model_name}: ${r.backend_type} at ${r.endpoint_url}, priority ${r.priority}${limits}${key}${r.is_default ? ', champion' : ''}`,
    )
  }
  const model = process.env.MODEL
  // 'priority': when the model fails, its provider's next models (fallback_priority order) answer first.
  const result = await router.generate({
    ...(model === undefined ? {} : { model }),
    prompt: process.env.PROMPT ?? 'Say hello in five words.',
    fallbackModels: 'priority',
    maxTokens: 50,
  })
  const cost = result.cost === undefined ? 'unpriced' : `$${result.cost.toFixed(6)}`
  console.log(`${result.model} (${result.backend} at ${result.endpoint}, ${cost}): ${result.response}`)
  console.log(`tried: ${result.attempts.map((a) => `${a.model} ${a.ok ? 'ok' : a.code}`).join(' -> ')}`)
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
