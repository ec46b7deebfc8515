/**
 * Auth tokens: JWTs signed with an asymmetric key (ES256 by default, EdDSA on request), through jose and Web Crypto.
 * Claims: `sub` (user), `rev` (the auth revision at issue, so a token from before a permission change is refused as
 * etcd's JWT tokens are), `iat`, `exp`, `iss`. Verification pins the algorithm and key id and checks every claim;
 * every failure is the same `etcdserver: invalid auth token` (code 16), so an attacker learns nothing from it.
 */
import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  importSPKI,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose'
import { EtcdError, etcdError, GrpcCode } from '../protocol/errors.js'
import type { AuthInfo, SigningKeyRecord } from './store.js'

/** etcd's default JWT TTL (its `ttl` option of --auth-token is 5 minutes). */
export const tokenTtlSecondsDefault = 300
/** The longest token (and Authorization header) looked at; a real one is ~300 bytes. */
export const tokenBytesMax = 4096
/** The `iss` claim edgecd writes and requires. */
export const tokenIssuerDefault = 'edgecd'

/** Signature algorithms a key may use (asymmetric only: a shared secret would let any verifier mint tokens). */
export type SignMethod = 'ES256' | 'EdDSA'
export const signMethods: readonly SignMethod[] = ['ES256', 'EdDSA']

/** What `--auth-token` said (etcd's syntax: `jwt,pub-key=FILE,priv-key=FILE,sign-method=ES256,ttl=5m`). */
export interface AuthTokenFlag {
  signMethod: SignMethod
  pubKeyFile?: string
  privKeyFile?: string
  ttlSeconds: number
}

/** Parses --auth-token. `simple` (etcd's default) is accepted and means JWTs with a generated key. */
export function parseAuthTokenFlag(s: string): AuthTokenFlag {
  const parts = s.split(',').map((p) => p.trim())
  const kind = parts.shift()
  const out: AuthTokenFlag = { signMethod: 'ES256', ttlSeconds: tokenTtlSecondsDefault }
  if (kind === 'simple' && parts.length === 0) return out
  if (kind !== 'jwt') throw new Error(`--auth-token: expected "jwt,..." or "simple", got ${JSON.stringify(kind)}`)
  for (const p of parts) {
    const eq = p.indexOf('=')
    const k = eq < 0 ? p : p.slice(0, eq)
    const v = eq < 0 ? '' : p.slice(eq + 1)
    if (k === 'pub-key') out.pubKeyFile = v
    else if (k === 'priv-key') out.privKeyFile = v
    else if (k === 'sign-method') {
      if (!signMethods.includes(v as SignMethod))
        throw new Error(`--auth-token: sign-method must be one of ${signMethods.join(', ')}, got ${JSON.stringify(v)}`)
      out.signMethod = v as SignMethod
    } else if (k === 'ttl') out.ttlSeconds = parseDurationSeconds(v)
    else throw new Error(`--auth-token: unknown option ${JSON.stringify(k)}`)
  }
  if ((out.pubKeyFile === undefined) !== (out.privKeyFile === undefined))
    throw new Error('--auth-token: pub-key and priv-key go together')
  return out
}

/** Go-style durations as etcd's ttl option takes them: `300s`, `5m`, `1h`, or plain seconds. */
function parseDurationSeconds(v: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(v)
  if (!m) throw new Error(`--auth-token: bad ttl ${JSON.stringify(v)}`)
  const n = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1)
  if (n < 1 || n > 86_400) throw new Error('--auth-token: ttl must be between 1s and 24h')
  return n
}

/** A fresh signing key (the first enable generates one when none is configured; it is then replicated). */
export async function generateSigningKey(alg: SignMethod = 'ES256'): Promise<SigningKeyRecord> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  const privateJwk = await exportJWK(privateKey)
  const kid = await calculateJwkThumbprint(publicJwk)
  return { alg, kid, privateJwk, publicJwk }
}

export interface TokenOptions {
  ttlSeconds: number
  issuer: string
}

/** Signs and verifies tokens with one key pair. */
export class TokenKeys {
  private constructor(
    readonly alg: SignMethod,
    readonly kid: string,
    private readonly privateKey: CryptoKey | undefined,
    private readonly publicKey: CryptoKey,
    private readonly publicJwk: JWK,
    readonly options: TokenOptions,
  ) {}

  /** From a replicated key record. */
  static async fromRecord(rec: SigningKeyRecord, options: TokenOptions): Promise<TokenKeys> {
    const priv = (await importJWK(rec.privateJwk, rec.alg)) as CryptoKey
    const pub = (await importJWK(rec.publicJwk, rec.alg)) as CryptoKey
    return new TokenKeys(rec.alg, rec.kid, priv, pub, publicPart(rec.publicJwk), options)
  }

  /** From PEM text (SPKI public key, PKCS#8 private key), as --auth-token pub-key= / priv-key= name them. */
  static async fromPem(
    alg: SignMethod,
    publicPem: string,
    privatePem: string,
    options: TokenOptions,
  ): Promise<TokenKeys> {
    const pub = await importSPKI(publicPem, alg, { extractable: true })
    const priv = await importPKCS8(privatePem, alg)
    const jwk = await exportJWK(pub)
    const kid = await calculateJwkThumbprint(jwk)
    return new TokenKeys(alg, kid, priv, pub, publicPart(jwk), options)
  }

