// Canned backend answers shared by the stand-in server (which sends them) and the bench client (which
// checks every response against them). About 60 tokens of text with a few multi-byte UTF-8 characters,
// so the stream decoders' UTF-8 handling is on the measured path, as it is with real models.

export const OLLAMA_MODEL = 'llama3.2:3b'
export const MLX_MODEL = 'mlx-community/Llama-3.2-3B-Instruct-4bit'

const WORDS = (
  'Sure! Here is a short answer: a router sits on every call, so its cost per request matters ' +
  'more than its features. Keep the hot path flat — no schemas, no timers, no copies — and move ' +
  'the work to config time. Café, naïve, résumé: bytes split across packets must still decode. 🚀 ' +
  'Short answers stay fast for all. Done.'
).split(' ')

/** Token deltas as a model streams them: the first word bare, the rest with their leading space. */
export const TOKENS = WORDS.map((w, i) => (i === 0 ? w : ` ${w}`))
export const TEXT = TOKENS.join('')
export const PROMPT_TOKENS = 26
export const COMPLETION_TOKENS = TOKENS.length

export const PROMPT =
  'You are a concise assistant. In two or three sentences, explain why an LLM router must be cheap per request.'

const CREATED_AT = '2026-11-23T12:00:00.123456789Z'
const CONTEXT = Array.from(
  { length: PROMPT_TOKENS + COMPLETION_TOKENS + 10 },
  (_, i) => 128000 + ((i * 7919) % 4096),
)

/** Ollama's final-line counters, the same on every final line (generation and chat). */
const OLLAMA_METRICS = {
  total_duration: 1_162_761_250,
  load_duration: 6_683_708,
  prompt_eval_count: PROMPT_TOKENS,
  prompt_eval_duration: 201_222_000,
  eval_count: COMPLETION_TOKENS,
  eval_duration: 953_997_000,
}

/** Ollama `/api/generate` with `stream:false` (field order and key set as Ollama emits them). */
export function ollamaJson() {
  return JSON.stringify({
    model: OLLAMA_MODEL,
    created_at: CREATED_AT,
    response: TEXT,
    done: true,
    done_reason: 'stop',
    context: CONTEXT,
    ...OLLAMA_METRICS,
  })
}

/** Ollama NDJSON lines (each with its `\n`): one per token, then the final `done:true` line with metrics. */
export function ollamaStreamLines() {
  const lines = TOKENS.map(
    (t) => `${JSON.stringify({ model: OLLAMA_MODEL, created_at: CREATED_AT, response: t, done: false })}\n`,
  )
  lines.push(
    `${JSON.stringify({
      model: OLLAMA_MODEL,
      created_at: CREATED_AT,
      response: '',
      done: true,
      done_reason: 'stop',
      context: CONTEXT,
      ...OLLAMA_METRICS,
    })}\n`,
  )
  return lines
}

const CMPL = {
  id: 'cmpl-5d0f3c1e-8a47-4f7b-9a53-2f5e0c6b9d11',
  system_fingerprint: '0.28.0-0.29.1-macOS-15.5-arm64-arm-64bit-applegpu_g15s',
}
const USAGE = {
  prompt_tokens: PROMPT_TOKENS,
  completion_tokens: COMPLETION_TOKENS,
  total_tokens: PROMPT_TOKENS + COMPLETION_TOKENS,
  prompt_tokens_details: { cached_tokens: 0 },
}

/** mlx_lm.server `/v1/completions` with `stream:false`. */
export function openaiJson() {
  return JSON.stringify({
    ...CMPL,
    object: 'text_completion',
    model: MLX_MODEL,
    created: 1_795_000_000,
    choices: [{ index: 0, finish_reason: 'stop', text: TEXT }],
    usage: USAGE,
  })
}

/** mlx_lm.server SSE events (each with its blank line): deltas, the finish chunk, the usage chunk, [DONE]. */
export function openaiSseEvents() {
  const base = { ...CMPL, object: 'text_completion', model: MLX_MODEL, created: 1_795_000_000 }
  const events = TOKENS.map(
    (t) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, finish_reason: null, text: t }] })}\n\n`,
  )
  events.push(
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, finish_reason: 'stop', text: '' }] })}\n\n`,
  )
  events.push(
    `data: ${JSON.stringify({ ...base, object: 'chat.completion', choices: [], usage: USAGE })}\n\n`,
  )
  events.push('data: [DONE]\n\n')
  return events
}

