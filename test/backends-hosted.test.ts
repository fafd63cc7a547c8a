import { describe, expect, it } from 'vitest'
import {
  hostedChatAdapter,
  hostedEmbedAdapter,
  hostedGenerateAdapter,
  unversioned,
} from '../src/backends/hosted.js'
import { ErrorCode, isRouterError } from '../src/errors.js'

const enc = new TextEncoder()

/** An OpenAI chat-completions SSE chunk with this delta and finish_reason. */
const sse = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`

describe('hosted adapters (backend_type openai)', () => {
  it('paths drop only a leading /v1 segment: the base URL already carries the API version', () => {
    expect(unversioned('/v1/chat/completions')).toBe('/chat/completions')
    expect(unversioned('/v1/embeddings')).toBe('/embeddings')
    expect(unversioned('/v1beta/x')).toBe('/v1beta/x')
    expect(unversioned('/api/v1/x')).toBe('/api/v1/x')
    expect([hostedChatAdapter.path, hostedGenerateAdapter.path, hostedEmbedAdapter.path]).toEqual([
      '/chat/completions',
      '/chat/completions',
      '/embeddings',
    ])
    expect([hostedChatAdapter.kind, hostedGenerateAdapter.kind, hostedEmbedAdapter.kind]).toEqual([
      'openai',
      'openai',
      'openai',
    ])
  })

  it('generate encodes the prompt as a user message after the system message, with the sampling fields', () => {
    const body = JSON.parse(
      hostedGenerateAdapter.encode({
        model: 'gpt-4o-mini',
        prompt: 'Hi',
        system: 'Be brief.',
        maxTokens: 5,
        temperature: 0.2,
        stop: ['\n'],
        stream: true,
        options: { seed: 7 },
      }),
    )
    expect(body).toEqual({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 5,
      temperature: 0.2,
      stop: ['\n'],
      stream: true,
      stream_options: { include_usage: true },
      seed: 7,
    })
    const plain = JSON.parse(hostedGenerateAdapter.encode({ prompt: 'Hi', system: '', stream: false }))
    expect(plain).toEqual({ messages: [{ role: 'user', content: 'Hi' }], stream: false })
  })

  it('generate reads the chat answer as its text', () => {
    const out = hostedGenerateAdapter.decode(
      JSON.stringify({
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      }),
    )
    expect(out).toMatchObject({ text: 'Hello', doneReason: 'stop', promptTokens: 3, completionTokens: 1 })
  })

  it('a generate stream hands out only non-empty text: reasoning-only and empty frames are not chunks', () => {
    const body =
      sse({ role: 'assistant', content: '' }) +
      sse({ reasoning_content: 'thinking' }) +
      sse({ content: 'Hel' }) +
      sse({ content: 'lo' }) +
      sse({}, 'stop') +
      'data: [DONE]\n\n'
    const decoder = hostedGenerateAdapter.createStreamDecoder()
    const texts: string[] = []
    const bytes = enc.encode(body)
    // Byte by byte: the wrapper must keep the inner decoder's chunk-boundary safety.
    for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1), (t) => texts.push(t))
    expect(decoder.done).toBe(true)
    const out = decoder.end((t) => texts.push(t))
    expect(texts).toEqual(['Hel', 'lo'])
    expect(out).toMatchObject({ text: 'Hello', doneReason: 'stop' })
  })

  it('a generate stream cut before [DONE] is STREAM_ERROR, as a chat stream', () => {
    const decoder = hostedGenerateAdapter.createStreamDecoder()
    decoder.push(enc.encode(sse({ content: 'Hel' })), () => {})
    expect(decoder.done).toBe(false)
    let error: unknown
    try {
      decoder.end(() => {})
    } catch (e) {
      error = e
    }
    expect(isRouterError(error) && error.code).toBe(ErrorCode.STREAM_ERROR)
  })
})
