/**
 * Go gRPC clients dialing "passthrough:///http://127.0.0.1:2379" (etcdctl 3.4 does, for `endpoint status`,
 * `endpoint hashkv`, `defrag` and `move-leader`) send the whole URL as the `:authority` pseudo-header. etcd's Go
 * server accepts it; Node's HTTP/2 server (nghttp2) resets the stream with PROTOCOL_ERROR, since a '/' is not
 * allowed in an authority, and offers no option to relax that. This file lets such connections in:
 *
 * - Before an h2c connection goes to Node's HTTP/2 server, the front listener sends the server's SETTINGS itself
 *   (gRPC clients wait for it before their first call) and reads the client's frames up to its first header block
 *   and its acknowledgement of those SETTINGS. The acknowledgement is cut out (Node's session never sent them).
 * - A connection whose first `:authority` is valid (every other client) then goes to Node's server as it is: the
 *   session reads the socket directly, nothing of this file stays in its path.
 * - A connection whose `:authority` is not valid goes through a rewriter: every header block from the client is
 *   decoded (HPACK, with the client's dynamic table), the `:authority` reduced to host:port, and encoded again for
 *   the server; every other frame passes unchanged. Only such connections pay for it.
 */

import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import hpack from 'hpack.js'

const frameHeaderBytes = 9
const prefaceBytes = 24
const typeHeaders = 0x1
const typeSettings = 0x4
const typeContinuation = 0x9
const flagEndStream = 0x1
const flagAck = 0x1
const flagEndHeaders = 0x4
const flagPadded = 0x8
const flagPriority = 0x20
/** How long the probe waits for the first header block and the acknowledgement before giving up on the fast path. */
const probeTimeoutMs = 1000

/** An empty SETTINGS frame: the defaults, which is what Node's session assumes of itself until its own arrive. */
export const serverSettingsFrame = Buffer.from([0, 0, 0, typeSettings, 0, 0, 0, 0, 0])

/** `:authority` values Node accepts: no scheme, no path (RFC 3986 authority characters). */
function authorityOk(v: string): boolean {
  return /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/.test(v)
}

/** "http://host:port/..." -> "host:port". */
function fixAuthority(v: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)/i.exec(v)
  const host = m ? m[1]! : v.replace(/\/.*$/, '')
  return authorityOk(host) ? host : 'localhost'
}

interface Header {
  name: string
  value: string
}

/** Frame-level rewriter of the client-to-server bytes of one connection (see the file comment). */
class AuthorityRewriter {
  private buf: Buffer = Buffer.alloc(0)
  private prefaceLeft = prefaceBytes
  /** Header block fragments of the block being read, with the first frame's flags and priority bytes. */
  private block: Buffer[] = []
  private blockStream = 0
  private blockFlags = 0
  private blockPriority: Buffer | undefined
  private ackToCut: boolean
  private readonly decomp = hpack.decompressor.create({ table: { size: 4096 } })
  private readonly comp = hpack.compressor.create({ table: { size: 4096 } })

  constructor(cutFirstAck: boolean) {
    this.ackToCut = cutFirstAck
  }

  /** Bytes from the client in, bytes for the server out. */
  push(chunk: Buffer): Buffer {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const out: Buffer[] = []
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, this.buf.length)
      out.push(this.buf.subarray(0, n))
      this.buf = this.buf.subarray(n)
      this.prefaceLeft -= n
    }
    while (this.prefaceLeft === 0 && this.buf.length >= frameHeaderBytes) {
      const len = this.buf.readUIntBE(0, 3)
      if (this.buf.length < frameHeaderBytes + len) break
      const type = this.buf[3]!
      const flags = this.buf[4]!
      const stream = this.buf.readUInt32BE(5) & 0x7fffffff
      const frame = this.buf.subarray(0, frameHeaderBytes + len)
      this.buf = this.buf.subarray(frameHeaderBytes + len)
      if (type === typeSettings && flags & flagAck && this.ackToCut) {
        this.ackToCut = false
        continue
      }
      if (type === typeHeaders) {
        let payload = frame.subarray(frameHeaderBytes)
        let pad = 0
        if (flags & flagPadded) {
          pad = payload[0]!
          payload = payload.subarray(1)
        }
        this.blockPriority = flags & flagPriority ? Buffer.from(payload.subarray(0, 5)) : undefined
        if (flags & flagPriority) payload = payload.subarray(5)
        this.block = [Buffer.from(payload.subarray(0, payload.length - pad))]
        this.blockStream = stream
        this.blockFlags = flags
      } else if (type === typeContinuation && this.block.length > 0) {
        this.block.push(Buffer.from(frame.subarray(frameHeaderBytes)))
        this.blockFlags |= flags & flagEndHeaders
      } else {
        out.push(frame)
        continue
      }
      if (this.blockFlags & flagEndHeaders) out.push(this.rewriteBlock())
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out)
  }

  private rewriteBlock(): Buffer {
    this.decomp.write(Buffer.concat(this.block))
    this.decomp.execute()
    const headers: Header[] = []
    for (let h = this.decomp.read(); h !== null; h = this.decomp.read()) {
      const { name, value } = h as Header
      headers.push({ name, value: name === ':authority' && !authorityOk(value) ? fixAuthority(value) : value })
    }
    this.comp.write(headers)
    const parts: Buffer[] = []
    for (let c = this.comp.read(); c !== null; c = this.comp.read()) parts.push(c as Buffer)
    const encoded = Buffer.concat(parts)
    const priority = this.blockPriority ?? Buffer.alloc(0)
    const payload = Buffer.concat([priority, encoded])
    // One HEADERS frame (a gRPC header block is far below the 16 KiB default frame size); CONTINUATIONs otherwise.
    const max = 16384
    const frames: Buffer[] = []
    for (let off = 0, first = true; first || off < payload.length; first = false) {
      const part = payload.subarray(off, off + max)
      off += part.length
      const last = off >= payload.length
      const flags =
        (first ? (this.blockFlags & flagEndStream) | (this.blockPriority ? flagPriority : 0) : 0) |
        (last ? flagEndHeaders : 0)
      const head = Buffer.alloc(frameHeaderBytes)
      head.writeUIntBE(part.length, 0, 3)
      head[3] = first ? typeHeaders : typeContinuation
      head[4] = flags
      head.writeUInt32BE(this.blockStream, 5)
      frames.push(head, part)
    }
    this.block = []
    return Buffer.concat(frames)
  }
}

