import type { DialPeer, PeerSocket } from '../../rafthttp/transport.js'
import type { DenoHttpClient, DenoWebSocketOptions } from './deno-api.js'

/** How long a peer's WebSocket handshake may take before the dial is abandoned (and retried by the transport). */
export const peerHandshakeTimeoutMs = 2000

/**
 * Outbound peer sockets on Deno, with its global WebSocket. Deno's constructor takes a non-standard options bag with
 * `headers` (so the cluster credential goes in Authorization, x-edgecd-from and x-edgecd-cluster exactly as on
 * Node) and `client`, a Deno.HttpClient with the CAs trusted for wss:// peers and this member's peer certificate.
 */
export function denoPeerDialer(client?: DenoHttpClient): DialPeer {
  return (url, headers, handlers) => {
    const options: DenoWebSocketOptions = { headers, ...(client && url.startsWith('wss:') ? { client } : {}) }
    const ws = new (WebSocket as unknown as new (url: string, o: DenoWebSocketOptions) => WebSocket)(url, options)
    ws.binaryType = 'arraybuffer'
    // A peer that accepts TCP but never answers the upgrade would hold the dial forever: give up, the transport
    // backs off and dials again.
    const handshake = setTimeout(() => ws.close(), peerHandshakeTimeoutMs)
    ws.onopen = () => {
      clearTimeout(handshake)
      handlers.onOpen()
    }
    ws.onmessage = (evt) => {
      if (evt.data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(evt.data))
    }
    ws.onclose = () => {
      clearTimeout(handshake)
      handlers.onClose()
    }
    // Errors are followed by 'close'; the handler keeps Deno from reporting them as uncaught.
    ws.onerror = () => {}
    const sock: PeerSocket = {
      send: (data) => ws.send(data as Uint8Array<ArrayBuffer>),
      close: (code, reason) => ws.close(code, reason),
      get bufferedAmount() {
        return ws.bufferedAmount
      },
    }
    return sock
  }
}
