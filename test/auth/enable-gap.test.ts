/**
 * A write checked while auth was off and applied just after auth was enabled (docs/auth.md, "Writes checked at
 * apply"). Deterministic: the serving check runs with auth off, auth is then enabled (and applied), and only then is
 * the checked write proposed, exactly the order of a write racing an enable. The write must be refused at apply with
 * etcd's `user name is empty`, as a write arriving a moment later would be, and nothing may be written.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { decodeMessage } from '../../src/api/http/codec/decode.js'
import * as M from '../../src/protocol/descriptors.js'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'
import { addRoot, call } from './helpers.js'

describe('a write checked with auth off, applied with auth on', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ authPasswordIterations: 1000 })
    await addRoot(m.url, 'pw')
  })
  after(() => m.stop())

  test('is refused with user name is empty; nothing is written', async () => {
    const member = m.running.member
    const lease = await member.leaseGrant(decodeMessage(M.LeaseGrantRequest, { TTL: 60 }))
    assert.equal(
      (await call(m.url, '/v3/kv/put', { key: b64('leased'), value: b64('v'), lease: String(lease.ID) })).status,
      200,
    )
    const d = (desc: M.MessageDesc, body: unknown) => decodeMessage(desc, body) as never
    const writes = [
      ['Put', d(M.PutRequest, { key: b64('gap/put'), value: b64('v') }), (r: never, i: never) => member.put(r, i)],
      [
        'DeleteRange',
        d(M.DeleteRangeRequest, { key: b64('leased') }),
        (r: never, i: never) => member.deleteRange(r, i),
      ],
      [
        'Txn',
        d(M.TxnRequest, { success: [{ request_put: { key: b64('gap/txn'), value: b64('v') } }] }),
        (r: never, i: never) => member.txn(r, i),
      ],
      [
        'LeaseRevoke',
        d(M.LeaseRevokeRequest, { ID: String(lease.ID) }),
        (r: never, i: never) => member.leaseRevoke(r, i),
      ],
    ] as const
    // The serving member's checks, with auth off: each passes and names no caller.
    const checked = writes.map(([method, req]) => member.authorize(method, req, undefined))
    for (const c of checked) assert.equal(c, undefined)
    assert.equal((await post(m.url, '/v3/auth/enable', {})).status, 200)
    for (const [i, [method, req, run]] of writes.entries()) {
      await assert.rejects(run(req as never, checked[i] as never), /etcdserver: user name is empty/, method)
    }
    const root = (await post(m.url, '/v3/auth/authenticate', { name: 'root', password: 'pw' })).json.token as string
    const all = await call(m.url, '/v3/kv/range', { key: 'AA==', range_end: 'AA==' }, root)
    assert.deepEqual(
      all.json.kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()),
      ['leased'],
      'only the key written before the enable',
    )
    assert.equal((await call(m.url, '/v3/lease/timetolive', { ID: String(lease.ID) }, root)).json.TTL > 0, true)
  })

  test('a linearizable read checked with auth off and served after the enable is refused too', async () => {
    const m2 = await startTestMember({ authPasswordIterations: 1000 })
    try {
      const member = m2.running.member
      await addRoot(m2.url, 'pw')
      assert.equal((await post(m2.url, '/v3/kv/put', { key: b64('k'), value: b64('v') })).status, 200)
      const range = decodeMessage(M.RangeRequest, { key: b64('k') })
      const txn = decodeMessage(M.TxnRequest, { success: [{ request_range: { key: b64('k') } }] })
      assert.equal(member.authorize('Range', range, undefined), undefined)
      assert.equal(member.authorize('Txn', txn, undefined), undefined)
      // A lone member answers ReadIndex at once; in a cluster it takes a heartbeat round trip, during which the
      // enable may apply. Hold the reads' waits until the enable is applied, as that round trip would.
      const raft = member.raft as unknown as { linearizableRead(): Promise<void> }
      const wait = raft.linearizableRead.bind(raft)
      let release!: () => void
      const gate = new Promise<void>((r) => {
        release = r
      })
      raft.linearizableRead = () => gate.then(wait)
      const reads = [member.range(range), member.txn(txn, undefined)]
      raft.linearizableRead = wait
      assert.equal((await post(m2.url, '/v3/auth/enable', {})).status, 200)
      release()
      for (const r of reads) await assert.rejects(r, /etcdserver: user name is empty/)
      // a serializable read is served at once, on the state of its check: nothing to refuse
    } finally {
      await m2.stop()
    }
  })
})
