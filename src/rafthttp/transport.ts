/**
 * Layer: src/rafthttp, the peer transport (etcd's rafthttp): Raft messages and snapshot chunks between members over
 * WebSockets. The runtime supplies the dialer; the HTTP layer feeds inbound frames.
 * May import: src/raft, src/raftnode (the Transport interface). Never src/etcdserver, src/api or src/runtime.
 * Web-standard APIs only.
 */
import { decode, encode } from 'cbor-x'
import { type Counter, exponentialBuckets, type Gauge, type Histogram, Registry } from '../metrics/registry.js'
import { type Message, MessageType, type NodeId } from '../raft/index.js'
import type { Transport } from '../raftnode/raft-node.js'

/**
 * Peers talk Raft over WebSockets on the client port (GET /raft), etcd's rafthttp reduced to one stream per peer:
 * each frame is a CBOR batch `[version, clusterId, fromId, Message[], control?]`. This file is runtime-neutral; the
 * runtime provides `dial` (an outbound socket) and the app feeds inbound frames to `receive`.
 *
 * Snapshots do not ride in one frame: a MsgSnap becomes a stream of chunks (`control` = SnapChunk, at most
 * `snapshotChunkBytes` each) with flow control: at most `snapshotWindowChunks` chunks are unacknowledged, and the
 * receiver acknowledges each one (`control` = SnapAck) on its own socket to the sender. Appends and heartbeats to the
 * same peer go out between chunks, so a member far behind catches up without holding up the rest of the cluster, and
 * neither side ever holds more than the window in socket buffers. The receiver hands Raft the whole MsgSnap when the
 * last chunk is in; the sender reports the snapshot as sent only when that last chunk is acknowledged (etcd reports
 * it when the receiver's HTTP handler returns), and as failed when the socket closes or the receiver goes quiet for
 * `snapshotStallMs`.
 *
 * Peers authenticate each other with a challenge-response over the socket, keyed with the cluster's peer secret
 * (--peer-secret / --peer-secret-file; see docs/security.md). The dialer A opens /raft with `x-edgecd-from: A`,
 * `x-edgecd-to: B`, `x-edgecd-cluster` and a fresh random `x-edgecd-nonce: nA`. The receiver B admits the upgrade only
 * when A is a current member of B's configuration other than B itself (a single-member cluster admits nobody), then
 * sends a challenge frame: a fresh random nonce nB and HMAC(secret, "challenge", cluster, A, B, nA, nB), which proves
 * B knows the secret. A checks it and answers HMAC(secret, "auth", cluster, A, B, nA, nB). Only then does either side
 * take Raft messages from the socket, and then only messages `from` the authenticated id and `to` itself. Each proof
 * is bound to both ids, the cluster and both fresh nonces, so a recorded handshake replays nowhere; the secret never
 * crosses the wire. A socket that does not complete the handshake within `handshakeTimeoutMs` is closed.
 */

export const peerFrameVersion = 2

/** WebSocket close code for a peer that failed authentication (4000-4999 is the application range). */
export const peerAuthFailedCloseCode = 4401

/** WebSocket close code after telling a removed member so (etcd's rafthttp answers it 410 Gone). */
export const peerRemovedCloseCode = 4410

/** etcd's rafthttp errMemberRemoved: what a member that learns from a peer that it was removed stops with. */
export const memberRemovedMessage = 'the member has been permanently removed from the cluster'

/** A connected socket as the transport needs it: the subset of WebSocket that every runtime has. */
export interface PeerSocket {
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  /** Bytes queued but not yet sent; messages are dropped (and reported) past maxPeerBufferedBytes. */
  readonly bufferedAmount: number
}

export interface PeerSocketHandlers {
  onOpen(): void
  onMessage(data: Uint8Array): void
  onClose(): void
}

/** Opens an outbound connection to a peer's /raft endpoint with the given headers. */
export type DialPeer = (url: string, headers: Record<string, string>, handlers: PeerSocketHandlers) => PeerSocket

