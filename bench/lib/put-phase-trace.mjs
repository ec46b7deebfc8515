/**
 * Where a 1-client put's time goes inside the member, as an `--import` preload (a diagnostic: nothing of it is loaded
 * unless asked for, so it costs nothing otherwise). Timestamps per call: the HTTP/2 'stream' event (request headers
 * in), the blocking WAL write (fs.writeSync: start, end), `respond`, 'wantTrailers' (emitted while nghttp2 serialises
 * the answer's HEADERS + DATA, i.e. the moment of their writev), the trailers' submission (the next turn), the next
 * call's 'stream'. SIGUSR2 starts a window; the second SIGUSR2 ends it and writes p50 / p90 / p99 per phase to
 * /tmp/put-phase-trace-<pid>.txt. With bench/lib/put-driver.ts:
 *
 *   PUT_DRIVER_SIGNAL=1 PUT_DRIVER_NODE_ARGS="--import $PWD/bench/lib/put-phase-trace.mjs" \
 *     node --import tsx bench/lib/put-driver.ts 1 4
 *
 * Pool writes (batches, the zero fill) are not timed; with one client nearly every WAL write is the blocking one.
 * docs/benchmarks.md, "Session 8: the 1-client put under load", has what it showed.
 */

import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'

const now = () => Number(process.hrtime.bigint()) / 1e3
let on = false
/** Per call: [stream, write start, write end, respond, wantTrailers, trailers submitted, next stream] in µs. */
const calls = []
let cur
let lastStream
let patchedStream = false

function patchStreamClasses(stream) {
  patchedStream = true
  const proto = Object.getPrototypeOf(stream)
  const respond = proto.respond
  proto.respond = function (...a) {
    if (on && cur) cur[3] = now()
    return respond.apply(this, a)
  }
  // The native handle's `trailers` is what Node's sendTrailers calls one turn later (setImmediate).
  const kHandle = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle')
  const handleProto = kHandle && stream[kHandle] ? Object.getPrototypeOf(stream[kHandle]) : undefined
  if (handleProto?.trailers) {
    const trailers = handleProto.trailers
    handleProto.trailers = function (...a) {
      if (on && cur) cur[5] = now()
      return trailers.apply(this, a)
    }
  }
}

const emit = EventEmitter.prototype.emit
EventEmitter.prototype.emit = function (ev, ...a) {
  if (ev === 'stream' && typeof a[0]?.respond === 'function' && a[0] !== lastStream) {
    lastStream = a[0]
    if (!patchedStream) patchStreamClasses(a[0])
    if (on) {
      const t = now()
      if (cur) {
        cur[6] = t
        calls.push(cur)
      }
      cur = [t, 0, 0, 0, 0, 0, 0]
    }
  } else if (ev === 'wantTrailers' && on && cur) cur[4] = now()
  return emit.call(this, ev, ...a)
}

const writeSync = fs.writeSync
fs.writeSync = function (...a) {
  const t = now()
  const r = writeSync.apply(this, a)
  if (on && cur) {
    cur[1] = t
    cur[2] = now()
  }
  return r
}
// src/runtime/node/file-ops.ts imports writeSync by name: ESM's view of node:fs is refreshed by this call.
syncBuiltinESMExports()

const phases = [
  ['request headers -> WAL write', 0, 1],
  ['WAL write (blocking O_DSYNC)', 1, 2],
  ['write done -> respond', 2, 3],
  ['respond -> HEADERS+DATA out', 3, 4],
  ['HEADERS+DATA -> trailers', 4, 5],
  ['trailers -> next request', 5, 6],
  ['request -> next request', 0, 6],
]

process.on('SIGUSR2', () => {
  on = !on
  if (on) {
    calls.length = 0
    cur = undefined
    return
  }
  const out = [`put phases over ${calls.length} calls, µs p50 / p90 / p99`]
  for (const [name, i, j] of phases) {
    const d = calls
      .filter((c) => c[i] > 0 && c[j] > 0)
      .map((c) => c[j] - c[i])
      .sort((x, y) => x - y)
    const q = (p) => (d.length > 0 ? d[Math.min(d.length - 1, Math.floor(d.length * p))].toFixed(0) : '-')
    out.push(`  ${name.padEnd(30)} ${q(0.5)} / ${q(0.9)} / ${q(0.99)}  (n ${d.length})`)
  }
  fs.writeFileSync(`/tmp/put-phase-trace-${process.pid}.txt`, `${out.join('\n')}\n`)
})
