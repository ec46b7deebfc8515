/**
 * Which WebSocket constructor the client's watches use when the caller passes none. The client itself only knows the
 * Web-standard global; a runtime entry may register a fallback for runtimes that lack one (the package's Node entry,
 * src/runtime/node/client.ts, registers the `ws` package for Node 20), so `new Client({endpoints})` watches
 * everywhere without the caller choosing a WebSocket.
 */
import type { WebSocketConstructor } from './watch-stream.js'

let registered: WebSocketConstructor | undefined
let registeredSupportsTls = false

/**
 * Registers the constructor used when neither the `WebSocket` option nor a global WebSocket exists. `supportsTls`
 * says it takes the `ws` package's third `{ca, cert, key}` argument, so it is preferred when the `tls` option is set
 * (a WHATWG WebSocket cannot present a client certificate).
 */
export function setDefaultWebSocket(WS: unknown, opts: { supportsTls?: boolean } = {}): void {
  registered = WS as WebSocketConstructor
  registeredSupportsTls = opts.supportsTls ?? false
}

/** The constructor for a client: the caller's, else the registered TLS-capable one for tls, else the global one. */
export function chooseWebSocket(given: unknown, tls: boolean): WebSocketConstructor | undefined {
  if (given !== undefined) return given as WebSocketConstructor
  if (tls && registered !== undefined && registeredSupportsTls) return registered
  const global = (globalThis as { WebSocket?: unknown }).WebSocket as WebSocketConstructor | undefined
  return global ?? registered
}
