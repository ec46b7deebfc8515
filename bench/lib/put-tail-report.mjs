/**
 * Attributes the slowest 1-client puts of a put-driver run (PUT_DRIVER_TRACE, with bench/lib/put-tail-trace.mjs in
 * the member) to what happened in their window: prints, per phase, its median over all calls against its mean over
 * the calls above the run's p99 (the "excess" is where the tail's extra time went), then each slow call's cause by
 * these rules, first match wins:
 *
 *   member GC       a GC pause in the member overlapping the call, at least half the call's excess
 *   generator GC    the same in the driver
 *   member timer    timer callbacks in the member during the call, together at least half the excess
 *   pool write      the put's WAL write went through the thread pool (the gate did not block), or a pool write (the
 *                   zero fill, a batch) was in flight during the call
 *   otherwise       the phase with the largest excess over its own median: the disk's sync, the member's wait for a
 *                   core after the sync, the member's work before / after the sync, the answer's frames (respond ->
 *                   trailers), the request's way in (driver send -> member 'stream') split into the member's wait for
 *                   a core and the rest, the answer's way out (trailers -> driver has it) split into the driver's
 *                   wait for a core and the rest (the trailers' flush, loopback, the driver's own work)
 *
 * and the server's own WAL sync histogram (etcd_disk_wal_fsync_duration_seconds over the run: edgecd's blocking
 * write, etcd's fdatasync). A run without a member trace (etcd) prints the client percentiles and the histogram only.
 *
 *   node bench/lib/put-tail-report.mjs /tmp/drv-edgecd.json /tmp/drv-etcd.json ...   [--top 0.01 | --above <µs>]
 *
 * --above attributes every call above a fixed latency (e.g. etcd's p95 in the paired run) rather than the top 1%.
 */

import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
let top = 0.01
/** --above <µs>: attribute the calls above this latency instead of the run's own top fraction. */
let above = Number.NaN
const files = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i])
  else if (args[i] === '--above') above = Number(args[++i])
  else files.push(args[i])
}

const q = (xs, p) => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]
}
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-')
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-')

function histogramLine(h0, h1) {
  if (!h1 || h1.length === 0) return '  sync histogram: none'
  const d = h1.map(([le, c], i) => [le ?? Number.POSITIVE_INFINITY, c - (h0[i]?.[1] ?? 0)])
  const total = d[d.length - 1][1]
  const above = (s) => {
    const b = d.find(([le]) => le >= s)
    return b ? total - b[1] : 0
  }
  const pct = (n) => `${((100 * n) / Math.max(1, total)).toFixed(2)}%`
  return `  server's sync histogram: ${total} syncs; above 1 ms ${pct(above(0.001))}, above 2 ms ${pct(above(0.002))}, above 4 ms ${pct(above(0.004))}, above 8 ms ${pct(above(0.008))}`
}

const overlap = (a0, a1, b0, b1) => Math.max(0, Math.min(a1, b1) - Math.max(a0, b0))

