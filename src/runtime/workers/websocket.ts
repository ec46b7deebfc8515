import { defineWebSocketHelper, type UpgradeWebSocket, WSContext } from 'hono/ws'
import type { DialPeer, PeerSocket } from '../../rafthttp/transport.js'
import { upgradeResponse, type WorkersResponse, type WorkersWebSocket, workersGlobals } from './cf-api.js'

/**
 * The close code to answer a peer's close with: 1005 (no code) and 1006 (abnormal) are reserved and throw when sent,
 * which leaves the client waiting about 10 s for a close frame (RUNTIMES.md §3, pitfall 2).
 */
export function replyCloseCode(code: number): number {
  return code === 1005 || code === 1006 || code < 1000 || code >= 5000 ? 1000 : code
}

/**
 * hono's upgradeWebSocket for workerd, written here rather than taken from hono/cloudflare-workers for three
 * reasons found on this runtime: that helper never calls onOpen (the watch opens its stream there), it leaves
 * `binaryType` at the runtime's default, which is 'blob' from compatibility date 2026-03-17 on (the peer frames are
 * CBOR in binary frames), and it does not answer the peer's close, so the peer sees 1006 after a 10 s wait. The
 * socket is accepted with `accept()`, not the hibernation API: a member must stay in memory (its Raft ticks and
 * its open watch streams live there), see docs/workers.md. `open` tracks the sockets so the object can end them.
 */
export function workersUpgradeWebSocket(open: Set<WebSocket>): UpgradeWebSocket<WebSocket> {
  return defineWebSocketHelper<WebSocket>(async (c, events) => {
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return
    const pair = new workersGlobals.WebSocketPair()
    const client = pair[0]
    const server = pair[1]
    const ctx = new WSContext<WebSocket>({
      close: (code, reason) => server.close(code, reason),
      get protocol() {
        return server.protocol
      },
      raw: server,
      get readyState() {
        return server.readyState as 0 | 1 | 2 | 3
      },
      url: null,
      send: (source) => server.send(source as string | ArrayBuffer),
    })
    server.accept()
    server.binaryType = 'arraybuffer'
    open.add(server)
    server.addEventListener('message', (evt) => events.onMessage?.(evt as MessageEvent, ctx))
    server.addEventListener('close', (evt) => {
      open.delete(server)
      try {
        server.close(replyCloseCode(evt.code), evt.reason)
      } catch {}
      events.onClose?.(evt, ctx)
    })
    server.addEventListener('error', (evt) => {
      open.delete(server)
      events.onError?.(evt, ctx)
    })
    events.onOpen?.(new Event('open'), ctx)
    // A browser offers its token as a subprotocol: the upgrade must name one it offered, or the browser fails it.
    const offered = c.req.header('sec-websocket-protocol')?.split(',')[0]?.trim()
    return upgradeResponse(client, offered ? { 'Sec-WebSocket-Protocol': offered } : undefined)
  })
}

/** How long a peer's WebSocket handshake may take before the dial is abandoned (and retried by the transport). */
export const peerHandshakeTimeoutMs = 2000

/**
 * Outbound peer sockets from a Durable Object: `fetch` with `Upgrade: websocket` on the http(s) URL (workerd has no
 * WebSocket client constructor that takes headers), then `accept()` on the response's socket. `route` may answer the
 * fetch itself: a peer that is another object of this Worker is reached through its Durable Object binding rather
 * than through the Worker's public URL.
 */
export function workersPeerDialer(fetchFn: (url: string, init: RequestInit) => Promise<Response>): DialPeer {
  return (url, headers, handlers) => {
    let ws: WorkersWebSocket | undefined
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      handlers.onClose()
    }
    const controller = new AbortController()
    const handshake = setTimeout(() => controller.abort(), peerHandshakeTimeoutMs)
    const httpUrl = url.replace(/^ws/, 'http')
    fetchFn(httpUrl, { headers: { ...headers, Upgrade: 'websocket' }, signal: controller.signal }).then(
      (r) => {
        clearTimeout(handshake)
        const sock = (r as WorkersResponse).webSocket
        if (!sock || closed) {
          void r.body?.cancel()
          sock?.accept()
          sock?.close(1000, 'unused')
          return close()
        }
        sock.accept()
        sock.binaryType = 'arraybuffer'
        ws = sock
        sock.addEventListener('message', (evt) => {
          const d = (evt as MessageEvent).data
          if (d instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(d))
        })
        sock.addEventListener('close', (evt) => {
          try {
            sock.close(replyCloseCode(evt.code), evt.reason)
          } catch {}
          close()
        })
        sock.addEventListener('error', () => close())
        handlers.onOpen()
      },
      () => {
        clearTimeout(handshake)
        close()
      },
    )
    const peer: PeerSocket = {
      send: (data) => ws?.send(data as Uint8Array<ArrayBuffer>),
      close: (code, reason) => {
        if (ws) {
          try {
            ws.close(code, reason)
          } catch {}
        } else controller.abort()
        close()
      },
      get bufferedAmount() {
        return (ws as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0
      },
    }
    return peer
  }
}
