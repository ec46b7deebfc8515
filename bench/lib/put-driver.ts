/**
 * A small closed-loop gRPC Put driver for A/B runs of two checkouts at the same time (same contention on a shared
 * machine): starts one member of the checkout it runs in (the working directory), sends 6,000 warm-up puts (64 in
 * flight) and 0.5 s of unmeasured calls with the run's own client count (as bench/grpc.ts's per-row warm-up: the
 * WAL write gate of src/runtime/node/file-ops.ts takes ~30 one-put saves to leave the batches' statistics), then
 * `clients` closed-loop callers for `seconds` over ceil(clients/16) HTTP/2 connections (pre-encoded Put frames,
 * 256-byte values over 1,000 keys, as bench/grpc.ts), and prints ops/s, the member's CPU per put (/proc), the mean
 * latency and p50/p75/p90/p95/p99/p99.9 (ms)
 * and puts per WAL write (etcd_disk_wal_fsync_duration_seconds_count) and the mean WAL sync as the server times it
 * (its _sum over its _count: edgecd's save, etcd's fdatasync). With `etcd` as third argument, Debian's etcd.
 * PUT_DRIVER_SCHED=1 adds per-thread scheduler counters per put for the server and the driver (bench/lib/sched-stats.ts).
 * PUT_DRIVER_TRACE=<file> writes every measured call's start and end (hrtime µs), the driver's own run-queue wait
 * around each call and its GC pauses, the server's WAL sync histogram before and after, and (with PUT_DRIVER_SIGNAL
 * and bench/lib/put-tail-trace.mjs preloaded in the member) the member's own per-call trace, for
 * bench/lib/put-tail-report.mjs.
 *
 *   (cd <before> && node --import tsx <after>/bench/lib/put-driver.ts 64 5) &
 *   node --import tsx bench/lib/put-driver.ts 64 5 & wait
 *
 * docs/benchmarks.md ("The put path, pared") has the runs made with it.
 */

import { existsSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs'
import { connect } from 'node:http2'
import { loadavg } from 'node:os'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { putCall } from './grpc-put.js'
import { schedReport, schedSnapshot } from './sched-stats.js'

const repo = process.cwd()
const { startEdgecd, startEtcd, processCpuSecs } = (await import(
  pathToFileURL(`${repo}/bench/lib/servers.ts`).href
)) as typeof import('./servers.js')
const n = Number(process.argv[2] ?? 64)
const secs = Number(process.argv[3] ?? 3)
const which = process.argv[4] ?? 'edgecd'

// PUT_DRIVER_NODE_ARGS: extra node flags for the member (space-separated), e.g. `--cpu-prof --cpu-prof-dir /tmp/p`.
const nodeArgs = process.env.PUT_DRIVER_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? []
// PUT_DRIVER_URL: a member already running (started by hand, e.g. under --trace-gc); its pid in PUT_DRIVER_PID.
const srv = process.env.PUT_DRIVER_URL
  ? { url: process.env.PUT_DRIVER_URL, pid: Number(process.env.PUT_DRIVER_PID), stop: async () => {} }
  : which === 'etcd'
    ? await startEtcd()
    : await startEdgecd(nodeArgs.length > 0 ? { nodeArgs } : {})
const address = new URL(srv.url).host

/** The member's user CPU seconds alone (/proc utime), to split the CPU per put into user and kernel time. */
function userCpuSecs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]) / 100
  } catch {
    return Number.NaN
  }
}

async function metric(name: string): Promise<number> {
  // NaN where the server has no /metrics over HTTP/1.1 (bench/lib/h2-floor.ts).
  const text = await fetch(`${srv.url}/metrics`).then(
    (r) => r.text(),
    () => '',
  )
  const line = text.split('\n').find((x) => x.startsWith(`${name} `))
  return line ? Number(line.split(' ')[1]) : Number.NaN
}

/** The server's `etcd_disk_wal_fsync_duration_seconds` buckets: upper bound (s) -> cumulative count. */
async function syncHistogram(): Promise<[number, number][]> {
  const text = await fetch(`${srv.url}/metrics`).then(
    (r) => r.text(),
    () => '',
  )
  const out: [number, number][] = []
  for (const l of text.split('\n')) {
    const m = /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="([^"]+)"\} (\S+)/.exec(l)
    if (m) out.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])])
  }
  return out
}

// PUT_DRIVER_TRACE: per-call trace (see the header).
const traceFile = process.env.PUT_DRIVER_TRACE
const hr = () => Number(process.hrtime.bigint()) / 1e3
const traceCalls: number[][] = []
const driverGcs: number[][] = []
let schedFd = -1
const schedBuf = Buffer.alloc(128)
/** This (the driver's) thread's run-queue wait so far, µs. */
function waitUs(): number {
  if (schedFd < 0) return 0
  const k = readSync(schedFd, schedBuf, 0, 128, 0)
  const f = schedBuf.toString('latin1', 0, k).split(' ')
  return Number(f[1]) / 1e3
}
if (traceFile) {
  try {
    schedFd = openSync('/proc/thread-self/schedstat', 'r')
  } catch {}
}

