import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { decryptKey } from '../src/config/encrypted-key.js'
import { FernetError, fernetDecrypt, fernetEncrypt, fernetGenerateKey } from '../src/config/fernet.js'

interface Vector {
  token: string
  now: string
  secret: string
  src?: string
  iv?: number[]
  ttl_sec?: number
  desc?: string
}

function vectors(name: string): Vector[] {
  return JSON.parse(readFileSync(new URL(`./fixtures/fernet/${name}`, import.meta.url), 'utf8')) as Vector[]
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000)

describe('Fernet against the spec vectors (fernet/spec)', () => {
  it.each(vectors('generate.json'))('generate: $src', (v) => {
    const token = fernetEncrypt(v.src as string, v.secret, {
      iv: Uint8Array.from(v.iv as number[]),
      nowSec: seconds(v.now),
    })
    expect(token).toBe(v.token)
  })

  it.each(vectors('verify.json'))('verify: $src', (v) => {
    expect(fernetDecrypt(v.token, v.secret, { ttlSec: v.ttl_sec as number, nowSec: seconds(v.now) })).toBe(
      v.src,
    )
  })

  it.each(vectors('invalid.json'))('invalid: $desc', (v) => {
    const run = () =>
      fernetDecrypt(v.token, v.secret, { ttlSec: v.ttl_sec as number, nowSec: seconds(v.now) })
    expect(run).toThrow(FernetError)
  })

  it('the invalid vectors fail for their own reason', () => {
    const reasons = Object.fromEntries(
      vectors('invalid.json').map((v) => {
        try {
          fernetDecrypt(v.token, v.secret, { ttlSec: v.ttl_sec as number, nowSec: seconds(v.now) })
          return [v.desc, 'accepted']
        } catch (error) {
          return [v.desc, (error as FernetError).reason]
        }
      }),
    )
    expect(reasons).toEqual({
      'incorrect mac': expect.stringContaining('signature does not match'),
      'too short': expect.stringContaining('too short'),
      'invalid base64': expect.stringContaining('base64'),
      'payload size not multiple of block size': expect.stringContaining('whole number of blocks'),
      'payload padding error': expect.stringContaining('padding'),
      'far-future TS (unacceptable clock skew)': expect.stringContaining('future'),
      'expired TTL': expect.stringContaining('expired'),
      'incorrect IV (causes padding error)': expect.stringContaining('padding'),
      'trailing characters after b64 padding': expect.stringContaining('base64'),
      'invalid characters in b64': expect.stringContaining('base64'),
      'invalid non-urlsafe characters in b64': expect.stringContaining('base64'),
    })
  })
})

describe('Fernet in use', () => {
  it('round-trips with a generated key and no TTL (as Fernet.decrypt(token) without ttl)', () => {
    const key = fernetGenerateKey()
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}=$/)
    const token = fernetEncrypt('sk-live-ünïcode', key, { nowSec: 1 })
    expect(token.startsWith('gAAAAA')).toBe(true)
    expect(fernetDecrypt(token, key)).toBe('sk-live-ünïcode')
  })

  it('a wrong key is a signature mismatch; a bad key is named; reasons never carry secrets', () => {
    const key = fernetGenerateKey()
    const token = fernetEncrypt('sk-secret-123', key)
    const other = fernetGenerateKey()
    let caught: unknown
    try {
      fernetDecrypt(token, other)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(FernetError)
    const text = `${(caught as Error).message} ${(caught as Error).stack}`
    for (const secret of ['sk-secret-123', key, other, token]) expect(text).not.toContain(secret)
    expect(() => fernetDecrypt(token, 'not-a-key')).toThrow(/not a Fernet key/)
  })

  it('a tampered token (one ciphertext byte flipped) is refused', () => {
    const key = fernetGenerateKey()
    const raw = Buffer.from(fernetEncrypt('sk-secret-123', key), 'base64url')
    raw[30] = (raw[30] as number) ^ 1
    const tampered = raw.toString('base64url').padEnd(Math.ceil(raw.length / 3) * 4, '=')
    expect(() => fernetDecrypt(tampered, key)).toThrow(/signature does not match/)
  })
})

describe('decryptKey (request time)', () => {
  it('a token that does not decrypt with the key in the variable says why and keeps the FernetError as cause', () => {
    const token = fernetEncrypt('sk-plain', fernetGenerateKey())
    const result = decryptKey(token, fernetGenerateKey(), 'KEY_ENV')
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.unset).toBe(false)
    expect(result.reason).toContain('cannot be decrypted with the key in KEY_ENV')
    expect(result.cause).toBeInstanceOf(FernetError)
    expect(result.reason).not.toContain('sk-plain')
  })
})
