/**
 * One WebSocket server per listener for @hono/node-server, with two frame limits: peers on `/raft` may send frames up
 * to peerFrameBytesMax (snapshot chunks), every other WebSocket (the client watch) only up to the client receive
 * limit (--max-request-bytes + 512 KiB, etcd's gRPC limit). The ws library checks a frame's announced length before
 * reading its payload, so an oversize client frame is refused without being buffered (issue 17 §5): the client first
 * gets etcd's ResourceExhausted error frame, then the close (1009), as the app's own check answers.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { type WebSocket, WebSocketServer } from 'ws'
import { oversizeWatchFrame } from '../../api/http/app.js'

export class SplitWebSocketServer extends WebSocketServer {
  /** The server of client sockets (everything but /raft). */
  readonly clients2: WebSocketServer

  constructor(
    peerFrameBytesMax: number,
    private readonly clientFrameBytesMax: number,
  ) {
    super({ noServer: true, maxPayload: peerFrameBytesMax, perMessageDeflate: false })
    this.clients2 = new WebSocketServer({ noServer: true, maxPayload: clientFrameBytesMax, perMessageDeflate: false })
    // @hono/node-server adds its response headers (CORS, subprotocol) through this server's 'headers' event.
    this.clients2.on('headers', (headers, req) => this.emit('headers', headers, req))
  }

  override handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    cb: (ws: WebSocket, req: IncomingMessage) => void,
  ): void {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/raft') {
      super.handleUpgrade(req, socket, head, cb)
      return
    }
    this.clients2.handleUpgrade(req, socket, head, (ws, r) => {
      answerOversizeFrames(ws, this.clientFrameBytesMax)
      batchWrites(ws)
      cb(ws, r)
    })
  }

  override close(cb?: (err?: Error) => void): void {
    this.clients2.close()
    super.close(cb)
  }
}

/**
 * Before ws closes a socket whose frame announced more than maxPayload (1009), send etcd's error frame. ws offers no
 * hook for this: its receiver's 'error' is where the length check fails, and the socket is still open there.
 */
