/**
 * The Redis store. The client is node-redis (`redis`, an optional peer dependency), loaded with a
 * dynamic import on first use so the main entry does not grow and users without Redis never load it.
 *
 * Every call fails fast while Redis is unreachable (`disableOfflineQueue`: nothing is queued for
 * later), and the client reconnects by itself; store/resilient.ts turns failures and slow answers
 * into the local fallback. Scripts go by EVALSHA, with EVAL once when the server does not have them.
 */
import { createHash } from 'node:crypto'
import { budgetPeriod } from './memory.js'
import { ADMIT, RENEW, SETTLE } from './scripts.js'
import type { AdmitInput, AdmitResult, LimitKind, SettleInput, Store, StoreMessage } from './types.js'

/** The slice of node-redis this store uses (so tests and types do not depend on its generics). */
interface Client {
  connect(): Promise<unknown>
  destroy(): void
  on(event: string, listener: (...args: unknown[]) => void): unknown
  duplicate(): Client
  isReady: boolean
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  set(key: string, value: string, options?: Record<string, unknown>): Promise<unknown>
  get(key: string): Promise<string | null>
  del(key: string): Promise<unknown>
  zCount(key: string, min: string, max: string): Promise<number>
  publish(channel: string, message: string): Promise<unknown>
  scriptLoad(script: string): Promise<string>
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>
}

export interface RedisStoreOptions {
  url: string
  /** Key prefix, so several routers (or apps) can share one Redis. @default 'llm-router:' */
  prefix: string
  /** Told when the connection goes down or comes back (the resilient store's events). */
  onConnection?: (up: boolean, error?: unknown) => void
}

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex')
const SCRIPTS: Record<'admit' | 'settle' | 'renew', [script: string, sha: string]> = {
  admit: [ADMIT, sha1(ADMIT)],
  settle: [SETTLE, sha1(SETTLE)],
  renew: [RENEW, sha1(RENEW)],
}

/** Thrown when `redis` is configured but the package is not installed: a setup error, not an outage. */
export class RedisClientMissing extends Error {}

