import { describe, expect, it } from 'vitest'
import { mapBounded, splitBatches } from '../src/embed/batches.js'
import { validateEmbedRequest } from '../src/embed/request.js'
import { ErrorCode, isRouterError } from '../src/errors.js'

/** A promise whose settling the test controls. */
function deferred<T>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const flush = () => new Promise<void>((r) => setImmediate(r))

describe('splitBatches', () => {
  it('cuts consecutive slices of at most size, remembering where each starts', () => {
    const inputs = ['a', 'b', 'c', 'd', 'e']
    expect(splitBatches(inputs, 2)).toEqual([
      { start: 0, inputs: ['a', 'b'] },
      { start: 2, inputs: ['c', 'd'] },
      { start: 4, inputs: ['e'] },
    ])
    expect(splitBatches(inputs, 5)).toEqual([{ start: 0, inputs }])
    expect(splitBatches(inputs, 64)).toEqual([{ start: 0, inputs }])
  })
})

describe('mapBounded', () => {
  it('never runs more than the limit at once and returns results in item order', async () => {
    const gates = Array.from({ length: 7 }, () => deferred<string>())
    let running = 0
    let peak = 0
    const started: number[] = []
    const p = mapBounded([0, 1, 2, 3, 4, 5, 6], 3, (item) => {
      started.push(item)
      running++
      peak = Math.max(peak, running)
      return gates[item]!.promise.finally(() => {
        running--
      })
    })
    await flush()
    expect(started).toEqual([0, 1, 2])
    // Finish out of order: the slot frees, the next item starts, the result keeps its place.
    gates[2]!.resolve('c')
    await flush()
    expect(started).toEqual([0, 1, 2, 3])
    for (const i of [6, 5, 4, 3, 1, 0]) {
      await flush()
      gates[i]!.resolve(String.fromCharCode(97 + i))
    }
    expect(await p).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g'])
    expect(peak).toBe(3)
  })

  it('on the first failure starts nothing more, calls onFailure once, and rejects after the rest settle', async () => {
    const gates = Array.from({ length: 5 }, () => deferred<number>())
    const started: number[] = []
    const stops: unknown[] = []
    let settled = false
    const p = mapBounded(
      [0, 1, 2, 3, 4],
      2,
      (item) => {
        started.push(item)
        return gates[item]!.promise
      },
      (error) => {
        stops.push(error)
        gates[1]!.reject(new Error('stopped'))
      },
    )
    p.catch(() => {}).finally(() => {
      settled = true
    })
    await flush()
    const boom = new Error('boom')
    gates[0]!.reject(boom)
    await expect(p).rejects.toBe(boom)
    expect(settled).toBe(true)
    expect(started).toEqual([0, 1])
    expect(stops).toEqual([boom])
  })

  it('waits for calls still in flight before rejecting', async () => {
    const slow = deferred<number>()
    let rejected = false
    const p = mapBounded([0, 1], 2, (item) => (item === 0 ? Promise.reject(new Error('x')) : slow.promise))
    p.catch(() => {
      rejected = true
    })
    await flush()
    expect(rejected).toBe(false)
    slow.resolve(1)
    await expect(p).rejects.toThrow('x')
  })

  it('turns a synchronous throw into the failure and resolves an empty list at once', async () => {
    await expect(
      mapBounded([1], 1, () => {
        throw new Error('sync')
      }),
    ).rejects.toThrow('sync')
    expect(await mapBounded([], 4, async () => 1)).toEqual([])
  })
})

describe('validateEmbedRequest', () => {
  const invalid = (req: unknown): { path: string; message: string } => {
    try {
      validateEmbedRequest(req)
    } catch (error) {
      if (isRouterError(error) && error.code === ErrorCode.INVALID_REQUEST) return error.issues[0]!
      throw error
    }
    throw new Error('expected INVALID_REQUEST')
  }

  it('returns the inputs as a list', () => {
    expect(validateEmbedRequest({ input: 'one' })).toEqual(['one'])
    expect(validateEmbedRequest({ model: 'm', input: ['a', 'b'], batchSize: 2, concurrency: 1 })).toEqual([
      'a',
      'b',
    ])
  })

  it('names the bad field before anything is sent', () => {
    expect(invalid(null).path).toBe('request')
    expect(invalid({})).toEqual({ path: 'input', message: 'must be a string or a list of strings' })
    expect(invalid({ input: [] })).toEqual({ path: 'input', message: 'must not be an empty list' })
    expect(invalid({ input: '' })).toEqual({ path: 'input', message: 'must not be an empty string' })
    expect(invalid({ input: ['a', 3] })).toEqual({ path: 'input[1]', message: 'must be a string' })
    expect(invalid({ input: ['a', ''] })).toEqual({
      path: 'input[1]',
      message: 'must not be an empty string',
    })
    expect(invalid({ input: 'a', dimensions: 0 }).path).toBe('dimensions')
    expect(invalid({ input: 'a', batchSize: 1.5 }).path).toBe('batchSize')
    expect(invalid({ input: 'a', concurrency: -1 }).path).toBe('concurrency')
    expect(invalid({ input: 'a', keepAlive: {} }).path).toBe('keepAlive')
    // Shared with generate(): same checks, same messages.
    expect(invalid({ input: 'a', model: '' }).path).toBe('model')
    expect(invalid({ input: 'a', timeoutMs: 0 }).path).toBe('timeoutMs')
    expect(invalid({ input: 'a', fallbackModels: [''] }).path).toBe('fallbackModels[0]')
    expect(invalid({ input: 'a', metadata: { requestId: 1 } }).path).toBe('metadata.requestId')
    expect(invalid({ input: 'a', options: [] }).path).toBe('options')
    expect(invalid({ input: 'a', signal: {} }).path).toBe('signal')
  })
})
