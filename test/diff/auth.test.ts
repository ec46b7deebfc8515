/**
 * Differential test of the auth flows against Debian's etcd 3.4: the same sequence of user and role management,
 * enable, authenticate, permitted and denied calls, and disable, sent to both; status and body must match once
 * ids, terms and tokens are normalised (etcd 3.4 hands out simple tokens, edgecd JWTs). etcd wants the raw token in
 * Authorization, which edgecd also accepts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { type EtcdProcess, post, startEtcd } from '../support/index.js'
import { requires } from '../support/requirements.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')
type Who = 'none' | 'root' | 'alice' | 'bad'
type Step = [path: string, body: unknown, who?: Who]

const steps: Step[] = [
  ['/v3/auth/authenticate', { name: 'root', password: 'rootpw' }],
  ['/v3/auth/enable', {}],
  ['/v3/auth/user/add', { name: 'root', password: 'rootpw' }],
  ['/v3/auth/enable', {}],
  ['/v3/auth/user/grant', { user: 'root', role: 'root' }],
  ['/v3/auth/role/add', { name: 'app' }],
  ['/v3/auth/role/add', { name: 'app' }],
  ['/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') } }],
  ['/v3/auth/role/grant', { name: 'app', perm: { permType: 'READ', key: b64('shared') } }],
  ['/v3/auth/role/grant', { name: 'nope', perm: { key: b64('x') } }],
  ['/v3/auth/user/add', { name: 'alice', password: 'alicepw' }],
  ['/v3/auth/user/add', { name: 'alice', password: 'alicepw' }],
  ['/v3/auth/user/grant', { user: 'alice', role: 'app' }],
  ['/v3/auth/user/grant', { user: 'alice', role: 'nope' }],
  ['/v3/auth/user/grant', { user: 'nobody', role: 'app' }],
  ['/v3/auth/user/revoke', { name: 'alice', role: 'other' }],
  ['/v3/auth/role/revoke', { role: 'app', key: b64('nothing') }],
  ['/v3/auth/user/list', {}],
  ['/v3/auth/role/list', {}],
  ['/v3/auth/role/get', { role: 'app' }],
  ['/v3/auth/role/get', { role: 'nope' }],
  ['/v3/auth/user/get', { name: 'alice' }],
  ['/v3/auth/user/get', { name: 'nobody' }],
  ['/v3/kv/put', { key: b64('secret'), value: b64('s') }],
  ['/v3/auth/enable', {}],
  ['/v3/auth/authenticate', { name: 'root', password: 'wrong' }],
  ['/v3/auth/authenticate', { name: 'ghost', password: 'x' }],
  ['/v3/kv/range', { key: b64('app/a') }],
  ['/v3/kv/range', { key: b64('app/a') }, 'bad'],
  ['/v3/kv/put', { key: b64('app/a'), value: b64('1') }, 'alice'],
  ['/v3/kv/range', { key: b64('app/a') }, 'alice'],
  ['/v3/kv/range', { key: b64('app/'), range_end: b64('app0') }, 'alice'],
  ['/v3/kv/range', { key: b64('secret') }, 'alice'],
  ['/v3/kv/range', { key: b64('shared') }, 'alice'],
  ['/v3/kv/put', { key: b64('shared'), value: b64('x') }, 'alice'],
  ['/v3/kv/range', { key: b64('app/'), range_end: 'AA==' }, 'alice'],
  ['/v3/kv/deleterange', { key: b64('secret') }, 'alice'],
  [
    '/v3/kv/txn',
    {
      compare: [{ key: b64('secret'), target: 'VALUE', value: b64('s') }],
      success: [{ request_put: { key: b64('app/b'), value: b64('2') } }],
    },
    'alice',
  ],
  [
    '/v3/kv/txn',
    {
      compare: [{ key: b64('app/a'), target: 'VERSION', version: 1 }],
      success: [{ request_put: { key: b64('app/b'), value: b64('2') } }],
    },
    'alice',
  ],
  ['/v3/kv/range', { key: b64('secret') }, 'root'],
  ['/v3/auth/user/get', { name: 'alice' }, 'alice'],
  ['/v3/auth/user/get', { name: 'root' }, 'alice'],
  ['/v3/auth/user/list', {}, 'alice'],
  ['/v3/auth/user/list', {}, 'root'],
  ['/v3/auth/role/add', { name: 'x' }, 'alice'],
  ['/v3/auth/user/grant', { user: 'alice', role: 'root' }, 'alice'],
  ['/v3/auth/user/delete', { name: 'root' }, 'root'],
  ['/v3/lease/grant', { TTL: 60, ID: 77 }],
  ['/v3/maintenance/status', {}],
  ['/v3/auth/disable', {}, 'alice'],
  ['/v3/auth/disable', {}, 'root'],
  ['/v3/auth/disable', {}],
  ['/v3/kv/range', { key: b64('secret') }],
  ['/v3/auth/authenticate', { name: 'root', password: 'rootpw' }],
]

interface Norm {
  status: number
  body: unknown
}

function normalise(status: number, text: string): Norm {
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    return { status, body: text }
  }
  if (body?.header) {
    for (const k of ['cluster_id', 'member_id', 'raft_term']) if (k in body.header) body.header[k] = '<id>'
  }
  if (typeof body?.token === 'string') body.token = '<token>'
  // status: dbSize, leader, raft indexes differ by implementation
  if (body?.version !== undefined && body?.dbSize !== undefined) body = { status: 'ok' }
  return { status, body }
}

async function run(url: string): Promise<Norm[]> {
  const tokens: Record<string, string> = { bad: 'not-a-valid-token' }
  const out: Norm[] = []
  for (const [path, body, who = 'none'] of steps) {
    const headers: Record<string, string> = {}
    if (who !== 'none') headers.authorization = tokens[who]!
    const r = await post(url, path, body, { headers })
    out.push(normalise(r.status, r.text))
    // log in as soon as authentication works
    if (path === '/v3/auth/enable' && r.status === 200) {
      for (const [name, pw] of [
        ['root', 'rootpw'],
        ['alice', 'alicepw'],
      ]) {
        const a = await post(url, '/v3/auth/authenticate', { name, password: pw })
        tokens[name!] = a.json.token
      }
    }
  }
  return out
}

describe('auth: differential against etcd 3.4', { skip: requires('etcd') }, () => {
  let etcd: EtcdProcess
  let m: TestMember
  before(async () => {
    etcd = await startEtcd()
    m = await startTestMember({ authPasswordIterations: 1000 })
  })
  after(async () => {
    await etcd?.stop()
    await m?.stop()
  })

  test('same statuses and bodies for the whole flow', async () => {
    const want = await run(etcd.url)
    const got = await run(m.url)
    if (process.env.EDGECD_DEBUG_AUTH_DIFF) console.log(JSON.stringify(want.map((w) => w.status)))
    const diffs: string[] = []
    for (let i = 0; i < steps.length; i++) {
      if (JSON.stringify(want[i]) !== JSON.stringify(got[i]))
        diffs.push(
          `${i} ${steps[i]![0]} ${JSON.stringify(steps[i]![1])} as ${steps[i]![2] ?? 'none'}\n  etcd:   ${JSON.stringify(want[i])}\n  edgecd: ${JSON.stringify(got[i])}`,
        )
    }
    assert.deepEqual(diffs, [])
  })
})
