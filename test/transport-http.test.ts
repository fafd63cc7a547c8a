/**
 * Both transports settle on stop without waiting for undici: undici does not start (or settle) a
 * request whose TCP connect is still pending, so `abort()` must report to the handler itself.
 * (The hanging-connect case end to end is in test/router-timeouts.test.ts.)
 */
import type { Dispatcher } from 'undici'
import { describe, expect, it } from 'vitest'
import {
  dispatchTransport,
  type HttpCall,
  type ResponseHandler,
  requestTransport,
} from '../src/transport/http.js'

const CALL: HttpCall = { origin: 'http://127.0.0.1:9', path: '/x', method: 'POST', headers: {}, body: '{}' }

function recorder() {
  const events: string[] = []
  const handler: ResponseHandler = {
    onStart: (status) => events.push(`start ${status}`),
    onData: () => events.push('data'),
    onEnd: () => events.push('end'),
    onError: (error, started) => events.push(`error ${error.message} ${started}`),
  }
  return { events, handler }
}

describe('transports settle on stop', () => {
  it('dispatch(): abort before undici started the request settles at once, and cancels it when it starts', () => {
    let saved: Dispatcher.DispatchHandler | null = null
    const fake = {
      dispatch(_opts: unknown, handler: Dispatcher.DispatchHandler) {
        saved = handler // a connect that has not finished: undici calls nothing yet
        return true
      },
    } as unknown as Dispatcher
    const { events, handler } = recorder()
    const exchange = dispatchTransport(fake, CALL, handler)
    exchange.abort(new Error('stop'))
    expect(events).toEqual(['error stop false'])
    // Later undici starts the request: it is aborted with the same reason, and nothing more is reported.
    let aborted: unknown = null
    const controller = { abort: (r: unknown) => (aborted = r), pause() {}, resume() {} }
    ;(saved as unknown as Dispatcher.DispatchHandler).onRequestStart?.(
      controller as unknown as Dispatcher.DispatchController,
      {},
    )
    expect((aborted as Error).message).toBe('stop')
    ;(saved as unknown as Dispatcher.DispatchHandler).onResponseError?.(
      controller as unknown as Dispatcher.DispatchController,
      new Error('aborted'),
    )
    expect(events).toEqual(['error stop false'])
    exchange.abort(new Error('again'))
    expect(events).toHaveLength(1)
  })

  it('request(): abort while the promise is pending settles at once', () => {
    let signal: AbortSignal | null = null
    const fake = {
      request(opts: { signal: AbortSignal }) {
        signal = opts.signal
        return new Promise(() => {})
      },
    } as unknown as Dispatcher
    const { events, handler } = recorder()
    const exchange = requestTransport(fake, CALL, handler)
    exchange.abort(new Error('stop'))
    expect(events).toEqual(['error stop false'])
    expect((signal as unknown as AbortSignal).aborted).toBe(true)
  })
})
