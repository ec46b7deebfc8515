/**
 * The `etcd3` npm client (grpc-js, etcd's protos) drives edgecd's gRPC front door: KV, watch, leases, locks,
 * elections, STM and auth, against one member and against a three-member cluster through a follower.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Etcd3, type IKeyValue } from 'etcd3'
import { startCluster, type TestCluster } from '../cluster/helpers.js'
import { startTestMember, type TestMember } from '../server/helpers.js'

/** Resolves with the value of `f()` once it is truthy, polling; fails after `ms`. */
async function eventually<T>(f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v) return v
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The behaviours every etcd3 user relies on, against the members at `hosts`. */
async function exercise(hosts: string[], tag: string): Promise<void> {
  const client = new Etcd3({ hosts })
  try {
    // KV
    await client.put(`${tag}/a`).value('1')
    await client.put(`${tag}/b`).value('2')
    assert.equal(await client.get(`${tag}/a`).string(), '1')
    assert.deepEqual(await client.getAll().prefix(`${tag}/`).strings(), { [`${tag}/a`]: '1', [`${tag}/b`]: '2' })
    assert.equal(await client.getAll().prefix(`${tag}/`).count(), 2)
    const del = await client.delete().key(`${tag}/b`).exec()
    assert.equal(del.deleted, '1')
    assert.equal(await client.get(`${tag}/b`).string(), null)

    // txn via if/then/else
    const t = await client
      .if(`${tag}/a`, 'Value', '==', '1')
      .then(client.put(`${tag}/a`).value('3'))
      .commit()
    assert.equal(t.succeeded, true)
    assert.equal(await client.get(`${tag}/a`).string(), '3')

    // watch: events in order, with a prev_kv
    const watcher = await client.watch().prefix(`${tag}/w`).withPreviousKV().create()
    const seen: string[] = []
    watcher.on('put', (kv: IKeyValue, prev?: IKeyValue) =>
      seen.push(`put ${kv.key.toString()}=${kv.value.toString()} prev=${prev?.value.toString() ?? ''}`),
    )
    watcher.on('delete', (kv: IKeyValue) => seen.push(`delete ${kv.key.toString()}`))
    await client.put(`${tag}/w1`).value('x')
    await client.put(`${tag}/w1`).value('y')
    await client.delete().key(`${tag}/w1`)
    await eventually(() => seen.length >= 3)
    assert.deepEqual(seen, [`put ${tag}/w1=x prev=`, `put ${tag}/w1=y prev=x`, `delete ${tag}/w1`])
    await watcher.cancel()

    // leases: grant, attach, keep alive, revoke deletes the key
    const lease = client.lease(30, { autoKeepAlive: false })
    await lease.put(`${tag}/leased`).value('v')
    assert.ok((await lease.keepaliveOnce()).TTL)
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: await lease.grant() })
    assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 30)
    await lease.revoke()
    assert.equal(await client.get(`${tag}/leased`).string(), null)

    // locks (etcd3's are try-locks): a held lock refuses a second holder until released
    const l1 = await client.lock(`${tag}-lock`).ttl(10).acquire()
    await assert.rejects(client.lock(`${tag}-lock`).ttl(10).acquire(), /Failed to acquire a lock/)
    await l1.release()
    const l2 = await client.lock(`${tag}-lock`).ttl(10).acquire()
    await l2.release()

    // elections: campaign, observe the leader, resign hands over
    const election = client.election(`${tag}-election`, 10)
    const c1 = election.campaign('one')
    await new Promise<void>((resolve, reject) => {
      c1.on('elected', () => resolve())
      c1.on('error', reject)
    })
    const observer = await election.observe()
    assert.equal(observer.leader(), 'one')
    const c2 = election.campaign('two')
    const changed = new Promise<string>((resolve) => observer.once('change', (v: string) => resolve(v)))
    await c1.resign()
    assert.equal(await changed, 'two')
    await c2.resign()
    await observer.cancel()

    // STM: read-modify-write of two keys, atomically. (etcd3's SerializableSnapshot compares every written key's
    // mod revision with the smallest one read, so keys written at different revisions always conflict, against
    // etcd too: RepeatableReads compares each key with what was read, as Go's STM does.)
    await client.put(`${tag}/acct1`).value('10')
    await client.put(`${tag}/acct2`).value('0')
    await client.stm({ isolation: 2 as never /* Isolation.RepeatableReads, a const enum */ }).transact(async (tx) => {
      const v1 = (await tx.get(`${tag}/acct1`).number()) ?? 0
      const v2 = (await tx.get(`${tag}/acct2`).number()) ?? 0
      await tx.put(`${tag}/acct1`).value(String(v1 - 4))
      await tx.put(`${tag}/acct2`).value(String(v2 + 4))
    })
    assert.equal(await client.get(`${tag}/acct1`).string(), '6')
    assert.equal(await client.get(`${tag}/acct2`).string(), '4')
  } finally {
    client.close()
  }
}

