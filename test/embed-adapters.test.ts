import { describe, expect, it } from 'vitest'
import { ollamaEmbedAdapter } from '../src/backends/ollama-embed.js'
import { openaiEmbedAdapter } from '../src/backends/openai-embed.js'
import { ErrorCode, isRouterError, type RouterError } from '../src/errors.js'

function caught(fn: () => unknown): RouterError {
  try {
    fn()
  } catch (error) {
    if (isRouterError(error)) return error
    throw new Error(`expected a RouterError, got ${String(error)}`)
  }
  throw new Error('expected a throw')
}

describe('Ollama /api/embed adapter', () => {
  it('sends input as a list, typed fields and extras where /api/embed reads them', () => {
    expect(ollamaEmbedAdapter.path).toBe('/api/embed')
    const body = JSON.parse(
      ollamaEmbedAdapter.encode({
        inputs: ['a', 'b'],
        model: 'nomic-embed-text',
        dimensions: 256,
        keepAlive: '10m',
        options: { truncate: false, num_ctx: 2048, keep_alive: '1m', model: 'evil', input: ['x'] },
      }),
    )
    expect(body).toEqual({
      model: 'nomic-embed-text',
      input: ['a', 'b'],
      dimensions: 256,
      keep_alive: '10m',
      truncate: false,
      options: { num_ctx: 2048 },
    })
    expect(Object.keys(JSON.parse(ollamaEmbedAdapter.encode({ inputs: ['a'], model: 'm' })))).toEqual([
      'model',
      'input',
    ])
  })

  it('decodes embeddings, prompt_eval_count and load_duration (the real response shape)', () => {
    // api/types.go EmbedResponse: model, embeddings, then omitempty total_duration / load_duration / prompt_eval_count.
    const out = ollamaEmbedAdapter.decode(
      '{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221],[-0.0098027075,0.06042469,0.025257962]],"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":8}',
      2,
    )
    expect(out.embeddings).toEqual([
      [0.010071029, -0.0017594862, 0.05007221],
      [-0.0098027075, 0.06042469, 0.025257962],
    ])
    expect(out.promptTokens).toBe(8)
    expect(out.loadDurationNs).toBe(1019500)
    const bare = ollamaEmbedAdapter.decode('{"model":"m","embeddings":[[1,0]]}', 1)
    expect(bare.promptTokens).toBe(0)
    expect(bare.loadDurationNs).toBeUndefined()
  })

  it('rejects a count that does not match the inputs, non-number vectors and non-JSON', () => {
    const short = caught(() => ollamaEmbedAdapter.decode('{"model":"m","embeddings":[[1,0]]}', 2))
    expect(short.code).toBe(ErrorCode.MALFORMED_RESPONSE)
    expect(short.message).toContain('1 embeddings for 2 inputs')
    expect(caught(() => ollamaEmbedAdapter.decode('{"embeddings":[[1,"x"]]}', 1)).message).toContain(
      'non-number at [1]',
    )
    expect(caught(() => ollamaEmbedAdapter.decode('{"embeddings":[[]]}', 1)).message).toContain(
      'no vector for input 0',
    )
    expect(caught(() => ollamaEmbedAdapter.decode('{"response":"hi"}', 1)).message).toContain(
      'without an "embeddings" list',
    )
    expect(caught(() => ollamaEmbedAdapter.decode('<html>', 1)).code).toBe(ErrorCode.MALFORMED_RESPONSE)
    expect(caught(() => ollamaEmbedAdapter.decode('{"error":"boom"}', 1)).code).toBe(ErrorCode.BACKEND_ERROR)
  })

  it('classifies the answers of a server or model that cannot embed', () => {
    const code = ollamaEmbedAdapter.statusCode
    // The runner's answer for a chat model, relayed by Ollama with its status.
    expect(
      code(501, '{"error":"This server does not support embeddings. Start it with `--embeddings`"}'),
    ).toBe(ErrorCode.UNSUPPORTED_OPERATION)
    // gin's 404 for a route an old Ollama does not have.
    expect(code(404, '404 page not found')).toBe(ErrorCode.UNSUPPORTED_OPERATION)
    // The model is missing: the usual MODEL_NOT_FOUND mapping.
    expect(code(404, `{"error":"model 'nomic-embed-text' not found"}`)).toBeUndefined()
    expect(code(400, '{"error":"invalid input type"}')).toBeUndefined()
    expect(code(400, '{"error":"the input length exceeds the context length"}')).toBeUndefined()
    expect(code(503, '{"error":"server busy, please try again.  maximum pending requests exceeded"}')).toBe(
      undefined,
    )
  })
})

