/**
 * The client as the package's Node entry (`import { Client } from 'edgecd'` under Node): the runtime-agnostic client
 * with the `ws` package registered as its WebSocket, so watches work on Node 20 (which has no global WebSocket) and
 * TLS client certificates reach wss:// watches. On a Node with a global WebSocket, that one is used unless `tls` is set.
 */
import WebSocket from 'ws'
import { setDefaultWebSocket } from '../../client/index.js'

setDefaultWebSocket(WebSocket, { supportsTls: true })

export * from '../../client/index.js'