try {
  const sessions = Array.from({ length: Math.ceil(n / 16) }, () => connect(`http://${address}`))
  for (let i = 0; i < 6000; i += 64)
    await Promise.all(Array.from({ length: 64 }, (_, j) => putCall(sessions[0]!, i + j)))
  const warmEnd = performance.now() + 500
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      let x = w * 104729
      while (performance.now() < warmEnd) await putCall(sessions[w % sessions.length]!, x++)
    }),
  )
  const hist0 = traceFile ? await syncHistogram() : []
  const perfOffset = hr() - performance.now() * 1e3
  const gcObs = new PerformanceObserver((l) => {
    for (const e of l.getEntries())
      driverGcs.push([
        e.startTime * 1e3 + perfOffset,
        e.duration * 1e3,
        (e as { detail?: { kind?: number } }).detail?.kind ?? 0,
      ])
  })
  if (traceFile) gcObs.observe({ entryTypes: ['gc'] })
  const f0 = await metric('etcd_disk_wal_fsync_duration_seconds_count')
  const fs0 = await metric('etcd_disk_wal_fsync_duration_seconds_sum')
  if (process.env.PUT_DRIVER_SIGNAL) process.kill(srv.pid, 'SIGUSR2')
  const c0 = processCpuSecs(srv.pid)
  const u0 = userCpuSecs(srv.pid)
  const sched = process.env.PUT_DRIVER_SCHED === '1'
  const s0 = sched ? schedSnapshot(srv.pid) : undefined
  const d0 = sched ? schedSnapshot('self') : undefined
  const t0 = performance.now()
  const end = t0 + secs * 1000
  let ops = 0
  const lat: number[] = []
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      let x = w * 7919
      while (performance.now() < end) {
        const s = performance.now()
        if (traceFile) {
          const rec = [hr(), 0, waitUs(), 0]
          await putCall(sessions[w % sessions.length]!, x++)
          rec[1] = hr()
          rec[3] = waitUs()
          traceCalls.push(rec)
        } else await putCall(sessions[w % sessions.length]!, x++)
        lat.push(performance.now() - s)
        ops++
      }
    }),
  )
  const c1 = processCpuSecs(srv.pid)
  if (s0 && d0)
    console.log(
      `${schedReport(which, s0, schedSnapshot(srv.pid), ops)}\n${schedReport('driver', d0, schedSnapshot('self'), ops)}`,
    )
  const u1 = userCpuSecs(srv.pid)
  if (process.env.PUT_DRIVER_SIGNAL) process.kill(srv.pid, 'SIGUSR2')
  const t1 = performance.now()
  const f1 = await metric('etcd_disk_wal_fsync_duration_seconds_count')
  const fs1 = await metric('etcd_disk_wal_fsync_duration_seconds_sum')
  if (traceFile) {
    gcObs.disconnect()
    const hist1 = await syncHistogram()
    const memberFile = `/tmp/put-tail-trace-${srv.pid}.json`
    let member: unknown = null
    if (process.env.PUT_DRIVER_SIGNAL) {
      for (let i = 0; i < 100 && !existsSync(memberFile); i++) await new Promise((r) => setTimeout(r, 50))
      if (existsSync(memberFile)) member = JSON.parse(readFileSync(memberFile, 'utf8'))
    }
    writeFileSync(
      traceFile,
      JSON.stringify({ which, load: loadavg()[0], calls: traceCalls, driverGcs, hist0, hist1, member }),
    )
  }
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!.toFixed(2)
  const meanMs = lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length)
  console.log(
    `${which} n=${n} ops/s ${(ops / ((t1 - t0) / 1000)).toFixed(0)} cpu µs/put ${(((c1 - c0) * 1e6) / ops).toFixed(0)} (user ${(((u1 - u0) * 1e6) / ops).toFixed(0)}) ` +
      `mean ${meanMs.toFixed(3)} p50 ${q(0.5)} p75 ${q(0.75)} p90 ${q(0.9)} p95 ${q(0.95)} p99 ${q(0.99)} p99.9 ${q(0.999)} ms puts/fsync ${(ops / (f1 - f0)).toFixed(1)} fsync mean ${(((fs1 - fs0) / (f1 - f0)) * 1e3).toFixed(2)} ms load ${loadavg()[0]!.toFixed(1)}`,
  )
  for (const s of sessions) s.close()
} finally {
  await srv.stop()
}
