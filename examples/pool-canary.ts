/**
 * A pool of two Ollama servers with a 10 % canary: records of one model_name and one priority form a
 * pool; `weight` splits the traffic (1 next to 9 is a 10 % canary), a `metadata.sessionId` keeps each
 * conversation on one member (and so on one side of the split), and every result says which member
 * answered and why (`attempts[].selectedBy`, the metric record's `selected_by`).
 *
 * Run against your two servers (the records would normally come from the admin API):
 *   OLLAMA_MAIN_URL=http://10.0.0.5:11434 OLLAMA_CANARY_URL=http://10.0.0.6:11434 MODEL=llama3.2 node examples/pool-canary.ts
 * Without them it starts two testing-kit stand-ins on 127.0.0.1, so it runs anywhere.
 */
import { createLLMRouter } from 'llm-backend-router'
import { startOllamaServer } from 'llm-backend-router/testing'

const model = process.env.MODEL ?? 'llama3.2'
let mainUrl = process.env.OLLAMA_MAIN_URL
let canaryUrl = process.env.OLLAMA_CANARY_URL
const standIns: { stop(): Promise<void> }[] = []
if (mainUrl === undefined || canaryUrl === undefined) {
  const main = await startOllamaServer({ respond: 'Answer from the main server.' })
  const canary = await startOllamaServer({ respond: 'Answer from the canary.' })
  standIns.push(main, canary)
  mainUrl = main.url
  canaryUrl = canary.url
}

// What an admin API would serve: same model_name and priority, so one pool.
const records = [
  {
    model_name: model,
    backend_type: 'ollama',
    endpoint_url: mainUrl,
    priority: 1,
    weight: 9,
    keep_alive: '30m',
  },
  {
    model_name: model,
    backend_type: 'ollama',
    endpoint_url: canaryUrl,
    priority: 1,
    weight: 1,
    max_concurrency: 4,
  },
]
const router = createLLMRouter({ env: { LLM_ROUTER_BACKENDS: JSON.stringify(records) }, metrics: false })

const reasons = new Map<string, number>()
router.on('metric', (m) =>
  reasons.set(m.selected_by ?? 'none', (reasons.get(m.selected_by ?? 'none') ?? 0) + 1),
)

try {
  // 200 users, one question each: about 10 % of them land on the canary, each for good.
  let onCanary = 0
  const users = Array.from({ length: 200 }, (_, i) => `user-${i}`)
  for (let i = 0; i < users.length; i += 20) {
    const batch = users
      .slice(i, i + 20)
      .map((sessionId) =>
        router.generate({ model, prompt: 'Say hello.', maxTokens: 16, metadata: { sessionId } }),
      )
    for (const result of await Promise.all(batch)) if (result.endpoint === canaryUrl) onCanary++
  }
  console.log(`canary share: ${((onCanary * 100) / users.length).toFixed(1)}% of ${users.length} sessions`)

  // One conversation: every turn goes to the same member.
  const turns: string[] = []
  for (let turn = 1; turn <= 5; turn++) {
    const result = await router.generate({
      model,
      prompt: `Turn ${turn}: go on.`,
      maxTokens: 16,
      metadata: { sessionId: 'user-7' },
    })
    const last = result.attempts[result.attempts.length - 1]
    turns.push(`${result.endpoint === canaryUrl ? 'canary' : 'main'} (${last?.selectedBy})`)
  }
  console.log(`session user-7: ${turns.join(', ')}`)
  console.log(`why members were chosen: ${[...reasons].map(([why, n]) => `${why} ${n}`).join(', ')}`)
} finally {
  await router.close()
  await Promise.all(standIns.map((s) => s.stop()))
}
