/**
 * OpenTelemetry: record the router's metrics into your MeterProvider, named by the GenAI semantic
 * conventions so stock GenAI dashboards read them: gen_ai.client.operation.duration (s),
 * gen_ai.client.token.usage ({token}, gen_ai.token.type input/output), gen_ai.client.operation.time_to_first_chunk
 * (s, streams), plus the router's own llm_router.fallbacks counter. Attributes: gen_ai.operation.name,
 * gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model, server.address, server.port, error.type.
 *
 * In a real service the MeterProvider comes from @opentelemetry/sdk-metrics with an exporter (OTLP,
 * Prometheus, ...). So that this example needs nothing beyond @opentelemetry/api, a tiny meter that
 * prints every recorded value stands in for the SDK.
 *
 * Run:
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/opentelemetry.ts
 *   LLM_ROUTER_ADMIN_URL=http://127.0.0.1:8000 node examples/opentelemetry.ts
 */
import { type Attributes, createNoopMeter, type Meter, metrics } from '@opentelemetry/api'
import { createLLMRouter } from 'llm-backend-router'
import { createOpenTelemetrySink } from 'llm-backend-router/sinks'

/** Stand-in for the SDK: the api's no-op meter, with counters and histograms that print. */
function consoleMeter(): Meter {
  const show = (kind: string, name: string, value: number, attributes: Attributes = {}) => {
    const attrs = Object.entries(attributes)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ')
    console.log(`otel ${kind} ${name} ${value} {${attrs}}`)
  }
  return Object.assign(Object.create(createNoopMeter()) as Meter, {
    createCounter: (name: string) => ({ add: (v: number, a?: Attributes) => show('counter', name, v, a) }),
    createHistogram: (name: string) => ({
      record: (v: number, a?: Attributes) => show('histogram', name, v, a),
    }),
  })
}

// What your telemetry setup does once at startup (the SDK's MeterProvider here instead).
const meter = consoleMeter()
metrics.setGlobalMeterProvider({ getMeter: () => meter })

const router = createLLMRouter({
  // To keep posting to the admin API as well, combine sinks: fanoutSinks(otelSink, createHttpSink({ url })).
  metrics: createOpenTelemetrySink({ meter: metrics.getMeter('llm-backend-router') }),
})

try {
  const result = await router.generate({
    model: process.env.MODEL ?? 'llama3.2',
    prompt: 'Name one planet.',
    maxTokens: 30,
  })
  console.log(`answer from ${result.backend}: ${result.response}`)
  // A streamed request also records gen_ai.client.operation.time_to_first_chunk.
  const stream = router.stream({
    model: process.env.MODEL ?? 'llama3.2',
    prompt: 'Count to five.',
    maxTokens: 30,
  })
  let text = ''
  for await (const chunk of stream) text += chunk.text
  console.log(`streamed: ${text}`)
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await router.close()
}
