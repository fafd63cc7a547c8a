// Canned embeddings answers for the bench (issue 12), shared by the stand-in server (which sends them)
// and the bench client (which checks every response against them): 8 short inputs, 384-dimensional unit
// vectors (a small embedding model), Ollama's `/api/embed` and llama-server's `/v1/embeddings` shapes.

export const EMBED_INPUTS = [
  'A router sits on every call.',
  'Its cost per request matters more than its features.',
  'Keep the hot path flat.',
  'Move the work to config time.',
  'Café, naïve, résumé.',
  'Bytes split across packets must still decode.',
  'Short answers stay fast for all.',
  'Done.',
]
export const EMBED_DIMENSIONS = 384
const EMBED_TOKENS = 40

/** Deterministic unit vectors, printed with 8 significant digits as servers print float32 values. */
export const EMBEDDINGS = EMBED_INPUTS.map((_, i) => {
  const raw = Array.from({ length: EMBED_DIMENSIONS }, (_, d) => Math.sin((i + 1) * 12.9898 + d * 78.233))
  const norm = Math.sqrt(raw.reduce((n, x) => n + x * x, 0))
  return raw.map((x) => Number((x / norm).toPrecision(8)))
})

/** Ollama `/api/embed` (EmbedResponse field order). `model` is whatever the request named. */
export function ollamaEmbedJson(model) {
  return JSON.stringify({
    model,
    embeddings: EMBEDDINGS,
    total_duration: 14_250_000,
    load_duration: 1_020_000,
    prompt_eval_count: EMBED_TOKENS,
  })
}

/** llama-server `/v1/embeddings`: `data[]` by `index`, usage. */
export function openaiEmbeddingsJson(model) {
  return JSON.stringify({
    model,
    object: 'list',
    usage: { prompt_tokens: EMBED_TOKENS, total_tokens: EMBED_TOKENS },
    data: EMBEDDINGS.map((embedding, index) => ({ embedding, index, object: 'embedding' })),
  })
}
