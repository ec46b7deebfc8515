/** Helpers for the auth tests: a member set up with root, a role and a user; token-carrying calls; throwaway keys. */
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { type Answer, b64, post } from '../support/index.js'

export { b64 }

/** POST with an Authorization header (raw token, etcd's way, unless `bearer`). */
export function call(base: string, path: string, body: unknown, token?: string, bearer = false): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = bearer ? `Bearer ${token}` : token
  return post(base, path, body, { headers })
}

/** prefix end of a string, base64. */
export function prefixEndB64(p: string): string {
  const b = Buffer.from(p)
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]! += 1
      return b.subarray(0, i + 1).toString('base64')
    }
  }
  return 'AA=='
}

export interface AuthFixture {
  m: TestMember
  root: string
  alice: string
  login(name: string, password: string): Promise<string>
}

/**
 * A member with user root (role root), role `app` (READWRITE on prefix `app/`, READ on key `shared`), user alice
 * (role app), auth enabled; tokens for root and alice.
 */
export async function authFixture(base?: string): Promise<AuthFixture & { url: string }> {
  const m = base ? undefined : await startTestMember({ authPasswordIterations: 1000 })
  const url = base ?? m!.url
  const must = async (path: string, body: unknown, token?: string) => {
    const r = await call(url, path, body, token)
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text}`)
    return r
  }
  await must('/v3/auth/user/add', { name: 'root', password: 'rootpw' })
  await must('/v3/auth/user/grant', { user: 'root', role: 'root' })
  await must('/v3/auth/role/add', { name: 'app' })
  await must('/v3/auth/role/grant', {
    name: 'app',
    perm: { permType: 'READWRITE', key: b64('app/'), range_end: prefixEndB64('app/') },
  })
  await must('/v3/auth/role/grant', { name: 'app', perm: { permType: 'READ', key: b64('shared') } })
  await must('/v3/auth/user/add', { name: 'alice', password: 'alicepw' })
  await must('/v3/auth/user/grant', { user: 'alice', role: 'app' })
  await must('/v3/auth/enable', {})
  const login = async (name: string, password: string) =>
    (await must('/v3/auth/authenticate', { name, password })).json.token as string
  return { m: m!, url, root: await login('root', 'rootpw'), alice: await login('alice', 'alicepw'), login }
}

/** A throwaway P-256 key pair written to dir/pub.pem and dir/priv.pem; the --auth-token value naming them. */
export function writeSigningKeys(dir: string): { authToken: string; privatePem: string } {
  const kp = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  })
  writeFileSync(join(dir, 'pub.pem'), kp.publicKey)
  writeFileSync(join(dir, 'priv.pem'), kp.privateKey)
  return {
    authToken: `jwt,pub-key=${join(dir, 'pub.pem')},priv-key=${join(dir, 'priv.pem')}`,
    privatePem: kp.privateKey,
  }
}

/** Adds user root (role root) with `password`, then the other users given (no roles), then enables auth if asked. */
export async function addRoot(
  url: string,
  password: string,
  opts: { enable?: boolean; users?: Record<string, string> } = {},
): Promise<void> {
  const must = async (path: string, body: unknown) => {
    const r = await post(url, path, body)
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text}`)
  }
  await must('/v3/auth/user/add', { name: 'root', password })
  await must('/v3/auth/user/grant', { user: 'root', role: 'root' })
  for (const [name, pw] of Object.entries(opts.users ?? {})) await must('/v3/auth/user/add', { name, password: pw })
  if (opts.enable) await must('/v3/auth/enable', {})
}
