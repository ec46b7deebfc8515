/**
 * What handing a WAL write to libuv's thread pool costs the member's event loop, as an `--import` preload (a
 * diagnostic, loaded only when asked for). Around every callback `fs.write` (the pool path of
 * src/runtime/node/file-ops.ts: batches, the zero fill) it reads the main thread's /proc schedstat (time on a core,
 * time waiting on the run queue) and the wall clock; blocking `fs.writeSync` calls (the lone-put path) are counted.
 * The first SIGUSR2 starts a window, the second ends it and appends one line to /tmp/wal-dispatch-trace-<pid>.txt:
 * writes, the wall time spent inside the `fs.write` calls, and how much of it the thread ran and waited for a core.
 * With bench/lib/put-driver.ts:
 *
 *   PUT_DRIVER_SIGNAL=1 PUT_DRIVER_NODE_ARGS="--import $PWD/bench/lib/wal-dispatch-trace.mjs" \
 *     node --import tsx bench/lib/put-driver.ts 64 4
 *
 * The schedstat reads themselves (two small /proc reads per write) are inside the figures. docs/benchmarks.md,
 * "Session 8, CPU per put", has what it showed.
 */

import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'

const statPath = `/proc/self/task/${process.pid}/schedstat`
/** [ns on a core, ns waiting on the run queue] of the main thread. */
function sched() {
  const [run, wait] = fs.readFileSync(statPath, 'utf8').split(' ')
  return [Number(run), Number(wait)]
}
const zero = () => ({ poolWrites: 0, poolBytes: 0, wallMs: 0, runMs: 0, waitMs: 0, blockingWrites: 0 })
let c = zero()
let on = false
const write = fs.write
const writeSync = fs.writeSync
fs.writeSync = function (...a) {
  if (on) c.blockingWrites++
  return writeSync.apply(this, a)
}
fs.write = function (...a) {
  if (!on) return write.apply(this, a)
  const t = performance.now()
  const [r0, q0] = sched()
  try {
    return write.apply(this, a)
  } finally {
    const [r1, q1] = sched()
    c.poolWrites++
    c.poolBytes += a[1]?.byteLength ?? 0
    c.wallMs += performance.now() - t
    c.runMs += (r1 - r0) / 1e6
    c.waitMs += (q1 - q0) / 1e6
  }
}
syncBuiltinESMExports()
process.on('SIGUSR2', () => {
  if (on) {
    const r = (x) => Math.round(x * 100) / 100
    const per = (x) => (c.poolWrites > 0 ? r(x / c.poolWrites) : 0)
    fs.appendFileSync(
      `/tmp/wal-dispatch-trace-${process.pid}.txt`,
      `pool writes ${c.poolWrites} (${r(c.poolBytes / 1024)} KiB), blocking writes ${c.blockingWrites}; inside fs.write ` +
        `per pool write: wall ${per(c.wallMs)} ms, on a core ${per(c.runMs)} ms, waiting for a core ${per(c.waitMs)} ms\n`,
    )
  }
  on = !on
  c = zero()
})
