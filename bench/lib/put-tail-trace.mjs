/**
 * The member's side of a 1-client put's tail attribution, as an `--import` preload (a diagnostic: nothing of it is
 * loaded unless asked for). Unlike bench/lib/put-phase-trace.mjs, which prints percentiles per phase, this keeps every
 * call's raw timestamps and everything else that ran on the member in the window, so that the slowest calls can be
 * matched, one by one, against what happened then (bench/lib/put-tail-report.mjs joins it with put-driver's own
 * per-call trace: both use CLOCK_MONOTONIC, i.e. process.hrtime).
 *
 * Per call (µs, hrtime): the HTTP/2 'stream' event (request headers in), the blocking WAL write (fs.writeSync start
 * and end), `respond` (or the native handle's respond, src/runtime/node/h2-trailers.ts), 'wantTrailers' (the answer's HEADERS+DATA being serialised), the trailers' submission (a turn
 * later), and the event-loop thread's run-queue wait (/proc/thread-self/schedstat, read with one pread) at the
 * stream event, around the write and at the trailers: the write's wait splits into the disk's time and the wait for
 * a core after the disk is done. Events: GC pauses (PerformanceObserver 'gc'), timer callbacks (setTimeout /
 * setInterval, with the callback's name or source head when it ran 20 µs or more), thread-pool writes (fs.write:
 * issue, completion, bytes: the zero fill, batches, a write the gate sent to the pool).
 *
 * SIGUSR2 starts a window; the second SIGUSR2 ends it and writes /tmp/put-tail-trace-<pid>.json. With put-driver:
 *
 *   PUT_DRIVER_SIGNAL=1 PUT_DRIVER_TRACE=/tmp/drv.json \
 *     PUT_DRIVER_NODE_ARGS="--import $PWD/bench/lib/put-tail-trace.mjs" node --import tsx bench/lib/put-driver.ts 1 4
 *   node bench/lib/put-tail-report.mjs /tmp/drv.json
 *
 * Cost: four preads and a few hrtime reads per call (~10-15 µs), so the traced member is a little slower than an
 * untraced one; the attribution, not the absolute latency, is what it is for.
 */

import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { PerformanceObserver, performance } from 'node:perf_hooks'

const hr = () => Number(process.hrtime.bigint()) / 1e3
// performance.now() (ms) + perfOffset = hrtime µs: both are CLOCK_MONOTONIC.
const perfOffset = hr() - performance.now() * 1e3

let schedFd = -1
try {
  schedFd = fs.openSync('/proc/thread-self/schedstat', 'r')
} catch {}
const schedBuf = Buffer.alloc(128)
/** The event-loop thread's total run-queue wait so far, µs (0 where /proc has no schedstat). */
function waitUs() {
  if (schedFd < 0) return 0
  const n = fs.readSync(schedFd, schedBuf, 0, 128, 0)
  const s = schedBuf.toString('latin1', 0, n)
  const a = s.indexOf(' ')
  const b = s.indexOf(' ', a + 1)
  return Number(s.slice(a + 1, b)) / 1e3
}

let on = false
let windowStart = 0
let windowEnd = Number.POSITIVE_INFINITY
/**
 * Per call: [stream, writeStart, writeEnd, respond, wantTrailers, trailers, waitAtStream, waitAtWriteStart,
 * waitAtWriteEnd, waitAtTrailers, blockingWrites].
 */
let calls = []
let cur
let lastStream
let patchedStream = false
/** [start µs, duration µs, kind] */
let gcs = []
/** [start µs, duration µs, label] */
let timers = []
/** [issued µs, completed µs, bytes] */
let poolWrites = []
/** Blocking writes outside a call window: [start, end, bytes]. */
let strayWrites = []

