/**
 * Auth settings of a member that come from flags: the outside token issuer (--auth-jwks-file or --auth-jwks-url,
 * --auth-jwt-issuer, --auth-jwt-audience, --auth-jwt-user-claim), their checks, and the AuthConfig a runtime builds
 * from the flags and the files they name (docs/auth.md). --auth-token and --auth-password-iterations stay in
 * config.ts with etcd's other flags.
 */
import { type ExternalIssuerConfig, parseJwks } from './external.js'
import { type AuthConfig, authConfigDefault } from './service.js'
import { parseAuthTokenFlag, tokenIssuerDefault } from './token.js'

export interface ExternalIssuerFlags {
  /** --auth-jwks-file: JWKS of an outside token issuer, read at start ('' = none). */
  authJwksFile: string
  /** --auth-jwks-url: URL of an outside issuer's JWKS, fetched and cached ('' = none; https, or http on loopback). */
  authJwksUrl: string
  /** --auth-jwt-issuer: the `iss` outside tokens must carry (required with a JWKS). */
  authJwtIssuer: string
  /** --auth-jwt-audience: a value outside tokens' `aud` must hold (required with a JWKS). */
  authJwtAudience: string
  /** --auth-jwt-user-claim: the claim of an outside token that names the edgecd user. */
  authJwtUserClaim: string
}

export const externalIssuerDefaults: ExternalIssuerFlags = {
  authJwksFile: '',
  authJwksUrl: '',
  authJwtIssuer: '',
  authJwtAudience: '',
  authJwtUserClaim: 'sub',
}

/** Longest claim name --auth-jwt-user-claim takes. */
const claimNameBytesMax = 256

/**
 * What is wrong with the outside-issuer flags, or undefined (config.ts throws it as a ConfigError). A JWKS (file or
 * URL, not both) needs an issuer (not edgecd's own) and an audience; none of the other flags means anything without
 * one.
 */
export function externalIssuerProblem(c: ExternalIssuerFlags): string | undefined {
  const file = c.authJwksFile.trim()
  const url = c.authJwksUrl.trim()
  if (file !== '' && url !== '') return '--auth-jwks-file and --auth-jwks-url: give one, not both'
  if (c.authJwtUserClaim.trim() === '' || c.authJwtUserClaim.length > claimNameBytesMax)
    return `--auth-jwt-user-claim must be a claim name of 1 to ${claimNameBytesMax} characters`
  if (file === '' && url === '') {
    if (c.authJwtIssuer !== '') return '--auth-jwt-issuer needs --auth-jwks-file or --auth-jwks-url'
    if (c.authJwtAudience !== '') return '--auth-jwt-audience needs --auth-jwks-file or --auth-jwks-url'
    if (c.authJwtUserClaim !== externalIssuerDefaults.authJwtUserClaim)
      return '--auth-jwt-user-claim needs --auth-jwks-file or --auth-jwks-url'
    return undefined
  }
  const jwksFlag = file !== '' ? '--auth-jwks-file' : '--auth-jwks-url'
  if (c.authJwtIssuer.trim() === '') return `${jwksFlag} needs --auth-jwt-issuer (the iss its tokens carry)`
  if (c.authJwtAudience.trim() === '') return `${jwksFlag} needs --auth-jwt-audience (a value its tokens' aud holds)`
  if (c.authJwtIssuer === tokenIssuerDefault)
    return `--auth-jwt-issuer must differ from edgecd's own issuer ${JSON.stringify(tokenIssuerDefault)}`
  if (url !== '') {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      return `--auth-jwks-url: invalid URL ${JSON.stringify(url)}`
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
      return `--auth-jwks-url must be https (http only on loopback), got ${JSON.stringify(url)}`
  }
  return undefined
}

/**
 * A member's AuthConfig from its flags, reading the files they name with `readText` (the runtime's file access).
 * Throws an Error naming the flag (the runtime reports it as a configuration error).
 */
export function authConfigFromFlags(
  c: ExternalIssuerFlags & { authToken: string; authPasswordIterations: number },
  readText: (path: string) => string,
): AuthConfig {
  const token = parseAuthTokenFlag(c.authToken)
  const read = (flag: string, path: string) => {
    try {
      return readText(path)
    } catch (err) {
      throw new Error(`${flag}: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`)
    }
  }
  const out: AuthConfig = { ...authConfigDefault, token, passwordIterations: c.authPasswordIterations }
  if (token.pubKeyFile && token.privKeyFile)
    out.pem = {
      publicPem: read('--auth-token pub-key', token.pubKeyFile),
      privatePem: read('--auth-token priv-key', token.privKeyFile),
    }
  const problem = externalIssuerProblem(c)
  if (problem) throw new Error(problem)
  const file = c.authJwksFile.trim()
  const url = c.authJwksUrl.trim()
  if (file === '' && url === '') return out
  let jwks: ExternalIssuerConfig['jwks']
  if (file !== '') {
    try {
      jwks = parseJwks(read('--auth-jwks-file', file))
    } catch (err) {
      const m = (err as Error).message
      throw new Error(m.startsWith('--auth-jwks-file') ? m : `--auth-jwks-file ${JSON.stringify(file)}: ${m}`)
    }
  } else jwks = new URL(url)
  out.external = { jwks, issuer: c.authJwtIssuer, audience: c.authJwtAudience, userClaim: c.authJwtUserClaim }
  return out
}
