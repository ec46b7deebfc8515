/**
 * Auth for the HTTP bench (`npm run bench -- http --auth`): turns auth on in a running member with a non-root user
 * whose one role grants READWRITE on the bench's key prefix (so every request goes through the permission check, not
 * root's shortcut), and logs that user in. The key space is written before, with auth off.
 */

/** The bench user and its password (a throwaway member, a throwaway password). */
const user = { name: 'bench', password: 'bench-password' }
const root = { name: 'root', password: 'root-password' }
/** The bench's keys: `bench/key/00000` ... (bench/lib/load.ts). */
const prefix = 'bench/key/'

const b64 = (s: string) => Buffer.from(s).toString('base64')

async function must(url: string, path: string, body: unknown, token?: string): Promise<any> {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: token ? { authorization: token } : {},
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}: ${text}`)
  return JSON.parse(text)
}

/** Adds root and the bench user with READWRITE on the bench prefix, and enables auth. */
export async function enableBenchAuth(url: string): Promise<void> {
  const end = b64('bench/key0') // prefixEnd('bench/key/')
  await must(url, '/v3/auth/user/add', root)
  await must(url, '/v3/auth/user/grant', { user: root.name, role: 'root' })
  await must(url, '/v3/auth/role/add', { name: 'bench' })
  await must(url, '/v3/auth/role/grant', {
    name: 'bench',
    perm: { permType: 'READWRITE', key: b64(prefix), range_end: end },
  })
  await must(url, '/v3/auth/user/add', user)
  await must(url, '/v3/auth/user/grant', { user: user.name, role: 'bench' })
  await must(url, '/v3/auth/enable', {})
}

/** A fresh token of the bench user (a token lives 300 s: each run logs in again). */
export async function benchToken(url: string): Promise<string> {
  return (await must(url, '/v3/auth/authenticate', user)).token as string
}
