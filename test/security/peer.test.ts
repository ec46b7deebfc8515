/**
 * Issue 17, finding 1: nobody without the peer secret can act as a Raft peer. An attacker on the client port knows
 * everything public (member and cluster ids from the member list, the default --initial-cluster-token) and tries what
 * the old proof (an HMAC keyed with the token) let through: a proposal (a put) and heartbeats of a higher term (a
 * fake leader). With the challenge-response handshake the upgrade is refused for a non-member, and a socket claiming
 * a real member is closed at its first frame: nothing is applied, the term and leader do not move. A single member
 * refuses /raft from anyone. A member listening off loopback without a secret does not start.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { encode } from 'cbor-x'
import WebSocket from 'ws'
import { ConfigError, resolvePeerSecret, serverDefaults } from '../../src/etcdserver/config.js'
import { type Message, MessageType } from '../../src/raft/index.js'
import { leaderIndex, startCluster, type TestCluster } from '../cluster/helpers.js'
import { startTestMember } from '../server/helpers.js'
import { b64, eventually, post } from '../support/index.js'

/** What the old code accepted: Bearer HMAC(token, "edgecd-peer:<cluster>:<from>"). */
function oldProof(token: string, clusterId: string, from: string): string {
  return createHmac('sha256', token).update(`edgecd-peer:${clusterId}:${from}`).digest('hex')
}

interface Attempt {
  status?: number
  opened: boolean
  closeCode?: number
  framesReceived: number
}

/** Dials `<url>/raft` as `from`, sends `frames` once open, and reports how the member answered. */
function attack(url: string, from: string, clusterId: string, token: string, frames: Uint8Array[]): Promise<Attempt> {
  return new Promise((resolve) => {
    const out: Attempt = { opened: false, framesReceived: 0 }
    const ws = new WebSocket(`${url.replace('http:', 'ws:')}/raft`, {
      headers: {
        authorization: `Bearer ${oldProof(token, clusterId, from)}`,
        'x-edgecd-from': from,
        'x-edgecd-cluster': clusterId,
        'x-edgecd-nonce': randomBytes(32).toString('hex'),
      },
    })
    const done = setTimeout(() => ws.terminate(), 30_000)
    ws.on('unexpected-response', (_req, res) => {
      out.status = res.statusCode
      ws.terminate()
    })
    ws.on('open', () => {
      out.opened = true
      for (const f of frames) ws.send(f)
    })
    ws.on('message', () => out.framesReceived++)
    ws.on('close', (code) => {
      out.closeCode = code
      clearTimeout(done)
      resolve(out)
    })
    ws.on('error', () => {})
  })
}

function msg(type: MessageType, from: string, to: string, term: number, extra: Partial<Message> = {}): Message {
  return {
    type,
    from,
    to,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    ...extra,
  }
}

/** The frames the attack sends, in the old frame version (1) and the current one (2). */
function frames(clusterId: string, from: string, batch: Message[]): Uint8Array[] {
  return [1, 2].map((v) => encode([v, clusterId, from, batch]) as Uint8Array)
}

describe('peer authentication (issue 17, finding 1)', () => {
  let c: TestCluster
  before(async () => {
    c = await startCluster(3)
    await eventually(() => leaderIndex(c), 10_000, 'a leader')
  })
  after(async () => {
    await c.close()
  })

  test('a forged peer write and a forged leader are refused: nothing applied, term and leader unchanged', async () => {
    const li = (await leaderIndex(c))!
    const leader = c.members[li]!.member
    const fi = (li + 1) % 3
    const follower = c.members[fi]!.member
    const clusterId = (await post(c.urls[0]!, '/v3/maintenance/status', {})).json.header.cluster_id as string
    const leaderId = leader.raft.node.raft.id
    const followerId = follower.raft.node.raft.id
    const otherId = c.members[(li + 2) % 3]!.member.raft.node.raft.id
    const term = leader.raft.node.raft.term

    // A proposal (a put) to the leader, claiming to be a real member, with the public token's proof.
    const put = encode({ put: { key: Buffer.from('forged'), value: Buffer.from('by-attacker'), lease: 0n } })
    const prop = msg(MessageType.MsgProp, otherId, leaderId, 0, {
      entries: [{ term: 0, index: 0, type: 0, data: encode(['attacker:1', put]) as Uint8Array }],
    })
    const w = await attack(c.urls[li]!, otherId, clusterId, 'test-token', frames(clusterId, otherId, [prop]))
    assert.equal(w.closeCode, 4401, `the socket is closed as unauthenticated: ${JSON.stringify(w)}`)

    // Heartbeats of a much higher term to a follower, claiming to be a member that is not its leader.
    const hb = msg(MessageType.MsgHeartbeat, otherId, followerId, term + 100)
    const l = await attack(c.urls[fi]!, otherId, clusterId, 'test-token', frames(clusterId, otherId, [hb]))
    assert.equal(l.closeCode, 4401, JSON.stringify(l))

    // A member id that is not in the cluster is refused before the upgrade.
    const stranger = await attack(c.urls[li]!, '4242', clusterId, 'test-token', [])
    assert.equal(stranger.status, 401)

    const r = await post(c.urls[li]!, '/v3/kv/range', { key: b64('forged') })
    assert.equal(r.json.kvs, undefined, 'the forged put was not applied')
    assert.equal(follower.raft.node.raft.term, term, 'the follower did not move to the forged term')
    assert.equal(follower.raft.leader(), leaderId, 'and still follows the real leader')
    // The cluster still serves writes.
    const ok = await post(c.urls[fi]!, '/v3/kv/put', { key: b64('real'), value: b64('1') })
    assert.equal(ok.status, 200)
  })

  test('a recorded handshake answer does not open another connection (fresh nonces)', async () => {
    // The attacker cannot compute the answer, so it sends whatever a member sent before: an answer bound to other
    // nonces. Here: a well-formed answer with a random 32-byte proof.
    const clusterId = (await post(c.urls[0]!, '/v3/maintenance/status', {})).json.header.cluster_id as string
    const from = c.members[1]!.member.raft.node.raft.id
    const answer = encode([2, clusterId, from, [], { k: 'auth', proof: new Uint8Array(randomBytes(32)) }])
    const a = await attack(c.urls[0]!, from, clusterId, 'test-token', [answer as Uint8Array])
    assert.equal(a.closeCode, 4401, JSON.stringify(a))
  })
})

