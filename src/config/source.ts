/**
 * The config source the router asks for a snapshot per request: one implementation per lookup
 * mode (list-source.ts, model-source.ts) and, without an admin URL, the environment records.
 */
import { SourceBase } from './base.js'
import type { ConfigSnapshot, ConfigSource, ConfigSourceDeps } from './contract.js'
import { ListConfigSource } from './list-source.js'
import { ModelConfigSource } from './model-source.js'
import { VersionCounter } from './snapshot.js'

export { MAX_CACHED_MODELS } from './base.js'

/** No admin URL: environment records, synchronously, forever. */
class EnvConfigSource extends SourceBase implements ConfigSource {
  #snapshot: ConfigSnapshot | null = null

  get(): ConfigSnapshot {
    if (this.#snapshot === null) {
      this.#snapshot = this.envSnapshot('no admin URL is configured', new VersionCounter(), null)
      this.emit('config:fallback', {
        origin: this.#snapshot.origin as 'env' | 'default',
        reason: `no admin URL configured; using ${this.envResult().reason}`,
      })
    }
    return this.#snapshot
  }

  refresh(): Promise<ConfigSnapshot> {
    if (this.closed) return Promise.reject(this.closedError())
    return Promise.resolve(this.get())
  }

  current(): ConfigSnapshot {
    return this.get()
  }
}

/** Creates the config source for the options' admin URL and lookup mode. */
export function createConfigSource(deps: ConfigSourceDeps): ConfigSource {
  if (deps.admin.url === null) return new EnvConfigSource(deps)
  return deps.admin.lookup === 'model' ? new ModelConfigSource(deps) : new ListConfigSource(deps)
}
