/**
 * Tokens from an outside issuer (an identity provider): JWTs verified against its JSON Web Key Set, read from a file
 * at start or fetched from a URL (jose's createLocalJWKSet / createRemoteJWKSet, which cache the keys and refetch on
 * an unknown `kid`, at most once per cooldown). `iss` and `aud` must be the configured ones, `exp` is required, the
 * algorithm is pinned to asymmetric ones (RS256, ES256, EdDSA; the key's JWK `alg` must agree when it names one),
 * and the user is the value of one claim (`sub` by default), which must name an edgecd user: its roles give the
 * permissions, exactly as with edgecd's own tokens. Every failure is `etcdserver: invalid auth token`.
 */
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey, jwtVerify } from 'jose'
import { EtcdError } from '../protocol/errors.js'
import { authLimits } from './store.js'

/** Algorithms an outside issuer may sign with: asymmetric only (a shared secret would let any verifier mint tokens). */
export const externalAlgorithms = ['RS256', 'ES256', 'EdDSA'] as const
/** Clock skew allowed on `exp`, `nbf` and `iat` of an outside token (seconds). */
export const externalClockToleranceSeconds = 10
/** Bound on fetching the JWKS URL (ms); a verification waiting on it fails after this. */
export const jwksFetchTimeoutMs = 5_000
/** How long fetched keys are used before they are fetched again (ms). */
export const jwksCacheMaxAgeMs = 10 * 60_000
/** Least time between two fetches caused by an unknown `kid` (ms), so forged kids cannot hammer the issuer. */
export const jwksCooldownMs = 30_000
/** The largest JWKS file or answer accepted (bytes). */
export const jwksBytesMax = 256 * 1024

/** How an outside issuer is configured (--auth-jwks-file or --auth-jwks-url, --auth-jwt-issuer, ...). */
export interface ExternalIssuerConfig {
  /** The key set (from --auth-jwks-file, read by the runtime), or the URL to fetch it from (--auth-jwks-url). */
  jwks: JSONWebKeySet | URL
  /** --auth-jwt-issuer: the required `iss`. */
  issuer: string
  /** --auth-jwt-audience: a value the `aud` claim must hold. */
  audience: string
  /** --auth-jwt-user-claim: the claim naming the edgecd user (default `sub`). */
  userClaim: string
}

/**
 * Parses and checks a JWKS document: a `keys` array of public signature keys (no private parts, no symmetric keys).
 * Throws an Error saying what is wrong (start-up configuration errors).
 */
export function parseJwks(text: string): JSONWebKeySet {
  if (text.length > jwksBytesMax) throw new Error(`JWKS larger than ${jwksBytesMax} bytes`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new Error('JWKS is not JSON')
  }
  const keys = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('JWKS has no "keys" array with at least one key')
  for (const [i, k] of keys.entries()) {
    if (k === null || typeof k !== 'object') throw new Error(`JWKS key ${i} is not an object`)
    const { kty, d, k: secret, alg, use } = k as Record<string, unknown>
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP')
      throw new Error(`JWKS key ${i}: kty must be RSA, EC or OKP, got ${JSON.stringify(kty)}`)
    if (d !== undefined || secret !== undefined) throw new Error(`JWKS key ${i} holds private key material`)
    if (alg !== undefined && !(externalAlgorithms as readonly unknown[]).includes(alg))
      throw new Error(`JWKS key ${i}: alg must be one of ${externalAlgorithms.join(', ')}, got ${JSON.stringify(alg)}`)
    if (use !== undefined && use !== 'sig') throw new Error(`JWKS key ${i}: use must be "sig"`)
  }
  return doc as JSONWebKeySet
}

/** Who an outside token names, and until when (seconds since the epoch) it is valid. */
export interface ExternalIdentity {
  user: string
  expSeconds: number
}

/** Verifies tokens of one outside issuer. */
export class ExternalIssuer {
  private readonly getKey: JWTVerifyGetKey

  constructor(readonly config: ExternalIssuerConfig) {
    this.getKey =
      config.jwks instanceof URL
        ? createRemoteJWKSet(config.jwks, {
            timeoutDuration: jwksFetchTimeoutMs,
            cooldownDuration: jwksCooldownMs,
            cacheMaxAge: jwksCacheMaxAgeMs,
          })
        : createLocalJWKSet(config.jwks)
  }

  get issuer(): string {
    return this.config.issuer
  }

  /** The user and expiry of a token of this issuer, or ErrInvalidAuthToken for any defect. */
  async verify(token: string, nowSeconds: number): Promise<ExternalIdentity> {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.getKey, {
        algorithms: [...externalAlgorithms],
        issuer: this.config.issuer,
        audience: this.config.audience,
        currentDate: new Date(nowSeconds * 1000),
        clockTolerance: externalClockToleranceSeconds,
        requiredClaims: ['exp', 'iss', 'aud'],
      })
      if (protectedHeader.crit !== undefined) throw new Error('crit')
      const user = payload[this.config.userClaim]
      if (
        typeof user !== 'string' ||
        user === '' ||
        new TextEncoder().encode(user).length > authLimits.nameBytesMax ||
        typeof payload.exp !== 'number'
      )
        throw new Error('claims')
      return { user, expSeconds: payload.exp }
    } catch {
      throw new EtcdError('ErrInvalidAuthToken')
    }
  }
}
