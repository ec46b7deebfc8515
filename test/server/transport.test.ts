/**
 * The peer transport's snapshot streams (src/rafthttp/transport.ts): a MsgSnap travels as bounded chunks under a window
 * of unacknowledged chunks, other messages to the same peer pass between chunks, the sender reports success only
 * when the receiver has the whole snapshot, and failures (closed socket, refusal, oversize, out-of-order chunk) are
 * reported so Raft retries. Delivery is driven by hand through an in-memory network: no timers, no wall clock.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decode, encode } from 'cbor-x'
import { type Message, MessageType } from '../../src/raft/index.js'
import { type PeerSocketHandlers, PeerTransport, type PeerTransportOptions } from '../../src/rafthttp/transport.js'

interface Frame {
  from: string
  to: string
  bytes: Uint8Array
}

/** Members "a" and "b" joined by sockets whose frames wait in `queue` until `deliver` hands them over. */
class Net {
  readonly queue: Frame[] = []
  readonly got = new Map<string, Message[]>()
  readonly reports: { from: string; to: string; ok: boolean }[] = []
  readonly handlers = new Map<string, PeerSocketHandlers>()
  readonly t = new Map<string, PeerTransport>()
  readonly dials: string[] = []

  async add(id: string, extra: Partial<PeerTransportOptions> = {}): Promise<PeerTransport> {
    this.got.set(id, [])
    const tr = new PeerTransport({
      selfId: id,
      clusterId: 'c1',
      clusterToken: 'secret',
      dial: (url, _headers, h) => {
        const to = new URL(url).hostname
        this.dials.push(`${id}->${to}`)
        this.handlers.set(`${id}->${to}`, h)
        queueMicrotask(() => h.onOpen())
        const net = this
        return {
          send: (bytes) => void net.queue.push({ from: id, to, bytes }),
          close: () => h.onClose(),
          get bufferedAmount() {
            return net.queue.filter((f) => f.from === id && f.to === to).reduce((n, f) => n + f.bytes.length, 0)
          },
        }
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
    return tr
  }

  async connect(): Promise<void> {
    for (const [id, tr] of this.t) {
      const others = new Map([...this.t.keys()].filter((o) => o !== id).map((o) => [o, [`http://${o}:1`]]))
      tr.setPeers(others)
    }
    await new Promise((r) => setImmediate(r))
  }

  /** Delivers the oldest queued frame; false when nothing is queued. */
  deliverOne(filter: (f: Frame) => boolean = () => true): boolean {
    const i = this.queue.findIndex(filter)
    if (i < 0) return false
    const [f] = this.queue.splice(i, 1)
    this.t.get(f!.to)!.receive(f!.bytes, f!.from)
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
      encode([1, 'c1', 'a', [], { k: 'snap', id: 99, seq: 0, total: 10, msg: other, data: new Uint8Array(10) }]),
      'a',
    )
    b.receive(encode([1, 'c1', 'a', [], { k: 'snap', id: 'x', seq: -1, total: 'big', data: 5 }]), 'a')
    // A bare MsgSnap inside a message batch is not accepted either: snapshots only come as streams.
    b.receive(encode([1, 'c1', 'a', [snapMsg('a', 'b', 10)]]), 'a')
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
    await new Promise((r) => setImmediate(r))
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
    assert.equal(a.metrics.sentBytes.get('b'), frameBytes)
    assert.equal(b.metrics.receivedBytes.get('a'), frameBytes)
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
    assert.equal(a.metrics.sentFailures.get('b'), 1)
    assert.match(text(), /^etcd_network_active_peers\{Local="a",Remote="b"\} 0$/m)
    assert.match(text(), /^etcd_network_disconnected_peers_total\{Local="a",Remote="b"\} 1$/m)
    a.close()
    b.close()
  })
})
