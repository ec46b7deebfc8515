/**
 * Token verification on the serving member: edgecd's own tokens and, when configured, an outside issuer's, with a
 * bounded cache of tokens already verified. A signature check (ECDSA P-256) costs tens of µs of CPU on every request
 * that carries a token; the cache makes a repeated token a map lookup. A cached entry is used only until the token
 * expires and, for edgecd's tokens, only while the auth revision it carries is current (a stale one would be refused
 * with `revision of auth store is old` anyway: it is dropped so the check decides afresh).
 */
import { decodeJwt } from 'jose'
import { EtcdError } from '../protocol/errors.js'
import type { ExternalIssuer } from './external.js'
import type { AuthInfo } from './store.js'
import { type TokenKeys, tokenBytesMax } from './token.js'

/** Verified tokens kept at most (least recently used dropped first). A token is ~300 bytes: ~5 MB at most. */
export const tokenCacheEntriesMax = 10_000

interface CachedToken {
  user: string
  /** The auth revision an edgecd token carries; undefined for an outside token (checked at the current revision). */
  rev: number | undefined
  /** The token is used from the cache while now < this (seconds since the epoch). */
  validUntilSeconds: number
}

/** A bounded LRU map of token string → who it names (a Map iterates in insertion order: the first is the oldest). */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken>()

  constructor(readonly entriesMax = tokenCacheEntriesMax) {}

  get size(): number {
    return this.entries.size
  }

  /** The entry of a token still valid at `nowSeconds` and auth revision `revision`, or undefined. */
  get(token: string, nowSeconds: number, revision: number): CachedToken | undefined {
    const e = this.entries.get(token)
    if (e === undefined) return undefined
    this.entries.delete(token)
    if (nowSeconds >= e.validUntilSeconds || (e.rev !== undefined && e.rev < revision)) return undefined
    this.entries.set(token, e) // most recently used last
    return e
  }

  set(token: string, e: CachedToken): void {
    this.entries.delete(token)
    while (this.entries.size >= this.entriesMax) {
      const oldest = this.entries.keys().next().value
      if (oldest === undefined) break
      this.entries.delete(oldest)
    }
    this.entries.set(token, e)
  }

  clear(): void {
    this.entries.clear()
  }
}

export interface TokenVerifierDeps {
  /** edgecd's signing keys; undefined before the first enable (no token of ours can exist yet). */
  keys(): Promise<TokenKeys> | undefined
  /** The outside issuer, when one is configured. */
  external: ExternalIssuer | undefined
  /** The current auth revision (an outside token is valid for the revision it is checked at). */
  revision(): number
  nowSeconds(): number
}

/** Turns a token into the caller (AuthInfo), or throws ErrInvalidAuthToken. */
export class TokenVerifier {
  readonly cache = new TokenCache()
  private keysSeen: Promise<TokenKeys> | undefined

  constructor(private readonly d: TokenVerifierDeps) {}

  async verify(token: string): Promise<AuthInfo> {
    if (token.length > tokenBytesMax) throw new EtcdError('ErrInvalidAuthToken')
    const now = this.d.nowSeconds()
    const revision = this.d.revision()
    const keys = this.d.keys()
    // Tokens were checked with other keys (a restored snapshot): none of them counts any more.
    if (keys !== this.keysSeen) {
      this.cache.clear()
      this.keysSeen = keys
    }
    const hit = this.cache.get(token, now, revision)
    if (hit) return { user: hit.user, rev: hit.rev ?? revision }
    const ext = this.d.external
    // The issuer names which keys to check with; the signature then proves it (a token of ours claiming the outside
    // issuer is checked against the outside keys only, and fails).
    if (ext && issuerOf(token) === ext.issuer) {
      const id = await ext.verify(token, now)
      this.cache.set(token, { user: id.user, rev: undefined, validUntilSeconds: id.expSeconds })
      return { user: id.user, rev: revision }
    }
    if (!keys) throw new EtcdError('ErrInvalidAuthToken')
    const { info, validUntilSeconds } = await (await keys).verifyUntil(token, now)
    this.cache.set(token, { user: info.user, rev: info.rev, validUntilSeconds })
    return info
  }
}

/** The unverified `iss` of a JWT, or undefined when it has none or is not a JWT. */
function issuerOf(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss
    return typeof iss === 'string' ? iss : undefined
  } catch {
    return undefined
  }
}
