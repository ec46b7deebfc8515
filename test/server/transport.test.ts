/**
 * The peer transport's snapshot streams (src/rafthttp/transport.ts): a MsgSnap travels as bounded chunks under a window
 * of unacknowledged chunks, other messages to the same peer pass between chunks, the sender reports success only
 * when the receiver has the whole snapshot, and failures (closed socket, refusal, oversize, out-of-order chunk) are
 * reported so Raft retries. Delivery is driven by hand through an in-memory network: no timers, no wall clock.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { decode, encode } from 'cbor-x'
import { type Message, MessageType } from '../../src/raft/index.js'
import {
  type PeerSocketHandlers,
  PeerTransport,
  type PeerTransportOptions,
  peerAuthFailedCloseCode,
  peerFrameVersion,
  peerHandshakeProof,
  peerKey,
} from '../../src/rafthttp/transport.js'

async function eventually<T>(fn: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 2))
  }
}

interface Frame {
  from: string
  to: string
  bytes: Uint8Array
  deliver(): void
}

/**
 * Members joined by sockets whose frames wait in `queue` until `deliver` hands them over. A dial from a to b is
 * admitted by b's transport and runs the challenge-response handshake through the same queue (`settle` pumps it).
 */
/** Every transport the tests made, closed at the end (their timers must not keep the process alive). */
const allTransports: PeerTransport[] = []
after(() => {
  for (const t of allTransports) t.close()
})

class Net {
  readonly queue: Frame[] = []
  readonly got = new Map<string, Message[]>()
  readonly reports: { from: string; to: string; ok: boolean }[] = []
  readonly handlers = new Map<string, PeerSocketHandlers>()
  readonly t = new Map<string, PeerTransport>()
  readonly dials: string[] = []
  readonly refusals: string[] = []

  async add(id: string, extra: Partial<PeerTransportOptions> = {}): Promise<PeerTransport> {
    this.got.set(id, [])
    const tr = new PeerTransport({
      selfId: id,
      clusterId: 'c1',
      peerSecret: 'a-secret-of-16-chars-or-more',
      dial: (url, headers, h) => {
        const to = new URL(url).hostname
        this.dials.push(`${id}->${to}`)
        this.handlers.set(`${id}->${to}`, h)
        let closed = false
        const inFlight = (from: string, dest: string) =>
          this.queue.filter((f) => f.from === from && f.to === dest).reduce((n, f) => n + f.bytes.length, 0)
        const dialer = {
          send: (bytes: Uint8Array) => {
            if (closed) return
            this.queue.push({ from: id, to, bytes, deliver: () => !closed && session?.onMessage(bytes) })
          },
          close: () => {
            if (closed) return
            closed = true
            session?.onClose()
            h.onClose()
          },
          get bufferedAmount() {
            return inFlight(id, to)
          },
        }
        let session: ReturnType<PeerTransport['accept']> | undefined
        // The upgrade reaches the receiver a moment later, as over a network.
        queueMicrotask(() => {
          const receiver = this.t.get(to)
          const admitted = receiver?.admit({
            from: headers['x-edgecd-from'],
            to: headers['x-edgecd-to'],
            cluster: headers['x-edgecd-cluster'],
            nonce: headers['x-edgecd-nonce'],
          })
          if (!receiver || !admitted || 'refused' in admitted) {
            this.refusals.push(`${id}->${to}: ${admitted && 'refused' in admitted ? admitted.refused : 'no member'}`)
            dialer.close()
            return
          }
          h.onOpen()
          session = receiver.accept(admitted.from, headers['x-edgecd-nonce']!, {
            send: (bytes) => {
              if (closed) return
              this.queue.push({ from: to, to: id, bytes, deliver: () => !closed && h.onMessage(bytes) })
            },
            close: () => dialer.close(),
            get bufferedAmount() {
              return inFlight(to, id)
            },
          })
        })
        return dialer
      },
      onMessages: (msgs) => this.got.get(id)!.push(...msgs),
      reportUnreachable: () => {},
      reportSnapshot: (to, ok) => this.reports.push({ from: id, to, ok }),
      snapshotChunkBytes: 1000,
      snapshotWindowChunks: 3,
      ...extra,
    })
    await tr.start()
    this.t.set(id, tr)
    allTransports.push(tr)
    return tr
  }

  async connect(): Promise<void> {
    for (const [id, tr] of this.t) {
      const others = new Map([...this.t.keys()].filter((o) => o !== id).map((o) => [o, [`http://${o}:1`]]))
      tr.setPeers(others)
    }
    await this.settle()
  }