export interface PeerTransportOptions {
  selfId: NodeId
  clusterId: string
  /** The peers' shared secret (--peer-secret, or on loopback without one --initial-cluster-token). */
  peerSecret: string
  dial: DialPeer
  /** Delivers messages received from peers to Raft. */
  onMessages(msgs: Message[]): void
  reportUnreachable(id: NodeId): void
  reportSnapshot(id: NodeId, ok: boolean): void
  /** Messages that could not be handed to a socket (certainly not delivered), e.g. forwarded proposals. */
  onDropped?(msgs: Message[]): void
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void
  /** Bytes queued on a peer socket before further messages are dropped (Raft retries). */
  maxPeerBufferedBytes?: number
  /** Reconnect backoff bounds, in ms. */
  reconnectMinMs?: number
  reconnectMaxMs?: number
  /** Bytes of snapshot data per chunk frame. */
  snapshotChunkBytes?: number
  /** Chunks of one snapshot sent but not yet acknowledged, at most. */
  snapshotWindowChunks?: number
  /** A snapshot stream whose receiver acknowledges nothing for this long (ms) is abandoned and reported failed. */
  snapshotStallMs?: number
  /**
   * The largest snapshot this member accepts from a peer, in bytes. Memory is taken as chunks arrive, never on the
   * announcement, so a stream costs at most what was actually received and never more than this.
   */
  maxSnapshotBytes?: number
  /** The largest chunk accepted, in bytes (a peer sends snapshotChunkBytes). */
  snapshotChunkBytesMax?: number
  /** A peer socket that has not completed the handshake within this many ms is closed. */
  handshakeTimeoutMs?: number
  /** Inbound sockets admitted but not yet authenticated, at most (more are closed at once). */
  maxPendingHandshakes?: number
  /** An authenticated peer connected to us (it is up: redial it now if our own connection to it is down). */
  onPeerAuthenticated?(id: NodeId): void
  /**
   * Whether an id was removed from the cluster for good (applied here). Such a peer is still authenticated when it
   * dials, then told it was removed and disconnected, as etcd's rafthttp answers a removed member 410 Gone.
   */
  isRemoved?(id: NodeId): boolean
  /**
   * An authenticated peer told this member it was removed from the cluster (etcd's errMemberRemoved, which stops the
   * member): `by` is the peer that said so.
   */
  onRemoved?(by: NodeId): void
  /** How often each connected peer is probed for its round-trip time (etcd's rafthttp proberInterval: 4 s). */
  probeIntervalMs?: number
  /**
   * How often each peer's smoothed round-trip time is recorded in etcd_network_peer_round_trip_time_seconds (etcd's
   * statusMonitoringInterval: 30 s).
   */
  rttRecordIntervalMs?: number
}

/** A probe of the peer's round-trip time (etcd's /raft/probing), answered at once with a ProbeAck carrying `t`. */
interface Probe {
  k: 'probe'
  /** The sender's monotonic clock (ms) when it sent the probe. */
  t: number
}

interface ProbeAck {
  k: 'probeAck'
  t: number
}

/**
 * Sent by a member to a peer it has applied the removal of (and only after both proved the peer secret), then the
 * socket closes with peerRemovedCloseCode: etcd's 410 Gone "removed member" on the removed member's stream.
 */
interface Removed {
  k: 'removed'
}

type Control = SnapChunk | SnapAck | Probe | ProbeAck | Removed

/** Weight of a new sample in the smoothed round-trip time (the probing library etcd uses: α = 0.125). */
const srttAlpha = 0.125

/** A member id as etcd's metrics label it (types.ID.String(): lowercase hex). */
export function idLabel(id: NodeId): string {
  try {
    return BigInt(id).toString(16)
  } catch {
    return id
  }
}

/** etcd's rafthttp counters (etcd_network_*; edgecd's one edgecd_*): name, help and labels, by field of PeerMetrics. */
const peerCounters = {
  disconnectedPeers: [
    'etcd_network_disconnected_peers_total',
    'The total number of disconnected peers.',
    'Local,Remote',
  ],
  sentBytes: ['etcd_network_peer_sent_bytes_total', 'The total number of bytes sent to peers.', 'To'],
  receivedBytes: ['etcd_network_peer_received_bytes_total', 'The total number of bytes received from peers.', 'From'],
  sentFailures: ['etcd_network_peer_sent_failures_total', 'The total number of send failures from peers.', 'To'],
  receivedFailures: [
    'etcd_network_peer_received_failures_total',
    'The total number of receive failures from peers.',
    'From',
  ],
  snapshotSend: ['etcd_network_snapshot_send_success', 'Total number of successful snapshot sends', 'To'],
  snapshotSendFailures: ['etcd_network_snapshot_send_failures', 'Total number of snapshot send failures', 'To'],
  snapshotReceive: ['etcd_network_snapshot_receive_success', 'Total number of successful snapshot receives', 'From'],
  snapshotReceiveFailures: [
    'etcd_network_snapshot_receive_failures',
    'Total number of snapshot receive failures',
    'From',
  ],
  snapshotChunksReceived: [
    'edgecd_network_snapshot_chunks_received_total',
    'Snapshot chunks received from peers (edgecd streams a snapshot in chunks).',
    'From',
  ],
} as const satisfies Record<string, readonly [string, string, string]>

/** etcd's rafthttp metrics (etcd_network_*), labelled with the peer's hex id. */
export class PeerMetrics {
  readonly registry = new Registry()
  readonly activePeers: Gauge
  readonly roundTrip: Histogram
  readonly counters: { readonly [K in keyof typeof peerCounters]: Counter }
  constructor() {
    const r = this.registry
    this.activePeers = r.gauge('etcd_network_active_peers', 'The current number of active peer connections.', [
      'Local',
      'Remote',
    ])
    const counters: Record<string, Counter> = {}
    for (const [field, [name, help, labels]] of Object.entries(peerCounters)) {
      counters[field] = r.counter(name, help, labels.split(','))
    }
    this.counters = counters as PeerMetrics['counters']
    this.roundTrip = r.histogram(
      'etcd_network_peer_round_trip_time_seconds',
      'Round-Trip-Time histogram between peers',
      exponentialBuckets(0.0001, 2, 16),
      ['To'],
    )
  }
}

/** The receiver's challenge: its nonce, and its proof over both nonces (it knows the secret too). */
interface PeerChallenge {
  k: 'challenge'
  nonce: Uint8Array
  proof: Uint8Array
}

/** The dialer's answer to a challenge. */
interface PeerAuth {
  k: 'auth'
  proof: Uint8Array
}