  /** A signed token for `user` at auth revision `rev`. */
  async sign(user: string, rev: number, nowSeconds: number): Promise<string> {
    if (!this.privateKey) throw new Error('auth: no private key to sign with')
    return new SignJWT({ rev })
      .setProtectedHeader({ alg: this.alg, kid: this.kid, typ: 'JWT' })
      .setSubject(user)
      .setIssuer(this.options.issuer)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + this.options.ttlSeconds)
      .sign(this.privateKey)
  }

  /** Checks a token; its user and revision, or ErrInvalidAuthToken for any defect. */
  async verify(token: string, nowSeconds: number): Promise<AuthInfo> {
    return (await this.verifyUntil(token, nowSeconds)).info
  }

  /** As verify, with the last second the token is valid in (its `exp`, bounded by `iat` + TTL), for the cache. */
  async verifyUntil(token: string, nowSeconds: number): Promise<{ info: AuthInfo; validUntilSeconds: number }> {
    const invalid = () => new EtcdError('ErrInvalidAuthToken')
    if (token.length > tokenBytesMax || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw invalid()
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw invalid()
    }
    // Pinned: the algorithm and key are ours, whatever the header claims (no "none", no HS256 with the public key).
    if (
      header.alg !== this.alg ||
      header.kid !== this.kid ||
      header.crit !== undefined ||
      (header.typ !== undefined && header.typ !== 'JWT')
    )
      throw invalid()
    try {
      const { payload } = await jwtVerify(token, this.publicKey, {
        algorithms: [this.alg],
        issuer: this.options.issuer,
        currentDate: new Date(nowSeconds * 1000),
        requiredClaims: ['sub', 'exp', 'iat', 'iss'],
        maxTokenAge: this.options.ttlSeconds + 1,
      })
      const rev = payload.rev
      if (
        typeof payload.sub !== 'string' ||
        payload.sub === '' ||
        typeof rev !== 'number' ||
        !Number.isSafeInteger(rev) ||
        rev < 1
      )
        throw invalid()
      const iat = payload.iat!
      const validUntilSeconds = Math.min(payload.exp!, iat + this.options.ttlSeconds + 1)
      return { info: { user: payload.sub, rev }, validUntilSeconds }
    } catch {
      throw invalid()
    }
  }

  /** The public key as a JWK Set (served at /.well-known/jwks.json). Never the private part. */
  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.publicJwk, kid: this.kid, alg: this.alg, use: 'sig' }] }
  }
}

/** Only the public members of a JWK, whatever the input carried. */
function publicPart(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e } = jwk
  const out: JWK = { kty }
  if (crv !== undefined) out.crv = crv
  if (x !== undefined) out.x = x
  if (y !== undefined) out.y = y
  if (n !== undefined) out.n = n
  if (e !== undefined) out.e = e
  return out
}

/** The token from an Authorization header: `Bearer <jwt>` or etcd's raw `<token>`; undefined when absent or blank. */
export function tokenFromHeader(value: string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined
  const v = value.trim()
  if (v === '') return undefined
  const m = /^bearer\s+(.*)$/i.exec(v)
  return m ? m[1]!.trim() : v
}

/** The WebSocket subprotocol a member answers with when a client sends its token as a subprotocol. */
export const watchSubprotocol = 'edgecd'
/** The subprotocol carrying a token: `bearer.<jwt>` (a JWT's characters are all valid in a subprotocol name). */
const bearerSubprotocol = /^bearer\.(.*)$/i
/** A JWT's shape: three base64url parts joined by dots. */
const tokenChars = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * The token a WebSocket client offers through `Sec-WebSocket-Protocol` (a browser cannot set Authorization on a
 * WebSocket): `edgecd, bearer.<jwt>`, with `edgecd` first so that it is the subprotocol the member answers with (the
 * token is never echoed back). Undefined when no `bearer.` subprotocol is offered. Throws ErrInvalidAuthToken for one
 * offered but malformed (characters outside a JWT's, longer than tokenBytesMax, more than one), and an
 * InvalidArgument error when `edgecd` is not offered first.
 */
export function tokenFromSubprotocols(header: string | undefined | null): string | undefined {
  if (header === undefined || header === null) return undefined
  const offered = header.split(',').map((p) => p.trim())
  const bearers = offered.map((p) => bearerSubprotocol.exec(p)?.[1]).filter((t) => t !== undefined)
  if (bearers.length === 0) return undefined
  const token = bearers[0]!
  if (bearers.length > 1 || token.length > tokenBytesMax || !tokenChars.test(token))
    throw new EtcdError('ErrInvalidAuthToken')
  if (offered[0] !== watchSubprotocol)
    throw etcdError(
      GrpcCode.InvalidArgument,
      `a token in Sec-WebSocket-Protocol needs "${watchSubprotocol}" offered first: ["${watchSubprotocol}", "bearer.<token>"]`,
    )
  return token
}