describe('a single member refuses /raft from anyone', () => {
  test('with default flags (no secret), any claimed id gets 401', async () => {
    const m = await startTestMember()
    try {
      const clusterId = (await post(m.url, '/v3/maintenance/status', {})).json.header.cluster_id as string
      const self = m.running.member.raft.node.raft.id
      for (const from of ['4242', self]) {
        const a = await attack(m.url, from, clusterId, serverDefaults.initialClusterToken, [])
        assert.equal(a.status, 401, `${from}: ${JSON.stringify(a)}`)
      }
    } finally {
      await m.stop()
    }
  })
})

describe('a member exposed without a peer secret does not start', () => {
  const base = {
    ...serverDefaults,
    listenClientUrls: ['http://0.0.0.0:2379'],
    initialCluster: 'default=http://10.0.0.1:2379,b=http://10.0.0.2:2379',
  }
  const read = () => {
    throw new Error('no such file')
  }
  test('peers on a non-loopback listener without a secret: ConfigError naming --peer-secret-file', () => {
    assert.throws(
      () => resolvePeerSecret(base, read),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError)
        assert.match(e.message, /--peer-secret-file/)
        assert.match(e.message, /0\.0\.0\.0/)
        return true
      },
    )
    // With a secret, or with peer mutual TLS, it starts.
    assert.equal(resolvePeerSecret({ ...base, peerSecret: 'sixteen-chars-ok' }, read).secret, 'sixteen-chars-ok')
    assert.ok(resolvePeerSecret({ ...base, peerClientCertAuth: true }, read).secret)
    assert.equal(
      resolvePeerSecret({ ...base, peerSecretFile: 'f' }, () => 'from-a-file-0123456\n').secret,
      'from-a-file-0123456',
    )
    assert.throws(() => resolvePeerSecret({ ...base, peerSecretFile: 'f' }, () => 'short\n'), /at least 16/)
  })
  test('on loopback it warns; a single exposed member runs without peers', () => {
    const loop = resolvePeerSecret(
      {
        ...base,
        listenClientUrls: ['http://127.0.0.1:2379'],
        initialCluster: 'default=http://127.0.0.1:2379,b=http://127.0.0.1:2380',
      },
      read,
    )
    assert.equal(loop.secret, serverDefaults.initialClusterToken)
    assert.match(loop.warning ?? '', /not a secret/)
    const single = resolvePeerSecret({ ...base, initialCluster: '' }, read)
    assert.equal(single.secret, undefined)
    assert.match(single.warning ?? '', /refuses every \/raft connection/)
  })
  test('edgecd serve exits non-zero with the message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-peer-'))
    try {
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'serve',
          '--data-dir',
          join(dir, 'd'),
          '--listen-client-urls',
          'http://0.0.0.0:0',
          '--advertise-client-urls',
          'http://10.0.0.1:2379',
          '--initial-cluster',
          'default=http://10.0.0.1:2379,b=http://10.0.0.2:2379',
        ],
        { encoding: 'utf8', timeout: 30_000 },
      )
      assert.notEqual(r.status, 0, r.stderr)
      assert.match(r.stderr, /--peer-secret-file/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
