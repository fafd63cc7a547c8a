/**
 * Seed 003's `api_key_encrypted`: the Fernet token travels in the record (`auth.bearer_encrypted`),
 * the key in an environment variable (`auth.key_env`), and the two meet per request, so a rotated key
 * is used by the next request and the plaintext is never part of a record, `router.config()`, an
 * event or a metric. Decryptions are cached per token and key value (a few per provider).
 */
import { FernetError, fernetDecrypt } from './fernet.js'

/** Why a key could not be had: the variable is unset, or the token does not decrypt with its value. */
export type EncryptedKeyResult =
  | { ok: true; key: string }
  | { ok: false; unset: boolean; reason: string; cause?: unknown }

const MAX_CACHED = 256
const cache = new Map<string, string>()

/** Decrypts `token` with the key value `keyValue` (undefined: the variable is unset). */
export function decryptKey(token: string, keyValue: string | undefined, keyEnv: string): EncryptedKeyResult {
  if (keyValue === undefined) {
    return {
      ok: false,
      unset: true,
      reason: `the environment variable ${keyEnv} (the Fernet key) is not set`,
    }
  }
  const id = `${keyValue}\u0000${token}`
  const cached = cache.get(id)
  if (cached !== undefined) return { ok: true, key: cached }
  try {
    const key = fernetDecrypt(token, keyValue)
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string)
    cache.set(id, key)
    return { ok: true, key }
  } catch (error) {
    const why = error instanceof FernetError ? error.reason : 'it could not be decrypted'
    return {
      ok: false,
      unset: false,
      reason: `api_key_encrypted cannot be decrypted with the key in ${keyEnv}: ${why}`,
      cause: error,
    }
  }
}
