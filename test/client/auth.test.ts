/**
 * The client's auth: every /v3/auth call through `client.auth`, and user/password clients that authenticate on first
 * use, cache the token, and authenticate again (once) when the server refuses it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Client, EtcdClientError } from '../../src/client/index.js'
import { type RestartableMember, startMember, testClient } from './helpers.js'

/** A fetch that counts authenticate calls and can spoil the token of the next request. */
function countingFetch() {
  const s = { authenticates: 0, spoilNext: false }
  const f: typeof fetch = (input, init) => {
    const url = String(input)
    if (url.endsWith('/v3/auth/authenticate')) s.authenticates++
    else if (s.spoilNext && init?.headers) {
      s.spoilNext = false
      init = { ...init, headers: { ...(init.headers as Record<string, string>), authorization: 'Bearer x.y.z' } }
    }
    return fetch(input, init)
  }
  return { s, f }
}

describe('client auth', () => {
  let m: RestartableMember
  let admin: Client
  before(async () => {
    m = await startMember({ authPasswordIterations: 1000 })
    admin = testClient([m.url])
  })
  after(async () => {
    admin?.close()
    await m?.close()
  })

  test('users and roles through client.auth, with typed answers', async () => {
    const st = await admin.auth.status()
    assert.equal(st.enabled, false)
    await admin.auth.userAdd('root', 'rootpw')
    await admin.auth.userGrantRole('root', 'root')
    await admin.auth.roleAdd('app')
    await admin.auth.roleGrantPermission('app', 'READWRITE', 'app/', { prefix: true })
    await admin.auth.roleGrantPermission('app', 'READ', 'shared')
    await admin.auth.roleGrantPermission('app', 'WRITE', 'z', { fromKey: true })
    const role = await admin.auth.roleGet('app')
    assert.deepEqual(
      role.perm.map((p) => [p.permType, p.key, p.rangeEnd]),
      [
        ['READWRITE', 'app/', 'app0'],
        ['READ', 'shared', ''],
        ['WRITE', 'z', '\0'],
      ],
    )
    await admin.auth.roleRevokePermission('app', 'z', { fromKey: true })
    assert.equal((await admin.auth.roleGet('app')).perm.length, 2)
    await admin.auth.userAdd('alice', 'alicepw')
    await admin.auth.userGrantRole('alice', 'app')
    await admin.auth.roleAdd('tmp')
    await admin.auth.userGrantRole('alice', 'tmp')
    assert.deepEqual((await admin.auth.userGet('alice')).roles, ['app', 'tmp'])
    await admin.auth.userRevokeRole('alice', 'tmp')
    await admin.auth.roleDelete('tmp')
    assert.deepEqual((await admin.auth.roleList()).roles, ['app'])
    await admin.auth.userAdd('bob', 'bobpw')
    await admin.auth.userDelete('bob')
    assert.deepEqual((await admin.auth.userList()).users, ['alice', 'root'])
    const dup = await admin.auth.userAdd('alice', 'x').catch((e: unknown) => e)
    assert.ok(dup instanceof EtcdClientError)
    assert.equal(dup.message, 'etcdserver: user name already exists')
    assert.equal(dup.grpcCode, 9)
    // Credentials while auth is off: no token is sent, calls work (as clientv3 on ErrAuthNotEnabled).
    const early = testClient([m.url], { username: 'alice', password: 'alicepw' })
    await early.put('anything', '1')
    early.close()
    await admin.auth.enable()
    const on = await admin.auth.status()
    assert.equal(on.enabled, true)
    assert.ok(on.authRevision > st.authRevision)
  })

  test('a user/password client authenticates once, caches the token, and renews it when refused', async () => {
    const anon = await admin.put('app/x', '1').catch((e: unknown) => e)
    assert.ok(anon instanceof EtcdClientError)
    assert.equal(anon.message, 'etcdserver: user name is empty')

    const { s, f } = countingFetch()
    const alice = testClient([m.url], { username: 'alice', password: 'alicepw', fetch: f })
    await Promise.all([alice.put('app/a', '1'), alice.put('app/b', '2'), alice.get('shared')])
    assert.equal(s.authenticates, 1, 'concurrent first calls share one authenticate')
    assert.equal((await alice.get('app/a'))?.value, '1')
    assert.equal(s.authenticates, 1, 'the token is cached')
    const denied = await alice.put('other', 'x').catch((e: unknown) => e)
    assert.ok(denied instanceof EtcdClientError)
    assert.equal(denied.message, 'etcdserver: permission denied')
    assert.equal(denied.grpcCode, 7)

    // An invalid token (here: spoiled on the wire) is renewed and the write sent once more.
    s.spoilNext = true
    await alice.put('app/c', '3')
    assert.equal(s.authenticates, 2)
    assert.equal((await alice.get('app/c'))?.value, '3')

    // A change to the auth store makes every older token old ("revision of auth store is old"): renewed too.
    const root = testClient([m.url], { username: 'root', password: 'rootpw' })
    await root.auth.roleAdd('later')
    await alice.put('app/d', '4')
    assert.equal(s.authenticates, 3)

    // Snapshot (a streaming call) carries the token too: root only.
    let bytes = 0
    for await (const c of root.snapshot()) bytes += c.blob.length
    assert.ok(bytes > 0)

    const wrong = testClient([m.url], { username: 'alice', password: 'nope' })
    const e = await wrong.get('app/a').catch((err: unknown) => err)
    assert.ok(e instanceof EtcdClientError)
    assert.equal(e.message, 'etcdserver: authentication failed, invalid user ID or password')

    const tok = await admin.auth.authenticate('alice', 'alicepw')
    const withToken = testClient([m.url], { token: tok.token })
    assert.equal((await withToken.get('app/a'))?.value, '1')

    await root.auth.userChangePassword('alice', 'newpw')
    const renewed = testClient([m.url], { username: 'alice', password: 'newpw' })
    assert.equal((await renewed.get('app/b'))?.value, '2')
    await root.auth.disable()
    assert.equal((await admin.auth.status()).enabled, false)
    for (const c of [alice, root, wrong, withToken, renewed]) c.close()
  })
})
