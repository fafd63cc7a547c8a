/**
 * Embeddings: embed a handful of documents (sent in batches), embed a question, and rank the documents by
 * cosine similarity. `e.embeddings[i]` is always the vector of `input[i]`.
 *
 * Run (Node 22.18+ runs TypeScript directly):
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/embeddings.ts             # Ollama's /api/embed
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/embeddings.ts
 * Optional: MODEL (default nomic-embed-text: `ollama pull nomic-embed-text`), QUESTION.
 *
 * An `auto` record tries its MLX server first: mlx_lm.server has no embeddings route, so that attempt fails
 * with UNSUPPORTED_OPERATION and the call goes on to the record's Ollama fallback (printed below).
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

const documents = [
  'The sky looks blue because air scatters short wavelengths of sunlight more than long ones.',
  'Sourdough bread rises thanks to wild yeast and lactic acid bacteria.',
  'A sunset is red because light crosses more air and the blue is scattered away.',
  'Rust is iron oxide, formed when iron reacts with oxygen and water.',
  'Rainbows appear when sunlight is refracted and reflected inside raindrops.',
  'Basil grows best in warm weather with plenty of sun.',
]

function cosine(a: number[], b: number[]): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!
    na += a[i]! * a[i]!
    nb += b[i]! * b[i]!
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb))
}

const router = createLLMRouter()
const model = process.env.MODEL ?? 'nomic-embed-text'

try {
  // Four inputs per backend request here to show the batching; the default is 64.
  const docs = await router.embed({ model, input: documents, batchSize: 4 })
  console.log(
    `embedded ${docs.embeddings.length} documents with ${docs.model} on ${docs.backend} at ${docs.endpoint}: ` +
      `${docs.batches} batches, ${docs.usage.promptTokens} input tokens, ${docs.embeddings[0]?.length} dimensions`,
  )
  for (const a of docs.attempts.filter((a) => !a.ok))
    console.log(`attempt ${a.backend} ${a.endpoint}: ${a.code}`)

  const question = process.env.QUESTION ?? 'Why is the sky blue?'
  const q = await router.embed({ model, input: question })
  const ranked = documents
    .map((text, i) => ({ text, score: cosine(q.embeddings[0]!, docs.embeddings[i]!) }))
    .sort((x, y) => y.score - x.score)
  console.log(`closest to "${question}":`)
  for (const { text, score } of ranked.slice(0, 3)) console.log(`  ${score.toFixed(3)}  ${text}`)
} catch (error) {
  if (isRouterError(error)) console.error(`${error.code}: ${error.message}`)
  else console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
