/**
 * A watch of a user/password client outlives its token: when the stream reconnects (here: the member restarts) after
 * the auth store changed, the member refuses the old token (at the upgrade, or at the create with etcd 3.5's
 * cancel_reason "revision of auth store is old"), the client authenticates again and the watch resumes from its next
 * revision, without losing or repeating an event.
 *
 * Every wait is bounded and every client is closed in `finally`, so a failure fails the test and never holds the
 * process.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import type { WatchEvent } from '../../src/client/index.js'
import { grpcStatusText } from '../../src/protocol/errors.js'
import { type RestartableMember, startMember, testClient, within } from './helpers.js'

let m: RestartableMember
before(async () => {
  m = await startMember({ authPasswordIterations: 1000 })
  const admin = testClient([m.url])
  try {
    await admin.auth.userAdd('root', 'rootpw')
    await admin.auth.userGrantRole('root', 'root')
    await admin.auth.roleAdd('reader')
    await admin.auth.roleGrantPermission('reader', 'READ', 'app/', { prefix: true })
    await admin.auth.userAdd('alice', 'alicepw')
    await admin.auth.userGrantRole('alice', 'reader')
    await admin.auth.enable()
  } finally {
    admin.close()
  }
})
after(() => m?.close())

// A restarted member accepts connections as soon as it has bound its listeners and serves them once it is up (issue
// 11 §3): the reconnect is no longer refused at the connection (which used to make the client authenticate again by
// chance), the upgrade passes with the old but well-signed token, and the create is what refuses it. The client must
// renew its token on that answer, as etcd's clientv3 does.
test('a watch re-authenticates when its token is refused at a reconnect, and resumes exactly once', async () => {
  let authenticates = 0
  const counting: typeof fetch = (input, init) => {
    if (String(input).endsWith('/v3/auth/authenticate')) authenticates++
    return fetch(input, init)
  }
  const alice = testClient([m.url], { username: 'alice', password: 'alicepw', fetch: counting })
  const root = testClient([m.url], { username: 'root', password: 'rootpw' })
  const w = alice.watch({ prefix: 'app/' })
  let reading: Promise<void> | undefined
  try {
    await within(30_000, w.ready, 'watch ready')
    const events: WatchEvent[] = []
    reading = (async () => {
      for await (const e of w.events()) events.push(e)
    })().catch(() => {})
    const want: string[] = []
    const put = async (k: string, v: string) => want.push(`${k}=${v}@${(await root.put(k, v)).header.revision}`)
    await put('app/1', 'a')
    await waitFor(30_000, () => events.length === 1, 'the first event')
    assert.equal(authenticates, 1)

    // The auth store changes (every older token is now "old"), and the member restarts: the socket drops.
    await root.auth.roleAdd('later')
    await m.stop()
    await m.start()
    await put('app/2', 'b')
    await put('app/3', 'c')
    await waitFor(30_000, () => events.length === 3, 'the events after the reconnect')
    assert.deepEqual(
      events.map((e) => `${e.kv.key}=${e.kv.value}@${e.kv.modRevision}`),
      want,
    )
    assert.ok(authenticates >= 2, 'the client authenticated again')
  } finally {
    w.cancel()
    alice.close()
    root.close()
    if (reading) await within(30_000, reading, 'the reader ends')
  }
})

test("a create with a token older than the auth store is refused with etcd 3.5's cancel_reason", async () => {
  const root = testClient([m.url], { username: 'root', password: 'rootpw' })
  const token = (await root.auth.authenticate('alice', 'alicepw')).token
  const ws = new WebSocket(`${m.url.replace(/^http/, 'ws')}/v3/watch`, ['edgecd', `bearer.${token}`])
  const frames: { result?: Record<string, unknown> }[] = []
  ws.on('message', (d) => frames.push(JSON.parse(String(d))))
  try {
    await within(30_000, new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 'upgrade')
    // The token is current at the upgrade; the auth store moves on before the create.
    await root.auth.roleAdd(`later-${Date.now()}`)
    ws.send(JSON.stringify({ create_request: { key: Buffer.from('app/x').toString('base64') } }))
    await waitFor(30_000, () => frames.length === 1, 'the answer to the create')
    const r = frames[0]!.result!
    assert.equal(r.created, true)
    assert.equal(r.canceled, true)
    assert.equal(r.watch_id, '-1')
    assert.equal(r.cancel_reason, grpcStatusText('ErrAuthOldRevision'))
    assert.equal(r.cancel_reason, 'rpc error: code = InvalidArgument desc = etcdserver: revision of auth store is old')
  } finally {
    ws.terminate()
    root.close()
  }
})

/** Polls `ok` until it holds, or rejects after `ms` (the timer never outlives the wait). */
function waitFor(ms: number, ok: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms
    const t = setInterval(() => {
      if (ok()) {
        clearInterval(t)
        resolve()
      } else if (Date.now() > deadline) {
        clearInterval(t)
        reject(new Error(`timed out after ${ms} ms: ${what}`))
      }
    }, 10)
  })
}
