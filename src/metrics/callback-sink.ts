/** A sink that hands every record to a user function; its errors never reach the request that produced the record. */
import type { MetricRecord, MetricsSink } from '../types.js'

export interface CallbackSinkOptions {
  /** Called with whatever `fn` threw or rejected with. Errors thrown by `onError` itself are swallowed. */
  onError?: (error: unknown, record: MetricRecord) => void
}

/**
 * Wraps `fn` as a `MetricsSink`. `fn` runs synchronously inside `write()`, so keep it quick; when it returns
 * a promise, `flush()` and `close()` wait for the ones still pending. After `close()`, `write()` does nothing.
 */
export function createCallbackSink(
  fn: (record: MetricRecord) => void | Promise<void>,
  options: CallbackSinkOptions = {},
): MetricsSink {
  const onError = options.onError
  const pending = new Set<Promise<void>>()
  let closed = false
  let closePromise: Promise<void> | undefined

  const report = (error: unknown, record: MetricRecord): void => {
    if (onError === undefined) return
    try {
      onError(error, record)
    } catch {
      // Nothing sensible left to tell; the request must not see it.
    }
  }

  const settle = async (): Promise<void> => {
    // New async writes may arrive while waiting; loop until none are left.
    while (pending.size > 0) await Promise.allSettled([...pending])
  }

  return {
    write(record: MetricRecord): void {
      if (closed) return
      let result: unknown
      try {
        result = fn(record)
      } catch (error) {
        report(error, record)
        return
      }
      if (typeof (result as PromiseLike<void> | undefined)?.then !== 'function') return
      const p: Promise<void> = Promise.resolve(result as PromiseLike<void>).then(
        () => {
          pending.delete(p)
        },
        (error: unknown) => {
          pending.delete(p)
          report(error, record)
        },
      )
      pending.add(p)
    },
    flush: settle,
    close(): Promise<void> {
      if (closePromise !== undefined) return closePromise
      closed = true
      closePromise = settle()
      return closePromise
    },
  }
}