/** What an inbound /raft socket needs from the transport: feed it frames, tell it when the socket closes. */
export interface PeerSession {
  onMessage(data: Uint8Array): void
  onClose(): void
}

/** The headers of an inbound /raft upgrade that the transport checks before admitting it. */
export interface PeerUpgradeHeaders {
  from?: string
  to?: string
  cluster?: string
  nonce?: string
}

/** One chunk of a snapshot stream. The first (seq 0) carries the MsgSnap itself, its data left empty. */
interface SnapChunk {
  k: 'snap'
  /** Stream id, unique per sender. */
  id: number
  seq: number
  /** Total bytes of snapshot data. */
  total: number
  msg?: Message
  data: Uint8Array
}

/** The receiver's answer to a chunk: `ok` false abandons the stream; `done` says the whole snapshot reached Raft. */
interface SnapAck {
  k: 'snapAck'
  id: number
  seq: number
  ok: boolean
  done: boolean
}

interface OutboundSnap {
  id: number
  to: NodeId
  msg: Message
  data: Uint8Array
  /** Next chunk to send, and chunks acknowledged so far. */
  nextSeq: number
  acked: number
  chunks: number
  lastProgress: number
  timer?: ReturnType<typeof setTimeout>
}

interface InboundSnap {
  id: number
  msg: Message
  /** The announced size; memory is taken only as chunks arrive (a forged announcement reserves nothing). */
  total: number
  chunks: Uint8Array[]
  received: number
  nextSeq: number
}

const nonceBytes = 32
/** Frames an inbound socket may send between its handshake answer and the answer's check (a few ms). */
const maxHeldFrames = 64

function hexBytes(h: string): Uint8Array {
  const b = new Uint8Array(h.length / 2)
  for (let i = 0; i < b.length; i++) b[i] = Number.parseInt(h.slice(2 * i, 2 * i + 2), 16)
  return b
}
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

function randomNonce(): Uint8Array {
  const b = new Uint8Array(nonceBytes)
  crypto.getRandomValues(b)
  return b
}

/** The HMAC-SHA256 key of a peer secret. */
export function peerKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ])
}

/** The string a handshake proof signs: the step, the cluster, both ids, both nonces. */
function proofInput(step: 'challenge' | 'auth', clusterId: string, from: NodeId, to: NodeId, nA: string, nB: string) {
  return new TextEncoder().encode(['edgecd-peer-v2', step, clusterId, from, to, nA, nB].join('\n'))
}

/**
 * A handshake proof: `step` 'challenge' is the receiver's (it proves it holds the secret), 'auth' the dialer's.
 * `from` is the dialer, `to` the receiver, `nA` / `nB` their nonces in hex.
 */
export async function peerHandshakeProof(
  key: CryptoKey,
  step: 'challenge' | 'auth',
  clusterId: string,
  from: NodeId,
  to: NodeId,
  nA: string,
  nB: string,
): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, proofInput(step, clusterId, from, to, nA, nB)))
}

/** Checks a proof in constant time (Web Crypto's verify). */
async function checkProof(
  key: CryptoKey,
  proof: unknown,
  step: 'challenge' | 'auth',
  clusterId: string,
  from: NodeId,
  to: NodeId,
  nA: string,
  nB: string,
): Promise<boolean> {
  if (!(proof instanceof Uint8Array) || proof.length !== 32) return false
  return crypto.subtle.verify('HMAC', key, proof.slice(), proofInput(step, clusterId, from, to, nA, nB))
}

interface Peer {
  id: NodeId
  urls: string[]
  socket?: PeerSocket
  /** Authenticated both ways: Raft messages may go out. */
  open: boolean
  dialing: boolean
  attempt: number
  timer?: ReturnType<typeof setTimeout>
  /** Smoothed round-trip time in ms (0 until the first probe answer), and whether a probe was answered lately. */
  srttMs: number
  probed: boolean
  /** Our nonce of the dial under way. */
  nonce?: string
  handshakeTimer?: ReturnType<typeof setTimeout>
}

export class PeerTransport implements Transport {
  private readonly peers = new Map<NodeId, Peer>()
  private key: CryptoKey | undefined
  private closed = false
  private pendingHandshakes = 0
  private readonly o: Required<
    Omit<PeerTransportOptions, 'log' | 'onDropped' | 'onPeerAuthenticated' | 'isRemoved' | 'onRemoved'>
  > &
    Pick<PeerTransportOptions, 'log' | 'onDropped' | 'onPeerAuthenticated' | 'isRemoved' | 'onRemoved'>
  /** Snapshot streams this member is sending (one per peer) and receiving (one per peer). */
  private readonly outSnaps = new Map<NodeId, OutboundSnap>()
  private readonly inSnaps = new Map<NodeId, InboundSnap>()
  private nextSnapId = 1
  /** Counters for /metrics (etcd's etcd_network_snapshot_* under edgecd's prefix). */
  readonly snapshotStats = { sendSuccess: 0, sendFailures: 0, receiveSuccess: 0, receiveFailures: 0, chunksReceived: 0 }
  /** etcd's etcd_network_* families for /metrics. */
  readonly metrics = new PeerMetrics()
  private probeTimer: ReturnType<typeof setInterval> | undefined
  private rttTimer: ReturnType<typeof setInterval> | undefined

