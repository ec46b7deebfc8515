/**
 * The auth API against an in-process member: etcd 3.4's shapes and errors for /v3/auth/*, enforcement on KV, lease,
 * maintenance and watch calls, token revision, disable, the JWKS, and that auth state survives a restart.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'
import { type AuthFixture, authFixture, call } from './helpers.js'

describe('auth API', () => {
  let f: AuthFixture & { url: string }
  before(async () => {
    f = await authFixture()
  })
  after(() => f.m.stop())

  test('errors: missing token 400/3, bad token 401/16, forbidden 403/7', async () => {
    const r1 = await call(f.url, '/v3/kv/range', { key: b64('app/x') })
    assert.equal(r1.status, 400)
    assert.equal(
      r1.text,
      '{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}',
    )
    const r2 = await call(f.url, '/v3/kv/range', { key: b64('app/x') }, 'garbage.token.here')
    assert.equal(r2.status, 401)
    assert.equal(
      r2.text,
      '{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}',
    )
    const r3 = await call(f.url, '/v3/kv/range', { key: b64('secret') }, f.alice)
    assert.equal(r3.status, 403)
    assert.equal(
      r3.text,
      '{"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7}',
    )
  })

  test('permitted calls work with raw and Bearer tokens', async () => {
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('app/a'), value: b64('1') }, f.alice)).status, 200)
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('app/b'), value: b64('2') }, f.alice, true)).status, 200)
    const r = await call(f.url, '/v3/kv/range', { key: b64('app/'), range_end: b64('app0') }, f.alice, true)
    assert.equal(r.status, 200)
    assert.equal(r.json.count, '2')
    assert.equal((await call(f.url, '/v3/kv/range', { key: b64('shared') }, f.alice)).status, 200)
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('shared'), value: b64('x') }, f.alice)).status, 403)
    assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/'), range_end: b64('app1') }, f.alice)).status, 403)
    assert.equal((await call(f.url, '/v3/kv/deleterange', { key: b64('app/b') }, f.alice)).status, 200)
    assert.equal(
      (await call(f.url, '/v3/kv/deleterange', { key: b64('app/'), range_end: 'AA==' }, f.alice)).status,
      403,
    )
  })

  test('root only: hash, member add; compaction, alarms, lease grant, status, member list need no token (etcd 3.4)', async () => {
    // etcd 3.4.23 compacts and raises alarms for any caller (read off it: test/diff/python-clients.test.ts).
    assert.equal((await call(f.url, '/v3/kv/compaction', { revision: 1 }, f.alice)).status, 200)
    assert.equal((await call(f.url, '/v3/kv/compaction', { revision: 2 })).status, 200)
    assert.equal((await call(f.url, '/v3/kv/compaction', { revision: 3 }, f.root)).status, 200)
    assert.equal((await call(f.url, '/v3/maintenance/alarm', { action: 'GET' })).status, 200)
    // etcd 3.4 checks a txn's compares and ops one by one: one with none needs no user (random-admin seed 9202).
    assert.equal((await call(f.url, '/v3/kv/txn', {})).status, 200)
    assert.equal((await call(f.url, '/v3/kv/txn', { success: [{ request_txn: {} }] })).status, 200)
    assert.equal((await call(f.url, '/v3/kv/txn', { compare: [{ key: b64('k') }] })).status, 400)
    const raise = await call(f.url, '/v3/maintenance/alarm', { action: 'ACTIVATE', alarm: 'NOSPACE' }, f.alice)
    assert.equal(raise.status, 200)
    // etcd 3.4.23's status lists it as AlarmMember.String(): member 0 left out (session 9 soak, random-admin 9201).
    assert.deepEqual((await call(f.url, '/v3/maintenance/status', {})).json.errors, ['alarm:NOSPACE '])
    // With auth on, etcd 3.4.23 disarms for any caller, but a token that does not verify gets its untranslated error.
    const bad = await call(f.url, '/v3/maintenance/alarm', { action: 'DEACTIVATE', alarm: 'NOSPACE' }, 'bad.token.x')
    assert.equal(bad.status, 500)
    assert.equal(bad.json.message, 'auth: invalid auth token')
    const disarm = await call(f.url, '/v3/maintenance/alarm', { action: 'DEACTIVATE', alarm: 'NOSPACE' }, f.alice)
    assert.deepEqual(disarm.json.alarms, [{ alarm: 'NOSPACE' }])
    assert.equal((await call(f.url, '/v3/maintenance/alarm', { action: 'ACTIVATE', alarm: 'NOSPACE' })).status, 200)
    assert.equal((await call(f.url, '/v3/maintenance/alarm', { action: 'DEACTIVATE', alarm: 'NOSPACE' })).status, 200)
    // etcd 3.4's authMaintenanceServer answers its own error untranslated: 500, code 2, `auth: permission denied`.
    assert.equal((await call(f.url, '/v3/maintenance/hash', {}, f.alice)).status, 500)
    assert.equal(
      (await call(f.url, '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:1'] }, f.alice)).status,
      403,
    )
    assert.equal((await call(f.url, '/v3/lease/grant', { TTL: 30 })).status, 200)
    assert.equal((await call(f.url, '/v3/maintenance/status', {})).status, 200)
    assert.equal((await call(f.url, '/v3/cluster/member/list', {})).status, 200)
  })

  test('user and role management shapes; a user may get itself, not others', async () => {
    const u = await call(f.url, '/v3/auth/user/get', { name: 'alice' }, f.alice)
    assert.equal(u.status, 200)
    assert.deepEqual(u.json.roles, ['app'])
    assert.equal((await call(f.url, '/v3/auth/user/get', { name: 'root' }, f.alice)).status, 403)
    const l = await call(f.url, '/v3/auth/user/list', {}, f.root)
    assert.deepEqual(l.json.users, ['alice', 'root'])
    const rg = await call(f.url, '/v3/auth/role/get', { role: 'app' }, f.root)
    assert.deepEqual(rg.json.perm, [
      { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') },
      { key: b64('shared') },
    ])
    assert.deepEqual((await call(f.url, '/v3/auth/role/list', {}, f.root)).json.roles, ['app'])
    const nf = await call(f.url, '/v3/auth/user/get', { name: 'nobody' }, f.root)
    assert.equal(nf.status, 412)
    assert.equal(nf.json.message, 'etcdserver: user name not found')
  })

  test('a permission change makes older tokens old; a fresh token works', async () => {
    const t0 = await f.login('alice', 'alicepw')
    assert.equal((await call(f.url, '/v3/auth/role/add', { name: 'tmp' }, f.root)).status, 200)
    const old = await call(f.url, '/v3/kv/range', { key: b64('app/a') }, t0)
    assert.equal(old.status, 400)
    assert.equal(old.json.message, 'etcdserver: revision of auth store is old')
    f.alice = await f.login('alice', 'alicepw')
    f.root = await f.login('root', 'rootpw')
    assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/a') }, f.alice)).status, 200)
  })

  test('watch: permitted create, forbidden create refused with etcd message', async () => {
    const r = await fetch(`${f.url}/v3/watch`, {
      method: 'POST',
      headers: { authorization: f.alice },
      body:
        JSON.stringify({ create_request: { key: b64('secret') } }) +
        JSON.stringify({ create_request: { key: b64('app/'), range_end: b64('app0') } }),
    })
    assert.equal(r.status, 200)
    const reader = r.body!.getReader()
    let text = ''
    const deadline = Date.now() + 30_000
    while (text.split('\n').length < 3 && Date.now() < deadline)
      text += new TextDecoder().decode((await reader.read()).value)
    await reader.cancel()
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).result)
    assert.equal(lines[0].watch_id, '-1')
    assert.equal(lines[0].canceled, true)
    assert.equal(lines[0].cancel_reason, 'rpc error: code = PermissionDenied desc = etcdserver: permission denied')
    assert.equal(lines[1].created, true)
    assert.equal(lines[1].canceled, undefined)
  })

  test('JWKS serves the public key only', async () => {
    const r = await fetch(`${f.url}/.well-known/jwks.json`)
    const j = (await r.json()) as { keys: Record<string, string>[] }
    assert.equal(j.keys.length, 1)
    assert.equal(j.keys[0]!.alg, 'ES256')
    assert.equal(j.keys[0]!.d, undefined)
  })

  test('disable needs root; then calls need no token; disable again is 200', async () => {
    assert.equal((await call(f.url, '/v3/auth/disable', {}, f.alice)).status, 403)
    assert.equal((await call(f.url, '/v3/auth/disable', {}, f.root)).status, 200)
    assert.equal((await call(f.url, '/v3/kv/range', { key: b64('secret') })).status, 200)
    assert.equal((await call(f.url, '/v3/auth/disable', {})).status, 200)
    // Auth off, a token is still read, as etcd 3.4 does (found by test/diff/random-admin.test.ts, session 9): a bad
    // one fails a read, a write or an auth call with `invalid auth token`; a good one (not expired) passes; calls
    // etcd does not read it for (status, lease timetolive) pass.
    const bad = '{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}'
    for (const [path, body] of [
      ['/v3/kv/range', { key: b64('secret') }],
      ['/v3/kv/put', { key: b64('x'), value: b64('1') }],
      ['/v3/auth/user/list', {}],
    ] as const) {
      const r = await call(f.url, path, body, 'garbage.token.here')
      assert.deepEqual([r.status, r.text], [401, bad], path)
    }
    // alice's token is from before the disable (another auth revision): etcd's doSerialize fails a read with it, auth
    // off too; a write passes.
    const old = await call(f.url, '/v3/kv/range', { key: b64('secret') }, f.alice)
    assert.deepEqual(
      [old.status, old.text],
      [
        400,
        '{"error":"etcdserver: revision of auth store is old","message":"etcdserver: revision of auth store is old","code":3}',
      ],
    )
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('x'), value: b64('2') }, f.alice)).status, 200)
    assert.equal((await call(f.url, '/v3/maintenance/status', {}, 'garbage.token.here')).status, 200)
    // hashkv reads it too (etcd's authMaintenanceServer, untranslated); a watch refuses each create.
    const h = await call(f.url, '/v3/maintenance/hashkv', {}, 'garbage.token.here')
    assert.deepEqual(
      [h.status, h.text],
      [500, '{"error":"auth: invalid auth token","message":"auth: invalid auth token","code":2}'],
    )
    const ac = new AbortController()
    const w = await fetch(`${f.url}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('x') } }),
      headers: { authorization: 'garbage.token.here' },
      signal: ac.signal,
    })
    const reader = w.body!.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    ac.abort()
    assert.match(
      first,
      /"canceled":true,"cancel_reason":"rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"/,
    )
    const a = await call(f.url, '/v3/auth/authenticate', { name: 'root', password: 'rootpw' })
    assert.equal(a.status, 412)
    assert.equal(a.json.message, 'etcdserver: authentication is not enabled')
    assert.equal((await call(f.url, '/v3/auth/enable', {})).status, 200)
  })
})

describe('auth rules and persistence', () => {
  test('enable without root: etcd errors; auth state survives restart', async () => {
    const m = await startTestMember({ authPasswordIterations: 1000 })
    try {
      const e1 = await post(m.url, '/v3/auth/enable', {})
      assert.equal(e1.status, 412)
      assert.equal(e1.json.message, 'etcdserver: root user does not exist')
      await post(m.url, '/v3/auth/user/add', { name: 'root', password: 'pw' })
      const e2 = await post(m.url, '/v3/auth/enable', {})
      assert.equal(e2.json.message, 'etcdserver: root user does not have root role')
      assert.equal(
        (await post(m.url, '/v3/auth/user/add', { name: 'root', password: 'pw' })).json.message,
        'etcdserver: user name already exists',
      )
      await post(m.url, '/v3/auth/user/grant', { user: 'root', role: 'root' })
      assert.equal((await post(m.url, '/v3/auth/enable', {})).status, 200)
      const t = (await post(m.url, '/v3/auth/authenticate', { name: 'root', password: 'pw' })).json.token
      const bad = await post(m.url, '/v3/auth/authenticate', { name: 'root', password: 'nope' })
      assert.equal(bad.status, 400)
      assert.equal(bad.json.message, 'etcdserver: authentication failed, invalid user ID or password')
      // restart on the same data dir
      await m.running.stop()
      const m2 = await startTestMember({
        authPasswordIterations: 1000,
        dataDir: m.dir,
        listenClientUrls: [m.url],
        advertiseClientUrls: [m.url],
        initialAdvertisePeerUrls: [m.url],
      })
      try {
        assert.equal((await post(m2.url, '/v3/kv/range', { key: b64('k') })).status, 400)
        assert.equal(
          (await call(m2.url, '/v3/kv/range', { key: b64('k') }, t)).status,
          200,
          'the replicated key still verifies the token',
        )
      } finally {
        await m2.running.stop()
      }
    } finally {
      await m.stop().catch(() => {})
    }
  })
})

// Differences found by test/diff/random-admin.test.ts (session 9), each as etcd 3.4.23 answers it.
describe('auth: etcd 3.4 details found by the random differential run', () => {
  let f: AuthFixture & { url: string }
  before(async () => {
    f = await authFixture()
  })
  after(() => f.m.stop())

  const body = (code: number, message: string) => `{"error":"${message}","message":"${message}","code":${code}}`

  test('hashkv (authMaintenanceServer): untranslated auth errors, code 2; no revision check', async () => {
    const r1 = await call(f.url, '/v3/maintenance/hashkv', {})
    assert.deepEqual([r1.status, r1.text], [500, body(2, 'auth: user name is empty')])
    const r2 = await call(f.url, '/v3/maintenance/hashkv', {}, f.alice)
    assert.deepEqual([r2.status, r2.text], [500, body(2, 'auth: permission denied')])
    const r3 = await call(f.url, '/v3/maintenance/hashkv', {}, 'garbage.token.here')
    assert.deepEqual([r3.status, r3.text], [500, body(2, 'auth: invalid auth token')])
    const r4 = await call(f.url, '/v3/maintenance/alarm', {}, 'garbage.token.here')
    assert.deepEqual([r4.status, r4.text], [500, body(2, 'auth: invalid auth token')])
    // status never reads a token
    assert.equal((await call(f.url, '/v3/maintenance/status', {}, 'garbage.token.here')).status, 200)
  })

  test('a request error comes before the token: an empty key with a bad token is "key is not provided"', async () => {
    const r = await call(f.url, '/v3/kv/put', { value: b64('x') }, 'garbage.token.here')
    assert.deepEqual([r.status, r.text], [400, body(3, 'etcdserver: key is not provided')])
  })

  test('user get of "" without a user: not found; revoke of a lease without keys needs no user', async () => {
    const r = await call(f.url, '/v3/auth/user/get', { name: '' })
    assert.deepEqual([r.status, r.text], [412, body(9, 'etcdserver: user name not found')])
    assert.equal((await call(f.url, '/v3/lease/grant', { ID: 55, TTL: 600 })).status, 200)
    assert.equal((await call(f.url, '/v3/lease/revoke', { ID: 55 })).status, 200)
  })

  test('granting a role the user holds changes nothing: tokens do not get old', async () => {
    assert.equal((await call(f.url, '/v3/auth/user/grant', { user: 'alice', role: 'app' }, f.root)).status, 200)
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('app/k'), value: b64('1') }, f.alice)).status, 200)
  })

  test('an admin call with the token of a deleted user: "user name not found", as etcd 3.4', async () => {
    // etcd's IsAdminPermitted looks the user up and checks no auth revision (random-admin seeds 9403/9404).
    assert.equal((await call(f.url, '/v3/auth/user/add', { name: 'eve', password: 'evepw' }, f.root)).status, 200)
    const eve = (await call(f.url, '/v3/auth/authenticate', { name: 'eve', password: 'evepw' })).json.token
    assert.equal((await call(f.url, '/v3/auth/user/delete', { name: 'eve' }, f.root)).status, 200)
    const r = await call(f.url, '/v3/auth/user/list', {}, eve)
    assert.deepEqual([r.status, r.text], [412, body(9, 'etcdserver: user name not found')])
  })
})
