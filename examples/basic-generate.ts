/**
 * Basic generate: one request, routed by the admin API's backend records.
 *
 * Run (Node 22.18+ runs TypeScript directly):
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/basic-generate.ts
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/basic-generate.ts     # no admin: straight to Ollama
 *   npm run demo -- --serve                                          # stand-ins to try it against
 * Optional: MODEL (default llama3.2), PROMPT.
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

// With no options the router reads LLM_ROUTER_ADMIN_URL; without it, OLLAMA_HOST / MLX_HOST.
const router = createLLMRouter()

try {
  const result = await router.generate({
    model: process.env.MODEL ?? 'llama3.2',
    prompt: process.env.PROMPT ?? 'Why is the sky blue? Answer in one sentence.',
    maxTokens: 200,
  })
  console.log(result.response)
  console.log(
    `\n[${result.model} on ${result.backend} at ${result.endpoint}: ${Math.round(result.latencyMs)} ms, ` +
      `${result.usage.completionTokens} tokens, ${result.tokensPerSecond.toFixed(1)} tok/s]`,
  )
} catch (error) {
  // Every failure is a RouterError with a stable code and a message that says what to do.
  if (isRouterError(error)) console.error(`${error.code}: ${error.message}`)
  else console.error(error)
  process.exitCode = 1
} finally {
  // Flushes pending metrics and closes connections, so the process can exit.
  await router.close()
}
