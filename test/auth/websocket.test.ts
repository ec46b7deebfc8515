/**
 * The browser way to authenticate a WebSocket watch: the token as a subprotocol (`edgecd`, `bearer.<jwt>`), since a
 * browser cannot set Authorization on a WebSocket. The member answers `edgecd` (never the token); with the token the
 * user's permissions apply, without it every create is refused when auth is on, a forged or malformed one is 401 at
 * the upgrade, and the Authorization header keeps working for other clients.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { tokenFromSubprotocols } from '../../src/auth/token.js'
import { Client } from '../../src/client/index.js'
import { b64 } from '../support/index.js'
import { type AuthFixture, authFixture, call } from './helpers.js'

const denied = 'rpc error: code = PermissionDenied desc = etcdserver: permission denied'
/** etcd 3.4.23's cancel_reason for a create on a stream without a token (read off a real etcd through its gateway). */
const noUser = 'rpc error: code = InvalidArgument desc = etcdserver: user name is empty'

/** Opens a watch socket; resolves with it and the messages it receives, or with the refused upgrade's status. */
function open(
  url: string,
  protocols: string[] | undefined,
  headers: Record<string, string> = {},
): Promise<{ ws: WebSocket; msgs: any[] } | { status: number; body: string }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v3/watch`, protocols, { headers })
  const msgs: any[] = []
  ws.on('message', (d) => msgs.push(JSON.parse(String(d)).result))
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, msgs }))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d) => {
        body += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    ws.once('error', reject)
  })
}

async function waitFor(msgs: any[], n: number): Promise<void> {
  const deadline = Date.now() + 30_000
  while (msgs.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  assert.ok(msgs.length >= n, `expected ${n} messages, got ${JSON.stringify(msgs)}`)
}

describe('WebSocket watch: token as a subprotocol', () => {
  let f: AuthFixture & { url: string }
  before(async () => {
    f = await authFixture()
  })
  after(() => f.m.stop())

  test('with the token: the member answers "edgecd" and the user may watch what it may read', async () => {
    const o = await open(f.url, ['edgecd', `bearer.${f.alice}`])
    assert.ok('ws' in o, JSON.stringify(o))
    assert.equal(o.ws.protocol, 'edgecd')
    o.ws.send(JSON.stringify({ create_request: { key: b64('app/'), range_end: b64('app0') } }))
    o.ws.send(JSON.stringify({ create_request: { key: b64('secret') } }))
    await waitFor(o.msgs, 2)
    assert.equal(o.msgs[0].created, true)
    assert.equal(o.msgs[0].canceled, undefined)
    assert.equal(o.msgs[1].cancel_reason, denied)
    assert.equal((await call(f.url, '/v3/kv/put', { key: b64('app/ws'), value: b64('v') }, f.alice)).status, 200)
    await waitFor(o.msgs, 3)
    assert.equal(o.msgs[2].events[0].kv.key, b64('app/ws'))
    o.ws.close()
  })

  test('without a token every create is refused while auth is on', async () => {
    for (const protocols of [undefined, ['edgecd']]) {
      const o = await open(f.url, protocols)
      assert.ok('ws' in o)
      o.ws.send(JSON.stringify({ create_request: { key: b64('app/'), range_end: b64('app0') } }))
      await waitFor(o.msgs, 1)
      assert.equal(o.msgs[0].watch_id, '-1')
      assert.equal(o.msgs[0].cancel_reason, noUser)
      o.ws.close()
    }
  })

  test('a forged, malformed or misplaced token is refused at the upgrade', async () => {
    const [h, p] = f.alice.split('.') as [string, string]
    const forged = `${h}.${b64url(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'root' }))}.AAAA`
    for (const protocols of [
      ['edgecd', `bearer.${forged}`],
      ['edgecd', 'bearer.not-a-jwt'],
      ['edgecd', `bearer.${f.alice}x`],
      ['edgecd', `bearer.${f.alice}`, `bearer.${f.root}`],
      ['edgecd', `bearer.${'a'.repeat(5000)}.b.c`],
    ]) {
      const o = await open(f.url, protocols)
      assert.ok('status' in o, `${protocols.join(',').slice(0, 80)} was accepted`)
      // (the Node adapter answers a refused upgrade without a body: the status is the answer)
      assert.equal(o.status, 401)
    }
    const first = await open(f.url, [`bearer.${f.alice}`, 'edgecd'])
    assert.ok('status' in first)
    assert.equal(first.status, 400)
  })

  test('the Authorization header still works, and wins over a subprotocol token', async () => {
    const o = await open(f.url, ['edgecd', 'bearer.not-a-jwt'], { authorization: `Bearer ${f.alice}` })
    assert.ok('ws' in o)
    o.ws.send(JSON.stringify({ create_request: { key: b64('app/') } }))
    await waitFor(o.msgs, 1)
    assert.equal(o.msgs[0].created, true)
    assert.equal(o.msgs[0].canceled, undefined)
    o.ws.close()
  })

  test("the TypeScript client's watch offers its token as the subprotocol", async () => {
    for (const creds of [{ token: f.alice }, { username: 'alice', password: 'alicepw' }]) {
      const client = new Client({ endpoints: [f.url], WebSocket, dialTimeoutMs: 2000, ...creds })
      try {
        const w = client.watch({ prefix: 'app/c/' })
        await w.ready
        assert.equal((await call(f.url, '/v3/kv/put', { key: b64('app/c/k'), value: b64('v') }, f.alice)).status, 200)
        const it = w[Symbol.asyncIterator]()
        const r = await it.next()
        assert.equal(r.value.events[0].kv.key, 'app/c/k')
        // and a range the user may not read is refused as etcd refuses it
        const denied = client.watch('secret')
        await assert.rejects(denied.ready, /permission denied/)
      } finally {
        client.close()
      }
    }
  })

  test('tokenFromSubprotocols', () => {
    assert.equal(tokenFromSubprotocols(undefined), undefined)
    assert.equal(tokenFromSubprotocols('edgecd'), undefined)
    assert.equal(tokenFromSubprotocols('edgecd, bearer.a.b.c'), 'a.b.c')
    assert.equal(tokenFromSubprotocols('edgecd,Bearer.a.b.c'), 'a.b.c')
    assert.throws(() => tokenFromSubprotocols('edgecd, bearer.'), /invalid auth token/)
    assert.throws(() => tokenFromSubprotocols('edgecd, bearer.a.b.c{'), /invalid auth token/)
    assert.throws(() => tokenFromSubprotocols('edgecd, bearer.a..b'), /invalid auth token/)
    assert.throws(() => tokenFromSubprotocols('bearer.a.b.c'), /offered first/)
  })
})

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url')
}
