import { describe, expect, it } from 'vitest'
import { adapterFor, ollamaAdapter } from '../src/backends/index.js'
import type { StreamDecoder, WireRequest } from '../src/backends/types.js'
import { ErrorCode, isRouterError, type RouterError } from '../src/errors.js'

const enc = new TextEncoder()

/** Feed `text` as bytes in chunks of `size` bytes; returns the deltas and the final output. */
function run(text: string, size = Number.POSITIVE_INFINITY, decoder = ollamaAdapter.createStreamDecoder()) {
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

// protocols.md §1.3 (illustrative, exact key set)
const STREAM_13 =
  '{"model":"gemma4","created_at":"2025-10-26T17:15:24.097767Z","response":"That","done":false}\n' +
  '{"model":"gemma4","created_at":"2025-10-26T17:15:24.109172Z","response":"\'s","done":false}\n' +
  '{"model":"gemma4","created_at":"2025-10-26T17:15:24.166576Z","response":"!","done":true,"done_reason":"stop","context":[1,2,3],"total_duration":174560334,"load_duration":101397084,"prompt_eval_count":11,"prompt_eval_duration":13074791,"eval_count":18,"eval_duration":52479709}\n'

// protocols.md §1.4
const STREAM_ERROR_14 =
  '{"model":"gemma4","created_at":"2025-10-26T17:21:21.219166Z","response":"I","done":false}\n' +
  '{"error":"an error was encountered while running the model"}\n'

describe('ollamaAdapter basics', () => {
  it('is the ollama kind on /api/generate and is what adapterFor returns', () => {
    expect(ollamaAdapter.kind).toBe('ollama')
    expect(ollamaAdapter.path).toBe('/api/generate')
    expect(adapterFor('ollama')).toBe(ollamaAdapter)
  })

  it('adapterFor rejects an unknown kind with CONFIG_INVALID', () => {
    const error = caught(() => adapterFor('bogus' as never))
    expect(error.code).toBe(ErrorCode.CONFIG_INVALID)
    expect(caught(() => adapterFor('toString' as never)).code).toBe(ErrorCode.CONFIG_INVALID)
  })
})

describe('ollamaAdapter.encode', () => {
  it('builds the documented body with options and top-level extras', () => {
    const body = ollamaAdapter.encode({
      model: 'llama3.2',
      prompt: 'Why is the sky blue?',
      system: 'Be brief.',
      stream: false,
      maxTokens: 64,
      temperature: 0.2,
      stop: ['\n\n'],
      options: { keep_alive: '10m', top_p: 0.9, seed: 42 },
    })
    expect(body).toBe(
      '{"model":"llama3.2","prompt":"Why is the sky blue?","stream":false,"system":"Be brief.",' +
        '"keep_alive":"10m","options":{"num_predict":64,"temperature":0.2,"stop":["\\n\\n"],"top_p":0.9,"seed":42}}',
    )
  })

  it('always sends stream explicitly and omits empty options', () => {
    expect(ollamaAdapter.encode({ model: 'm', prompt: 'p', stream: true })).toBe(
      '{"model":"m","prompt":"p","stream":true}',
    )
    expect(ollamaAdapter.encode({ model: 'm', prompt: 'p', stream: false, stop: [] })).toBe(
      '{"model":"m","prompt":"p","stream":false}',
    )
  })

  it('routes known top-level fields out of options and everything else into options', () => {
    const body = JSON.parse(
      ollamaAdapter.encode({
        model: 'm',
        prompt: 'p',
        stream: true,
        options: {
          format: 'json',
          raw: true,
          think: 'low',
          suffix: 's',
          images: ['aGk='],
          template: 't',
          context: [1, 2],
          top_k: 20,
          num_ctx: 8192,
          seed: 1,
          skipped: undefined,
        },
      }),
    )
    expect(body).toEqual({
      model: 'm',
      prompt: 'p',
      stream: true,
      format: 'json',
      raw: true,
      think: 'low',
      suffix: 's',
      images: ['aGk='],
      template: 't',
      context: [1, 2],
      options: { top_k: 20, num_ctx: 8192, seed: 1 },
    })
  })

  it('lets explicit caller options override derived ones but never the reserved fields', () => {
    const body = JSON.parse(
      ollamaAdapter.encode({
        model: 'm',
        prompt: 'p',
        stream: false,
        maxTokens: 10,
        options: { num_predict: 99, model: 'other', prompt: 'x', stream: true, options: { a: 1 } },
      }),
    )
    expect(body).toEqual({ model: 'm', prompt: 'p', stream: false, options: { num_predict: 99 } })
  })

  it('takes system from extras only when the request has none', () => {
    expect(
      JSON.parse(ollamaAdapter.encode({ model: 'm', prompt: 'p', stream: false, options: { system: 'x' } }))
        .system,
    ).toBe('x')
    expect(
      JSON.parse(
        ollamaAdapter.encode({
          model: 'm',
          prompt: 'p',
          stream: false,
          system: 'y',
          options: { system: 'x' },
        }),
      ).system,
    ).toBe('y')
  })

  it('does not mutate its input', () => {
    const request: WireRequest = {
      model: 'm',
      prompt: 'p',
      stream: false,
      stop: ['a'],
      maxTokens: 5,
      options: { keep_alive: 0, top_k: 3 },
    }
    const copy = structuredClone(request)
    ollamaAdapter.encode(request)
    ollamaAdapter.encode(request)
    expect(request).toEqual(copy)
  })
})

describe('ollamaAdapter.decode', () => {
  it('reads the verbatim non-streaming example of §1.2', () => {
    const body =
      '{"model":"codellama:code","created_at":"2024-07-22T20:47:51.147561Z","response":"\\n  if a == 0: …",' +
      '"done":true,"done_reason":"stop","context":[1,2,3],"total_duration":1162761250,"load_duration":6683708,' +
      '"prompt_eval_count":17,"prompt_eval_duration":201222000,"eval_count":63,"eval_duration":953997000}'
    expect(ollamaAdapter.decode(body)).toEqual({
      text: '\n  if a == 0: …',
      doneReason: 'stop',
      promptTokens: 17,
      completionTokens: 63,
      evalDurationNs: 953997000,
      loadDurationNs: 6683708,
    })
  })

  it('defaults absent metrics (omitempty) and a missing done_reason', () => {
    expect(ollamaAdapter.decode('{"model":"m","response":"","done":true}')).toEqual({
      text: '',
      doneReason: null,
      promptTokens: 0,
      completionTokens: 0,
    })
    expect(ollamaAdapter.decode('{"response":"x","done":true,"done_reason":"load"}').doneReason).toBe('load')
  })

  it('rejects bodies that are not an object with a string response as MALFORMED_RESPONSE', () => {
    for (const body of ['not json', '', '[]', '"text"', 'null', '{"done":true}', '{"response":5}']) {
      const error = caught(() => ollamaAdapter.decode(body))
      expect(error.code, body).toBe(ErrorCode.MALFORMED_RESPONSE)
      expect(error.backend).toBe('ollama')
    }
    expect(caught(() => ollamaAdapter.decode('nope')).cause).toBeInstanceOf(SyntaxError)
  })

  it('treats a 2xx body with an error key as BACKEND_ERROR with status 200', () => {
    const error = caught(() => ollamaAdapter.decode('{"error":"model runner crashed"}'))
    expect(error.code).toBe(ErrorCode.BACKEND_ERROR)
    expect(error.status).toBe(200)
    expect(error.message).toContain('model runner crashed')
  })
})

describe('ollamaAdapter.errorMessage', () => {
  it('reads every error shape', () => {
    const m = ollamaAdapter.errorMessage
    expect(m(404, '{"error":"model \'x\' not found"}')).toBe("model 'x' not found")
    expect(m(503, '{"error":"server busy, please try again.  maximum pending requests exceeded"}')).toBe(
      'server busy, please try again. maximum pending requests exceeded',
    )
    expect(m(400, '{"error":{"code":400,"message":"bad prompt","type":"invalid_request_error"}}')).toBe(
      'bad prompt',
    )
    expect(
      m(404, '{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError"}'),
    ).toBe('The model `x` does not exist.')
    expect(m(403, '')).toBe('HTTP 403')
    expect(m(502, '   \n')).toBe('HTTP 502')
    expect(m(404, 'Not Found')).toBe('Not Found')
    expect(m(500, '{"error":""}')).toBe('HTTP 500')
  })

  it('strips HTML and truncates long text', () => {
    const html =
      '<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>' +
      '<body>\n<center><h1>502   Bad Gateway</h1></center>\n<hr><center>nginx</center></body></html>'
    expect(ollamaAdapter.errorMessage(502, html)).toBe('502 Bad Gateway 502 Bad Gateway nginx')
    const long = ollamaAdapter.errorMessage(500, 'x'.repeat(5000))
    expect(long.length).toBeLessThanOrEqual(200)
    expect(long.endsWith('…')).toBe(true)
  })
})

describe('ollama stream decoder', () => {
  it('decodes the §1.3 transcript, appending the final line text', () => {
    const { deltas, output, decoder } = run(STREAM_13)
    expect(deltas).toEqual(['That', "'s", '!'])
    expect(output).toEqual({
      text: "That's!",
      doneReason: 'stop',
      promptTokens: 11,
      completionTokens: 18,
      evalDurationNs: 52479709,
      loadDurationNs: 101397084,
    })
    expect(decoder.done).toBe(true)
  })

  it('gives the same result byte by byte', () => {
    expect(run(STREAM_13, 1).output).toEqual(run(STREAM_13).output)
  })

  it('decodes a multi-byte character split across chunks', () => {
    const text = '{"response":"日本😀","done":false}\n{"response":"","done":true}\n'
    const { output } = run(text, 1)
    expect(output.text).toBe('日本😀')
  })

  it('ignores blank lines, CRLF endings and bytes after the final line', () => {
    const text =
      '\n{"response":"a","done":false}\r\n\r\n  \n{"response":"b","done":true,"eval_count":2}\r\ngarbage\n{"response":"c"}\n'
    const { deltas, output } = run(text)
    expect(deltas).toEqual(['a', 'b'])
    expect(output.text).toBe('ab')
    expect(output.completionTokens).toBe(2)
  })

  it('accepts a final line without its trailing newline', () => {
    expect(run('{"response":"a","done":false}\n{"response":"b","done":true}').output.text).toBe('ab')
  })

  it('throws STREAM_ERROR with the backend message on an error line (§1.4)', () => {
    const decoder = ollamaAdapter.createStreamDecoder()
    const deltas: string[] = []
    const error = caught(() => decoder.push(enc.encode(STREAM_ERROR_14), (t) => deltas.push(t)))
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('an error was encountered while running the model')
    expect(error.delivered).toBe(1)
    expect(deltas).toEqual(['I'])
    // The decoder stays failed.
    expect(caught(() => decoder.end(() => {}))).toBe(error)
    expect(caught(() => decoder.push(enc.encode('{"done":true}\n'), () => {}))).toBe(error)
  })

  it('throws STREAM_ERROR when the body ends without done:true', () => {
    const decoder = ollamaAdapter.createStreamDecoder()
    decoder.push(enc.encode('{"response":"abc","done":false}\n'), () => {})
    const error = caught(() => decoder.end(() => {}))
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('stream ended without its final line')
    expect(error.message).toContain('3 characters delivered')
    expect(error.delivered).toBe(3)
    expect(caught(() => ollamaAdapter.createStreamDecoder().end(() => {})).code).toBe(ErrorCode.STREAM_ERROR)
  })

  it('throws STREAM_ERROR when the body ends mid-line', () => {
    const decoder = ollamaAdapter.createStreamDecoder()
    decoder.push(enc.encode('{"response":"a","done":false}\n{"response":"b","do'), () => {})
    expect(caught(() => decoder.end(() => {})).code).toBe(ErrorCode.STREAM_ERROR)
  })

  it('throws MALFORMED_RESPONSE on lines that are not JSON objects or carry a non-string response', () => {
    for (const line of ['data: {"x":1}', '[1,2]', '42', 'null', '{"response":7,"done":false}']) {
      const decoder: StreamDecoder = ollamaAdapter.createStreamDecoder()
      const error = caught(() => decoder.push(enc.encode(`${line}\n`), () => {}))
      expect(error.code, line).toBe(ErrorCode.MALFORMED_RESPONSE)
    }
  })

  it('accepts an error object on a stream line', () => {
    const error = caught(() => run('{"error":{"message":"boom"}}\n'))
    expect(error.code).toBe(ErrorCode.STREAM_ERROR)
    expect(error.message).toContain('boom')
  })

  it('reports done only after the final line and allows end() twice', () => {
    const decoder = ollamaAdapter.createStreamDecoder()
    decoder.push(enc.encode('{"response":"a","done":false}\n'), () => {})
    expect(decoder.done).toBe(false)
    decoder.push(enc.encode('{"response":"","done":true,"done_reason":"length"}\n'), () => {})
    expect(decoder.done).toBe(true)
    expect(decoder.end(() => {})).toEqual(decoder.end(() => {}))
    expect(decoder.end(() => {}).doneReason).toBe('length')
  })
})
