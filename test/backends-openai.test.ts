import { describe, expect, it } from 'vitest'
import { adapterFor, openaiAdapter } from '../src/backends/index.js'
import type { WireRequest } from '../src/backends/types.js'
import { ErrorCode, isRouterError, type RouterError } from '../src/errors.js'

const enc = new TextEncoder()

function run(text: string, size = Number.POSITIVE_INFINITY, decoder = openaiAdapter.createStreamDecoder()) {
  const bytes = enc.encode(text)
  const deltas: string[] = []
  const onText = (t: string) => deltas.push(t)
  const step = Math.min(size, Math.max(bytes.length, 1))
  for (let i = 0; i < bytes.length; i += step) decoder.push(bytes.subarray(i, i + step), onText)
  const output = decoder.end(onText)
  return { deltas, output, decoder }
}

function caught(fn: () => unknown): RouterError {
  try {
    fn()
  } catch (error) {
    if (isRouterError(error)) return error
    throw new Error(`expected a RouterError, got ${String(error)}`)
  }
  throw new Error('expected a throw')
}

const sse = (...events: string[]) => events.map((e) => `${e}\n\n`).join('')

// protocols.md §2.3 (illustrative, exact key set)
const MLX_STREAM = sse(
  ': keepalive 2048/3000',
  'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":null,"text":" there"}]}',
  'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":null,"text":" was"}]}',
  'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"text_completion","model":"default_model","created":1755849600,"choices":[{"index":0,"finish_reason":"stop","text":""}]}',
  'data: {"id":"cmpl-5d0f…","system_fingerprint":"…","object":"chat.completion","model":"default_model","created":1755849600,"choices":[],"usage":{"prompt_tokens":3000,"completion_tokens":3,"total_tokens":3003,"prompt_tokens_details":{"cached_tokens":0}}}',
  'data: [DONE]',
)

// llama-server: usage and timings ride the final text_completion chunk (protocols.md §4, §6).
const LLAMA_CPP_STREAM = sse(
  'data: {"choices":[{"text":"Hel","index":0,"logprobs":null,"finish_reason":null}],"created":1740000000,"model":"gpt-3.5-turbo","system_fingerprint":"b4800-1a2b3c","object":"text_completion","id":"chatcmpl-abc"}',
  'data: {"choices":[{"text":"lo","index":0,"logprobs":null,"finish_reason":null}],"created":1740000000,"model":"gpt-3.5-turbo","system_fingerprint":"b4800-1a2b3c","object":"text_completion","id":"chatcmpl-abc"}',
  'data: {"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"created":1740000000,"model":"gpt-3.5-turbo","system_fingerprint":"b4800-1a2b3c","object":"text_completion","id":"chatcmpl-abc","usage":{"completion_tokens":2,"prompt_tokens":5,"total_tokens":7},"timings":{"prompt_n":5,"prompt_ms":12.3,"prompt_per_token_ms":2.46,"prompt_per_second":406.5,"predicted_n":2,"predicted_ms":20.1,"predicted_per_token_ms":10.05,"predicted_per_second":99.5}}',
  'data: [DONE]',
)

// Ollama /v1/completions with include_usage: zeroed usage on every chunk, the real one in a choices:[] chunk.
const OLLAMA_V1_STREAM = sse(
  'data: {"id":"cmpl-1","object":"text_completion","created":1755849600,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"text":"Hi","index":0,"finish_reason":null}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}',
  'data: {"id":"cmpl-1","object":"text_completion","created":1755849600,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"text":"","index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}',
  'data: {"id":"cmpl-1","object":"text_completion","created":1755849600,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":26,"completion_tokens":2,"total_tokens":28}}',
  'data: [DONE]',
)

describe('openaiAdapter basics', () => {
  it('is the mlx kind on /v1/completions and is what adapterFor returns', () => {
    expect(openaiAdapter.kind).toBe('mlx')
    expect(openaiAdapter.path).toBe('/v1/completions')
    expect(adapterFor('mlx')).toBe(openaiAdapter)
  })
})