/** The first frames of a connection, read before it is handed over (see the file comment). */
export interface ProbeResult {
  /** The bytes to hand over (preface included), the acknowledgement cut out when it was seen. */
  bytes: Buffer
  /** Whether the acknowledgement of our SETTINGS was seen (and cut). */
  ackCut: boolean
  /** The first header block's `:authority` is one Node accepts (or there was no header block). */
  authorityOk: boolean
}

/**
 * Reads an h2c connection's first frames (the preface is in `head`), after sending the server's SETTINGS.
 * Resolves once the first header block and the acknowledgement were seen, or after a short wait.
 */
export function probeH2c(socket: Socket, head: Buffer, done: (r: ProbeResult) => void): void {
  socket.write(serverSettingsFrame)
  let buf = head
  let off = prefaceBytes
  let ackAt = -1
  let block: Buffer[] = []
  let blockDone = false
  let authority: string | undefined
  let finished = false
  const finish = () => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('error', onError)
    const bytes = ackAt >= 0 ? Buffer.concat([buf.subarray(0, ackAt), buf.subarray(ackAt + frameHeaderBytes)]) : buf
    done({ bytes, ackCut: ackAt >= 0, authorityOk: authority === undefined || authorityOk(authority) })
  }
  const scan = () => {
    while (buf.length - off >= frameHeaderBytes) {
      const len = buf.readUIntBE(off, 3)
      if (buf.length - off < frameHeaderBytes + len) break
      const type = buf[off + 3]!
      const flags = buf[off + 4]!
      const payloadAt = off + frameHeaderBytes
      if (type === typeSettings && flags & flagAck && ackAt < 0) ackAt = off
      else if (!blockDone && (type === typeHeaders || (type === typeContinuation && block.length > 0))) {
        let p = buf.subarray(payloadAt, payloadAt + len)
        if (type === typeHeaders) {
          let pad = 0
          if (flags & flagPadded) {
            pad = p[0]!
            p = p.subarray(1)
          }
          if (flags & flagPriority) p = p.subarray(5)
          p = p.subarray(0, p.length - pad)
        }
        block.push(Buffer.from(p))
        if (flags & flagEndHeaders) {
          blockDone = true
          try {
            const d = hpack.decompressor.create({ table: { size: 4096 } })
            d.write(Buffer.concat(block))
            d.execute()
            for (let h = d.read(); h !== null; h = d.read())
              if ((h as Header).name === ':authority') authority = (h as Header).value
          } catch {
            authority = undefined
          }
          block = []
        }
      }
      off += frameHeaderBytes + len
    }
    if (blockDone && ackAt >= 0) finish()
  }
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk])
    scan()
  }
  const onError = () => {
    finished = true
    clearTimeout(timer)
    socket.destroy()
  }
  const timer = setTimeout(finish, probeTimeoutMs)
  socket.on('data', onData)
  socket.on('error', onError)
  scan()
}

/**
 * A duplex standing for `socket` in front of Node's HTTP/2 session, rewriting the client's header blocks.
 * `first`: the probed bytes; `cutAck`: the acknowledgement is still to come and must be cut.
 */
export function authorityRewritingSocket(socket: Socket, first: Buffer, cutAck: boolean): Duplex {
  const rewriter = new AuthorityRewriter(cutAck)
  const inner = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb)
    },
    final(cb) {
      socket.end(cb)
    },
    destroy(err, cb) {
      socket.destroy()
      cb(err)
    },
  })
  Object.assign(inner, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort })
  const forward = (chunk: Buffer) => {
    let out: Buffer
    try {
      out = rewriter.push(chunk)
    } catch {
      socket.destroy()
      return
    }
    if (out.length > 0 && !inner.push(out)) socket.pause()
  }
  socket.on('data', forward)
  socket.on('end', () => inner.push(null))
  socket.on('error', () => inner.destroy())
  socket.on('close', () => inner.destroy())
  forward(first)
  return inner
}
