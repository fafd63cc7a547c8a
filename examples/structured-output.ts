/**
 * Structured output: ask for JSON that follows a schema and parse it. `format` takes `'json'` (any
 * JSON object) or a JSON schema; the router sends it as Ollama's `format` or as OpenAI-style
 * `response_format` (llama.cpp and vLLM enforce it; mlx_lm.server does not read it, so declare
 * `json_schema` in the capabilities of the records that can, and the others are skipped).
 *
 * Run:
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/structured-output.ts
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/structured-output.ts
 * Optional: MODEL (default llama3.2), CITY.
 */
import { createLLMRouter, isRouterError } from 'llm-backend-router'

interface CityFacts {
  city: string
  country: string
  population: number
}

const schema = {
  title: 'CityFacts',
  type: 'object',
  properties: {
    city: { type: 'string' },
    country: { type: 'string' },
    population: { type: 'integer' },
  },
  required: ['city', 'country', 'population'],
}

/** A small check in place of a schema library: the model is asked for this shape, not trusted with it. */
function isCityFacts(value: unknown): value is CityFacts {
  const v = value as Partial<CityFacts> | null
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.city === 'string' &&
    typeof v.country === 'string' &&
    typeof v.population === 'number'
  )
}

const router = createLLMRouter()
try {
  const city = process.env.CITY ?? 'Lyon'
  const result = await router.chat({
    model: process.env.MODEL ?? 'llama3.2',
    messages: [{ role: 'user', content: `Give the country and population of ${city} as JSON.` }],
    format: schema,
    temperature: 0,
  })
  const parsed: unknown = JSON.parse(result.message.content)
  if (!isCityFacts(parsed)) throw new Error(`the answer does not match the schema: ${result.message.content}`)
  console.log(`[${result.model} on ${result.backend}] ${JSON.stringify(parsed)}`)
  console.log(`city=${parsed.city} country=${parsed.country} population=${parsed.population}`)
} catch (error) {
  if (isRouterError(error)) console.error(`${error.code}: ${error.message}`)
  else console.error(error instanceof Error ? error.message : error)
  process.exitCode = 1
} finally {
  await router.close()
}