const totals = new Map()
for (const file of files) {
  const t = JSON.parse(readFileSync(file, 'utf8'))
  const lat = t.calls.map((c) => c[1] - c[0])
  const p99 = Number.isFinite(above) ? above : q(lat, 1 - top)
  const med = q(lat, 0.5)
  const mean = lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)
  console.log(
    `${file}: ${t.which}, ${t.calls.length} calls, load ${f2(t.load)}; client µs mean ${f0(mean)} p50 ${f0(med)} p75 ${f0(q(lat, 0.75))} p90 ${f0(q(lat, 0.9))} p95 ${f0(q(lat, 0.95))} p99 ${f0(q(lat, 0.99))} p99.9 ${f0(q(lat, 0.999))}; ` +
      `time above p50 per call ${f0(lat.reduce((a, b) => a + Math.max(0, b - med), 0) / Math.max(1, lat.length))} µs`,
  )
  console.log(histogramLine(t.hist0, t.hist1))
  const dw = t.calls.map((c) => c[3] - c[2])
  console.log(`  driver run-queue wait per call µs p50 ${f0(q(dw, 0.5))} p99 ${f0(q(dw, 0.99))}`)
  const m = t.member
  if (!m) {
    // No member trace (etcd): only the driver's side of the slow calls can be told apart.
    const slowT = t.calls.filter((c) => c[1] - c[0] > p99)
    const by = new Map()
    for (const c of slowT) {
      const excess = c[1] - c[0] - med
      const dgc = t.driverGcs.reduce((a, [gs, gd]) => a + overlap(c[0], c[1], gs, gs + gd), 0)
      const k =
        dgc >= excess / 2
          ? 'generator GC'
          : c[3] - c[2] >= excess / 2
            ? 'generator: wait for a core'
            : 'the server and the way in / out'
      const x = by.get(k) ?? { n: 0, us: 0 }
      x.n++
      x.us += excess
      by.set(k, x)
    }
    const all = [...by.values()].reduce((a, x) => a + x.us, 0)
    console.log(
      `  ${slowT.length} calls above ${f0(p99)} µs (their time above the p50: ${f0(all / Math.max(1, t.calls.length))} µs per call of the run):`,
    )
    for (const [k, x] of [...by].sort((a, b) => b[1].n - a[1].n))
      console.log(
        `    ${k.padEnd(40)} ${String(x.n).padStart(4)} (${((100 * x.n) / Math.max(1, slowT.length)).toFixed(0)}%) ${f0(x.us / 1000).padStart(5)} ms (${((100 * x.us) / Math.max(1, all)).toFixed(0)}%)`,
      )
    continue
  }

  // Match each client call with the member call whose 'stream' falls inside it (one client: calls are sequential).
  const mc = m.calls
  let j = 0
  const rows = []
  for (let i = 0; i < t.calls.length; i++) {
    const [s, e] = t.calls[i]
    while (j < mc.length && mc[j][0] < s) j++
    const c = j < mc.length && mc[j][0] <= e ? mc[j] : undefined
    const prev = j > 0 ? mc[j - 1] : undefined
    if (!c) {
      rows.push({ i, s, e, lat: e - s, c: undefined })
      continue
    }
    const blocking = c[1] > 0 && c[2] > 0
    const wakeWait = blocking ? c[8] - c[7] : Number.NaN
    const memberWaitIn = prev && prev[9] > 0 ? c[6] - prev[9] : Number.NaN
    const memberWaitOther = blocking && c[9] > 0 ? c[7] - c[6] + (c[9] - c[8]) : Number.NaN
    const driverWait = t.calls[i][3] - t.calls[i][2]
    // The driver's wait for a core is counted in the answer's way out (it sleeps until the answer comes), the
    // member's wait before reading the request in the way in; what is left of each is the other side's work,
    // loopback and (on the way out) the trailers' flush.
    const ph = {
      'request in: the member waits for a core': memberWaitIn,
      'request in: the rest (driver, loopback)': c[0] - s - (Number.isFinite(memberWaitIn) ? memberWaitIn : 0),
      'member before the sync': blocking ? c[1] - c[0] : Number.NaN,
      'sync: disk': blocking ? c[2] - c[1] - wakeWait : Number.NaN,
      'sync: wait for a core after it': wakeWait,
      'member after the sync -> respond': blocking ? c[3] - c[2] : Number.NaN,
      'answer frames (respond -> trailers)': c[5] > 0 && c[3] > 0 ? c[5] - c[3] : Number.NaN,
      'answer out: the driver waits for a core': driverWait,
      'answer out: the rest (flush, loopback, driver)': c[5] > 0 ? e - c[5] - driverWait : Number.NaN,
    }
    rows.push({
      i,
      s,
      e,
      lat: e - s,
      c,
      blocking,
      ph,
      memberWaitIn,
      memberWaitOther,
      driverWait,
    })
  }
  const names = Object.keys(rows.find((r) => r.ph)?.ph ?? {})
  const slow = rows.filter((r) => r.lat > p99)
  const medPh = Object.fromEntries(
    names.map((n) => [
      n,
      q(
        rows.filter((r) => r.ph && Number.isFinite(r.ph[n])).map((r) => r.ph[n]),
        0.5,
      ),
    ]),
  )
  console.log(
    `  ${slow.length} calls above ${Number.isFinite(above) ? 'the given' : `p${(100 * (1 - top)).toFixed(1)}`} (${f0(p99)} µs); phases, µs: median of all calls / mean of the slow ones`,
  )
  for (const n of names) {
    const v = slow.map((r) => r.ph?.[n]).filter((x) => Number.isFinite(x))
    console.log(
      `    ${n.padEnd(40)} ${f0(medPh[n]).padStart(6)} / ${f0(v.reduce((a, b) => a + b, 0) / Math.max(1, v.length)).padStart(6)}  (n ${v.length})`,
    )
  }
  const meanOf = (k, rs) => {
    const v = rs.map((r) => r[k]).filter((x) => Number.isFinite(x))
    return v.reduce((a, b) => a + b, 0) / Math.max(1, v.length)
  }
  console.log(
    `    member run-queue wait to read the request ${f0(q(rows.map((r) => r.memberWaitIn).filter(Number.isFinite), 0.5))} / ${f0(meanOf('memberWaitIn', slow))}; ` +
      `elsewhere in the call (not the sync) ${f0(q(rows.map((r) => r.memberWaitOther).filter(Number.isFinite), 0.5))} / ${f0(meanOf('memberWaitOther', slow))}; ` +
      `driver's ${f0(
        q(
          rows.map((r) => r.driverWait),
          0.5,
        ),
      )} / ${f0(meanOf('driverWait', slow))}`,
  )

  const causes = new Map()
  let excessNow = 0
  const add = (k, note) => {
    const x = causes.get(k) ?? { n: 0, us: 0, notes: [] }
    x.n++
    x.us += excessNow
    if (note && x.notes.length < 4) x.notes.push(note)
    causes.set(k, x)
    const tt = totals.get(t.which) ?? new Map()
    const y = tt.get(k) ?? { n: 0, us: 0 }
    y.n++
    y.us += excessNow
    tt.set(k, y)
    totals.set(t.which, tt)
  }
  for (const r of slow) {
    const excess = r.lat - med
    excessNow = excess
    const gc = m.gcs.reduce((a, [gs, gd]) => a + overlap(r.s, r.e, gs, gs + gd), 0)
    const dgc = t.driverGcs.reduce((a, [gs, gd]) => a + overlap(r.s, r.e, gs, gs + gd), 0)
    const tms = m.timers.filter(([ts, td]) => overlap(r.s, r.e, ts, ts + td) > 0)
    const tm = tms.reduce((a, [ts, td]) => a + overlap(r.s, r.e, ts, ts + td), 0)
    const pool = m.poolWrites.filter(([ps, pe]) => overlap(r.s, r.e, ps, pe || r.e) > 0)
    if (!r.c) add('no member call matched')
    else if (gc >= excess / 2) add('member GC', `${f0(gc)} µs GC in a ${f0(r.lat)} µs call`)
    else if (dgc >= excess / 2) add('generator GC', `${f0(dgc)} µs`)
    else if (tm >= excess / 2) add('member timer', tms.map(([, td, l]) => `${l} ${f0(td)} µs`).join(', '))
    else if (!r.blocking || pool.length > 0)
      add(
        r.blocking ? 'pool write in flight (fill, batch)' : 'WAL write through the pool',
        pool.map(([ps, pe, b]) => `${b} B ${f0(pe - ps)} µs`).join(', '),
      )
    else {
      let best = ''
      let bx = Number.NEGATIVE_INFINITY
      for (const n of names) {
        const x = r.ph[n] - medPh[n]
        if (Number.isFinite(x) && x > bx) {
          bx = x
          best = n
        }
      }
      add(best, `+${f0(bx)} µs of ${f0(r.lat)}`)
    }
  }
  const excessAll = [...causes.values()].reduce((a, x) => a + x.us, 0)
  console.log(
    `  causes of the ${slow.length} slowest calls (calls, share; their time above the p50, share of it; ${f0(excessAll / Math.max(1, t.calls.length))} µs per call of the run):`,
  )
  for (const [k, x] of [...causes].sort((a, b) => b[1].n - a[1].n))
    console.log(
      `    ${k.padEnd(40)} ${String(x.n).padStart(4)} (${((100 * x.n) / slow.length).toFixed(0)}%) ${f0(x.us / 1000).padStart(5)} ms (${((100 * x.us) / Math.max(1, excessAll)).toFixed(0)}%)  e.g. ${x.notes.join('; ')}`,
    )
  const syncs = rows.filter((r) => r.blocking).map((r) => r.ph['sync: disk'])
  const walls = rows.filter((r) => r.blocking).map((r) => r.c[2] - r.c[1])
  const pctAbove = (xs, us) => `${((100 * xs.filter((x) => x > us).length) / Math.max(1, xs.length)).toFixed(2)}%`
  console.log(
    `  blocking writes ${syncs.length}/${rows.length}; as the thread sees it (wall) µs p50 ${f0(q(walls, 0.5))} p99 ${f0(q(walls, 0.99))}, above 1 / 2 ms ${pctAbove(walls, 1000)} / ${pctAbove(walls, 2000)}; ` +
      `the disk's part (minus the wait for a core) p50 ${f0(q(syncs, 0.5))} p99 ${f0(q(syncs, 0.99))}, above 1 / 2 ms ${pctAbove(syncs, 1000)} / ${pctAbove(syncs, 2000)}`,
  )
  console.log(
    `  member events in the window: ${m.gcs.length} GCs (max ${f0(Math.max(0, ...m.gcs.map((g) => g[1])))} µs), ${m.timers.length} timer callbacks (${m.timers.filter((x) => x[1] >= 100).length} of 100 µs or more), ${m.poolWrites.length} pool writes, ${m.strayWrites.length} blocking writes outside a call`,
  )
}
if (files.length > 1) {
  console.log('totals of causes over the files:')
  for (const [w, tt] of totals) {
    const n = [...tt.values()].reduce((a, b) => a + b.n, 0)
    const us = [...tt.values()].reduce((a, b) => a + b.us, 0)
    for (const [k, v] of [...tt].sort((a, b) => b[1].us - a[1].us))
      console.log(
        `  ${w} ${k.padEnd(40)} ${String(v.n).padStart(4)} (${((100 * v.n) / n).toFixed(0)}%) ${f0(v.us / 1000).padStart(5)} ms above the p50 (${((100 * v.us) / Math.max(1, us)).toFixed(0)}%)`,
      )
  }
}