describe('etcd3 npm client against one member', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ authPasswordIterations: 1000 })
  })
  after(async () => {
    await m?.stop()
  })

  test('KV, txn, watch, leases, locks, elections, STM', async () => {
    await exercise([m.url], 'one')
  })

  test('auth: users, roles, a user client, a wrong password, a forbidden key', async () => {
    const root = new Etcd3({ hosts: [m.url] })
    try {
      await root.role('root').create()
      await root.user('root').create('rootpw')
      await root.user('root').addRole('root')
      const r = await root.role('app').create()
      await r.grant({ permission: 'Readwrite', range: root.range({ prefix: 'app/' }) })
      await root.user('alice').create('alicepw')
      await root.user('alice').addRole('app')
      await root.auth.authEnable()
    } finally {
      root.close()
    }
    const alice = new Etcd3({ hosts: [m.url], auth: { username: 'alice', password: 'alicepw' } })
    const wrong = new Etcd3({ hosts: [m.url], auth: { username: 'alice', password: 'nope' } })
    const admin = new Etcd3({ hosts: [m.url], auth: { username: 'root', password: 'rootpw' } })
    try {
      await alice.put('app/x').value('1')
      assert.equal(await alice.get('app/x').string(), '1')
      await assert.rejects(alice.put('other').value('1').exec(), /permission denied/)
      await assert.rejects(wrong.get('app/x').string(), /authentication failed/)
      await admin.auth.authDisable()
    } finally {
      alice.close()
      wrong.close()
      admin.close()
    }
  })
})

describe('etcd3 npm client against three members, through a follower', () => {
  let c: TestCluster
  before(async () => {
    c = await startCluster(3)
  })
  after(async () => {
    await c?.close()
  })

  test('every behaviour through a follower, and a watch on one member sees writes through another', async () => {
    const leaderOf = async () => {
      const r = await fetch(`${c.urls[0]}/v3/maintenance/status`, { method: 'POST', body: '{}' })
      const j = (await r.json()) as { leader?: string; header?: { member_id?: string } }
      return j.leader
    }
    const leader = await eventually(leaderOf)
    // A follower: a member whose own id is not the leader's.
    let follower = c.urls[0]!
    for (const u of c.urls) {
      const j = (await (await fetch(`${u}/v3/maintenance/status`, { method: 'POST', body: '{}' })).json()) as {
        header: { member_id: string }
      }
      if (j.header.member_id !== leader) follower = u
    }
    await exercise([follower], 'three')

    const a = new Etcd3({ hosts: [c.urls[0]!] })
    const b = new Etcd3({ hosts: [c.urls[1]!] })
    try {
      const w = await a.watch().key('cross').create()
      const got: string[] = []
      w.on('put', (kv: IKeyValue) => got.push(kv.value.toString()))
      await b.put('cross').value('from-b')
      await eventually(() => got.length > 0)
      assert.deepEqual(got, ['from-b'])
      await w.cancel()
    } finally {
      a.close()
      b.close()
    }
  })
})
