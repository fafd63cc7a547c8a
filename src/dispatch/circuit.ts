/**
 * Per-endpoint circuit breaker. After `threshold` consecutive health failures the endpoint is
 * skipped (no connection attempts) for `cooldownMs`; then one request is let through as a probe:
 * success closes the circuit, failure opens it again.
 */
import type { ErrorCode } from '../errors.js'
import type { Clock } from '../internal/clock.js'
import type { CircuitInfo, CircuitState } from '../types.js'

export interface CircuitOptions {
  threshold: number
  cooldownMs: number
}

export class Circuit {
  state: CircuitState = 'closed'
  failures = 0
  openUntil = 0
  lastError: ErrorCode | null = null
  private probing = false

  constructor(readonly endpoint: string) {}

  /** May a request go to this endpoint now? Moves open -> half-open when the cooldown is over. */
  allow(now: number): boolean {
    if (this.state === 'closed') return true
    if (this.state === 'open') {
      if (now < this.openUntil) return false
      this.state = 'half-open'
      this.probing = false
    }
    // half-open: exactly one probe at a time.
    if (this.probing) return false
    this.probing = true
    return true
  }

  /** Returns true when this success closed an open/half-open circuit. */
  success(): boolean {
    this.failures = 0
    this.probing = false
    if (this.state === 'closed') return false
    this.state = 'closed'
    this.openUntil = 0
    return true
  }

  /** Returns true when this failure opened the circuit. */
  failure(code: ErrorCode, now: number, options: CircuitOptions): boolean {
    this.failures++
    this.lastError = code
    this.probing = false
    if (this.state === 'half-open' || (this.state === 'closed' && this.failures >= options.threshold)) {
      this.state = 'open'
      this.openUntil = now + options.cooldownMs
      return true
    }
    return false
  }

  /**
   * Another instance opened or closed this endpoint's circuit (shared through the store). Returns
   * true when that changed this one: an open notice opens it until the later of the two deadlines,
   * a close notice (their probe succeeded) closes it.
   */
  applyRemote(state: 'open' | 'closed', openUntil: number, lastError: ErrorCode | null): boolean {
    if (state === 'closed') return this.state !== 'closed' && this.success()
    if (this.state === 'open' && this.openUntil >= openUntil) return false
    this.state = 'open'
    this.openUntil = openUntil
    this.probing = false
    if (lastError !== null) this.lastError = lastError
    return true
  }

  /** A probe that ended without a verdict (abort, caller error) must not leave the circuit stuck. */
  release(): void {
    this.probing = false
  }

  info(): CircuitInfo {
    return {
      endpoint: this.endpoint,
      state: this.state,
      failures: this.failures,
      openUntil: this.state === 'closed' ? null : this.openUntil,
      lastError: this.lastError,
    }
  }
}

export class CircuitRegistry {
  private readonly circuits = new Map<string, Circuit>()

  constructor(
    readonly options: CircuitOptions | null,
    private readonly clock: Clock,
  ) {}

  get(endpoint: string): Circuit {
    let circuit = this.circuits.get(endpoint)
    if (!circuit) {
      circuit = new Circuit(endpoint)
      this.circuits.set(endpoint, circuit)
    }
    return circuit
  }

  now(): number {
    return this.clock.now()
  }

  list(): CircuitInfo[] {
    return [...this.circuits.values()].map((c) => c.info())
  }
}

/** Where a guard reports circuit transitions (the router's `circuit:open` / `circuit:close` events). */
export interface CircuitEvents {
  opened(info: CircuitInfo): void
  closed(info: CircuitInfo): void
}

/**
 * The circuit bookkeeping of one target, in the four verbs a request needs: may I go (`allow`),
 * it answered (`success`), it failed in a way that counts (`failure`), it ended without a verdict
 * (`release`). A target without a circuit (breaker off) allows everything.
 */
export class CircuitGuard {
  constructor(
    private readonly circuit: Circuit | null,
    private readonly options: CircuitOptions | null,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly events: CircuitEvents,
  ) {}

  allow(): boolean {
    return this.circuit === null || this.circuit.allow(this.clock.now())
  }

  success(): void {
    if (this.circuit?.success()) this.events.closed(this.circuit.info())
  }

  failure(code: ErrorCode): void {
    if (this.circuit === null || this.options === null) return
    if (this.circuit.failure(code, this.clock.now(), this.options)) this.events.opened(this.circuit.info())
  }

  release(): void {
    this.circuit?.release()
  }
}
