/**
 * Splitting an embeddings call into batches and running them with bounded concurrency. Pure scheduling:
 * what a batch does is the caller's function; results come back in input order whatever order the
 * batches finish in.
 */

export interface Batch {
  /** Position of the batch's first input in the whole input list. */
  start: number
  inputs: string[]
}

/** Consecutive slices of at most `size` inputs (the last may be shorter). */
export function splitBatches(inputs: readonly string[], size: number): Batch[] {
  const batches: Batch[] = []
  for (let start = 0; start < inputs.length; start += size) {
    batches.push({ start, inputs: inputs.slice(start, start + size) })
  }
  return batches
}

/**
 * Runs `run` over `items` with at most `limit` calls in flight, and resolves with their results in item
 * order. On the first failure no further item is started, `onFailure` is called once (to stop the calls
 * still in flight), and the promise rejects with that first error after every started call has settled:
 * nothing is left running behind the caller's back.
 */
export function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<R>,
  onFailure?: (error: unknown) => void,
): Promise<R[]> {
  const results = new Array<R>(items.length)
  if (items.length === 0) return Promise.resolve(results)
  return new Promise<R[]>((resolve, reject) => {
    let next = 0
    let running = 0
    let failed = false
    let failure: unknown
    const launch = (): void => {
      while (!failed && running < limit && next < items.length) {
        const index = next++
        running++
        let pending: Promise<R>
        try {
          pending = run(items[index] as T, index)
        } catch (error) {
          pending = Promise.reject(error)
        }
        pending.then(
          (value) => {
            results[index] = value
            settle()
          },
          (error: unknown) => {
            if (!failed) {
              failed = true
              failure = error
              try {
                onFailure?.(error)
              } catch {
                // The first error is what the caller gets; a failing stop hook must not replace it.
              }
            }
            settle()
          },
        )
      }
    }
    const settle = (): void => {
      running--
      if (failed) {
        if (running === 0) reject(failure)
        return
      }
      if (next >= items.length) {
        if (running === 0) resolve(results)
        return
      }
      launch()
    }
    launch()
  })
}