  /**
   * Runs handshakes to the end: delivers frames and lets the HMACs (asynchronous Web Crypto, on libuv's thread pool)
   * finish, until every transport is connected to every other one.
   */
  async settle(): Promise<void> {
    const n = this.t.size
    // Bounded by time, not turns: a loaded machine's thread pool may take seconds over the HMACs.
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      this.deliverAll()
      const done = [...this.t.values()].every((t) => t.connectedPeers().length === n - 1 && t.handshakesPending() === 0)
      if (done && this.queue.length === 0) return
      await new Promise((r) => setTimeout(r, 1))
    }
    throw new Error('handshakes did not complete')
  }

  /** Delivers the oldest queued frame; false when nothing is queued. */
  deliverOne(filter: (f: Frame) => boolean = () => true): boolean {
    const i = this.queue.findIndex(filter)
    if (i < 0) return false
    const [f] = this.queue.splice(i, 1)
    f!.deliver()
    return true
  }

  deliverAll(limit = 100_000): number {
    let n = 0
    while (n < limit && this.deliverOne()) n++
    return n
  }

  /** Snapshot chunks from `from` to `to` waiting in the network. */
  chunksInFlight(from: string, to: string): number {
    return this.queue.filter((f) => f.from === from && f.to === to && (decode(f.bytes) as unknown[])[4] !== undefined)
      .length
  }
}

function snapMsg(from: string, to: string, bytes: number, index = 50): Message {
  const data = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + 7) & 0xff
  return {
    type: MessageType.MsgSnap,
    from,
    to,
    term: 3,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    snapshot: { data, metadata: { index, term: 3, confState: { voters: [from, to], learners: [] } } },
  }
}

function heartbeat(from: string, to: string): Message {
  return { ...snapMsg(from, to, 0), type: MessageType.MsgHeartbeat, snapshot: undefined }
}

