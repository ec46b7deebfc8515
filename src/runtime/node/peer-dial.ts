import WebSocket from 'ws'
import type { DialPeer, PeerSocket } from '../../rafthttp/transport.js'
import type { PeerTlsOptions } from './tls.js'

/** Largest peer frame accepted, in bytes (a MsgApp batch is bounded by Raft's maxMsgBytes; snapshots ride inline). */
export const peerFrameBytesMax = 256 * 1024 * 1024

/**
 * Outbound peer sockets on Node, with the `ws` package (Node 20 has no global WebSocket). wss:// URLs (https peer
 * URLs) use `tls`: the CAs trusted for the peer's listener and this member's --peer-cert-file/--peer-key-file.
 */
export function nodePeerDialer(tls: PeerTlsOptions = {}): DialPeer {
  return (url, headers, handlers) => {
    const ws = new WebSocket(url, {
      headers,
      maxPayload: peerFrameBytesMax,
      perMessageDeflate: false,
      handshakeTimeout: 2000,
      ...(url.startsWith('wss:') ? tls : {}),
    })
    ws.binaryType = 'nodebuffer'
    ws.on('open', () => handlers.onOpen())
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) handlers.onMessage(data)
    })
    ws.on('close', () => handlers.onClose())
    // Errors are followed by 'close'; listening keeps them from being thrown.
    ws.on('error', () => {})
    const sock: PeerSocket = {
      send: (data) => ws.send(data, { binary: true }),
      close: (code, reason) => ws.close(code, reason),
      get bufferedAmount() {
        return ws.bufferedAmount
      },
    }
    return sock
  }
}

/** The dialer without TLS options (wss:// then trusts only the system CAs). */
export const dialNodePeer: DialPeer = nodePeerDialer()
