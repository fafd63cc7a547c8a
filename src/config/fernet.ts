/**
 * Fernet (https://github.com/fernet/spec), the symmetric token format Python's `cryptography` uses for
 * seed 003's `api_key_encrypted`: version byte 0x80, 64-bit big-endian timestamp, 128-bit IV,
 * AES-128-CBC ciphertext (PKCS7), HMAC-SHA256 over all of that. The key is 32 url-safe base64 bytes:
 * the first 16 sign, the last 16 encrypt. node:crypto only.
 *
 * Strict like current `cryptography` releases: url-safe alphabet only, padding required, nothing after
 * it. Error reasons never contain the key, the token or the plaintext.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

const VERSION = 0x80
const HEADER = 1 + 8 + 16
const MAC = 32
const BLOCK = 16
/** `cryptography` rejects tokens stamped more than this far ahead of now (with a TTL). */
const MAX_CLOCK_SKEW_SEC = 60
const URLSAFE_B64 = /^[A-Za-z0-9_-]*={0,2}$/

/** Why a token or key was refused. `reason` is safe to show: it never contains secret material. */
export class FernetError extends Error {
  constructor(readonly reason: string) {
    super(reason)
    this.name = 'FernetError'
  }
}

interface Keys {
  signing: Buffer
  encryption: Buffer
}

function decodeUrlSafe(text: string): Buffer | null {
  if (text.length === 0 || text.length % 4 !== 0 || !URLSAFE_B64.test(text)) return null
  return Buffer.from(text, 'base64url')
}

function keysOf(key: string): Keys {
  const raw = decodeUrlSafe(key.trim())
  if (raw === null || raw.length !== 32) {
    throw new FernetError('the encryption key is not a Fernet key (32 bytes, url-safe base64)')
  }
  return { signing: raw.subarray(0, 16), encryption: raw.subarray(16) }
}

export interface FernetDecryptOptions {
  /** Reject tokens older than this many seconds (and stamped over 60 s in the future). Default: no age check, as `Fernet.decrypt(token)`. */
  ttlSec?: number
  /** Current Unix time in seconds, for the TTL check. Default: now. */
  nowSec?: number
}

/**
 * Decrypts a Fernet token with `key` and returns the plaintext as UTF-8.
 * @throws FernetError naming what is wrong (format, signature: wrong key or tampered token, age, padding).
 */
export function fernetDecrypt(token: string, key: string, options: FernetDecryptOptions = {}): string {
  const keys = keysOf(key)
  const data = decodeUrlSafe(token.trim())
  if (data === null) throw new FernetError('the token is not url-safe base64')
  if (data.length === 0 || data[0] !== VERSION)
    throw new FernetError('the token is not a Fernet token (version byte)')
  const bodyLength = data.length - HEADER - MAC
  if (bodyLength <= 0) throw new FernetError('the token is too short')
  if (bodyLength % BLOCK !== 0) throw new FernetError('the token ciphertext is not a whole number of blocks')
  const signed = data.subarray(0, data.length - MAC)
  const expected = createHmac('sha256', keys.signing).update(signed).digest()
  if (!timingSafeEqual(expected, data.subarray(data.length - MAC))) {
    throw new FernetError('the token signature does not match: wrong key, or the token was altered')
  }
  if (options.ttlSec !== undefined) {
    const now = options.nowSec ?? Math.floor(Date.now() / 1000)
    const stamped = Number(data.readBigUInt64BE(1))
    if (stamped + options.ttlSec < now) throw new FernetError('the token has expired')
    if (now + MAX_CLOCK_SKEW_SEC < stamped) throw new FernetError('the token is stamped in the future')
  }
  const decipher = createDecipheriv('aes-128-cbc', keys.encryption, data.subarray(9, HEADER))
  let plain: Buffer
  try {
    plain = Buffer.concat([decipher.update(data.subarray(HEADER, data.length - MAC)), decipher.final()])
  } catch {
    throw new FernetError('the token does not decrypt (bad padding)')
  }
  return plain.toString('utf8')
}

export interface FernetEncryptOptions {
  /** 16 bytes; default random. Fixed only for test vectors. */
  iv?: Uint8Array
  /** Unix seconds to stamp; default now. */
  nowSec?: number
}

/** Encrypts `plaintext` (UTF-8) into a Fernet token, as `Fernet(key).encrypt(...)` does. */
export function fernetEncrypt(plaintext: string, key: string, options: FernetEncryptOptions = {}): string {
  const keys = keysOf(key)
  const iv = options.iv === undefined ? randomBytes(16) : Buffer.from(options.iv)
  if (iv.length !== 16) throw new FernetError('the IV must be 16 bytes')
  const header = Buffer.alloc(9)
  header[0] = VERSION
  header.writeBigUInt64BE(BigInt(options.nowSec ?? Math.floor(Date.now() / 1000)), 1)
  const cipher = createCipheriv('aes-128-cbc', keys.encryption, iv)
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  const signed = Buffer.concat([header, iv, ciphertext])
  const mac = createHmac('sha256', keys.signing).update(signed).digest()
  return Buffer.concat([signed, mac])
    .toString('base64url')
    .padEnd(Math.ceil((signed.length + MAC) / 3) * 4, '=')
}

/** A new random Fernet key (url-safe base64 of 32 bytes), like `Fernet.generate_key()`. */
export function fernetGenerateKey(): string {
  return randomBytes(32).toString('base64url').padEnd(44, '=')
}
