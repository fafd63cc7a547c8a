/**
 * Capability routing: a record may declare what its model can do (`capabilities`); a request that
 * needs something (tools, images, a JSON schema, reasoning, embeddings) skips candidates whose record
 * declares capabilities without it. A record that declares none is assumed able (the behaviour before
 * capabilities existed). The dispatcher reads `Operation.needs` once per request and calls `unableFor`
 * per candidate.
 */
import type { BackendRecord, Capability } from '../types.js'
import type { Candidate } from './routes.js'

/** The capabilities in `needed` that `record` declares it lacks (empty when able, or when it declares none). */
export function missingCapabilities(record: BackendRecord, needed: readonly Capability[]): Capability[] {
  const declared = record.capabilities
  if (declared === undefined || needed.length === 0) return []
  return needed.filter((c) => !declared.includes(c))
}

/** Why `candidate` cannot serve a request needing `needed`, for attempts and errors; null when it can. */
export function unableFor(candidate: Candidate, needed: readonly Capability[]): string | null {
  const missing = missingCapabilities(candidate.record, needed)
  if (missing.length === 0) return null
  const declared = candidate.record.capabilities ?? []
  return `the record for model "${candidate.model}" (${candidate.record.backend_type} at ${candidate.record.endpoint_url}) does not declare ${missing.map((c) => `"${c}"`).join(', ')} (its capabilities: ${declared.length === 0 ? 'none' : declared.join(', ')})`
}
