/** Sends every record to several sinks; one sink's failure or slowness does not affect the others. */
import type { MetricRecord, MetricsSink } from '../types.js'

function combined(errors: unknown[], what: string): unknown {
  return errors.length === 1
    ? errors[0]
    : new AggregateError(errors, `${errors.length} metrics sinks failed to ${what}`)
}

/**
 * A sink that forwards to each of `sinks`. Every sink gets every record even when an earlier one throws; if
 * any threw, `write()` rethrows afterwards (the error, or an `AggregateError`) so the router's guard reports
 * it as a `sink:error` event. `flush()`/`close()` wait for all sinks (allSettled) and reject the same way.
 */
export function fanoutSinks(...sinks: MetricsSink[]): MetricsSink {
  const list = [...sinks]
  let closePromise: Promise<void> | undefined

  const all = async (what: 'flush' | 'close'): Promise<void> => {
    const results = await Promise.allSettled(
      list.map((s) => {
        try {
          return what === 'flush' ? s.flush() : s.close()
        } catch (error) {
          return Promise.reject(error)
        }
      }),
    )
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
    if (errors.length > 0) throw combined(errors, what)
  }

  return {
    write(record: MetricRecord): void {
      let errors: unknown[] | undefined
      for (const sink of list) {
        try {
          sink.write(record)
        } catch (error) {
          errors ??= []
          errors.push(error)
        }
      }
      if (errors !== undefined) throw combined(errors, 'write')
    },
    attach(router) {
      for (const sink of list) sink.attach?.(router)
    },
    flush: () => all('flush'),
    close(): Promise<void> {
      closePromise ??= all('close')
      return closePromise
    },
  }
}