describe('peer transport: snapshot streams', () => {
  it('sends a snapshot in bounded chunks under a window, lets heartbeats pass, reports success at the end', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    const m = snapMsg('a', 'b', 10_500)
    a.send([m])
    // Eleven chunks of at most 1000 bytes; never more than the window (3) of them unacknowledged.
    assert.equal(net.chunksInFlight('a', 'b'), 3)
    assert.ok(
      net.queue.every((f) => f.bytes.length < 1400),
      'every frame is bounded by the chunk size',
    )
    let heartbeatSent = false
    let maxInFlight = 0
    while (net.deliverOne()) {
      maxInFlight = Math.max(maxInFlight, net.chunksInFlight('a', 'b'))
      if (!heartbeatSent) {
        a.send([heartbeat('a', 'b')])
        heartbeatSent = true
      }
    }
    assert.ok(maxInFlight <= 3, `at most 3 chunks in flight, saw ${maxInFlight}`)
    const got = net.got.get('b')!
    assert.deepEqual(
      got.map((x) => x.type),
      [MessageType.MsgHeartbeat, MessageType.MsgSnap],
      'the heartbeat arrives while the snapshot is still streaming',
    )
    assert.deepEqual(got[1]!.snapshot!.data, m.snapshot!.data)
    assert.deepEqual(got[1]!.snapshot!.metadata, m.snapshot!.metadata)
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: true }])
    assert.deepEqual(a.snapshotStreams(), { sending: 0, receiving: 0 })
  })

  it('reports success only after the receiver has the last chunk', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    a.send([snapMsg('a', 'b', 2500)])
    // Deliver the three chunks to b but hold back b's acknowledgements.
    while (net.deliverOne((f) => f.from === 'a')) {}
    assert.equal(net.got.get('b')!.length, 1, 'b has the whole snapshot')
    assert.deepEqual(net.reports, [], 'a does not know yet')
    net.deliverAll()
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: true }])
  })

  it('an empty snapshot still goes as one chunk', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    a.send([snapMsg('a', 'b', 0)])
    net.deliverAll()
    assert.equal(net.got.get('b')![0]!.snapshot!.data.length, 0)
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: true }])
  })

  it('a resent MsgSnap for the same snapshot joins the stream under way; a newer one replaces it', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    a.send([snapMsg('a', 'b', 5000, 50)])
    net.deliverOne()
    a.send([snapMsg('a', 'b', 5000, 50)])
    assert.equal(a.snapshotStreams().sending, 1)
    net.deliverAll()
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: true }])
    assert.equal(net.got.get('b')!.length, 1, 'delivered once')

    a.send([snapMsg('a', 'b', 5000, 60)])
    net.deliverOne()
    a.send([snapMsg('a', 'b', 3000, 70)])
    net.deliverAll()
    const snaps = net.got.get('b')!.filter((x) => x.type === MessageType.MsgSnap)
    assert.deepEqual(
      snaps.map((x) => x.snapshot!.metadata.index),
      [50, 70],
    )
    assert.deepEqual(net.reports.at(-1), { from: 'a', to: 'b', ok: true })
  })

  it('a socket that closes mid-stream fails the snapshot, and the receiver never sees a partial one', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    a.send([snapMsg('a', 'b', 8000)])
    net.deliverOne()
    net.deliverOne()
    net.handlers.get('a->b')!.onClose()
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: false }])
    net.deliverAll()
    assert.equal(net.got.get('b')!.length, 0)
    assert.equal(a.snapshotStreams().sending, 0)
  })

  it('the receiver refuses a snapshot larger than its limit', async () => {
    const net = new Net()
    const a = await net.add('a')
    const b = await net.add('b', { maxSnapshotBytes: 4000 })
    await net.connect()
    a.send([snapMsg('a', 'b', 4001)])
    net.deliverAll()
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: false }])
    assert.equal(net.got.get('b')!.length, 0)
    assert.equal(b.snapshotStreams().receiving, 0)
  })

  it('out-of-order and forged chunks are refused, never applied', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    a.send([snapMsg('a', 'b', 5000)])
    // Drop the second chunk on the floor: the third arrives out of order.
    net.deliverOne()
    const second = net.queue.findIndex((f) => f.from === 'a')
    net.queue.splice(second, 1)
    net.deliverAll()
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: false }])
    assert.equal(net.got.get('b')!.length, 0)

    // A chunk that claims to carry a MsgSnap for someone else, and a chunk with garbage fields.
    const b = net.t.get('b')!
    const other = {
      ...snapMsg('a', 'x', 10),
      snapshot: { ...snapMsg('a', 'x', 10).snapshot!, data: new Uint8Array(0) },
    }
    b.receive(
      encode([
        peerFrameVersion,
        'c1',
        'a',
        [],
        { k: 'snap', id: 99, seq: 0, total: 10, msg: other, data: new Uint8Array(10) },
      ]),
      'a',
    )
    b.receive(encode([peerFrameVersion, 'c1', 'a', [], { k: 'snap', id: 'x', seq: -1, total: 'big', data: 5 }]), 'a')
    // A bare MsgSnap inside a message batch is not accepted either: snapshots only come as streams.
    b.receive(encode([peerFrameVersion, 'c1', 'a', [snapMsg('a', 'b', 10)]]), 'a')
    assert.equal(net.got.get('b')!.length, 0)
  })

  it('a snapshot for a peer that is not connected fails at once', async () => {
    const net = new Net()
    const a = await net.add('a')
    a.send([snapMsg('a', 'b', 100)])
    assert.deepEqual(net.reports, [{ from: 'a', to: 'b', ok: false }])
  })

  it('a peer that connects to us is redialed at once instead of after its backoff', async () => {
    const net = new Net()
    const a = await net.add('a', { reconnectMinMs: 60_000, reconnectMaxMs: 60_000 })
    await net.add('b')
    await net.connect()
    const before = net.dials.filter((d) => d === 'a->b').length
    // b goes away: a's socket closes and a schedules a redial a minute later.
    net.handlers.get('a->b')!.onClose()
    assert.equal(net.dials.filter((d) => d === 'a->b').length, before)
    // b comes back and dials a: a redials b now, and the snapshot path works again at once.
    a.redialNow('b')
    assert.equal(net.dials.filter((d) => d === 'a->b').length, before + 1)
    await net.settle()
    a.send([heartbeat('a', 'b')])
    net.deliverAll()
    assert.equal(net.got.get('b')!.length, 1)
    a.close()
  })
})