  constructor(opts: PeerTransportOptions) {
    this.o = {
      probeIntervalMs: 4000,
      rttRecordIntervalMs: 30_000,
      maxPeerBufferedBytes: 64 * 1024 * 1024,
      reconnectMinMs: 50,
      reconnectMaxMs: 1000,
      snapshotChunkBytes: 1024 * 1024,
      snapshotWindowChunks: 4,
      snapshotStallMs: 10_000,
      maxSnapshotBytes: 4 * 1024 * 1024 * 1024 - 1,
      snapshotChunkBytesMax: 16 * 1024 * 1024,
      handshakeTimeoutMs: 5000,
      maxPendingHandshakes: 64,
      ...opts,
    }
  }

  async start(): Promise<void> {
    this.key = await peerKey(this.o.peerSecret)
    // etcd's rafthttp prober: every peer is probed every probeIntervalMs; its smoothed round-trip time goes into the
    // histogram every rttRecordIntervalMs while it answers.
    // Neither timer keeps a process alive on its own (Node and Deno timers have unref; browsers have no such notion).
    this.probeTimer = setInterval(() => this.probe(), this.o.probeIntervalMs)
    this.rttTimer = setInterval(() => this.recordRoundTrips(), this.o.rttRecordIntervalMs)
    for (const t of [this.probeTimer, this.rttTimer]) (t as { unref?: () => void }).unref?.()
  }

  /** Sends a probe to every connected peer (the timer calls this every probeIntervalMs). */
  probe(): void {
    for (const p of this.peers.values())
      if (p.open) this.sendFrame(p.id, [], { k: 'probe', t: performance.now() } satisfies Probe)
  }

  /** Records each answering peer's smoothed round-trip time in the histogram (every rttRecordIntervalMs). */
  recordRoundTrips(): void {
    for (const p of this.peers.values()) {
      if (!p.probed) continue
      p.probed = false
      this.metrics.roundTrip.observe(p.srttMs / 1000, idLabel(p.id))
    }
  }

  private onProbeAck(from: NodeId, a: ProbeAck): void {
    const p = this.peers.get(from)
    if (!p || typeof a.t !== 'number') return
    const rtt = performance.now() - a.t
    if (!(rtt >= 0) || rtt > 60_000) return
    p.srttMs = (1 - srttAlpha) * p.srttMs + srttAlpha * rtt
    p.probed = true
  }

  /** Smoothed round-trip time to each peer that answered a probe, in ms (for status and tests). */
  roundTripTimes(): Map<NodeId, number> {
    const out = new Map<NodeId, number>()
    for (const p of this.peers.values()) if (p.srttMs > 0) out.set(p.id, p.srttMs)
    return out
  }

  /**
   * Whether an inbound /raft upgrade may proceed to the handshake: the sender must claim to be a current member of
   * this member's configuration other than itself, of this cluster, addressing this member, with a nonce. Returns the
   * claimed id, or the reason for refusing.
   */
  admit(h: PeerUpgradeHeaders): { from: NodeId } | { refused: string } {
    const from = h.from ?? ''
    if (!/^[0-9A-Za-z]{1,20}$/.test(from)) return { refused: 'no sender id' }
    if (h.cluster !== this.o.clusterId) return { refused: 'another cluster' }
    if (h.to !== undefined && h.to !== this.o.selfId) return { refused: 'addressed to another member' }
    if (!/^[0-9a-f]{64}$/.test(h.nonce ?? '')) return { refused: 'no nonce' }
    // A removed member is admitted to the handshake, only to be told (once it proved the secret) that it was removed.
    if (from === this.o.selfId || (!this.peers.has(from) && !this.o.isRemoved?.(from)))
      return { refused: 'not a member of this cluster' }
    if (this.closed || !this.key) return { refused: 'transport closed' }
    if (this.pendingHandshakes >= this.o.maxPendingHandshakes) return { refused: 'too many pending handshakes' }
    return { from }
  }

