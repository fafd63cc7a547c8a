/**
 * A custom metrics sink: every finished request produces one MetricRecord (latency, tokens, tokens/s,
 * time to first token, outcome, error code, fallback, ...). Send them wherever you like.
 *
 * Two ways, combined with fanoutSinks():
 *   - createCallbackSink(fn): a function per record (here: one JSON line on stderr, like a log shipper);
 *   - your own object implementing MetricsSink { write, flush, close } (here: per-model totals).
 * Passing `metrics: <sink>` replaces the built-in HTTP sink that posts to the admin API.
 *
 * Run:
 *   OLLAMA_HOST=127.0.0.1:11434 node examples/custom-sink.ts
 */
import { createLLMRouter, type MetricRecord, type MetricsSink } from 'llm-backend-router'
import { createCallbackSink, fanoutSinks } from 'llm-backend-router/sinks'

// write() is called on the request path: it must be quick and must not throw. Aggregate, don't do I/O.
class TotalsSink implements MetricsSink {
  readonly totals = new Map<string, { requests: number; errors: number; tokens: number; seconds: number }>()

  write(record: MetricRecord): void {
    const key = `${record.model} on ${record.backend}`
    const t = this.totals.get(key) ?? { requests: 0, errors: 0, tokens: 0, seconds: 0 }
    t.requests++
    if (record.outcome === 'error') t.errors++
    t.tokens += record.tokens
    t.seconds += record.latency_seconds
    this.totals.set(key, t)
  }

  async flush(): Promise<void> {
    // A real sink would send what it buffered here; flush() is also called by close().
  }

  async close(): Promise<void> {
    await this.flush()
    for (const [key, t] of this.totals) {
      console.log(
        `${key}: ${t.requests} requests, ${t.errors} errors, ${t.tokens} tokens, ` +
          `avg ${((t.seconds / t.requests) * 1000).toFixed(0)} ms`,
      )
    }
  }
}

const totals = new TotalsSink()
const jsonLines = createCallbackSink((record) => {
  process.stderr.write(`${JSON.stringify(record)}\n`)
})

const router = createLLMRouter({ metrics: fanoutSinks(jsonLines, totals) })
const model = process.env.MODEL ?? 'llama3.2'

try {
  for (const prompt of ['What is 2 + 2?', 'Name a colour.', 'Say hi.']) {
    const result = await router.generate({ model, prompt, maxTokens: 50 })
    console.log(`${prompt} -> ${result.response.slice(0, 60)}`)
  }
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  // close() closes the sink too, which prints the totals.
  await router.close()
}