describe('openaiAdapter.encode', () => {
  it('builds a non-streaming body without model when none is set', () => {
    expect(
      openaiAdapter.encode({
        prompt: 'Once upon a time',
        maxTokens: 32,
        temperature: 0.7,
        stop: ['\n\n'],
        stream: false,
        options: { top_p: 0.9 },
      }),
    ).toBe(
      '{"prompt":"Once upon a time","max_tokens":32,"temperature":0.7,"stop":["\\n\\n"],"stream":false,"top_p":0.9}',
    )
  })

  it('sends model when set and stream_options only when streaming', () => {
    expect(
      openaiAdapter.encode({ model: 'mlx-community/Qwen2.5-0.5B-Instruct-4bit', prompt: 'p', stream: true }),
    ).toBe(
      '{"model":"mlx-community/Qwen2.5-0.5B-Instruct-4bit","prompt":"p","stream":true,"stream_options":{"include_usage":true}}',
    )
    expect(openaiAdapter.encode({ prompt: 'p', stream: false, stop: [] })).toBe(
      '{"prompt":"p","stream":false}',
    )
  })

  it('prepends the system prompt, since /v1/completions has no system field', () => {
    expect(
      JSON.parse(openaiAdapter.encode({ prompt: 'Hi', system: 'Be brief.', stream: false })).prompt,
    ).toBe('Be brief.\n\nHi')
    expect(JSON.parse(openaiAdapter.encode({ prompt: 'Hi', system: '', stream: false })).prompt).toBe('Hi')
  })

  it('puts extras top-level, lets them override derived keys, never reserved ones', () => {
    const body = JSON.parse(
      openaiAdapter.encode({
        prompt: 'p',
        stream: false,
        maxTokens: 10,
        options: {
          top_k: 40,
          seed: 7,
          repetition_penalty: 1.1,
          max_tokens: 20,
          model: 'evicts-the-loaded-model',
          prompt: 'x',
          stream: true,
          stream_options: { include_usage: false },
          gone: undefined,
        },
      }),
    )
    expect(body).toEqual({
      prompt: 'p',
      max_tokens: 20,
      stream: false,
      top_k: 40,
      seed: 7,
      repetition_penalty: 1.1,
    })
  })

  it('does not mutate its input', () => {
    const request: WireRequest = { prompt: 'p', system: 's', stream: true, stop: ['a'], options: { seed: 1 } }
    const copy = structuredClone(request)
    openaiAdapter.encode(request)
    expect(request).toEqual(copy)
  })
})

describe('openaiAdapter.decode', () => {
  it('reads the §2.2 example', () => {
    const body =
      '{"id":"cmpl-5d0f…","system_fingerprint":"0.28.0-0.29.1-macOS-15.5-arm64-arm-64bit-applegpu_g15s",' +
      '"object":"text_completion","model":"mlx-community/Qwen2.5-0.5B-Instruct-4bit","created":1755849600,' +
      '"choices":[{"index":0,"finish_reason":"length","text":", in a land far away, there lived …"}],' +
      '"usage":{"prompt_tokens":4,"completion_tokens":32,"total_tokens":36,"prompt_tokens_details":{"cached_tokens":0}}}'
    expect(openaiAdapter.decode(body)).toEqual({
      text: ', in a land far away, there lived …',
      doneReason: 'length',
      promptTokens: 4,
      completionTokens: 32,
    })
  })

  it('tolerates a null finish_reason, missing usage, extra fields and a JSON array (llama.cpp list prompt)', () => {
    expect(openaiAdapter.decode('{"choices":[{"text":"a","finish_reason":null}],"timings":{"x":1}}')).toEqual(
      {
        text: 'a',
        doneReason: null,
        promptTokens: 0,
        completionTokens: 0,
      },
    )
    expect(
      openaiAdapter.decode(
        '[{"choices":[{"text":"first","finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}},' +
          '{"choices":[{"text":"second","finish_reason":"stop"}]}]',
      ),
    ).toEqual({ text: 'first', doneReason: 'stop', promptTokens: 1, completionTokens: 2 })
  })

  it('rejects bodies without choices[0].text as MALFORMED_RESPONSE', () => {
    for (const body of [
      'Not Found',
      '',
      '[]',
      '1',
      '{}',
      '{"choices":[]}',
      '{"choices":[{"message":{"content":"chat"}}]}',
      '{"choices":[{"text":null}]}',
    ]) {
      const error = caught(() => openaiAdapter.decode(body))
      expect(error.code, body).toBe(ErrorCode.MALFORMED_RESPONSE)
      expect(error.backend).toBe('mlx')
    }
  })

  it('treats a 2xx error payload as BACKEND_ERROR (all three shapes)', () => {
    for (const [body, text] of [
      ['{"error":"Model failed"}', 'Model failed'],
      ['{"error":{"code":500,"message":"Loading model","type":"unavailable_error"}}', 'Loading model'],
      ['{"object":"error","message":"flat vllm","type":"InternalServerError","code":500}', 'flat vllm'],
    ] as const) {
      const error = caught(() => openaiAdapter.decode(body))
      expect(error.code).toBe(ErrorCode.BACKEND_ERROR)
      expect(error.status).toBe(200)
      expect(error.message).toContain(text)
    }
  })

  it('treats a 2xx error payload that rejects the request (400/422, invalid_request_error) as BAD_REQUEST', () => {
    for (const body of [
      '{"object":"error","message":"flat vllm","type":"BadRequestError","code":400}',
      '{"error":{"code":400,"message":"the request exceeds the available context size","type":"invalid_request_error"}}',
      '{"error":{"message":"bad field","type":"invalid_request_error"}}',
      '{"error":{"code":422,"message":"unprocessable"}}',
    ]) {
      const error = caught(() => openaiAdapter.decode(body))
      expect(error.code, body).toBe(ErrorCode.BAD_REQUEST)
      expect(error.message).toContain('rejected the request')
    }
  })
})

