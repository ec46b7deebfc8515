import { decode, encode } from 'cbor-x'
import { type Message, MessageType, type NodeId } from '../raft/index.js'
import type { Transport } from './raft-member.js'

/**
 * Peers talk Raft over WebSockets on the client port (GET /raft), etcd's rafthttp reduced to one stream per peer:
 * each frame is a CBOR batch `[version, clusterId, fromId, Message[]]`. This file is runtime-neutral; the runtime
 * provides `dial` (an outbound socket) and the app feeds inbound frames to `receive`.
 *
 * Peers prove they belong to the cluster with `Authorization: Bearer <proof>`, the HMAC-SHA256 of
 * "edgecd-peer:<clusterId>:<fromId>" keyed with --initial-cluster-token: the token itself never crosses the wire,
 * and a proof made for one member id does not work for another.
 */

export const peerFrameVersion = 1

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
  /** --initial-cluster-token: the shared secret peers prove knowledge of. */
  clusterToken: string
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
}

async function hmacHex(key: string, msg: string): Promise<string> {
  const k = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(key),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  )
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', k, new TextEncoder().encode(msg)))
  let s = ''
  for (const b of sig) s += b.toString(16).padStart(2, '0')
  return s
}

/** The proof a member with `fromId` presents to its peers. */
export function peerProof(clusterToken: string, clusterId: string, fromId: NodeId): Promise<string> {
  return hmacHex(clusterToken, `edgecd-peer:${clusterId}:${fromId}`)
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return d === 0
}

/** Checks an inbound /raft request's credentials; returns the peer's id or undefined. */
export async function verifyPeer(
  clusterToken: string,
  clusterId: string,
  headers: { authorization?: string; from?: string; cluster?: string },
): Promise<NodeId | undefined> {
  const from = headers.from ?? ''
  if (!/^\d{1,20}$/.test(from) || headers.cluster !== clusterId) return undefined
  const m = /^Bearer ([0-9a-f]{64})$/.exec(headers.authorization ?? '')
  if (!m) return undefined
  return constantTimeEqual(m[1]!, await peerProof(clusterToken, clusterId, from)) ? from : undefined
}

interface Peer {
  id: NodeId
  urls: string[]
  socket?: PeerSocket
  open: boolean
  dialing: boolean
  attempt: number
  timer?: ReturnType<typeof setTimeout>
}

export class PeerTransport implements Transport {
  private readonly peers = new Map<NodeId, Peer>()
  private proof = ''
  private closed = false
  private readonly o: Required<Omit<PeerTransportOptions, 'log' | 'onDropped'>> &
    Pick<PeerTransportOptions, 'log' | 'onDropped'>

  constructor(opts: PeerTransportOptions) {
    this.o = { maxPeerBufferedBytes: 64 * 1024 * 1024, reconnectMinMs: 50, reconnectMaxMs: 2000, ...opts }
  }

  async start(): Promise<void> {
    this.proof = await peerProof(this.o.clusterToken, this.o.clusterId, this.o.selfId)
  }

  /** Sets the peers (every member but this one) and their peer URLs; connects to new ones, drops removed ones. */
  setPeers(peers: Map<NodeId, string[]>): void {
    for (const [id, p] of this.peers) {
      if (peers.has(id)) continue
      this.peers.delete(id)
      if (p.timer) clearTimeout(p.timer)
      p.socket?.close(1000, 'removed')
    }
    for (const [id, urls] of peers) {
      if (id === this.o.selfId) continue
      const p = this.peers.get(id)
      if (p) {
        p.urls = urls
        continue
      }
      const np: Peer = { id, urls, open: false, dialing: false, attempt: 0 }
      this.peers.set(id, np)
      this.connect(np)
    }
  }

  private connect(p: Peer): void {
    if (this.closed || p.dialing || p.open || !this.peers.has(p.id)) return
    p.dialing = true
    const base = p.urls[p.attempt % p.urls.length]!
    const url = base.replace(/^http/, 'ws').replace(/\/$/, '') + '/raft'
    let socket: PeerSocket
    try {
      socket = this.o.dial(
        url,
        { authorization: `Bearer ${this.proof}`, 'x-edgecd-from': this.o.selfId, 'x-edgecd-cluster': this.o.clusterId },
        {
          onOpen: () => {
            p.open = true
            p.dialing = false
            p.attempt = 0
            this.o.log?.('info', 'peer connected', { peer: p.id, url })
          },
          onMessage: (data) => this.receive(data),
          onClose: () => {
            const was = p.open
            p.open = false
            p.dialing = false
            p.socket = undefined
            if (was) this.o.log?.('warn', 'peer disconnected', { peer: p.id })
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
      const l = byPeer.get(m.to)
      if (l) l.push(m)
      else byPeer.set(m.to, [m])
    }
    for (const [to, batch] of byPeer) {
      const p = this.peers.get(to)
      const sock = p?.open ? p.socket : undefined
      if (!sock || sock.bufferedAmount > this.o.maxPeerBufferedBytes) {
        this.dropped(to, batch)
        continue
      }
      try {
        sock.send(encode([peerFrameVersion, this.o.clusterId, this.o.selfId, batch]) as Uint8Array)
      } catch {
        this.dropped(to, batch)
        continue
      }
      for (const m of batch) if (m.type === MessageType.MsgSnap) this.o.reportSnapshot(to, true)
    }
  }

  private dropped(to: NodeId, batch: Message[]): void {
    this.o.reportUnreachable(to)
    this.o.onDropped?.(batch)
    for (const m of batch) if (m.type === MessageType.MsgSnap) this.o.reportSnapshot(to, false)
  }

  /** An inbound frame from an authenticated peer socket. Malformed frames are dropped, never thrown. */
  receive(data: Uint8Array, fromPeer?: NodeId): void {
    let frame: unknown
    try {
      frame = decode(data)
    } catch {
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
    const from = fromPeer ?? (frame[2] as string)
    const msgs = (frame[3] as Message[]).filter(
      (m) => m && m.to === this.o.selfId && m.from === from && typeof m.type === 'number',
    )
    if (msgs.length > 0) this.o.onMessages(msgs)
  }

  close(): void {
    this.closed = true
    for (const p of this.peers.values()) {
      if (p.timer) clearTimeout(p.timer)
      p.socket?.close(1000, 'shutdown')
    }
    this.peers.clear()
  }
}
