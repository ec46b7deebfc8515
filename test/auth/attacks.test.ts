/**
 * Attacks on auth, against in-process members over HTTP: forged tokens of every kind (alg none, HS256 keyed with
 * the public key, tampered payload, unknown kid, other key, expired, wrong issuer, oversized and garbage headers),
 * privilege escalation (a user granting itself root), reading a forbidden key through a txn compare or prev_kv,
 * watching a forbidden range (HTTP and WebSocket) and keeping a watch after revocation, revoking a lease that holds
 * a forbidden key, brute force against authenticate, and that no error message carries anything but etcd's text.
 */
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { base64url, importPKCS8, SignJWT, UnsecuredJWT } from 'jose'
import WebSocket from 'ws'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'
import { type AuthFixture, addRoot, authFixture, call, writeSigningKeys } from './helpers.js'

const etcdMessages = new Set([
  'etcdserver: user name is empty',
  'etcdserver: invalid auth token',
  'etcdserver: permission denied',
  'etcdserver: authentication failed, invalid user ID or password',
  'etcdserver: revision of auth store is old',
])

/** Every error answer is exactly etcd's body with one of etcd's messages: no user, key, password or stack. */
function assertPlainError(r: { status: number; text: string; json: any }, status: number, message: string): void {
  assert.equal(r.status, status, r.text)
  assert.ok(etcdMessages.has(message))
  assert.equal(r.text, JSON.stringify({ error: message, message, code: r.json.code }))
}

const sign = (payload: Record<string, unknown>, header: Record<string, unknown>, key: Parameters<SignJWT['sign']>[0]) =>
  new SignJWT(payload).setProtectedHeader(header as never).sign(key)