describe('openaiAdapter.errorMessage', () => {
  it('reads every error shape', () => {
    const m = openaiAdapter.errorMessage
    expect(m(411, '{"error":"Content-Length header is required"}')).toBe('Content-Length header is required')
    expect(m(503, '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}')).toBe(
      'Loading model',
    )
    expect(
      m(404, '{"error":{"message":"model \\"x\\" not found","type":"api_error","param":null,"code":null}}'),
    ).toBe('model "x" not found')
    expect(
      m(404, '{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError"}'),
    ).toBe('The model `x` does not exist.')
    expect(m(422, '{"detail":[{"loc":["body","prompt"],"msg":"Field required","type":"missing"}]}')).toBe(
      'Field required',
    )
    expect(m(404, 'Not Found')).toBe('Not Found')
    expect(m(500, '')).toBe('HTTP 500')
    expect(m(500, '{"unrelated":true}')).toBe('{"unrelated":true}')
    expect(m(502, '<html><body><h1>Bad &amp; Gateway</h1></body></html>')).toBe('Bad & Gateway')
  })
})

describe('SSE stream decoder', () => {
  it('decodes the mlx_lm transcript of §2.3 with keepalive comments and a separate usage chunk', () => {
    const { deltas, output, decoder } = run(MLX_STREAM)
    expect(deltas).toEqual([' there', ' was'])
    expect(output).toEqual({
      text: ' there was',
      doneReason: 'stop',
      promptTokens: 3000,
      completionTokens: 3,
    })
    expect(decoder.done).toBe(true)
    expect(run(MLX_STREAM, 1).output).toEqual(output)
  })

  it('reads usage from the llama.cpp final chunk that also carries timings', () => {
    expect(run(LLAMA_CPP_STREAM).output).toEqual({
      text: 'Hello',
      doneReason: 'length',
      promptTokens: 5,
      completionTokens: 2,
    })
  })

  it('takes the last non-zero usage (Ollama /v1 sends zeroed usage on every chunk)', () => {
    expect(run(OLLAMA_V1_STREAM).output).toEqual({
      text: 'Hi',
      doneReason: 'stop',
      promptTokens: 26,
      completionTokens: 2,
    })
  })

  it('tolerates CRLF line endings', () => {
    expect(run(MLX_STREAM.replaceAll('\n', '\r\n'), 3).output.text).toBe(' there was')
  })

  it('joins multi-line data fields with \\n before parsing', () => {
    const text =
      'data: {"choices":[{"text":\ndata: "a\\u00e9",\ndata:"finish_reason":"stop"}]}\n\n' + 'data: [DONE]\n\n'
    expect(run(text, 2).output).toEqual({
      text: 'aé',
      doneReason: 'stop',
      promptTokens: 0,
      completionTokens: 0,
    })
  })

  it('ignores id/retry/unknown fields, empty data events and bytes after [DONE]', () => {
    const text =
      'id: 1\nretry: 100\nfoo: bar\ndata:\n\ndata\n\n' +
      'data: {"choices":[{"text":"x","finish_reason":"stop"}]}\n\ndata: [DONE]\n\ndata: {"choices":[{"text":"late"}]}\n\n'
    const { deltas, output } = run(text)
    expect(deltas).toEqual(['x'])
    expect(output.text).toBe('x')
  })

  it('accepts [DONE] without its final blank line', () => {
    const text = 'data: {"choices":[{"text":"x","finish_reason":"stop"}]}\n\ndata: [DONE]'
    expect(run(text).output.text).toBe('x')
  })

  it('throws STREAM_ERROR on the llama.cpp error: field even though [DONE] follows', () => {
    const text = sse(
      'data: {"choices":[{"text":"partial","index":0,"finish_reason":null}],"object":"text_completion"}',
      'error: {"code":500,"message":"llama_decode failed","type":"server_error"}',
      'data: [DONE]',
    )
    const error = caught(() => run(text))
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('llama_decode failed')
    expect(error.delivered).toBe('partial'.length)
    expect(caught(() => run('error: plain text failure\n\n')).message).toContain('plain text failure')
  })

  it('throws STREAM_ERROR on data error chunks of every shape and on event: error', () => {
    for (const [frame, text] of [
      ['data: {"error":"boom"}', 'boom'],
      ['data: {"error":{"code":500,"message":"nested boom","type":"server_error"}}', 'nested boom'],
      ['data: {"object":"error","message":"flat boom","type":"InternalServerError","code":500}', 'flat boom'],
      ['event: error\ndata: {"message":"typed boom"}', 'typed boom'],
      ['event: error\ndata: not json boom', 'not json boom'],
    ] as const) {
      const error = caught(() => run(sse(frame, 'data: [DONE]')))
      expect(error.code, frame).toBe(ErrorCode.STREAM_ERROR)
      expect(error.message).toContain(text)
    }
  })

  it('throws STREAM_ERROR when [DONE] arrives without any finish_reason', () => {
    const error = caught(() =>
      run(sse('data: {"choices":[{"text":"cut","finish_reason":null}]}', 'data: [DONE]')),
    )
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('finish_reason')
    expect(error.delivered).toBe(3)
  })

  it('throws STREAM_ERROR when the body ends without [DONE], even after a finish_reason', () => {
    const body = sse('data: {"choices":[{"text":"ab","finish_reason":"stop"}]}')
    const error = caught(() => run(body))
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('without [DONE]')
    expect(error.message).toContain('2 characters delivered')
    expect(caught(() => run('')).code).toBe(ErrorCode.STREAM_ERROR)
    expect(caught(() => run(': keepalive 1/2\n\n')).code).toBe(ErrorCode.STREAM_ERROR)
  })

  it('throws STREAM_ERROR when the body ends inside an event', () => {
    expect(caught(() => run('data: {"choices":[{"text":"ab"')).code).toBe(ErrorCode.STREAM_ERROR)
    expect(caught(() => run('data: [DON')).code).toBe(ErrorCode.STREAM_ERROR)
  })

  it('throws MALFORMED_RESPONSE on events that are not JSON objects', () => {
    for (const frame of ['data: {not json}', 'data: [1,2]', 'data: 42', 'data: null']) {
      const decoder = openaiAdapter.createStreamDecoder()
      const error = caught(() => decoder.push(enc.encode(`${frame}\n\n`), () => {}))
      expect(error.code, frame).toBe(ErrorCode.MALFORMED_RESPONSE)
      expect(caught(() => decoder.end(() => {}))).toBe(error)
    }
  })

  it('decodes a multi-byte character split across chunks', () => {
    const text = sse('data: {"choices":[{"text":"🦙漢字","finish_reason":"stop"}]}', 'data: [DONE]')
    const { deltas } = run(text, 1)
    expect(deltas).toEqual(['🦙漢字'])
  })
})
