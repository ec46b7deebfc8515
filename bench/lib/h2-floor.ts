/**
 * The floor of a unary gRPC call on node:http2, for bench/lib/put-driver.ts: a server that answers every call the way
 * edgecd's raw unary path does (src/runtime/node/grpc.ts: the body read through 'data'/'end' listeners, respond with
 * waitForTrailers, one DATA frame, grpc-status in the trailers) with a fixed PutResponse and no member behind it. Its
 * CPU per call is what Node's HTTP/2 costs alone, against which a put's CPU per call is read.
 *
 *   node --import tsx bench/lib/h2-floor.ts 23790 &
 *   PUT_DRIVER_URL=http://127.0.0.1:23790 PUT_DRIVER_PID=$! node --import tsx bench/lib/put-driver.ts 64 4
 */
import { createServer, type ServerHttp2Stream } from 'node:http2'
import { sendOkTrailersNow } from '../../src/runtime/node/h2-trailers.js'

const port = Number(process.argv[2] ?? 23790)
// PutResponse{header{cluster_id, member_id, revision, raft_term}}, as edgecd answers (values made up, same sizes).
const header = Buffer.from([
  0x08, 0x8f, 0xa4, 0xb9, 0xc2, 0xd5, 0xe8, 0xfb, 0x8e, 0x01, 0x10, 0x9a, 0xcd, 0xf2, 0x96, 0xbb, 0xe0, 0x85, 0xab,
  0x12, 0x18, 0xa0, 0x9c, 0x01, 0x20, 0x02,
])
const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, header.length + 2, 0x0a, header.length]), header])
const okHeaders = { ':status': 200, 'content-type': 'application/grpc' }
const okTrailers = { 'grpc-status': '0' }
const respondOptions = { waitForTrailers: true, sendDate: false }

function onData(this: ServerHttp2Stream, _c: Buffer): void {}
function onEnd(this: ServerHttp2Stream): void {
  if (this.destroyed || this.closed) return
  this.respond(okHeaders, respondOptions)
  this.on('wantTrailers', sendTrailers)
  this.end(frame)
}
function sendTrailers(this: ServerHttp2Stream): void {
  if (!this.destroyed && !this.closed && !sendOkTrailersNow(this)) this.sendTrailers(okTrailers)
}

const server = createServer({ settings: { maxConcurrentStreams: 1000 } })
server.on('stream', (stream) => {
  stream.on('data', onData)
  stream.on('end', onEnd)
  stream.on('error', () => {})
})
server.listen(port, '127.0.0.1', () => console.log(`h2 floor on ${port}, pid ${process.pid}`))
// A normal exit on SIGTERM / SIGINT, so that `node --cpu-prof` writes its profile.
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)))
