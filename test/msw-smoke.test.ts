import { HttpResponse, http } from 'msw'
import { request } from 'undici'
import { expect, it } from 'vitest'
import { setupMockNetwork } from './helpers/msw.js'

const net = setupMockNetwork()

it('msw intercepts undici.request at the socket level', async () => {
  net.use(
    http.post('http://ollama.test:11434/api/generate', async ({ request: req }) => {
      const body = (await req.json()) as { prompt: string }
      return HttpResponse.json({ response: `echo ${body.prompt}`, done: true })
    }),
  )
  const res = await request('http://ollama.test:11434/api/generate', {
    method: 'POST',
    body: JSON.stringify({ prompt: 'hi' }),
  })
  expect(res.statusCode).toBe(200)
  expect(await res.body.json()).toEqual({ response: 'echo hi', done: true })
})