describe('OpenAI-compatible /v1/embeddings adapter', () => {
  it('sends input as a list, model only when the record names one, extras top-level', () => {
    expect(openaiEmbedAdapter.path).toBe('/v1/embeddings')
    expect(JSON.parse(openaiEmbedAdapter.encode({ inputs: ['a'] }))).toEqual({ input: ['a'] })
    expect(
      JSON.parse(
        openaiEmbedAdapter.encode({
          inputs: ['a', 'b'],
          model: 'bge-m3',
          dimensions: 512,
          keepAlive: '5m',
          options: { encoding_format: 'float', user: 'u1', input: 'no', model: 'no', dimensions: 3 },
        }),
      ),
    ).toEqual({ model: 'bge-m3', input: ['a', 'b'], dimensions: 512, encoding_format: 'float', user: 'u1' })
  })

  it('places vectors by index, whatever order the server lists them in (llama-server shape)', () => {
    // format_embeddings_response_oaicompat: data[{embedding, index, object}], model, object:list, usage.
    const out = openaiEmbedAdapter.decode(
      JSON.stringify({
        model: 'nomic-embed-text-v1.5.Q8_0.gguf',
        object: 'list',
        usage: { prompt_tokens: 9, total_tokens: 9 },
        data: [
          { embedding: [0.3, 0.4], index: 1, object: 'embedding' },
          { embedding: [0.1, 0.2], index: 0, object: 'embedding' },
          { embedding: [0.5, 0.6], index: 2, object: 'embedding' },
        ],
      }),
      3,
    )
    expect(out.embeddings).toEqual([
      [0.1, 0.2],
      [0.3, 0.4],
      [0.5, 0.6],
    ])
    expect(out.promptTokens).toBe(9)
  })

  it('decodes base64 float32 vectors (encoding_format base64)', () => {
    const floats = new Float32Array([0.5, -1.25, 3])
    const b64 = Buffer.from(floats.buffer).toString('base64')
    const out = openaiEmbedAdapter.decode(
      JSON.stringify({
        data: [{ index: 0, embedding: b64, object: 'embedding', encoding_format: 'base64' }],
      }),
      1,
    )
    expect(out.embeddings).toEqual([[0.5, -1.25, 3]])
    expect(
      caught(() => openaiEmbedAdapter.decode('{"data":[{"index":0,"embedding":"AAA"}]}', 1)).message,
    ).toContain('not whole float32 values')
  })

  it('rejects duplicate or out-of-range indices and count mismatches', () => {
    const dup = '{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}'
    expect(caught(() => openaiEmbedAdapter.decode(dup, 2)).message).toContain('index 0 twice')
    const range = '{"data":[{"index":5,"embedding":[1]}]}'
    expect(caught(() => openaiEmbedAdapter.decode(range, 1)).message).toContain('index 5')
    expect(caught(() => openaiEmbedAdapter.decode('{"data":[]}', 1)).message).toContain('0 embeddings for 1')
    expect(caught(() => openaiEmbedAdapter.decode('{"choices":[]}', 1)).message).toContain(
      'without a "data" list',
    )
  })

  it('treats in-band error payloads as errors (flat vLLM form included)', () => {
    const flat =
      '{"object":"error","message":"The model does not support Embeddings API","type":"BadRequestError","param":null,"code":400}'
    const error = caught(() => openaiEmbedAdapter.decode(flat, 1))
    expect(error.code).toBe(ErrorCode.BAD_REQUEST)
    expect(caught(() => openaiEmbedAdapter.decode('{"error":{"message":"x","code":500}}', 1)).code).toBe(
      ErrorCode.BACKEND_ERROR,
    )
  })

  it('classifies mlx_lm.server, llama-server and vLLM answers that mean "cannot embed"', () => {
    const code = openaiEmbedAdapter.statusCode
    // mlx_lm.server: unknown POST path -> 404 with the plain body `Not Found` (server.py do_POST).
    expect(code(404, 'Not Found')).toBe(ErrorCode.UNSUPPORTED_OPERATION)
    // llama-server started without --embeddings.
    expect(
      code(
        501,
        '{"error":{"code":501,"message":"This server does not support embeddings. Start it with `--embeddings`","type":"not_supported_error"}}',
      ),
    ).toBe(ErrorCode.UNSUPPORTED_OPERATION)
    // vLLM serving a generation model.
    expect(
      code(
        400,
        '{"error":{"message":"The model does not support Embeddings API","type":"BadRequestError","code":400}}',
      ),
    ).toBe(ErrorCode.UNSUPPORTED_OPERATION)
    // vLLM, unknown model: JSON 404 stays MODEL_NOT_FOUND.
    expect(
      code(404, '{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}'),
    ).toBeUndefined()
    expect(code(400, '{"error":{"message":"input is too long","code":400}}')).toBeUndefined()
  })
})