describe('peer transport: metrics and the round-trip prober', () => {
  it('counts bytes both ways and send failures per peer, and records the smoothed round-trip time of probes', async () => {
    const net = new Net()
    const a = await net.add('a')
    const b = await net.add('b')
    await net.connect()
    const text = () => a.metrics.registry.render()
    // Series exist from the start at zero.
    assert.match(text(), /^etcd_network_peer_sent_bytes_total\{To="b"\} 0$/m)
    assert.match(text(), /^etcd_network_peer_round_trip_time_seconds_count\{To="b"\} 0$/m)
    assert.match(text(), /^etcd_network_active_peers\{Local="a",Remote="b"\} 1$/m)
    a.send([heartbeat('a', 'b')])
    const frameBytes = net.queue[0]!.bytes.length
    net.deliverAll()
    assert.equal(a.metrics.counters.sentBytes.get('b'), frameBytes)
    assert.equal(b.metrics.counters.receivedBytes.get('a'), frameBytes)
    // A probe goes out, b answers it, a smooths the round trip (α = 1/8 from 0) and records it on the next tick.
    a.probe()
    assert.equal(net.queue.length, 1)
    net.deliverAll()
    const srtt = a.roundTripTimes().get('b')
    assert.ok(srtt !== undefined && srtt >= 0)
    a.recordRoundTrips()
    assert.match(text(), /^etcd_network_peer_round_trip_time_seconds_count\{To="b"\} 1$/m)
    // No answer since: nothing is recorded on the next tick (etcd records only healthy peers).
    a.recordRoundTrips()
    assert.match(text(), /^etcd_network_peer_round_trip_time_seconds_count\{To="b"\} 1$/m)
    // b goes away: sends to it fail and are counted.
    net.handlers.get('a->b')!.onClose()
    a.send([heartbeat('a', 'b')])
    assert.equal(a.metrics.counters.sentFailures.get('b'), 1)
    assert.match(text(), /^etcd_network_active_peers\{Local="a",Remote="b"\} 0$/m)
    assert.match(text(), /^etcd_network_disconnected_peers_total\{Local="a",Remote="b"\} 1$/m)
    a.close()
    b.close()
  })
})

describe('peer transport: authentication (issue 17)', () => {
  it('peers with another secret never connect, and no frame of theirs reaches Raft', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b', { peerSecret: 'another-secret-of-16-chars' })
    for (const [id, tr] of net.t)
      tr.setPeers(new Map([[id === 'a' ? 'b' : 'a', [`http://${id === 'a' ? 'b' : 'a'}:1`]]]))
    await assert.rejects(net.settle(), /handshakes did not complete/)
    assert.deepEqual(a.connectedPeers(), [])
    a.send([heartbeat('a', 'b')])
    net.deliverAll()
    assert.equal(net.got.get('b')!.length, 0)
    a.close()
    net.t.get('b')!.close()
  })

  it('admits only current members other than itself, of this cluster, with a nonce', async () => {
    const net = new Net()
    const a = await net.add('a')
    await net.add('b')
    await net.connect()
    const nonce = 'ab'.repeat(32)
    assert.deepEqual(a.admit({ from: 'b', to: 'a', cluster: 'c1', nonce }), { from: 'b' })
    assert.deepEqual(a.admit({ from: 'x', to: 'a', cluster: 'c1', nonce }), { refused: 'not a member of this cluster' })
    assert.deepEqual(a.admit({ from: 'a', to: 'a', cluster: 'c1', nonce }), { refused: 'not a member of this cluster' })
    assert.deepEqual(a.admit({ from: 'b', to: 'a', cluster: 'c2', nonce }), { refused: 'another cluster' })
    assert.deepEqual(a.admit({ from: 'b', to: 'z', cluster: 'c1', nonce }), { refused: 'addressed to another member' })
    assert.deepEqual(a.admit({ from: 'b', to: 'a', cluster: 'c1' }), { refused: 'no nonce' })
    // A single member (no peers) admits nobody.
    const lone = await new Net().add('s')
    assert.ok('refused' in lone.admit({ from: 'b', to: 's', cluster: 'c1', nonce }))
  })

  it('an answer recorded from one handshake does not authenticate another (fresh receiver nonce)', async () => {
    const net = new Net()
    await net.add('a')
    const b = await net.add('b')
    await net.connect()
    // Replay: the same dialer nonce, and an answer that was valid for an earlier challenge of b.
    const sent: Uint8Array[] = []
    let closedWith: number | undefined
    const nonce = 'cd'.repeat(32)
    const session = b.accept('a', nonce, {
      send: (d) => void sent.push(d),
      close: (code) => {
        closedWith = code
      },
      bufferedAmount: 0,
    })
    await eventually(() => (sent.length > 0 ? true : undefined))
    const first = decode(sent[0]!) as unknown[]
    const nB1 = Buffer.from((first[4] as { nonce: Uint8Array }).nonce).toString('hex')
    const key = await peerKey('a-secret-of-16-chars-or-more')
    const answer1 = await peerHandshakeProof(key, 'auth', 'c1', 'a', 'b', nonce, nB1)
    // A second connection with the same dialer nonce gets another challenge; the first answer fails it.
    const sent2: Uint8Array[] = []
    const s2 = b.accept('a', nonce, {
      send: (d) => void sent2.push(d),
      close: (code) => {
        closedWith = code
      },
      bufferedAmount: 0,
    })
    await eventually(() => (sent2.length > 0 ? true : undefined))
    s2.onMessage(encode([peerFrameVersion, 'c1', 'a', [], { k: 'auth', proof: answer1 }]))
    s2.onMessage(encode([peerFrameVersion, 'c1', 'a', [heartbeat('a', 'b')]]))
    await eventually(() => closedWith)
    assert.equal(closedWith, peerAuthFailedCloseCode)
    assert.equal(net.got.get('b')!.length, 0)
    session.onClose()
  })

  it('a forged snapshot announcing 4 GiB takes memory only as chunks arrive', async () => {
    const net = new Net()
    await net.add('a')
    const b = await net.add('b')
    await net.connect()
    const before = process.memoryUsage().arrayBuffers
    const m = snapMsg('a', 'b', 0)
    b.receive(
      encode([
        peerFrameVersion,
        'c1',
        'a',
        [],
        { k: 'snap', id: 1, seq: 0, total: 4 * 1024 * 1024 * 1024 - 2, msg: m, data: new Uint8Array(1000) },
      ]),
      'a',
    )
    assert.equal(b.snapshotStreams().receiving, 1)
    const grew = process.memoryUsage().arrayBuffers - before
    assert.ok(grew < 64 * 1024 * 1024, `array buffers grew by ${grew} bytes`)
  })
})