  /**
   * An admitted inbound socket: challenges the dialer at once, and passes its frames to Raft only once it proved the
   * secret for this pair of ids and these nonces.
   */
  accept(from: NodeId, dialerNonce: string, socket: PeerSocket): PeerSession {
    const nB = hex(randomNonce())
    let state: 'challenged' | 'verifying' | 'ready' | 'closed' = 'challenged'
    const held: Uint8Array[] = []
    this.pendingHandshakes++
    const settle = () => {
      if (state === 'challenged' || state === 'verifying') this.pendingHandshakes--
    }
    const fail = (why: string) => {
      if (state === 'closed') return
      settle()
      state = 'closed'
      held.length = 0
      clearTimeout(timer)
      this.o.log?.('warn', 'refused a /raft connection: peer authentication failed', { claimedId: from, reason: why })
      try {
        socket.close(peerAuthFailedCloseCode, 'peer authentication failed')
      } catch {}
    }
    const timer = setTimeout(() => fail('handshake timed out'), this.o.handshakeTimeoutMs)
    const key = this.key!
    let toldRemoved = false
    const tellRemoved = (close: boolean) => {
      this.o.log?.('warn', 'rejected the connection of a removed member', { peer: from })
      try {
        socket.send(
          encode([
            peerFrameVersion,
            this.o.clusterId,
            this.o.selfId,
            [],
            { k: 'removed' } satisfies Removed,
          ]) as Uint8Array,
        )
      } catch {}
      // Closed a moment later, not at once: the notice must reach the peer first (closing discards what a runtime
      // has not flushed yet). The removed member stops itself on the notice; the timer bounds the socket anyway.
      if (close) {
        const t = setTimeout(() => {
          try {
            socket.close(peerRemovedCloseCode, memberRemovedMessage)
          } catch {}
        }, this.o.handshakeTimeoutMs)
        ;(t as { unref?: () => void }).unref?.()
      }
    }
    void peerHandshakeProof(key, 'challenge', this.o.clusterId, from, this.o.selfId, dialerNonce, nB).then((proof) => {
      if (state !== 'challenged') return
      const c: PeerChallenge = { k: 'challenge', nonce: hexBytes(nB), proof }
      try {
        socket.send(encode([peerFrameVersion, this.o.clusterId, this.o.selfId, [], c]) as Uint8Array)
      } catch {
        fail('could not send the challenge')
      }
    })
    return {
      onMessage: (data) => {
        if (state === 'ready') {
          // A peer removed since it authenticated is not heard any more, except for its MsgTimeoutNow: a leader that
          // removed itself hands leadership over with it, possibly after this member applied the removal. It is
          // told once that it was removed (it stops itself, after its own delay), on this same socket.
          if (this.peers.has(from)) this.receive(data, from)
          else {
            this.receive(data, from, MessageType.MsgTimeoutNow)
            if (!toldRemoved && this.o.isRemoved?.(from)) {
              toldRemoved = true
              tellRemoved(false)
            }
          }
          return
        }
        if (state === 'verifying') {
          // The dialer sends right after its answer; hold those frames (a bounded few) until the answer is checked.
          if (held.length >= maxHeldFrames) fail('too many frames before the handshake completed')
          else held.push(data)
          return
        }
        if (state !== 'challenged') return
        let frame: unknown
        try {
          frame = decode(data)
        } catch {
          fail('malformed handshake frame')
          return
        }
        const auth =
          Array.isArray(frame) && frame[0] === peerFrameVersion ? (frame[4] as PeerAuth | undefined) : undefined
        if (!auth || typeof auth !== 'object' || auth.k !== 'auth') {
          fail('expected the handshake answer')
          return
        }
        state = 'verifying'
        void checkProof(key, auth.proof, 'auth', this.o.clusterId, from, this.o.selfId, dialerNonce, nB).then((ok) => {
          if (state !== 'verifying') return
          if (ok && !this.peers.has(from) && this.o.isRemoved?.(from)) {
            // etcd's rafthttp: "rejected stream from remote peer because it was removed" (410 Gone).
            settle()
            state = 'closed'
            held.length = 0
            clearTimeout(timer)
            tellRemoved(true)
            return
          }
          if (!ok || !this.peers.has(from)) {
            fail(ok ? 'no longer a member' : 'wrong proof (another peer secret?)')
            return
          }
          settle()
          state = 'ready'
          clearTimeout(timer)
          this.o.onPeerAuthenticated?.(from)
          for (const f of held.splice(0)) if (state === 'ready') this.receive(f, from)
        })
      },
      onClose: () => {
        settle()
        state = 'closed'
        clearTimeout(timer)
      },
    }
  }

  /** Sets the peers (every member but this one) and their peer URLs; connects to new ones, drops removed ones. */
  setPeers(peers: Map<NodeId, string[]>): void {
    for (const [id, p] of this.peers) {
      if (peers.has(id)) continue
      this.peers.delete(id)
      this.metrics.activePeers.remove(idLabel(this.o.selfId), idLabel(id))
      this.abortOutSnap(id, 'peer removed', false)
      this.inSnaps.delete(id)
      if (p.timer) clearTimeout(p.timer)
      if (p.handshakeTimer) clearTimeout(p.handshakeTimer)
      p.socket?.close(1000, 'removed')
    }
    for (const [id, urls] of peers) {
      if (id === this.o.selfId) continue
      const p = this.peers.get(id)
      if (p) {
        p.urls = urls
        continue
      }
      const np: Peer = { id, urls, open: false, dialing: false, attempt: 0, srttMs: 0, probed: false }
      this.peers.set(id, np)
      // The peer's series exist from the start, at zero (a dashboard shows 0, not "no data").
      const to = idLabel(id)
      this.metrics.counters.sentBytes.init(to)
      this.metrics.counters.receivedBytes.init(to)
      this.metrics.counters.sentFailures.init(to)
      this.metrics.roundTrip.init(to)
      this.connect(np)
    }
  }