/** Admin records for the bench. `ports` come from the server process. */
export function adminRecords(ports) {
  const local = (port) => `http://127.0.0.1:${port}`
  // Every bench record has the same priority and limits; `extra` (a fallback) goes before them.
  const record = (id, model_name, backend_type, endpoint_url, backend_model, description, extra = {}) => ({
    id,
    model_name,
    backend_type,
    endpoint_url,
    backend_model,
    ...extra,
    enabled: true,
    priority: 100,
    max_tokens: 256,
    temperature_default: 0.7,
    timeout_seconds: 60,
    description,
  })
  // `bench-pool`: four records of one model and priority, so the router chooses among them.
  const pool = (ports.ollamaPool ?? []).map((port, i) =>
    record(100 + i, 'bench-pool', 'ollama', local(port), OLLAMA_MODEL, `bench: pool member ${i + 1} of 4`),
  )
  const fallback = { fallback_url: local(ports.ollama) }
  return [
    ...pool,
    record(1, 'bench-ollama', 'ollama', local(ports.ollama), OLLAMA_MODEL, 'bench: Ollama stand-in'),
    record(2, 'bench-mlx', 'mlx', local(ports.openai), MLX_MODEL, 'bench: mlx_lm.server stand-in'),
    record(
      5,
      'bench-ollama-tokens',
      'ollama',
      `${local(ports.ollama)}/tokens`,
      OLLAMA_MODEL,
      'bench: Ollama stand-in, streams one write per token',
    ),
    record(
      6,
      'bench-mlx-tokens',
      'mlx',
      `${local(ports.openai)}/tokens`,
      MLX_MODEL,
      'bench: mlx_lm.server stand-in, streams one write per token',
    ),
    record(
      3,
      'bench-auto-refused',
      'auto',
      local(ports.refused),
      MLX_MODEL,
      'bench: MLX endpoint refuses connections, Ollama answers',
      fallback,
    ),
    record(
      4,
      'bench-auto-counting',
      'auto',
      local(ports.counting),
      MLX_MODEL,
      'bench: MLX endpoint accepts and drops every connection (counted), Ollama answers',
      fallback,
    ),
  ]
}

// --- chat (issue 12) ----------------------------------------------------------------------------

/** The conversation the chat scenarios send (the router and the raw client send the same messages). */
export const CHAT_MESSAGES = [
  { role: 'system', content: 'You are a concise assistant.' },
  { role: 'user', content: PROMPT },
]

/** Ollama `/api/chat` with `stream:false`. */
export function ollamaChatJson() {
  return JSON.stringify({
    model: OLLAMA_MODEL,
    created_at: CREATED_AT,
    message: { role: 'assistant', content: TEXT },
    done_reason: 'stop',
    done: true,
    ...OLLAMA_METRICS,
  })
}

/** Ollama `/api/chat` NDJSON lines: one message delta per token, then the final `done:true` line. */
export function ollamaChatStreamLines() {
  const lines = TOKENS.map(
    (t) =>
      `${JSON.stringify({ model: OLLAMA_MODEL, created_at: CREATED_AT, message: { role: 'assistant', content: t }, done: false })}\n`,
  )
  lines.push(
    `${JSON.stringify({
      model: OLLAMA_MODEL,
      created_at: CREATED_AT,
      message: { role: 'assistant', content: '' },
      done_reason: 'stop',
      done: true,
      ...OLLAMA_METRICS,
    })}\n`,
  )
  return lines
}

const CHAT_CMPL = { ...CMPL, id: 'chatcmpl-5d0f3c1e-8a47-4f7b-9a53-2f5e0c6b9d11' }

/** OpenAI-compatible `/v1/chat/completions` with `stream:false` (llama-server's key set). */
export function openaiChatJson() {
  return JSON.stringify({
    ...CHAT_CMPL,
    object: 'chat.completion',
    model: MLX_MODEL,
    created: 1_795_000_000,
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: TEXT } }],
    usage: USAGE,
  })
}

/** OpenAI-compatible chat SSE: a role delta, content deltas, the finish chunk, the usage chunk, [DONE]. */
export function openaiChatSseEvents() {
  const base = { ...CHAT_CMPL, object: 'chat.completion.chunk', model: MLX_MODEL, created: 1_795_000_000 }
  const event = (delta, finish = null) =>
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
  const events = [event({ role: 'assistant', content: null })]
  for (const t of TOKENS) events.push(event({ content: t }))
  events.push(event({}, 'stop'))
  events.push(`data: ${JSON.stringify({ ...base, choices: [], usage: USAGE })}\n\n`)
  events.push('data: [DONE]\n\n')
  return events
}