function patchStreamClasses(stream) {
  patchedStream = true
  const proto = Object.getPrototypeOf(stream)
  const respond = proto.respond
  proto.respond = function (...a) {
    if (on && cur && cur[3] === 0) cur[3] = hr()
    return respond.apply(this, a)
  }
  const kHandle = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle')
  const handleProto = kHandle && stream[kHandle] ? Object.getPrototypeOf(stream[kHandle]) : undefined
  // src/runtime/node/h2-trailers.ts's respondOkNow submits the HEADERS through the handle, not `respond`.
  if (handleProto?.respond) {
    const hRespond = handleProto.respond
    handleProto.respond = function (...a) {
      if (on && cur && cur[3] === 0) cur[3] = hr()
      return hRespond.apply(this, a)
    }
  }
  if (handleProto?.trailers) {
    const trailers = handleProto.trailers
    handleProto.trailers = function (...a) {
      if (on && cur) {
        cur[5] = hr()
        cur[9] = waitUs()
      }
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
      if (cur) calls.push(cur)
      cur = [hr(), 0, 0, 0, 0, 0, waitUs(), 0, 0, 0, 0]
    }
  } else if (ev === 'wantTrailers' && on && cur) cur[4] = hr()
  return emit.call(this, ev, ...a)
}

const writeSync = fs.writeSync
fs.writeSync = function (...a) {
  if (!on) return writeSync.apply(this, a)
  const w0 = waitUs()
  const t = hr()
  const r = writeSync.apply(this, a)
  const t1 = hr()
  const w1 = waitUs()
  if (cur && cur[1] === 0) {
    cur[1] = t
    cur[2] = t1
    cur[7] = w0
    cur[8] = w1
  } else strayWrites.push([t, t1, r])
  if (cur) cur[10]++
  return r
}
const write = fs.write
fs.write = function (...a) {
  const cb = a[5]
  if (!on || a.length !== 6 || typeof cb !== 'function') return write.apply(this, a)
  const rec = [hr(), 0, a[3]]
  poolWrites.push(rec)
  a[5] = function (...r) {
    rec[1] = hr()
    return cb.apply(this, r)
  }
  return write.apply(this, a)
}
// src/runtime/node/file-ops.ts imports these by name: ESM's view of node:fs is refreshed by this call.
syncBuiltinESMExports()

function labelOf(f) {
  if (f.name) return f.name
  return String(f).slice(0, 80).replace(/\s+/g, ' ')
}
function wrapTimer(name) {
  const orig = globalThis[name]
  globalThis[name] = function (f, ms, ...rest) {
    if (typeof f !== 'function') return orig.call(this, f, ms, ...rest)
    return orig.call(
      this,
      function (...x) {
        if (!on) return f.apply(this, x)
        const t = hr()
        try {
          return f.apply(this, x)
        } finally {
          const d = hr() - t
          timers.push([t, d, d >= 20 ? `${name} ${ms}ms ${labelOf(f)}` : name])
        }
      },
      ms,
      ...rest,
    )
  }
}
wrapTimer('setTimeout')
wrapTimer('setInterval')

new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const t = e.startTime * 1e3 + perfOffset
    if (t >= windowStart && t <= windowEnd) gcs.push([t, e.duration * 1e3, e.detail?.kind ?? 0])
  }
}).observe({ entryTypes: ['gc'] })

process.on('SIGUSR2', () => {
  on = !on
  if (on) {
    windowStart = hr()
    windowEnd = Number.POSITIVE_INFINITY
    calls = []
    gcs = []
    timers = []
    poolWrites = []
    strayWrites = []
    cur = undefined
    return
  }
  windowEnd = hr()
  if (cur) calls.push(cur)
  cur = undefined
  // GC entries arrive a turn late: write on the next turn.
  setTimeout(() => {
    fs.writeFileSync(
      `/tmp/put-tail-trace-${process.pid}.json`,
      JSON.stringify({ pid: process.pid, calls, gcs, timers, poolWrites, strayWrites }),
    )
  }, 50)
})