  private connect(p: Peer): void {
    if (this.closed || p.dialing || p.open || !this.peers.has(p.id)) return
    p.dialing = true
    const base = p.urls[p.attempt % p.urls.length]!
    const url = base.replace(/^http/, 'ws').replace(/\/$/, '') + '/raft'
    const nA = hex(randomNonce())
    p.nonce = nA
    let socket: PeerSocket | undefined
    let challenged = false
    const key = this.key!
    const close = (why: string) => {
      this.o.log?.('warn', 'closing a peer connection', { peer: p.id, url, reason: why })
      try {
        socket?.close(peerAuthFailedCloseCode, 'peer authentication failed')
      } catch {}
    }
    try {
      socket = this.o.dial(
        url,
        {
          'x-edgecd-from': this.o.selfId,
          'x-edgecd-to': p.id,
          'x-edgecd-cluster': this.o.clusterId,
          'x-edgecd-nonce': nA,
        },
        {
          onOpen: () => {},
          onMessage: (data) => {
            if (p.open && p.socket === socket) {
              this.receive(data, p.id)
              return
            }
            if (challenged || p.socket !== socket) return
            challenged = true
            let frame: unknown
            try {
              frame = decode(data)
            } catch {
              return close('malformed handshake frame')
            }
            const c =
              Array.isArray(frame) && frame[0] === peerFrameVersion
                ? (frame[4] as PeerChallenge | undefined)
                : undefined
            if (!c || typeof c !== 'object' || c.k !== 'challenge' || !(c.nonce instanceof Uint8Array))
              return close('expected a challenge (a member of another version?)')
            const nB = hex(c.nonce)
            void (async () => {
              const ok = await checkProof(key, c.proof, 'challenge', this.o.clusterId, this.o.selfId, p.id, nA, nB)
              if (p.socket !== socket || this.closed) return
              if (!ok) return close('the peer failed to prove the peer secret (another --peer-secret?)')
              const proof = await peerHandshakeProof(key, 'auth', this.o.clusterId, this.o.selfId, p.id, nA, nB)
              if (p.socket !== socket || this.closed) return
              const auth: PeerAuth = { k: 'auth', proof }
              try {
                socket!.send(encode([peerFrameVersion, this.o.clusterId, this.o.selfId, [], auth]) as Uint8Array)
              } catch {
                return close('could not answer the challenge')
              }
              if (p.handshakeTimer) clearTimeout(p.handshakeTimer)
              p.handshakeTimer = undefined
              p.open = true
              p.dialing = false
              p.attempt = 0
              this.metrics.activePeers.set(1, idLabel(this.o.selfId), idLabel(p.id))
              this.o.log?.('info', 'peer connected', { peer: p.id, url })
            })()
          },
          onClose: () => {
            if (p.socket !== socket) return
            const was = p.open
            if (p.handshakeTimer) clearTimeout(p.handshakeTimer)
            p.handshakeTimer = undefined
            p.open = false
            p.dialing = false
            p.socket = undefined
            if (was) {
              this.metrics.activePeers.set(0, idLabel(this.o.selfId), idLabel(p.id))
              this.metrics.counters.disconnectedPeers.inc(1, idLabel(this.o.selfId), idLabel(p.id))
              this.o.log?.('warn', 'peer disconnected', { peer: p.id })
            }
            this.abortOutSnap(p.id, 'connection closed')
            this.scheduleReconnect(p)
          },
        },
      )
    } catch {
      p.dialing = false
      this.scheduleReconnect(p)
      return
    }
    p.socket = socket
    p.handshakeTimer = setTimeout(() => {
      p.handshakeTimer = undefined
      if (p.socket === socket && !p.open) close('handshake timed out')
    }, this.o.handshakeTimeoutMs)
  }

  /**
   * The peer just connected to us, so it is up: if our connection to it is down and waiting out its backoff (say it
   * was restarted), dial now. Without this a restarted member could stay unreachable for up to reconnectMaxMs, long
   * enough to cost an election its vote.
   */
  redialNow(id: NodeId): void {
    const p = this.peers.get(id)
    if (!p || p.open || p.dialing || this.closed) return
    if (p.timer) clearTimeout(p.timer)
    p.timer = undefined
    p.attempt = 0
    this.connect(p)
  }

