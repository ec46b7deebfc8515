/**
 * Issue 17, limits: watchers per stream (--max-watchers-per-stream), on top of watchers per member (--max-watchers)
 * and streams per member (--max-watch-streams). Past it a create is refused as etcd refuses one (watch_id -1, created
 * and canceled, with the reason) and the stream and its other watchers go on; another stream is not affected.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:http2'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { serveConfig } from '../../src/cli/serve-flags.js'
import { type ServerConfig, validateServerConfig } from '../../src/etcdserver/config.js'
import { newStore, put, RecordingSink, watchReq } from '../kv/helpers.js'
import { startTestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'

describe('watchers per stream (issue 17)', () => {
  test('the hub refuses the create past maxWatchersPerStream; other streams and watchers are unaffected', () => {
    const s = newStore({ maxWatchersPerStream: 3 })
    const a = new RecordingSink()
    const sa = s.watchHub.openStream(a)
    for (let i = 0; i < 3; i++) assert.equal(sa.create(watchReq('k')), i)
    assert.equal(sa.create(watchReq('k')), -1)
    const refused = a.messages.at(-1)!
    assert.deepEqual(
      [refused.watch_id, refused.created, refused.canceled, refused.cancel_reason],
      [-1, true, true, 'etcdserver: too many watchers on this stream'],
    )
    const sb = s.watchHub.openStream(new RecordingSink())
    assert.equal(sb.create(watchReq('k')), 0)
    // A cancel frees a place on the stream.
    sa.cancel(1)
    assert.equal(sa.create(watchReq('k')), 3)
    put(s, 'k', 'v')
    assert.equal(a.messages.filter((m) => m.events.length > 0).length, 3)
  })

  test('--max-watchers-per-stream parses and is validated in the one config', () => {
    const c = serveConfig(['--max-watchers-per-stream=50'], {})
    assert.notEqual(c, 'help')
    if (c === 'help') return
    assert.equal(c.maxWatchersPerStream, 50)
    validateServerConfig(c as ServerConfig)
    const zero = serveConfig(['--max-watchers-per-stream=0'], {})
    assert.throws(() => validateServerConfig(zero as ServerConfig), /max-watchers-per-stream/)
  })

  test('on a member: the WebSocket watch answers the 3rd create on one socket with the refusal, a 2nd socket works', async () => {
    const m = await startTestMember({ maxWatchersPerStream: 2 })
    const sockets: WebSocket[] = []
    try {
      const open = async () => {
        const ws = new WebSocket(`${m.url.replace('http:', 'ws:')}/v3/watch`)
        sockets.push(ws)
        const msgs: { result?: { header?: unknown; watch_id?: string; canceled?: boolean; cancel_reason?: string } }[] =
          []
        ws.on('message', (d) => msgs.push(JSON.parse(String(d))))
        await new Promise((resolve, reject) => {
          ws.once('open', resolve)
          ws.once('error', reject)
        })
        return { ws, msgs }
      }
      const until = async (cond: () => boolean) => {
        const deadline = Date.now() + 30_000
        while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
        assert.ok(cond())
      }
      const one = await open()
      for (let i = 0; i < 3; i++) one.ws.send(JSON.stringify({ create_request: { key: b64('k') } }))
      await until(() => one.msgs.length === 3)
      assert.deepEqual(one.msgs[2]!.result, {
        header: one.msgs[2]!.result!.header,
        watch_id: '-1',
        created: true,
        canceled: true,
        cancel_reason: 'etcdserver: too many watchers on this stream',
      })
      const two = await open()
      two.ws.send(JSON.stringify({ create_request: { key: b64('k') } }))
      await until(() => two.msgs.length === 1)
      assert.equal(two.msgs[0]!.result!.canceled, undefined)
      assert.equal((await post(m.url, '/v3/kv/put', { key: b64('k'), value: b64('v') })).status, 200)
      await until(() => one.msgs.length === 5 && two.msgs.length === 2)
    } finally {
      for (const ws of sockets) ws.terminate()
      await m.stop()
    }
  })

  test('streams per connection: over HTTP/2 (gRPC, and the gateway over h2) --max-concurrent-streams refuses the 3rd of 2', async () => {
    // A WebSocket or an HTTP/1.1 connection carries one watch stream at a time; an HTTP/2 connection many, bounded as
    // etcd bounds them (its --max-concurrent-streams): a stream past the bound is reset with REFUSED_STREAM.
    const m = await startTestMember({ maxConcurrentStreams: 2 })
    const session = connect(m.url)
    try {
      const outcome: Promise<string>[] = []
      for (let i = 0; i < 3; i++) {
        const st = session.request({ ':method': 'POST', ':path': '/v3/watch' })
        st.write(JSON.stringify({ create_request: { key: b64('k') } }))
        outcome.push(
          new Promise((resolve) => {
            st.once('response', (h) => resolve(`status ${h[':status']}`))
            st.once('error', () => resolve(`reset ${st.rstCode}`))
          }),
        )
      }
      const got = await Promise.all(outcome)
      assert.equal(got.filter((g) => g === 'status 200').length, 2, got.join(', '))
      assert.equal(got.filter((g) => g === 'reset 7').length, 1, got.join(', '))
    } finally {
      session.destroy()
      await m.stop()
    }
  })
})
