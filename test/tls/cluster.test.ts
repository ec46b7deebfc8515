/**
 * Three in-process members over TLS with --client-cert-auth and --peer-client-cert-auth, peers and clients from
 * different CAs: they elect a leader over wss:// and replicate a write made through a follower; calls a follower
 * forwards to the leader's client URL (lease keep-alive) go with its peer certificate; a client certificate is not a
 * peer certificate (refused on /raft and logged).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { type CertFiles, createTlsDir, type TestCa, type TlsDir, tlsFetch } from '../helpers/tls.js'
import { eventually, freePort } from '../support/index.js'
import { b64, call, dialRaft, type Logged, recordingLogger } from './helpers.js'

const n = 3

let dir: TlsDir
let peerCa: TestCa
let clientCa: TestCa
let clientCert: CertFiles
let urls: string[]
let dataDirs: string[]
let configs: ServerConfig[]
const members: RunningMember[] = []
const logs: Logged[][] = []
let client: ReturnType<typeof tlsFetch>

const callAt = (i: number, path: string, body: unknown) => call(client, urls[i]! + path, body)

before(async () => {
  dir = createTlsDir()
  peerCa = dir.ca('edgecd-peer-ca')
  clientCa = dir.ca('edgecd-client-ca')
  clientCert = clientCa.issue('client', { server: false })
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()))
  urls = ports.map((p) => `https://127.0.0.1:${p}`)
  dataDirs = urls.map(() => mkdtempSync(join(tmpdir(), 'edgecd-tls-cluster-')))
  const initialCluster = urls.map((u, i) => `m${i}=${u}`).join(',')
  configs = urls.map((u, i) => {
    // One certificate per member, from the peer CA: the listener presents it and the member dials its peers with it.
    const cert = peerCa.issue(`m${i}`)
    return {
      ...serverDefaults,
      name: `m${i}`,
      dataDir: dataDirs[i]!,
      listenClientUrls: [u],
      advertiseClientUrls: [u],
      initialAdvertisePeerUrls: [u],
      initialCluster,
      initialClusterToken: 'tls-cluster',
      heartbeatIntervalMs: 20,
      electionTimeoutMs: 200,
      requestTimeoutMs: 3000,
      logLevel: 'error' as const,
      certFile: cert.certFile,
      keyFile: cert.keyFile,
      trustedCaFile: clientCa.certFile,
      clientCertAuth: true,
      peerCertFile: cert.certFile,
      peerKeyFile: cert.keyFile,
      peerTrustedCaFile: peerCa.certFile,
      peerClientCertAuth: true,
    }
  })
  for (let i = 0; i < n; i++) {
    const log = recordingLogger()
    logs.push(log.lines)
    members.push(await startNodeMember(configs[i]!, log))
  }
  // Clients trust the peer CA (the listeners present member certificates) and present a client-CA certificate.
  client = tlsFetch({ ca: peerCa.certFile, cert: clientCert.certFile, key: clientCert.keyFile })
})

after(async () => {
  await client?.close()
  for (const m of members) await m.stop().catch(() => {})
  for (const d of dataDirs ?? []) rmSync(d, { recursive: true, force: true })
  dir?.remove()
})

describe('three members over TLS with client and peer certificate auth', () => {
  test('elect a leader over wss:// and replicate a write made through a follower', async () => {
    const leaderId = await eventually(
      async () => {
        const ids = new Set<string>()
        for (let i = 0; i < n; i++) {
          const s = await callAt(i, '/v3/maintenance/status', {})
          if (s.status !== 200 || !s.json.leader || s.json.leader === '0') return undefined
          ids.add(s.json.leader)
        }
        return ids.size === 1 ? [...ids][0] : undefined
      },
      10_000,
      'one leader that every member agrees on',
    )
    const statuses = await Promise.all(urls.map((_, i) => callAt(i, '/v3/maintenance/status', {})))
    const follower = statuses.findIndex((s) => s.json.header.member_id !== leaderId)
    const other = statuses.findIndex((s, i) => i !== follower && s.json.header.member_id !== leaderId)
    assert.ok(follower >= 0 && other >= 0)
    const put = await callAt(follower, '/v3/kv/put', { key: b64('tls/k'), value: b64('over tls') })
    assert.equal(put.status, 200, put.text)
    const got = await callAt(other, '/v3/kv/range', { key: b64('tls/k') })
    assert.equal(got.status, 200, got.text)
    assert.equal(got.json.kvs?.[0]?.value, b64('over tls'))
    // Every member applied it (serializable reads are local).
    for (let i = 0; i < n; i++) {
      const local = await eventually(
        async () => {
          const r = await callAt(i, '/v3/kv/range', { key: b64('tls/k'), serializable: true })
          return r.json.kvs?.length === 1 ? r : undefined
        },
        5000,
        `member ${i} applied the write`,
      )
      assert.equal(local.json.kvs[0].value, b64('over tls'))
    }
  })

  test('lease keep-alives and time-to-live through a follower reach the leader over TLS (peer certificate)', async () => {
    const statuses = await Promise.all(urls.map((_, i) => callAt(i, '/v3/maintenance/status', {})))
    const follower = statuses.findIndex((s) => s.json.header.member_id !== s.json.leader)
    const grant = await callAt(follower, '/v3/lease/grant', { TTL: 30 })
    assert.equal(grant.status, 200, grant.text)
    const id = grant.json.ID as string
    const ka = await callAt(follower, '/v3/lease/keepalive', { ID: id })
    assert.equal(ka.status, 200, ka.text)
    assert.equal(ka.json.result?.TTL, '30', ka.text)
    const ttl = await callAt(follower, '/v3/lease/timetolive', { ID: id })
    assert.equal(ttl.status, 200, ttl.text)
    assert.equal(ttl.json.grantedTTL, '30', ttl.text)
  })

  test('a client certificate is not a peer certificate: /raft refuses it and logs it', async () => {
    const status = await callAt(1, '/v3/maintenance/status', {})
    const clusterId = status.json.header.cluster_id as string
    const fromId = String(members[0]!.member.raft.node.raft.id)
    const headers = { 'x-edgecd-from': fromId, 'x-edgecd-cluster': clusterId, 'x-edgecd-nonce': 'ab'.repeat(32) }
    const result = await dialRaft(urls[1]!, headers, {
      ca: peerCa.certFile,
      cert: clientCert.certFile,
      key: clientCert.keyFile,
    })
    assert.equal(result, 'status 401')
    const refused = logs[1]!.filter((l) => /refused a \/raft connection: no valid peer certificate/.test(l.msg))
    assert.equal(refused.length, 1, JSON.stringify(logs[1]))
    assert.equal(refused[0]!.fields?.claimedId, fromId)
    // Without any certificate the handshake itself fails (--client-cert-auth), which is logged as a rejected
    // connection.
    const bare = await dialRaft(urls[1]!, {}, { ca: peerCa.certFile })
    assert.match(bare, /^error /)
    await eventually(
      () => (logs[1]!.some((l) => /rejected connection: TLS handshake failed/.test(l.msg)) ? true : undefined),
      5000,
      'the rejected handshake in the log',
    )
  })
})
