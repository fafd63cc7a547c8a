/**
 * The seam between choosing a pool member (selection, load, affinity) and knowing whether a member
 * should get traffic at all (active health probes, drain, warmth from Ollama's `/api/ps`). The two
 * are built apart; the router wires one to the other.
 */

/** What selection reads from health and warmth. */
export interface MemberSignals {
  /** False when the member is out of rotation (probes failing, drained). Selection skips it. */
  inRotation(endpoint: string): boolean
  /**
   * True: `model` is loaded there; false: known not loaded; undefined: not known (no probe data).
   * `now` (epoch ms): the pick's clock reading, so a pick reads the clock once, not once per member.
   */
  isWarm(endpoint: string, model: string, now?: number): boolean | undefined
  /** Outcome of a real request to the member, so a member back from probes re-enters after one success. */
  reportOutcome(endpoint: string, ok: boolean): void
}

/** What health reporting (`router.health()`) reads from selection. */
export interface MemberLoad {
  /** Requests this router has in flight to the member. */
  inFlight(endpoint: string): number
  /** Recent latency the router saw from the member (ms), or null before any answer. */
  recentLatencyMs(endpoint: string): number | null
}

/** Health checks off: every member is in rotation, warmth unknown. */
export const NO_MEMBER_SIGNALS: MemberSignals = {
  inRotation: () => true,
  isWarm: () => undefined,
  reportOutcome: () => {},
}
