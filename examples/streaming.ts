/**
 * Streaming: print the answer as it arrives; Ctrl+C stops the generation on the server too.
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/streaming.ts
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/streaming.ts
 * Optional: MODEL (default llama3.2), PROMPT.
 */
import { createLLMRouter, hasErrorCode, isRouterError } from 'llm-backend-router'

const router = createLLMRouter()

const stream = router.stream({
  model: process.env.MODEL ?? 'llama3.2',
  prompt: process.env.PROMPT ?? 'Tell a very short story about a lighthouse keeper.',
})
// abort() closes the connection, which makes Ollama and mlx_lm.server stop generating.
process.once('SIGINT', () => stream.abort(new Error('interrupted')))

try {
  // The router falls back to another backend transparently until the first chunk has been yielded.
  for await (const chunk of stream) process.stdout.write(chunk.text)
  const result = await stream.result
  console.log(
    `\n\n[${result.model} on ${result.backend}: first token after ${Math.round(result.timeToFirstTokenMs ?? 0)} ms, ` +
      `${result.usage.completionTokens} tokens in ${Math.round(result.latencyMs)} ms]`,
  )
} catch (error) {
  if (hasErrorCode(error, 'ABORTED')) console.error('\n[stopped]')
  // STREAM_INTERRUPTED: text was already shown, then the backend failed; `delivered` says how much.
  else if (isRouterError(error)) console.error(`\n${error.code}: ${error.message}`)
  else console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
