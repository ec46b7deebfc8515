/**
 * TLS on one Node member: https with the CA, plain HTTP refused, --client-cert-auth (no certificate, another CA's,
 * a self-signed one: refused; the CA's: served), with auth on the certificate's CN is the user and a token wins,
 * the WebSocket watch over wss://, --peer-client-cert-auth on /raft (refused and logged without a peer
 * certificate, even with a valid cluster credential), and nothing secret in any error.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { type CertFiles, createTlsDir, type TestCa, type TlsDir, tlsFetch, tlsOptions } from '../helpers/tls.js'
import { freePort } from '../support/index.js'
import { b64, call, dialRaft, type Logged, recordingLogger } from './helpers.js'

/** A member on a free https port with a fresh data dir and a logger that records what it says. */
async function startTlsMember(
  tls: Partial<ServerConfig>,
): Promise<{ url: string; running: RunningMember; logs: Logged[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-tls-member-'))
  const url = `https://127.0.0.1:${await freePort()}`
  const log = recordingLogger()
  const running = await startNodeMember(
    {
      ...serverDefaults,
      dataDir: dir,
      listenClientUrls: [url],
      advertiseClientUrls: [url],
      initialAdvertisePeerUrls: [url],
      authPasswordIterations: 1000,
      logLevel: 'error',
      ...tls,
    },
    log,
  )
  return {
    url,
    running,
    logs: log.lines,
    async stop() {
      await running.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The error (code or message) a request fails with at the connection level, or `status N` when it was answered. */
async function failure(f: () => Promise<Response>): Promise<string> {
  try {
    const r = await f()
    await r.text()
    return `status ${r.status}`
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    return cause?.code ?? cause?.message ?? (err as Error).message
  }
}

let dir: TlsDir
let ca: TestCa
let other: TestCa
let server: CertFiles
let keyPems: string[]

before(() => {
  dir = createTlsDir()
  ca = dir.ca('edgecd-test-ca')
  other = dir.ca('another-ca')
  server = ca.issue('member-0')
  keyPems = [readFileSync(server.keyFile, 'utf8'), readFileSync(ca.keyFile, 'utf8')]
})
after(() => dir.remove())

/** No private key material, no key file contents in `text`. */
function assertNoSecret(text: string): void {
  assert.doesNotMatch(text, /PRIVATE KEY/)
  for (const pem of keyPems) {
    const body = pem.split('\n').filter((l) => l && !l.startsWith('-----'))
    for (const line of body) assert.ok(!text.includes(line.slice(0, 24)), 'key material in an error')
  }
}

describe('https member without client certificates', () => {
  let m: Awaited<ReturnType<typeof startTlsMember>>
  before(async () => {
    m = await startTlsMember({ certFile: server.certFile, keyFile: server.keyFile })
  })
  after(() => m.stop())

  test('a client that trusts the CA gets answers', async () => {
    const f = tlsFetch({ ca: ca.certFile })
    try {
      const put = await call(f, `${m.url}/v3/kv/put`, { key: b64('k'), value: b64('v') })
      assert.equal(put.status, 200, put.text)
      const get = await call(f, `${m.url}/v3/kv/range`, { key: b64('k') })
      assert.equal(get.json.kvs[0].value, b64('v'))
      assert.match(m.running.urls[0]!, /^https:\/\/127\.0\.0\.1:\d+$/)
    } finally {
      await f.close()
    }
  })

  test('plain HTTP to the https-only listener is refused', async () => {
    const plain = m.url.replace('https:', 'http:')
    const r = await failure(() =>
      fetch(`${plain}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64('k') }) }),
    )
    assert.ok(!r.startsWith('status 200'), `plain HTTP was served: ${r}`)
  })

  test('a client that does not trust the CA refuses the member', async () => {
    const f = tlsFetch({ ca: other.certFile })
    try {
      assert.match(await failure(() => f(`${m.url}/health`)), /CERT|certificate|verify/i)
    } finally {
      await f.close()
    }
  })
})

describe('--client-cert-auth', () => {
  let m: Awaited<ReturnType<typeof startTlsMember>>
  let rootCert: CertFiles
  let aliceCert: CertFiles
  const fetches: ReturnType<typeof tlsFetch>[] = []
  const as = (c?: CertFiles, trust = ca) => {
    const f = tlsFetch({ ca: trust.certFile, ...(c ? { cert: c.certFile, key: c.keyFile } : {}) })
    fetches.push(f)
    return f
  }
  before(async () => {
    rootCert = ca.issue('root', { server: false })
    aliceCert = ca.issue('alice', { server: false })
    m = await startTlsMember({
      certFile: server.certFile,
      keyFile: server.keyFile,
      trustedCaFile: ca.certFile,
      clientCertAuth: true,
    })
  })
  after(async () => {
    for (const f of fetches) await f.close()
    await m.stop()
  })

  test('a connection without a client certificate is refused', async () => {
    const r = await failure(() => as()(`${m.url}/v3/kv/range`, { method: 'POST', body: '{}' }))
    assert.ok(!r.startsWith('status 200'), r)
    assertNoSecret(r)
  })

  test("a certificate from another CA is refused, and so is a self-signed one with the member's CA's name", async () => {
    const mallory = other.issue('root', { server: false })
    const r1 = await failure(() => as(mallory)(`${m.url}/v3/kv/range`, { method: 'POST', body: '{}' }))
    assert.ok(!r1.startsWith('status 200'), r1)
    const forged = dir.selfSigned('edgecd-test-ca')
    const r2 = await failure(() => as(forged)(`${m.url}/v3/kv/range`, { method: 'POST', body: '{}' }))
    assert.ok(!r2.startsWith('status 200'), r2)
    assertNoSecret(r1 + r2)
  })

  test("a certificate from the member's CA is served, watch over wss:// too", async () => {
    const f = as(aliceCert)
    const put = await call(f, `${m.url}/v3/kv/put`, { key: b64('app/one'), value: b64('1') })
    assert.equal(put.status, 200, put.text)
    const ws = new WebSocket(`${m.url.replace('https:', 'wss:')}/v3/watch`, {
      ...tlsOptions({ ca: ca.certFile, cert: aliceCert.certFile, key: aliceCert.keyFile }),
    })
    const created = await new Promise<any>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ create_request: { key: b64('app/one'), start_revision: 1 } })))
      const lines: any[] = []
      ws.on('message', (d) => {
        lines.push(JSON.parse(String(d)))
        if (lines.some((l) => l.result?.events)) resolve(lines)
      })
      ws.on('error', reject)
      setTimeout(() => reject(new Error('no watch event within 30 s')), 30_000).unref()
    })
    ws.close()
    assert.ok(created.some((l: any) => l.result?.events?.[0]?.kv?.key === b64('app/one')))
  })

  test("with auth on, a request without a token acts as the certificate's CN; a token wins", async () => {
    const root = as(rootCert)
    const must = async (path: string, body: unknown) => {
      const r = await call(root, `${m.url}${path}`, body)
      assert.equal(r.status, 200, `${path}: ${r.text}`)
      return r
    }
    await must('/v3/auth/user/add', { name: 'root', password: 'rootpw' })
    await must('/v3/auth/user/grant', { user: 'root', role: 'root' })
    await must('/v3/auth/role/add', { name: 'app' })
    await must('/v3/auth/role/grant', {
      name: 'app',
      perm: { permType: 'READ', key: b64('app/'), range_end: b64('app0') },
    })
    await must('/v3/auth/user/add', { name: 'alice', password: 'alicepw' })
    await must('/v3/auth/user/grant', { user: 'alice', role: 'app' })
    await must('/v3/kv/put', { key: b64('secret'), value: b64('s') })
    await must('/v3/auth/enable', {})

    const alice = as(aliceCert)
    // Alice's certificate: her permissions apply.
    const allowed = await call(alice, `${m.url}/v3/kv/range`, { key: b64('app/one') })
    assert.equal(allowed.status, 200, allowed.text)
    assert.equal(allowed.json.kvs[0].value, b64('1'))
    const denied = await call(alice, `${m.url}/v3/kv/range`, { key: b64('secret') })
    assert.equal(denied.status, 403, denied.text)
    assert.equal(denied.json.message, 'etcdserver: permission denied')
    const write = await call(alice, `${m.url}/v3/kv/put`, { key: b64('app/two'), value: b64('2') })
    assert.equal(write.status, 403, write.text)
    const admin = await call(alice, `${m.url}/v3/auth/user/list`, {})
    assert.equal(admin.status, 403, admin.text)
    // Root's certificate: root.
    const users = await call(root, `${m.url}/v3/auth/user/list`, {})
    assert.equal(users.status, 200, users.text)
    assert.deepEqual(users.json.users.sort(), ['alice', 'root'])
    // A certificate for a CN that is no user: denied.
    const bob = as(ca.issue('bob', { server: false }))
    const nobody = await call(bob, `${m.url}/v3/kv/range`, { key: b64('app/one') })
    assert.equal(nobody.status, 403, nobody.text)
    // A token wins over the certificate: root's token on alice's connection reads the secret ...
    const login = await call(alice, `${m.url}/v3/auth/authenticate`, { name: 'root', password: 'rootpw' })
    assert.equal(login.status, 200, login.text)
    const withToken = await call(
      alice,
      `${m.url}/v3/kv/range`,
      { key: b64('secret') },
      { authorization: login.json.token },
    )
    assert.equal(withToken.status, 200, withToken.text)
    assert.equal(withToken.json.kvs[0].value, b64('s'))
    // ... and an invalid token is refused rather than falling back to the certificate.
    const bad = await call(root, `${m.url}/v3/kv/range`, { key: b64('secret') }, { authorization: 'garbage' })
    assert.equal(bad.status, 401, bad.text)
    assert.equal(bad.json.message, 'etcdserver: invalid auth token')
    // The WebSocket watch checks the CN too: alice may not watch the secret.
    const ws = new WebSocket(`${m.url.replace('https:', 'wss:')}/v3/watch`, {
      ...tlsOptions({ ca: ca.certFile, cert: aliceCert.certFile, key: aliceCert.keyFile }),
    })
    const answer = await new Promise<any>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ create_request: { key: b64('secret') } })))
      ws.on('message', (d) => resolve(JSON.parse(String(d))))
      ws.on('error', reject)
      setTimeout(() => reject(new Error('no watch answer within 30 s')), 30_000).unref()
    })
    ws.close()
    assert.equal(answer.result?.canceled, true, JSON.stringify(answer))
    assert.match(answer.result?.cancel_reason ?? '', /permission denied/)
  })
})

describe('--peer-client-cert-auth', () => {
  test('/raft without a peer certificate is refused and logged, even with a valid cluster credential', async () => {
    const peerCa = dir.ca('peer-ca')
    const member = peerCa.issue('member-0')
    const m = await startTlsMember({
      certFile: member.certFile,
      keyFile: member.keyFile,
      peerCertFile: member.certFile,
      peerKeyFile: member.keyFile,
      peerTrustedCaFile: peerCa.certFile,
      peerClientCertAuth: true,
      initialClusterToken: 'tls-test',
    })
    try {
      // Clients need no certificate when only peers are checked.
      const f = tlsFetch({ ca: peerCa.certFile })
      const status = await call(f, `${m.url}/v3/maintenance/status`, {})
      await f.close()
      assert.equal(status.status, 200, status.text)
      const clusterId = status.json.header.cluster_id as string
      const memberId = '12345'
      const headers = { 'x-edgecd-from': memberId, 'x-edgecd-cluster': clusterId, 'x-edgecd-nonce': 'ab'.repeat(32) }
      const raft = (files: { cert?: string; key?: string }) =>
        dialRaft(m.url, headers, { ca: peerCa.certFile, ...files })
      // No certificate, and a certificate of another CA: refused with 401, and each is logged.
      assert.equal(await raft({}), 'status 401')
      const stranger = other.issue('member-9')
      assert.equal(await raft({ cert: stranger.certFile, key: stranger.keyFile }), 'status 401')
      const refusals = m.logs.filter((l) => l.level === 'warn' && /refused a \/raft connection/.test(l.msg))
      assert.equal(refusals.length, 2, JSON.stringify(m.logs))
      assert.match(refusals[0]!.msg, /no valid peer certificate/)
      assert.equal(refusals[0]!.fields?.claimedId, memberId)
      // A valid peer certificate gets past the certificate check, but this single member admits nobody on /raft
      // (the sender must be another member of its configuration; then it must still prove the peer secret).
      assert.equal(await raft({ cert: member.certFile, key: member.keyFile }), 'status 401')
      assert.ok(
        m.logs.some((l) => /refused a \/raft connection: not a member of this cluster/.test(l.msg)),
        JSON.stringify(m.logs),
      )
      const noProof = await dialRaft(m.url, {}, { ca: peerCa.certFile, cert: member.certFile, key: member.keyFile })
      assert.equal(noProof, 'status 401')
    } finally {
      await m.stop()
    }
  })
})