describe("peer transport: removed members (etcd's 410 Gone)", () => {
  it("a member that applied a removal drops the removed peer's messages and tells it, once, on its socket", async () => {
    const net = new Net()
    const removed = new Set<string>()
    const told: string[] = []
    const a = await net.add('a', { isRemoved: (id) => removed.has(id) })
    const b = await net.add('b', { onRemoved: (by) => told.push(by) })
    await net.connect()
    // a applies b's removal; b has not (partitioned, or restarted with its old data) and still talks to a.
    removed.add('b')
    a.setPeers(new Map())
    net.deliverAll()
    b.send([heartbeat('b', 'a')])
    b.send([heartbeat('b', 'a')])
    await eventually(() => (net.deliverAll() === 0 && told.length > 0 ? true : undefined))
    assert.equal(net.got.get('a')!.length, 0, 'nothing of the removed member reaches Raft')
    assert.deepEqual(told, ['a'], 'told once, by a')
    // Its MsgTimeoutNow still passes (a leader that removed itself hands over with it).
    b.send([{ ...heartbeat('b', 'a'), type: MessageType.MsgTimeoutNow }])
    net.deliverAll()
    assert.deepEqual(
      net.got.get('a')!.map((m) => m.type),
      [MessageType.MsgTimeoutNow],
    )
  })

  it('a removed member that dials is authenticated, told it was removed, and disconnected', async () => {
    const net = new Net()
    const told: string[] = []
    const a = await net.add('a', { isRemoved: (id) => id === 'b', handshakeTimeoutMs: 50 })
    const b = await net.add('b', { onRemoved: (by) => told.push(by) })
    const nonce = 'ef'.repeat(32)
    assert.deepEqual(a.admit({ from: 'b', to: 'a', cluster: 'c1', nonce }), { from: 'b' }, 'admitted to the handshake')
    assert.deepEqual(a.admit({ from: 'x', to: 'a', cluster: 'c1', nonce }), { refused: 'not a member of this cluster' })
    a.setPeers(new Map())
    b.setPeers(new Map([['a', ['http://a:1']]]))
    await eventually(() => (net.deliverAll() === 0 && told.length > 0 ? true : undefined))
    assert.deepEqual(told, ['a'])
    await eventually(() => (b.connectedPeers().length === 0 && a.handshakesPending() === 0 ? true : undefined))
    assert.equal(net.got.get('a')!.length, 0)
  })

  it('a removed member with another secret is refused as any stranger, never told anything', async () => {
    const net = new Net()
    const told: string[] = []
    const a = await net.add('a', { isRemoved: (id) => id === 'b' })
    const b = await net.add('b', { peerSecret: 'another-secret-of-16-chars', onRemoved: (by) => told.push(by) })
    a.setPeers(new Map())
    b.setPeers(new Map([['a', ['http://a:1']]]))
    for (let i = 0; i < 200; i++) {
      net.deliverAll()
      await new Promise((r) => setTimeout(r, 1))
    }
    assert.deepEqual(told, [])
    assert.deepEqual(b.connectedPeers(), [])
  })

  it('a peer of the configuration is never told it was removed', async () => {
    const net = new Net()
    const told: string[] = []
    await net.add('a', { isRemoved: () => false })
    const b = await net.add('b', { onRemoved: (by) => told.push(by) })
    await net.connect()
    b.send([heartbeat('b', 'a')])
    net.deliverAll()
    assert.equal(net.got.get('a')!.length, 1)
    assert.deepEqual(told, [])
  })
})
