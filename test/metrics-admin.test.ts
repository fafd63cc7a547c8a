/**
 * End to end against the kit's admin, which by default behaves like the seed's FastAPI admin (seed 004):
 * ONE metric record per POST, an array answered with 422. With only `adminUrl` set, every record must
 * arrive; an admin that takes arrays keeps getting batches.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLLMRouter, type LLMRouter } from '../src/index.js'
import {
  type AdminServer,
  type OllamaServer,
  startAdminServer,
  startOllamaServer,
} from '../src/testing/index.js'

let ollama: OllamaServer
const admins: AdminServer[] = []
const routers: LLMRouter[] = []

beforeAll(async () => {
  ollama = await startOllamaServer({ respond: 'ok' })
})
afterAll(async () => {
  await ollama.stop()
})
afterEach(async () => {
  for (const r of routers.splice(0)) await r.close()
  for (const a of admins.splice(0)) await a.stop()
})

async function adminWith(options: Parameters<typeof startAdminServer>[0] = {}): Promise<AdminServer> {
  const admin = await startAdminServer({
    records: [
      { model_name: 'm', backend_type: 'ollama', endpoint_url: ollama.url, enabled: true, priority: 1 },
    ],
    ...options,
  })
  admins.push(admin)
  return admin
}

/** 20 requests with distinct request ids, then close() (which flushes). */
async function twentyRequests(adminUrl: string): Promise<{ ids: string[]; flushFailures: number }> {
  const router = createLLMRouter({ adminUrl, env: {} })
  routers.push(router)
  let flushFailures = 0
  router.on('metrics:flush-failed', () => flushFailures++)
  const ids: string[] = []
  for (let i = 0; i < 20; i++) {
    ids.push(`req-${i}`)
    await router.generate({ model: 'm', prompt: 'x', metadata: { requestId: `req-${i}` } })
  }
  await router.close()
  return { ids, flushFailures }
}

describe('with only adminUrl set', () => {
  it('every record reaches a seed-shaped admin (one record per POST, 422 on arrays)', async () => {
    const admin = await adminWith()
    const { ids, flushFailures } = await twentyRequests(admin.url)
    expect(admin.metrics.map((m) => m.request_id).sort()).toEqual([...ids].sort())
    expect(flushFailures).toBe(0)
    // The first answer (a 422 to the array) taught the sink the shape; the 20 records then went alone.
    expect(admin.metricPosts.map((p) => [p.array, p.status])).toEqual([
      [true, 422],
      ...ids.map(() => [false, 200]),
    ])
  })

  it('an admin that accepts arrays (acceptArrays: true) gets them in one batch', async () => {
    const admin = await adminWith({ acceptArrays: true })
    const { ids } = await twentyRequests(admin.url)
    expect(admin.metrics.map((m) => m.request_id)).toEqual(ids)
    expect(admin.metricPosts.map((p) => [p.array, p.records, p.status])).toEqual([[true, 20, 200]])
  })
})
