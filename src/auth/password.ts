/**
 * Password hashing: PBKDF2-HMAC-SHA256 through crypto.subtle (etcd uses bcrypt; Web Crypto has no bcrypt, and
 * PBKDF2-SHA256 is what OWASP lists for FIPS settings). The hash is computed on the member that receives the request,
 * before proposing, so that applying stays deterministic and cheap and the clear password never enters the log.
 */

/** OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256. */
export const passwordIterationsDefault = 600_000
/** The least a configuration may ask for (tests use it to stay fast). */
export const passwordIterationsMin = 1_000
/** Salt length in bytes (NIST SP 800-132 asks for at least 16). */
export const passwordSaltBytes = 16
/** Derived key length in bytes. */
export const passwordHashBytes = 32
/** Passwords longer than this are refused before hashing (bounds the work an unauthenticated caller can cause). */
export const passwordBytesMax = 1024

/** A stored password: the algorithm, its parameters and the derived key. Never the password itself. */
export interface PasswordHash {
  alg: 'pbkdf2-sha256'
  iterations: number
  salt: Uint8Array
  hash: Uint8Array
}

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, [
    'deriveBits',
  ])
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as BufferSource, iterations },
    material,
    passwordHashBytes * 8,
  )
  return new Uint8Array(bits)
}

/** Hashes a password with a fresh random salt. */
export async function hashPassword(password: string, iterations = passwordIterationsDefault): Promise<PasswordHash> {
  if (!Number.isSafeInteger(iterations) || iterations < passwordIterationsMin)
    throw new RangeError(`PBKDF2 iterations must be >= ${passwordIterationsMin}`)
  const salt = crypto.getRandomValues(new Uint8Array(passwordSaltBytes))
  return { alg: 'pbkdf2-sha256', iterations, salt, hash: await derive(password, salt, iterations) }
}

/** Compares in time independent of where the bytes differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}

/**
 * Checks a password against a stored hash. `stored` undefined (unknown user, or a user added with no_password)
 * still spends one derivation with the default parameters, so that timing does not tell which users exist.
 */
export async function verifyPassword(
  password: string,
  stored: PasswordHash | undefined,
  iterations = passwordIterationsDefault,
): Promise<boolean> {
  if (new TextEncoder().encode(password).length > passwordBytesMax) return false
  if (stored === undefined || stored.alg !== 'pbkdf2-sha256') {
    await derive(password, new Uint8Array(passwordSaltBytes), iterations)
    return false
  }
  return constantTimeEqual(await derive(password, stored.salt, stored.iterations), stored.hash)
}