  private scheduleReconnect(p: Peer): void {
    if (this.closed || !this.peers.has(p.id) || p.timer) return
    // Exponential backoff with jitter, bounded: a dead peer costs one attempt per reconnectMaxMs at most.
    const ms = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** Math.min(p.attempt, 10))
    p.attempt++
    p.timer = setTimeout(
      () => {
        p.timer = undefined
        this.connect(p)
      },
      ms * (0.5 + Math.random() / 2),
    )
  }

  /** Sends Raft's outgoing messages, one frame per peer. Unsendable messages are reported so Raft backs off. */
  send(msgs: Message[]): void {
    const byPeer = new Map<NodeId, Message[]>()
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) {
        this.startOutSnap(m)
        continue
      }
      const l = byPeer.get(m.to)
      if (l) l.push(m)
      else byPeer.set(m.to, [m])
    }
    for (const [to, batch] of byPeer) {
      if (!this.sendFrame(to, batch)) this.dropped(to, batch)
    }
  }

  /** Hands one frame to the peer's socket; false when it certainly did not go (no socket, full buffer, error). */
  private sendFrame(to: NodeId, batch: Message[], control?: Control): boolean {
    const p = this.peers.get(to)
    const sock = p?.open ? p.socket : undefined
    if (!sock || sock.bufferedAmount > this.o.maxPeerBufferedBytes) {
      if (p) this.metrics.counters.sentFailures.inc(1, idLabel(to))
      return false
    }
    const frame: unknown[] = [peerFrameVersion, this.o.clusterId, this.o.selfId, batch]
    if (control) frame.push(control)
    try {
      const bytes = encode(frame) as Uint8Array
      sock.send(bytes)
      this.metrics.counters.sentBytes.inc(bytes.length, idLabel(to))
      return true
    } catch {
      this.metrics.counters.sentFailures.inc(1, idLabel(to))
      return false
    }
  }

  private dropped(to: NodeId, batch: Message[]): void {
    this.o.reportUnreachable(to)
    this.o.onDropped?.(batch)
  }

  // ---- snapshot streams, sending side ----

  private startOutSnap(m: Message): void {
    const cur = this.outSnaps.get(m.to)
    // Raft resends MsgSnap when its snapshot timeout passes; the stream already under way carries the same snapshot.
    if (cur && cur.msg.snapshot?.metadata.index === m.snapshot?.metadata.index) return
    if (cur) this.abortOutSnap(m.to, 'superseded by a newer snapshot', false)
    if (!this.peers.get(m.to)?.open) {
      this.o.reportUnreachable(m.to)
      this.o.reportSnapshot(m.to, false)
      return
    }
    const data = m.snapshot?.data ?? new Uint8Array(0)
    const s: OutboundSnap = {
      id: this.nextSnapId++,
      to: m.to,
      msg: { ...m, snapshot: m.snapshot ? { ...m.snapshot, data: new Uint8Array(0) } : undefined },
      data,
      nextSeq: 0,
      acked: 0,
      chunks: Math.max(1, Math.ceil(data.length / this.o.snapshotChunkBytes)),
      lastProgress: Date.now(),
    }
    this.outSnaps.set(m.to, s)
    this.o.log?.('info', 'sending a snapshot', {
      peer: m.to,
      index: m.snapshot?.metadata.index,
      bytes: data.length,
      chunks: s.chunks,
    })
    this.pumpOutSnap(s)
    this.armStallTimer(s)
  }

  /** Sends chunks while the window allows. */
  private pumpOutSnap(s: OutboundSnap): void {
    const size = this.o.snapshotChunkBytes
    while (s.nextSeq < s.chunks && s.nextSeq - s.acked < this.o.snapshotWindowChunks) {
      const seq = s.nextSeq
      const chunk: SnapChunk = {
        k: 'snap',
        id: s.id,
        seq,
        total: s.data.length,
        data: s.data.subarray(seq * size, Math.min(s.data.length, (seq + 1) * size)),
      }
      if (seq === 0) chunk.msg = s.msg
      if (!this.sendFrame(s.to, [], chunk)) {
        this.abortOutSnap(s.to, 'could not send a chunk')
        return
      }
      s.nextSeq++
    }
  }

  private armStallTimer(s: OutboundSnap): void {
    if (s.timer) clearTimeout(s.timer)
    s.timer = setTimeout(() => {
      s.timer = undefined
      if (this.outSnaps.get(s.to) !== s) return
      if (Date.now() - s.lastProgress >= this.o.snapshotStallMs) this.abortOutSnap(s.to, 'receiver stalled')
      else this.armStallTimer(s)
    }, this.o.snapshotStallMs)
  }

  private abortOutSnap(to: NodeId, reason: string, report = true): void {
    const s = this.outSnaps.get(to)
    if (!s) return
    this.outSnaps.delete(to)
    if (s.timer) clearTimeout(s.timer)
    this.o.log?.('warn', 'snapshot stream failed', { peer: to, reason, chunksAcked: s.acked, chunks: s.chunks })
    this.snapshotStats.sendFailures++
    this.metrics.counters.snapshotSendFailures.inc(1, idLabel(to))
    if (report) this.o.reportSnapshot(to, false)
  }

  private onSnapAck(from: NodeId, a: SnapAck): void {
    const s = this.outSnaps.get(from)
    if (!s || s.id !== a.id) return
    if (!a.ok) {
      this.abortOutSnap(from, 'refused by the receiver')
      return
    }
    if (a.seq + 1 > s.acked) s.acked = Math.min(a.seq + 1, s.nextSeq)
    s.lastProgress = Date.now()
    if (a.done) {
      this.outSnaps.delete(from)
      if (s.timer) clearTimeout(s.timer)
      this.o.log?.('info', 'snapshot sent', { peer: from, index: s.msg.snapshot?.metadata.index, bytes: s.data.length })
      this.snapshotStats.sendSuccess++
      this.metrics.counters.snapshotSend.inc(1, idLabel(from))
      this.o.reportSnapshot(from, true)
      return
    }
    this.pumpOutSnap(s)
  }

  // ---- snapshot streams, receiving side ----

  private onSnapChunk(from: NodeId, c: SnapChunk): void {
    const ack = (ok: boolean, done = false) => {
      if (!ok) {
        this.snapshotStats.receiveFailures++
        this.metrics.counters.snapshotReceiveFailures.inc(1, idLabel(from))
      }
      this.sendFrame(from, [], { k: 'snapAck', id: c.id, seq: c.seq, ok, done } satisfies SnapAck)
    }
    if (
      !Number.isSafeInteger(c.id) ||
      !Number.isSafeInteger(c.seq) ||
      !Number.isSafeInteger(c.total) ||
      c.total < 0 ||
      !(c.data instanceof Uint8Array)
    ) {
      this.o.log?.('warn', 'dropped a malformed snapshot chunk', { peer: from })
      return
    }
    let s = this.inSnaps.get(from)
    if (c.seq === 0) {
      const m = c.msg
      if (
        !m ||
        m.type !== MessageType.MsgSnap ||
        m.to !== this.o.selfId ||
        m.from !== from ||
        !m.snapshot ||
        c.total > this.o.maxSnapshotBytes
      ) {
        this.o.log?.('warn', 'refused a snapshot stream', { peer: from, bytes: c.total })
        ack(false)
        return
      }
      s = { id: c.id, msg: m, total: c.total, chunks: [], received: 0, nextSeq: 0 }
      this.inSnaps.set(from, s)
    }
    if (
      !s ||
      s.id !== c.id ||
      c.seq !== s.nextSeq ||
      s.received + c.data.length > s.total ||
      c.data.length > this.o.snapshotChunkBytesMax
    ) {
      // Out of order or of a stream we dropped: the sender learns, abandons it, and Raft retries.
      if (s && s.id === c.id) this.inSnaps.delete(from)
      ack(false)
      return
    }
    // A copy: the chunk may be a view into the socket's frame buffer.
    s.chunks.push(c.data.slice())
    s.received += c.data.length
    s.nextSeq++
    this.snapshotStats.chunksReceived++
    this.metrics.counters.snapshotChunksReceived.inc(1, idLabel(from))
    if (s.received < s.total) {
      ack(true)
      return
    }
    this.inSnaps.delete(from)
    const data = new Uint8Array(s.total)
    let off = 0
    for (const ch of s.chunks) {
      data.set(ch, off)
      off += ch.length
    }
    s.chunks = []
    this.snapshotStats.receiveSuccess++
    this.metrics.counters.snapshotReceive.inc(1, idLabel(from))
    this.o.log?.('info', 'received a snapshot', {
      peer: from,
      index: s.msg.snapshot?.metadata.index,
      bytes: s.received,
    })
    const snapshot = s.msg.snapshot!
    this.o.onMessages([{ ...s.msg, snapshot: { ...snapshot, data } }])
    ack(true, true)
  }

  /** An inbound frame from an authenticated peer socket. Malformed frames are dropped, never thrown. */
  receive(data: Uint8Array, fromPeer: NodeId, onlyType?: MessageType): void {
    let frame: unknown
    try {
      frame = decode(data)
    } catch {
      if (fromPeer) this.metrics.counters.receivedFailures.inc(1, idLabel(fromPeer))
      this.o.log?.('warn', 'dropped a malformed peer frame')
      return
    }
    if (
      !Array.isArray(frame) ||
      frame[0] !== peerFrameVersion ||
      frame[1] !== this.o.clusterId ||
      !Array.isArray(frame[3])
    ) {
      this.o.log?.('warn', 'dropped a peer frame of another version or cluster')
      return
    }
    // Only messages to us, from the peer the socket authenticated as.
    const from = fromPeer
    if (this.peers.has(from)) this.metrics.counters.receivedBytes.inc(data.length, idLabel(from))
    const msgs = (frame[3] as Message[]).filter(
      (m) =>
        m && m.to === this.o.selfId && m.from === from && typeof m.type === 'number' && m.type !== MessageType.MsgSnap,
    )
    if (onlyType !== undefined) {
      const only = msgs.filter((m) => m.type === onlyType)
      if (only.length > 0) this.o.onMessages(only)
      return
    }
    if (msgs.length > 0) this.o.onMessages(msgs)
    const control = frame[4] as Control | undefined
    if (control && typeof control === 'object') {
      if (control.k === 'snap') this.onSnapChunk(from, control)
      else if (control.k === 'snapAck') this.onSnapAck(from, control)
      else if (control.k === 'probe') this.sendFrame(from, [], { k: 'probeAck', t: control.t } satisfies ProbeAck)
      else if (control.k === 'probeAck') this.onProbeAck(from, control)
      else if (control.k === 'removed') this.onRemovedNotice(from)
    }
  }

  /**
   * An authenticated peer says this member was removed. Only from a peer of this member's configuration (the frame
   * arrives on a socket whose handshake proved the peer secret both ways): etcd stops on the same 410 Gone.
   */
  private onRemovedNotice(from: NodeId): void {
    if (this.closed || this.removedNoticed) return
    this.removedNoticed = true
    this.o.log?.('warn', memberRemovedMessage, { peer: from })
    this.o.onRemoved?.(from)
  }

  private removedNoticed = false

  /** Peers whose connection from this member is authenticated and open. */
  connectedPeers(): NodeId[] {
    return [...this.peers.values()].filter((p) => p.open).map((p) => p.id)
  }

  /** Inbound sockets admitted whose handshake is not done yet. */
  handshakesPending(): number {
    return this.pendingHandshakes
  }

  /** Snapshot streams under way, for tests and metrics. */
  snapshotStreams(): { sending: number; receiving: number } {
    return { sending: this.outSnaps.size, receiving: this.inSnaps.size }
  }

  close(): void {
    this.closed = true
    if (this.probeTimer) clearInterval(this.probeTimer)
    if (this.rttTimer) clearInterval(this.rttTimer)
    for (const s of this.outSnaps.values()) if (s.timer) clearTimeout(s.timer)
    this.outSnaps.clear()
    this.inSnaps.clear()
    for (const p of this.peers.values()) {
      if (p.timer) clearTimeout(p.timer)
      if (p.handshakeTimer) clearTimeout(p.handshakeTimer)
      p.socket?.close(1000, 'shutdown')
    }
    this.peers.clear()
  }
}