describe('attacks', () => {
  let f: AuthFixture & { url: string }
  let kid: string
  let pub: Record<string, string>
  before(async () => {
    f = await authFixture()
    const j = (await (await fetch(`${f.url}/.well-known/jwks.json`)).json()) as { keys: Record<string, string>[] }
    pub = j.keys[0]!
    kid = pub.kid!
  })
  after(() => f.m.stop())

  test('forged tokens are 401 invalid auth token', async () => {
    const now = Math.floor(Date.now() / 1000)
    const claims = { sub: 'root', rev: 1_000_000, iss: 'edgecd', iat: now, exp: now + 300 }
    const [h, p, s] = f.alice.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString())
    const { privateKey: otherPem } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    })
    const forged: Record<string, string> = {
      algNone: new UnsecuredJWT(claims).encode(),
      algNoneWithKid: `${base64url.encode(JSON.stringify({ alg: 'none', kid }))}.${base64url.encode(JSON.stringify(claims))}.`,
      hs256KeyedWithPublicJwk: await sign(
        claims,
        { alg: 'HS256', kid, typ: 'JWT' },
        new TextEncoder().encode(JSON.stringify(pub)),
      ),
      hs256KeyedWithX: await sign(claims, { alg: 'HS256', kid, typ: 'JWT' }, Buffer.from(pub.x!, 'base64url')),
      tamperedSubject: `${h}.${base64url.encode(JSON.stringify({ ...payload, sub: 'root' }))}.${s}`,
      tamperedRevision: `${h}.${base64url.encode(JSON.stringify({ ...payload, rev: payload.rev + 100 }))}.${s}`,
      unknownKid: `${base64url.encode(JSON.stringify({ alg: 'ES256', kid: 'someone-else', typ: 'JWT' }))}.${p}.${s}`,
      otherKeySameKid: await sign(claims, { alg: 'ES256', kid, typ: 'JWT' }, await importPKCS8(otherPem, 'ES256')),
      swappedSignature: `${h}.${p}.${f.root.split('.')[2]}`,
      garbage: 'not-a-token',
      simpleTokenShape: 'PROYCHhZGegpTSXx.62',
      hugeHeader: `${base64url.encode(JSON.stringify({ alg: 'ES256', kid, pad: 'x'.repeat(5_000) }))}.${p}.${s}`,
      binaryJunk: `${h}.${p}.${s}\u0000`,
      jsonHeader: `${base64url.encode('{"alg":"ES256","kid":')}.${p}.${s}`,
    }
    for (const [name, tok] of Object.entries(forged)) {
      let r: Awaited<ReturnType<typeof call>>
      try {
        r = await call(f.url, '/v3/kv/range', { key: b64('app/a') }, tok, name.length % 2 === 0)
      } catch {
        continue // the HTTP client refused to send it at all (control characters): not accepted either
      }
      assert.equal(r.status, 401, `${name}: ${r.text}`)
      assertPlainError(r, 401, 'etcdserver: invalid auth token')
    }
    // Past Node's header limit the HTTP server refuses the request before the app sees it.
    const enormous = await call(f.url, '/v3/kv/range', { key: b64('app/a') }, 'x'.repeat(20_000))
    assert.ok(enormous.status === 431 || enormous.status === 401, String(enormous.status))
  })

  test('a user cannot grant itself a role or change another password', async () => {
    for (const [path, body] of [
      ['/v3/auth/user/grant', { user: 'alice', role: 'root' }],
      ['/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: 'AA==', range_end: 'AA==' } }],
      ['/v3/auth/user/changepw', { name: 'root', password: 'x' }],
      ['/v3/auth/user/add', { name: 'mallory', password: 'x' }],
      ['/v3/auth/disable', {}],
    ] as const) {
      assertPlainError(await call(f.url, path, body, f.alice), 403, 'etcdserver: permission denied')
    }
    const u = await call(f.url, '/v3/auth/user/get', { name: 'alice' }, f.root)
    assert.deepEqual(u.json.roles, ['app'])
  })

  test('txn: a compare or a failure branch on a forbidden key is refused whatever the outcome', async () => {
    await call(f.url, '/v3/kv/put', { key: b64('secret'), value: b64('hunter2') }, f.root)
    for (const value of ['hunter2', 'wrong']) {
      const r = await call(
        f.url,
        '/v3/kv/txn',
        {
          compare: [{ key: b64('secret'), target: 'VALUE', value: b64(value) }],
          success: [{ request_put: { key: b64('app/leak'), value: b64('yes') } }],
        },
        f.alice,
      )
      assertPlainError(r, 403, 'etcdserver: permission denied')
    }
    const hidden = await call(
      f.url,
      '/v3/kv/txn',
      { success: [], failure: [{ request_range: { key: b64('secret') } }] },
      f.alice,
    )
    assertPlainError(hidden, 403, 'etcdserver: permission denied')
    const prev = await call(f.url, '/v3/kv/put', { key: b64('shared'), value: b64('x'), prev_kv: true }, f.alice)
    assertPlainError(prev, 403, 'etcdserver: permission denied')
    const leak = await call(f.url, '/v3/kv/range', { key: b64('app/leak') }, f.root)
    assert.equal(leak.json.kvs, undefined)
  })

  test('range just outside a prefix, from-key and everything are refused', async () => {
    for (const body of [
      { key: b64('app0') },
      { key: b64('app') },
      { key: b64('app/'), range_end: 'AA==' },
      { key: 'AA==', range_end: 'AA==' },
      { key: b64('ap'), range_end: b64('aq') },
    ]) {
      assertPlainError(await call(f.url, '/v3/kv/range', body, f.alice), 403, 'etcdserver: permission denied')
    }
  })

  test('lease revoke of a lease holding a forbidden key is refused', async () => {
    const g = await call(f.url, '/v3/lease/grant', { TTL: 60 })
    const ID = g.json.ID
    assert.equal(
      (await call(f.url, '/v3/kv/put', { key: b64('secret2'), value: b64('v'), lease: ID }, f.root)).status,
      200,
    )
    assertPlainError(await call(f.url, '/v3/lease/revoke', { ID }, f.alice), 403, 'etcdserver: permission denied')
    assert.equal((await call(f.url, '/v3/kv/range', { key: b64('secret2') }, f.root)).json.count, '1')
  })

  test('watch: forbidden on HTTP and WebSocket, and cancelled when the permission is revoked', async () => {
    const reason = 'rpc error: code = PermissionDenied desc = etcdserver: permission denied'
    const noToken = await fetch(`${f.url}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('app/a') } }),
    })
    const first = JSON.parse(
      (
        await noToken
          .body!.getReader()
          .read()
          .then((x) => new TextDecoder().decode(x.value))
      ).split('\n')[0]!,
    ).result
    // No token: etcd 3.4.23 says so (its isWatchPermitted), rather than "permission denied".
    assert.equal(first.cancel_reason, 'rpc error: code = InvalidArgument desc = etcdserver: user name is empty')
    const badToken = await fetch(`${f.url}/v3/watch`, {
      method: 'POST',
      headers: { authorization: 'x.y.z' },
      body: '{}',
    })
    assert.equal(badToken.status, 401)
    await badToken.text()

    // a role of its own, so revoking it does not disturb the other tests
    const rootCall = (p: string, b: unknown) => call(f.url, p, b, f.root)
    assert.equal((await rootCall('/v3/auth/role/add', { name: 'w' })).status, 200)
    assert.equal(
      (await rootCall('/v3/auth/role/grant', { name: 'w', perm: { key: b64('w/'), range_end: b64('w0') } })).status,
      200,
    )
    assert.equal((await rootCall('/v3/auth/user/add', { name: 'wally', password: 'pw' })).status, 200)
    assert.equal((await rootCall('/v3/auth/user/grant', { user: 'wally', role: 'w' })).status, 200)
    const wally = (await call(f.url, '/v3/auth/authenticate', { name: 'wally', password: 'pw' })).json.token as string
    f.root = (await call(f.url, '/v3/auth/authenticate', { name: 'root', password: 'rootpw' })).json.token
    f.alice = (await call(f.url, '/v3/auth/authenticate', { name: 'alice', password: 'alicepw' })).json.token

    const ws = new WebSocket(`${f.url.replace('http', 'ws')}/v3/watch`, {
      headers: { authorization: `Bearer ${wally}` },
    })
    const msgs: any[] = []
    ws.on('message', (d) => msgs.push(JSON.parse(String(d)).result))
    await new Promise((r, j) => {
      ws.once('open', r)
      ws.once('error', j)
    })
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 30_000
      while (msgs.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      assert.ok(msgs.length >= n, `expected ${n} messages, got ${JSON.stringify(msgs)}`)
    }
    ws.send(JSON.stringify({ create_request: { key: b64('secret') } }))
    ws.send(JSON.stringify({ create_request: { key: b64('w/'), range_end: b64('w0') } }))
    // Client-chosen ids, a negative one and one past 2^53, are rechecked too.
    ws.send(`{"create_request":{"key":"${b64('w/')}","range_end":"${b64('w0')}","watch_id":-5}}`)
    ws.send(`{"create_request":{"key":"${b64('w/')}","range_end":"${b64('w0')}","watch_id":9007199254740993}}`)
    await waitFor(4)
    assert.equal(msgs[0].cancel_reason, reason)
    assert.equal(msgs[0].watch_id, '-1')
    assert.deepEqual(
      msgs.slice(1, 4).map((m) => [m.watch_id, m.created, m.canceled]),
      [
        [undefined, true, undefined],
        ['-5', true, undefined],
        ['9007199254740993', true, undefined],
      ],
    )
    assert.equal(
      (await rootCall('/v3/auth/role/revoke', { role: 'w', key: b64('w/'), range_end: b64('w0') })).status,
      200,
    )
    await waitFor(7)
    assert.deepEqual(
      msgs.slice(4, 7).map((m) => [m.watch_id, m.canceled, m.cancel_reason]),
      [
        [undefined, true, reason],
        ['-5', true, reason],
        ['9007199254740993', true, reason],
      ],
    )
    await rootCall('/v3/kv/put', { key: b64('w/x'), value: b64('v') })
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(msgs.length, 7, 'no event after the cancel')
    ws.close()
    const badWs = new WebSocket(`${f.url.replace('http', 'ws')}/v3/watch`, { headers: { authorization: 'forged' } })
    badWs.on('error', () => {})
    const status = await new Promise<number>((r) =>
      badWs.once('unexpected-response', (_q, res) => r(res.statusCode ?? 0)),
    )
    assert.equal(status, 401)
    badWs.terminate()
  })
})

describe('brute force', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ authPasswordIterations: 1000 })
    await addRoot(m.url, 'correct horse', { enable: true })
  })
  after(() => m.stop())

  test('after the failure limit, even the right password is refused, with the same message', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await post(m.url, '/v3/auth/authenticate', { name: 'root', password: `guess${i}` })
      assertPlainError(r, 400, 'etcdserver: authentication failed, invalid user ID or password')
    }
    const right = await post(m.url, '/v3/auth/authenticate', { name: 'root', password: 'correct horse' })
    assertPlainError(right, 400, 'etcdserver: authentication failed, invalid user ID or password')
    // unknown users answer exactly like wrong passwords (no user enumeration)
    const ghost = await post(m.url, '/v3/auth/authenticate', { name: 'ghost', password: 'x' })
    assertPlainError(ghost, 400, 'etcdserver: authentication failed, invalid user ID or password')
  })
})

describe('configured PEM keys', () => {
  test('--auth-token jwt,pub-key,priv-key: tokens verify; expired and wrong-issuer tokens signed with the real key do not', async () => {
    const keys = writeSigningKeys(mkdtempSync(join(tmpdir(), 'edgecd-keys-')))
    const m = await startTestMember({ authPasswordIterations: 1000, authToken: `${keys.authToken},sign-method=ES256` })
    try {
      await addRoot(m.url, 'pw', { enable: true })
      const tok = (await post(m.url, '/v3/auth/authenticate', { name: 'root', password: 'pw' })).json.token as string
      assert.equal((await call(m.url, '/v3/kv/range', { key: b64('k') }, tok, true)).status, 200)
      const header = JSON.parse(Buffer.from(tok.split('.')[0]!, 'base64url').toString())
      const payload = JSON.parse(Buffer.from(tok.split('.')[1]!, 'base64url').toString())
      assert.deepEqual(Object.keys(payload).sort(), ['exp', 'iat', 'iss', 'rev', 'sub'])
      assert.equal(payload.exp - payload.iat, 300)
      const key = await importPKCS8(keys.privatePem, 'ES256')
      const now = Math.floor(Date.now() / 1000)
      const expired = await sign({ ...payload, iat: now - 400, exp: now - 100 }, header, key)
      const wrongIss = await sign({ ...payload, iss: 'evil' }, header, key)
      const noExp = await sign({ sub: 'root', rev: payload.rev, iss: 'edgecd', iat: now }, header, key)
      const longLived = await sign({ ...payload, iat: now - 10, exp: now + 100_000 }, header, key)
      const notYetValid = await sign({ ...payload, nbf: now + 600 }, header, key)
      const issuedInTheFuture = await sign({ ...payload, iat: now + 600, exp: now + 900 }, header, key)
      const noRev = await sign({ sub: 'root', iss: 'edgecd', iat: now, exp: now + 300 }, header, key)
      const noSub = await sign({ rev: payload.rev, iss: 'edgecd', iat: now, exp: now + 300 }, header, key)
      for (const t of [expired, wrongIss, noExp, notYetValid, issuedInTheFuture, noRev, noSub])
        assertPlainError(await call(m.url, '/v3/kv/range', { key: b64('k') }, t), 401, 'etcdserver: invalid auth token')
      // iat within the TTL but exp beyond it: maxTokenAge still bounds it by iat, so it passes only while fresh
      assert.equal((await call(m.url, '/v3/kv/range', { key: b64('k') }, longLived)).status, 200)
    } finally {
      await m.stop()
    }
  })
})

describe('more escalation attempts', () => {
  let f: AuthFixture & { url: string }
  before(async () => {
    f = await authFixture()
  })
  after(() => f.m.stop())

  test('a forbidden op nested deep in a txn is refused, whichever branch it is in', async () => {
    const nest = (op: unknown, depth: number): unknown =>
      depth === 0 ? op : { request_txn: { success: [nest(op, depth - 1)] } }
    for (const op of [
      { request_range: { key: b64('secret') } },
      { request_put: { key: b64('secret'), value: b64('x') } },
      { request_delete_range: { key: b64('secret') } },
    ]) {
      const r = await call(f.url, '/v3/kv/txn', { success: [], failure: [nest(op, 3)] }, f.alice)
      assertPlainError(r, 403, 'etcdserver: permission denied')
    }
  })

  test('a prefix grant gives no write, delete or watch on the neighbouring prefix', async () => {
    for (const [path, body] of [
      ['/v3/kv/put', { key: b64('app0'), value: b64('x') }],
      ['/v3/kv/put', { key: b64('app'), value: b64('x') }],
      ['/v3/kv/deleterange', { key: b64('app/'), range_end: b64('app1') }],
      ['/v3/kv/deleterange', { key: b64('app.'), range_end: b64('app0') }],
      ['/v3/kv/txn', { success: [{ request_put: { key: b64('app0'), value: b64('x') } }] }],
    ] as const)
      assertPlainError(await call(f.url, path, body, f.alice), 403, 'etcdserver: permission denied')
    const res = await fetch(`${f.url}/v3/watch`, {
      method: 'POST',
      headers: { authorization: f.alice },
      body: JSON.stringify({ create_request: { key: b64('app/'), range_end: b64('app1') } }),
    })
    const reader = res.body!.getReader()
    const first = JSON.parse(new TextDecoder().decode((await reader.read()).value).split('\n')[0]!).result
    await reader.cancel()
    assert.equal(first.watch_id, '-1')
    assert.equal(first.cancel_reason, 'rpc error: code = PermissionDenied desc = etcdserver: permission denied')
  })

  test('root-only maintenance and other roles stay closed to a user', async () => {
    const snap = await call(f.url, '/v3/maintenance/snapshot', {}, f.alice)
    // etcd 3.4's authMaintenanceServer answers its own error untranslated (code 2, HTTP 500).
    assert.deepEqual(
      [snap.status, snap.text],
      [500, '{"error":"auth: permission denied","message":"auth: permission denied","code":2}'],
    )
    assertPlainError(
      await call(f.url, '/v3/auth/role/get', { role: 'root' }, f.alice),
      403,
      'etcdserver: permission denied',
    )
    assertPlainError(await call(f.url, '/v3/auth/role/list', {}, f.alice), 403, 'etcdserver: permission denied')
  })

  test('a token used many times (so cached) stops working once the auth state changes or the user is gone', async () => {
    const rootCall = (p: string, b: unknown) => call(f.url, p, b, f.root)
    assert.equal((await rootCall('/v3/auth/user/add', { name: 'carol', password: 'pw' })).status, 200)
    assert.equal((await rootCall('/v3/auth/user/grant', { user: 'carol', role: 'app' })).status, 200)
    const carol = (await call(f.url, '/v3/auth/authenticate', { name: 'carol', password: 'pw' })).json.token as string
    for (let i = 0; i < 5; i++)
      assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/a') }, carol)).status, 200)
    assert.equal((await rootCall('/v3/auth/user/revoke', { name: 'carol', role: 'app' })).status, 200)
    assertPlainError(
      await call(f.url, '/v3/kv/range', { key: b64('app/a') }, carol),
      400,
      'etcdserver: revision of auth store is old',
    )
    const fresh = (await call(f.url, '/v3/auth/authenticate', { name: 'carol', password: 'pw' })).json.token as string
    assertPlainError(
      await call(f.url, '/v3/kv/range', { key: b64('app/a') }, fresh),
      403,
      'etcdserver: permission denied',
    )
    f.root = (await call(f.url, '/v3/auth/authenticate', { name: 'root', password: 'rootpw' })).json.token
    assert.equal((await call(f.url, '/v3/auth/user/delete', { name: 'carol' }, f.root)).status, 200)
    for (const t of [carol, fresh])
      assertPlainError(
        await call(f.url, '/v3/kv/range', { key: b64('app/a') }, t),
        400,
        'etcdserver: revision of auth store is old',
      )
  })
})

describe('brute force from one address across user names', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({ authPasswordIterations: 1000 })
    await addRoot(m.url, 'rootpw', { users: { bob: 'bobpw' }, enable: true })
  })
  after(() => m.stop())

  test('spraying many names from one address blocks that address, even for a right password', async () => {
    assert.equal((await post(m.url, '/v3/auth/authenticate', { name: 'bob', password: 'bobpw' })).status, 200)
    for (let i = 0; i < 10; i++) {
      const r = await post(m.url, '/v3/auth/authenticate', { name: `user${i}`, password: 'guess' })
      assertPlainError(r, 400, 'etcdserver: authentication failed, invalid user ID or password')
    }
    const right = await post(m.url, '/v3/auth/authenticate', { name: 'bob', password: 'bobpw' })
    assertPlainError(right, 400, 'etcdserver: authentication failed, invalid user ID or password')
  })
})