async function loadClientFactory(): Promise<(options: Record<string, unknown>) => Client> {
  try {
    const mod = (await import('redis')) as unknown as { createClient(o: Record<string, unknown>): Client }
    return mod.createClient
  } catch (error) {
    throw new RedisClientMissing(
      "The redis option (or LLM_ROUTER_REDIS_URL) is set but the 'redis' package is not installed: run `npm install redis`",
      { cause: error },
    )
  }
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const
  private readonly listeners = new Set<(message: StoreMessage) => void>()
  private client: Client | null = null
  private subscriber: Client | null = null
  private readonly ready: Promise<Client>
  /** Reservation id -> the budget key it was charged to (settled by the instance that admitted it). */
  private readonly budgetKeys = new Map<string, string>()
  private closed = false
  private readonly channel: string
  /** Resolves on the first connection: calls made while the client first connects wait for it. */
  private firstReady!: Promise<void>
  private everReady = false
  /** The first connection attempt failed (refused, DNS...): calls fail at once from then on until it is up. */
  private connectFailed = false
  private wakeWaiters: (() => void) | null = null

  /**
   * False while the client first loads and connects (the resilient store gives calls a longer budget
   * meanwhile); true once connected, or once the first attempt failed (then calls fail fast).
   */
  get warm(): boolean {
    return this.everReady || this.connectFailed
  }

  constructor(private readonly options: RedisStoreOptions) {
    this.channel = `${options.prefix}notices`
    this.ready = this.open()
    // The first call awaits `ready`; an unobserved rejection must not crash the process.
    this.ready.catch(() => {})
  }

  private async open(): Promise<Client> {
    const createClient = await loadClientFactory()
    const make = () =>
      createClient({
        url: this.options.url,
        disableOfflineQueue: true,
        socket: {
          connectTimeout: 1000,
          // Reconnect forever, quickly at first: the router keeps serving from local state meanwhile.
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500),
        },
      })
    const client = make()
    client.on('error', (error: unknown) => {
      if (!this.everReady && !this.connectFailed) {
        this.connectFailed = true
        this.wakeWaiters?.()
      }
      this.options.onConnection?.(false, error)
    })
    client.on('ready', () => {
      this.options.onConnection?.(true)
      // Loaded on every (re)connect, so the first admission is one EVALSHA, not NOSCRIPT + EVAL.
      for (const [script] of Object.values(SCRIPTS)) client.scriptLoad(script).catch(() => {})
    })
    this.firstReady = new Promise<void>((resolve) => {
      this.wakeWaiters = resolve
      client.on('ready', () => {
        this.everReady = true
        resolve()
      })
    })
    const subscriber = client.duplicate()
    subscriber.on('error', () => {})
    this.client = client
    this.subscriber = subscriber
    // Not awaited: connect() keeps retrying while Redis is down, and commands fail fast until it is up.
    client.connect().catch(() => {})
    subscriber
      .connect()
      .then(() =>
        subscriber.subscribe(this.channel, (raw: string) => {
          let message: StoreMessage
          try {
            message = JSON.parse(raw) as StoreMessage
          } catch {
            return
          }
          for (const listener of this.listeners) {
            try {
              listener(message)
            } catch {
              // A subscriber's exception must not stop delivery to the others.
            }
          }
        }),
      )
      .catch(() => {})
    return client
  }

  private keys(key: string, budgetKey: string): string[] {
    const base = `${this.options.prefix}{${key}}`
    return [`${base}:leases`, `${base}:window`, `${base}:tokens`, budgetKey]
  }

  private budgetKey(key: string, period: number): string {
    return `${this.options.prefix}{${key}}:budget:${period}`
  }

  private async run(name: keyof typeof SCRIPTS, keys: string[], args: string[]): Promise<unknown> {
    const client = await this.connected()
    const [script, sha] = SCRIPTS[name]
    try {
      return await client.evalSha(sha, { keys, arguments: args })
    } catch (error) {
      if (!String((error as Error)?.message).includes('NOSCRIPT')) throw error
      return client.eval(script, { keys, arguments: args })
    }
  }

  /**
   * The client once it is connected. While it first connects, calls wait for it (the resilient
   * store's budget bounds the wait); after that, a disconnected client fails at once.
   */
  private async connected(): Promise<Client> {
    const client = await this.ready
    if (!client.isReady) {
      if (this.everReady || this.connectFailed) throw new Error('Redis is not connected')
      await this.firstReady
      if (!client.isReady) throw new Error('Redis is not connected')
    }
    return client
  }

  async admit(input: AdmitInput): Promise<AdmitResult> {
    const { limits, now } = input
    const n = (v: number | null) => String(v ?? -1)
    const period = budgetPeriod(now, limits.budgetPeriodMs)
    const budgetKey = this.budgetKey(input.key, period)
    const reply = (await this.run('admit', this.keys(input.key, budgetKey), [
      String(now),
      input.id,
      String(input.windowMs),
      String(input.leaseTtlMs),
      n(limits.concurrency),
      n(limits.requests),
      n(limits.tokens),
      n(limits.budget),
      String((period + 1) * limits.budgetPeriodMs),
      String(input.tokens),
      String(limits.budgetPeriodMs * 2),
    ])) as [number, string?, number?]
    if (reply[0] === 1) {
      if (limits.budget !== null) this.budgetKeys.set(input.id, budgetKey)
      return { ok: true }
    }
    return { ok: false, limit: reply[1] as LimitKind, retryAfterMs: Number(reply[2]) }
  }

  async settle(input: SettleInput): Promise<void> {
    const budgetKey = this.budgetKeys.get(input.id)
    this.budgetKeys.delete(input.id)
    const used = input.limits.tokens === null ? input.used : Math.min(input.used, input.limits.tokens)
    await this.run(
      'settle',
      this.keys(input.key, budgetKey ?? `${this.options.prefix}{${input.key}}:budget:none`),
      [input.id, String(used), String(budgetKey === undefined ? 0 : input.used - input.estimate)],
    )
  }

  async renew(key: string, id: string, now: number, leaseTtlMs: number): Promise<void> {
    const keys = this.keys(key, `${this.options.prefix}{${key}}:budget:none`)
    await this.run('renew', keys, [id, String(now + leaseTtlMs), String(leaseTtlMs * 2)])
  }

  async inFlight(key: string, now: number): Promise<number> {
    const client = await this.connected()
    return client.zCount(`${this.options.prefix}{${key}}:leases`, `(${now}`, '+inf')
  }

  async set(key: string, value: string, ttlMs: number | null, ifAbsent = false): Promise<boolean> {
    const client = await this.connected()
    const options: Record<string, unknown> = {}
    if (ttlMs !== null) options.PX = ttlMs
    if (ifAbsent) options.NX = true
    const reply = await client.set(this.options.prefix + key, value, options)
    return reply === 'OK'
  }

  async get(key: string): Promise<string | null> {
    const client = await this.connected()
    return client.get(this.options.prefix + key)
  }

  async delete(key: string): Promise<void> {
    const client = await this.connected()
    await client.del(this.options.prefix + key)
  }

  async publish(message: StoreMessage): Promise<void> {
    const client = await this.connected()
    await client.publish(this.channel, JSON.stringify(message))
  }

  subscribe(listener: (message: StoreMessage) => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.listeners.clear()
    await this.ready.catch(() => {})
    // destroy(), not quit(): close() must settle at once even when Redis hangs or is gone.
    this.client?.destroy()
    this.subscriber?.destroy()
  }
}