function answerOversizeFrames(ws: WebSocket, max: number): void {
  const receiver = (ws as unknown as { _receiver?: NodeJS.EventEmitter & { _totalPayloadLength?: number } })._receiver
  receiver?.prependListener('error', (err: Error & { code?: string }) => {
    if (err.code !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return
    try {
      ws.send(oversizeWatchFrame(receiver._totalPayloadLength ?? max + 1, max))
    } catch {}
  })
}

/**
 * One watch event to N watchers of a stream is N messages sent in one tick; ws writes each frame with its own writev.
 * Corking the socket at the first send of a tick and uncorking on the next tick writes them together (a few syscalls
 * instead of N). bufferedAmount still counts what is corked, so the watch stream's congestion check is unchanged.
 * A plain text message skips ws's sender: its frame bytes are built once and shared by every socket sending the same
 * text (the watch messages of replicas following one range, see codec/watch-json.ts), one buffer per socket write.
 * A send on a socket that can no longer be written throws (see below). Exported for test/server/watch-dead-socket.
 */
export function batchWrites(ws: WebSocket): void {
  const socket = (ws as unknown as { _socket?: import('node:net').Socket })._socket
  if (socket === undefined || typeof socket.cork !== 'function') return
  let corked = false
  const uncork = () => {
    corked = false
    if (!socket.destroyed) socket.uncork()
  }
  const send = ws.send.bind(ws) as (...args: unknown[]) => void
  const sender = (ws as unknown as { _sender?: SenderState })._sender
  ws.send = ((...args: unknown[]) => {
    // A write error (the client reset the connection) marks the socket errored at once but destroys it, and ws sees
    // the close, only on a later tick; meanwhile every write is dropped and bufferedAmount stays low, so a watch stream
    // would take the socket for a fast reader and replay its whole backlog into nothing, synchronously (issue 17:
    // 10,000 watchers catching up, 10-40 s of CPU after the client was gone). Say so: the stream then closes.
    if (!socket.writable) throw new Error('WebSocket: the socket is closed')
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    if (sharable(ws, sender, args)) {
      sharedFrameStats.writes++
      socket.write(textFrame(args[0] as string))
    } else send(...args)
    // Past this much the batch goes out at once, so what the socket holds is what the kernel would not take, as
    // without corking (the watch stream's congestion check reads bufferedAmount).
    if (corked && socket.writableLength >= batchBytesMax) {
      socket.uncork()
      socket.cork()
    }
  }) as typeof ws.send
  // A large watch message in parts (codec/watch-json.ts, WatchTextParts): the frame's header and the message's head
  // are written, then its events' bytes by reference (shared by every watcher that gets them), then its tail; with
  // the socket corked they go out in one writev, and nothing the size of the events is built or copied per message.
  ;(ws as unknown as { sendTextParts?: SendTextParts }).sendTextParts = (head, body, tail) => {
    if (!socket.writable) throw new Error('WebSocket: the socket is closed')
    if (!sharable(ws, sender, [head])) {
      send(head + Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8') + tail)
      return
    }
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    sharedFrameStats.partWrites++
    // head and tail are ASCII (JSON punctuation, digits): their lengths are their byte lengths.
    const n = head.length + body.byteLength + tail.length
    const frame = frameHead(n, head.length)
    frame.write(head, frame.length - head.length, 'latin1')
    socket.write(frame)
    socket.write(Buffer.from(body.buffer, body.byteOffset, body.byteLength))
    socket.write(tail)
    if (corked && socket.writableLength >= batchBytesMax) {
      socket.uncork()
      socket.cork()
    }
  }
}

/** What batchWrites adds to a client socket: a text message sent as head + body bytes + tail (see there). */
export type SendTextParts = (head: string, body: Uint8Array, tail: string) => void

/** A text frame's header (RFC 6455 §5.2, unmasked, final) for n payload bytes, with `extra` bytes of room after it. */
function frameHead(n: number, extra: number): Buffer {
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10
  const b = Buffer.allocUnsafe(head + extra)
  b[0] = 0x81
  if (head === 2) b[1] = n
  else if (head === 4) {
    b[1] = 126
    b.writeUInt16BE(n, 2)
  } else {
    b[1] = 127
    b.writeUInt32BE(Math.floor(n / 2 ** 32), 2)
    b.writeUInt32BE(n >>> 0, 6)
  }
  return b
}

/** Bytes of frames written together at most (see batchWrites). */
const batchBytesMax = 256 * 1024

/** What sharable() reads of ws's Sender (ws 8): idle (`_state` 0, nothing queued) and not inside a fragmented message. */
interface SenderState {
  _state?: number
  _queue?: unknown[]
  _firstFragment?: boolean
}

/**
 * Whether a send is a whole text message with no options that matter and no callback, on an open socket whose
 * sender is idle: then its frame is the same bytes for every socket (a server does not mask, and these sockets have
 * no compression), so textFrame's shared buffer goes straight to the socket, in order with what ws wrote before.
 * Anything else goes through ws.
 */
function sharable(ws: WebSocket, sender: SenderState | undefined, args: unknown[]): boolean {
  if (typeof args[0] !== 'string' || args.length > 2 || ws.readyState !== 1) return false
  const o = args[1] as { binary?: boolean; compress?: boolean; fin?: boolean } | undefined
  if (o !== undefined && (typeof o !== 'object' || o.binary || o.compress || o.fin === false)) return false
  return sender?._state === 0 && sender._queue?.length === 0 && sender._firstFragment === true
}

/** Messages written as textFrame's bytes, not through ws's sender (tests check that the path is taken). */
export const sharedFrameStats = { writes: 0, partWrites: 0 }

/** The last text frame built and its text: the replicas following one range all get the same watch message. */
let frameText: string | undefined
let frameBytes: Buffer | undefined

/** An unmasked, final text frame (RFC 6455 §5.2) of `text`; the last one is kept and shared. */
export function textFrame(text: string): Buffer {
  if (frameBytes !== undefined && text === frameText) return frameBytes
  const n = Buffer.byteLength(text)
  const b = frameHead(n, n)
  b.write(text, b.length - n, 'utf8')
  frameText = text
  frameBytes = b
  return b
}
