/**
 * Socket writes of a Node server, counted by kind: an `--import` preload for the member, and the report of its log.
 *
 *   WATCH_MEMBER_NODE_ARGS="--import $PWD/bench/lib/socket-writes.mjs" SOCKET_WRITES_OUT=/tmp/w.log \
 *     npm run bench -- watch --rows puts:keys-following --rounds 1
 *   node bench/lib/socket-writes.mjs /tmp/w.log
 *
 * As a preload it wraps net.Socket's _write and _writev (one call = one write or writev syscall attempt of the
 * stream, corked chunks together) and appends the running totals to SOCKET_WRITES_OUT every 500 ms. A socket with
 * an HTTP parser attached is `http` (request/response sockets), one without is `ws` (upgraded WebSockets: the watch
 * streams; a single member has no peer sockets); with them the process's user and system CPU. Run as a script on that
 * log, it prints each interval's calls, chunks (frames or response pieces) per call, bytes per chunk, and the user and
 * system CPU per HTTP write (in the put rows one HTTP write is one put's response, so: CPU per put), and the CPU and
 * wall time of a ws write call (the syscall with what the kernel does in it: on loopback, the reader's receive too). Issue 17 (docs/benchmarks.md, Watch, "Session 9").
 * Then totals per put over the busy intervals with watch writes (the rows) and without (the baselines): ws writes,
 * frames per write, ws wall and CPU, the member's CPU and its main thread's GC pauses (session 11).
 */
import fs from 'node:fs'
import net from 'node:net'
import { PerformanceObserver } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

if (process.argv[1] === fileURLToPath(import.meta.url)) report(process.argv[2])
else preload()

function preload() {
  const out = process.env.SOCKET_WRITES_OUT
  if (!out) return
  // [calls, chunks, bytes] per kind
  const st = { ws: [0, 0, 0], http: [0, 0, 0] }
  const P = net.Socket.prototype
  const writev = P._writev
  const write = P._write
  // The ws writes' own time, wall and CPU (getrusage around the call; ws writes only: they are few).
  st.wsWallUs = 0
  st.wsCpuUs = 0
  st.httpTimed = 0
  st.httpCpuUs = 0
  st.httpWallUs = 0
  // Garbage collection on the main thread (pauses, µs), from the gc performance entries.
  st.gcUs = 0
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) st.gcUs += e.duration * 1000
  }).observe({ entryTypes: ['gc'] })
  P._writev = function (chunks, cb) {
    const ws = !this.parser
    const a = st[ws ? 'ws' : 'http']
    a[0]++
    a[1] += chunks.length
    for (const c of chunks) a[2] += c.chunk.length
    // Every 8th HTTP write is timed as well (there is one per put), counted in httpTimed.
    if (!ws && a[0] % 8 !== 0) return writev.call(this, chunks, cb)
    const w0 = performance.now()
    const c0 = process.cpuUsage()
    try {
      return writev.call(this, chunks, cb)
    } finally {
      const c = process.cpuUsage(c0)
      const wall = (performance.now() - w0) * 1000
      if (ws) {
        st.wsCpuUs += c.user + c.system
        st.wsWallUs += wall
      } else {
        st.httpTimed++
        st.httpCpuUs += c.user + c.system
        st.httpWallUs += wall
      }
    }
  }
  P._write = function (chunk, encoding, cb) {
    const a = st[this.parser ? 'http' : 'ws']
    a[0]++
    a[1]++
    a[2] += chunk.length ?? 0
    return write.call(this, chunk, encoding, cb)
  }
  const t0 = performance.now()
  setInterval(() => {
    const c = process.cpuUsage()
    fs.appendFileSync(
      out,
      `${((performance.now() - t0) / 1000).toFixed(1)} ${JSON.stringify({ ...st, user: c.user, system: c.system })}\n`,
    )
  }, 500).unref()
}

function report(file) {
  const rows = fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const i = l.indexOf(' ')
      return [Number(l.slice(0, i)), JSON.parse(l.slice(i + 1))]
    })
  console.log(
    't s    ws calls  frames/call  B/frame  ws cpu µs/call  ws wall µs/call   http calls  chunks/call  B/chunk  user µs/resp  sys µs/resp  http cpu µs/call  http wall µs/call',
  )
  // Totals per put (one HTTP write = one put's answer) over the busy intervals (at least 100 puts) with watch writes
  // (the rows with watchers) and without (the baselines): the counts that the host's load does not move (session 11).
  const tot = { with: [0, 0, 0, 0, 0, 0, 0], without: [0, 0, 0, 0, 0, 0, 0] }
  for (let r = 1; r < rows.length; r++) {
    const [t, s] = rows[r]
    const p = rows[r - 1][1]
    const d = (k) => s[k].map((v, i) => v - p[k][i])
    const w = d('ws')
    const h = d('http')
    // A row's intervals write several frames per watch write (~20 watchers per apply batch); the warm-up's one
    // watcher writes one: left out (a cold JIT), as are intervals with a few frames (a row's start or end).
    if (h[0] >= 100 && (w[0] === 0 || w[1] >= 4 * w[0])) {
      const a = tot[w[0] > 0 ? 'with' : 'without']
      a[0] += h[0]
      a[1] += w[0]
      a[2] += w[1]
      a[3] += s.wsWallUs - p.wsWallUs
      a[4] += s.wsCpuUs - p.wsCpuUs
      a[5] += s.user - p.user + s.system - p.system
      a[6] += (s.gcUs ?? 0) - (p.gcUs ?? 0)
    }
    if (w[0] + h[0] === 0) continue
    const per = (a, b) => (b > 0 ? (a / b).toFixed(1) : '-')
    console.log(
      `${t.toFixed(1).padStart(5)} ${String(w[0]).padStart(9)} ${per(w[1], w[0]).padStart(12)} ${per(w[2], w[1]).padStart(8)}` +
        ` ${per(s.wsCpuUs - p.wsCpuUs, w[0]).padStart(15)} ${per(s.wsWallUs - p.wsWallUs, w[0]).padStart(16)}` +
        ` ${String(h[0]).padStart(12)} ${per(h[1], h[0]).padStart(12)} ${per(h[2], h[1]).padStart(8)}` +
        ` ${per(s.user - p.user, h[0]).padStart(13)} ${per(s.system - p.system, h[0]).padStart(12)}` +
        ` ${per(s.httpCpuUs - p.httpCpuUs, s.httpTimed - p.httpTimed).padStart(16)}` +
        ` ${per(s.httpWallUs - p.httpWallUs, s.httpTimed - p.httpTimed).padStart(17)}`,
    )
  }
  for (const [k, a] of Object.entries(tot)) {
    if (a[0] === 0) continue
    console.log(
      `per put, intervals ${k} watch writes: ${a[0]} puts, ws writes/put ${(a[1] / a[0]).toFixed(4)},` +
        ` frames/write ${(a[2] / Math.max(1, a[1])).toFixed(1)}, ws wall µs/put ${(a[3] / a[0]).toFixed(1)},` +
        ` ws cpu µs/put ${(a[4] / a[0]).toFixed(1)}, member cpu µs/put ${(a[5] / a[0]).toFixed(1)},` +
        ` gc µs/put ${(a[6] / a[0]).toFixed(1)}`,
    )
  }
}
