/**
 * Watch fan-out, side by side with etcd 3.4 on the same machine: events per second delivered to 1, 100 and 10,000
 * watchers on one stream and to 1,000 streams of one watcher, and put throughput while 10,000 watchers follow against
 * none (issue 17's targets: at least etcd's delivery rate; puts with 10,000 watchers within 10% of puts without).
 *
 * Both servers are driven through the same door: the JSON gateway's WebSocket watch (`GET /v3/watch` upgraded; etcd
 * 3.4 serves it through its grpc-websocket-proxy), one text frame per request and per response, and puts through
 * `POST /v3/kv/put` from closed-loop writers on keep-alive connections. In the delivery rows every watcher watches the
 * one key the writers put, so each put is one event per watcher (one message per watcher, as etcd sends it). Two
 * delivery rows use the gRPC Watch stream instead (etcd's native door; the client is ConnectRPC's, which decodes
 * every message: at 10,000 watchers the bench process may be the ceiling, see "gen cpu").
 *
 * Put throughput while 10,000 watchers follow comes in two shapes:
 * - all match: 10,000 watchers on the one key every put writes (16 writers). Each put is 10,000 messages (~2.5 MB):
 *   bound by bytes on one socket for any server, so it says little about the server's matching cost.
 * - etcd's own `benchmark watch` shape (etcd tools/benchmark/cmd/watch.go: streams x watchers-per-stream watchers on
 *   keys drawn from a key set, puts to those keys): 100 streams x 100 watchers, each on its own key (or its own
 *   arbitrary [start, end) range, or its own prefix), 64 writers putting to those 10,000 keys in turn, so each put
 *   reaches its one watcher. Compared with 64 writers putting to the same keys with no watcher.
 *
 * The watchers run in their own process (bench/lib/watch-followers.ts), not the writers': they are remote clients in
 * reality, and in the writers' process their sockets and counting took event-loop turns from the writers' next
 * requests, against either server. Every event is still received and counted there.
 *
 *   npm run bench -- watch [--etcd] [--quick] [--seconds 3] [--writers 4] [--rows 1x1,... | gRPC] [--cpu-prof dir]
 *                          [--rounds 5] [--watchers process|inline]
 *
 *   --etcd      also run every scenario against etcd (/usr/bin/etcd, default flags) and print edgecd/etcd
 *   --quick     smoke: 1, 10 and 100 watchers, 10 streams, 100 following (10 streams x 10 in etcd's shape), 0.5 s
 *   --seconds   how long the writers put per scenario (default 3); delivery is then awaited at most 10 s more
 *   --writers   concurrent writers of the delivery rows (default 4; 16 for all-match puts, 64 for etcd's shape)
 *   --rows      only these rows: ids, comma-separated: 1x0 (1x1's baseline: the same writers, no watcher), 1x1,
 *               1x100, 1x10000, 1000x1, grpc:1x100, grpc:1x10000, puts:one-key, puts:one-key-following, puts:keys,
 *               puts:keys-following, puts:ranges, puts:prefixes (--quick's sizes are smaller; the id names the full
 *               run's row); or else a regular expression the scenario names must match (case-insensitive), e.g.
 *               `gRPC`; a put row with watchers brings its baseline
 *   --cpu-prof  start the edgecd member under `node --cpu-prof` writing its profile into this directory
 *   --rounds    the put rows' sequence (baseline, row 1, baseline, row 2, ..., baseline) runs this many times
 *               (default 5, 1 with --quick); a row's ratio is the median of its rounds', all of them printed (session
 *               11: at load 5-11 single rounds spread 0.3-1.8 for both servers; resampling 12 rounds per row, the
 *               median of 5 narrows the 5-95% range of the median of 3 by about a third, docs/benchmarks.md)
 *   --watchers  process (default): the watchers in a child process of their own; inline: in the bench process, with
 *               the writers, as up to session 8
 *   --warmup-seconds  unmeasured puts (16 writers, one watcher) sent to each server before the rows (default 3, 0.3
 *               with --quick), as the http and grpc benches warm up: without it the first row measured the JIT
 *
 * edgecd runs with --max-watchers, --max-watchers-per-stream and --max-watch-streams raised to 100,000 (etcd has no
 * such limits). Events/s is what reached the client: events received over the time from the first put to the last
 * event received; "delivered" is the share of put × watchers that arrived before the deadline. The watch process
 * counts messages without parsing them (the gRPC rows' ConnectRPC client decodes them); the writers' CPU share is
 * printed ("gen cpu"): near 100% means the writers, not the server, were the ceiling; "bench + watchers µs/put" is
 * the client side's CPU per put.
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { type BenchServer, processCpuSecs, startEdgecd, startEtcd, treeCpuSecs } from './lib/servers.js'
import {
  type Counts,
  epochMs,
  Followers,
  keyAt,
  openWatchers,
  type WatchSpec,
  watchKey,
} from './lib/watch-followers.js'
import type { BenchOptions, BenchResult } from './types.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')

interface Scenario extends WatchSpec {
  /** Short name for --rows. */
  id: string
  name: string
  writers: number
  /** Distinct keys the writers put (1 for one-key). */
  keys: number
}

/** Put throughput with watchers against the same writers without: `following` / `none`. */
interface PutPair {
  label: string
  none: Scenario
  following: Scenario[]
}

interface Outcome {
  puts: number
  putsPerSec: number
  events: number
  eventsPerSec: number
  delivered: number
  genCpu: number
  /** The server's CPU (user + system, its process tree) per put over the writes and the delivery, in microseconds. */
  serverUsPerPut: number
  /** Puts per WAL sync over the scenario (etcd_disk_wal_fsync_duration_seconds_count of /metrics); NaN if absent. */
  putsPerSync: number
  /** Mean WAL sync time in milliseconds (etcd_disk_wal_fsync_duration_seconds sum / count). */
  syncMs: number
  /** How long the scenario waited for the server to drop the watchers of the one before (untilNoWatchers). */
  waitedMs: number
  /** The server's CPU per event delivered, in microseconds. */
  serverUsPerEvent: number
  /** Event messages the watch client got per put (counted from the watchers' creation on). */
  msgsPerPut: number
  /** The bench process's CPU per put (the writers; the watchers too with --watchers inline), in microseconds. */
  benchUsPerPut: number
  /** The watch process's CPU per put (--watchers process), in microseconds; NaN inline. */
  watchUsPerPut: number
  error?: string
}

function plan(opts: BenchOptions) {
  const { values } = parseArgs({
    args: opts.args,
    options: {
      etcd: { type: 'boolean' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      seconds: { type: 'string' },
      writers: { type: 'string' },
      rows: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'warmup-seconds': { type: 'string' },
      rounds: { type: 'string' },
      watchers: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  })
  const quick = opts.quick || values.quick === true
  const seconds = values.seconds ? Number(values.seconds) : quick ? 0.5 : 3
  if (!(seconds > 0 && seconds <= 120)) throw new Error(`--seconds: (0, 120], got ${values.seconds}`)
  const warmup = values['warmup-seconds'] ? Number(values['warmup-seconds']) : quick ? 0.3 : 3
  if (!(warmup >= 0 && warmup <= 600)) throw new Error(`--warmup-seconds: [0, 600], got ${values['warmup-seconds']}`)
  const rounds = values.rounds ? Number(values.rounds) : quick ? 1 : 5
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`--rounds: 1..50, got ${values.rounds}`)
  const watchersIn = values.watchers ?? 'process'
  if (watchersIn !== 'process' && watchersIn !== 'inline') {
    throw new Error(`--watchers: process or inline, got ${values.watchers}`)
  }
  const writers = values.writers ? Number(values.writers) : 4
  if (!Number.isInteger(writers) || writers < 1 || writers > 256) throw new Error(`--writers: 1..256, got ${writers}`)
  const [n1, n2, n3, streams, following] = quick ? [1, 10, 100, 10, 100] : [1, 100, 10_000, 1_000, 10_000]
  const fmt = (n: number) => n.toLocaleString('en-US')
  const one = { shape: 'one-key' as const, keys: 1 }
  const allDelivery: Scenario[] = [
    // The 1x1 row's own baseline: the same writers with no watcher (is a gap the watcher's or the put path's?).
    { id: '1x0', name: `no watcher (puts alone)`, streams: 0, watchersPerStream: 0, writers, ...one },
    {
      id: '1x1',
      name: `1 stream x ${fmt(n1)} watcher${n1 === 1 ? '' : 's'}`,
      streams: 1,
      watchersPerStream: n1,
      writers,
      ...one,
    },
    { id: '1x100', name: `1 stream x ${fmt(n2)} watchers`, streams: 1, watchersPerStream: n2, writers, ...one },
    { id: '1x10000', name: `1 stream x ${fmt(n3)} watchers`, streams: 1, watchersPerStream: n3, writers, ...one },
    { id: '1000x1', name: `${fmt(streams)} streams x 1 watcher`, streams, watchersPerStream: 1, writers, ...one },
    {
      id: 'grpc:1x100',
      name: `gRPC: 1 stream x ${fmt(n2)} watchers`,
      streams: 1,
      watchersPerStream: n2,
      writers,
      ...one,
      grpc: true,
    },
    {
      id: 'grpc:1x10000',
      name: `gRPC: 1 stream x ${fmt(n3)} watchers`,
      streams: 1,
      watchersPerStream: n3,
      writers,
      ...one,
      grpc: true,
    },
  ]
  const putWriters = values.writers ? writers : 16
  // etcd's benchmark watch shape: streams x watchers per stream, one key (range, prefix) each, 64 writers.
  const [ks, kw, kWriters] = quick ? [10, 10, 8] : [100, 100, 64]
  const keyed = { streams: ks, watchersPerStream: kw, writers: kWriters, keys: ks * kw }
  const kn = fmt(ks * kw)
  const allPuts: PutPair[] = [
    {
      label: `all match (${putWriters} writers, one key)`,
      none: {
        id: 'puts:one-key',
        name: `puts, no watchers, one key`,
        streams: 0,
        watchersPerStream: 0,
        writers: putWriters,
        ...one,
      },
      following: [
        {
          id: 'puts:one-key-following',
          name: `puts, ${fmt(following)} watchers on the key (bytes-bound)`,
          streams: 1,
          watchersPerStream: following,
          writers: putWriters,
          ...one,
        },
      ],
    },
    {
      label: `etcd's benchmark watch shape (${kWriters} writers, ${kn} keys, ${ks} streams x ${kw})`,
      none: {
        id: 'puts:keys',
        name: `puts, no watchers, ${kn} keys`,
        ...keyed,
        streams: 0,
        watchersPerStream: 0,
        shape: 'keys',
      },
      following: [
        { id: 'puts:keys-following', name: `puts, ${kn} watchers on distinct keys`, ...keyed, shape: 'keys' },
        { id: 'puts:ranges', name: `puts, ${kn} watchers on distinct ranges`, ...keyed, shape: 'ranges' },
        { id: 'puts:prefixes', name: `puts, ${kn} watchers on distinct prefixes`, ...keyed, shape: 'prefixes' },
      ],
    },
  ]
  const ids = [...allDelivery, ...allPuts.flatMap((pair) => [pair.none, ...pair.following])].map((sc) => sc.id)
  const want = values.rows?.split(',').map((r) => r.trim())
  // Known ids pick rows by id; anything else is a regular expression on the scenario names.
  const byName =
    values.rows !== undefined && !want!.every((r) => ids.includes(r)) ? new RegExp(values.rows, 'i') : undefined
  const picked = (sc: Scenario) => want === undefined || (byName ? byName.test(sc.name) : want.includes(sc.id))
  const delivery = allDelivery.filter(picked)
  // A put row with watchers needs its baseline; a baseline asked for alone runs alone.
  const puts = allPuts
    .map((pair) => ({ ...pair, following: pair.following.filter(picked) }))
    .filter((pair) => pair.following.length > 0 || picked(pair.none))
  return {
    etcd: values.etcd === true,
    seconds,
    delivery,
    puts,
    json: values.json === true,
    cpuProf: values['cpu-prof'],
    warmup,
    rounds,
    inline: watchersIn === 'inline',
  }
}

/** A sample of the server's /metrics (the first series of that name); NaN if absent. */
async function metric(url: string, name: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text()
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
    return m ? Number(m[1]) : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** WAL syncs so far (etcd_disk_wal_fsync_duration_seconds_count, edgecd and etcd alike). */
const walSyncs = (url: string) => metric(url, 'etcd_disk_wal_fsync_duration_seconds_count')

/**
 * Waits (at most 60 s) until the server has no watcher left from an earlier scenario (etcd_debugging_mvcc_watcher_total,
 * edgecd and etcd alike): a scenario starts on an idle server, not after a fixed pause. Returns the milliseconds waited.
 */
async function untilNoWatchers(url: string): Promise<number> {
  const t0 = performance.now()
  while (performance.now() - t0 < 60_000) {
    const n = await metric(url, 'etcd_debugging_mvcc_watcher_total')
    if (!(n > 0)) break
    await new Promise((r) => setTimeout(r, 20))
  }
  return performance.now() - t0
}

/**
 * One scenario on one server: opens its watchers (in the watch process `side`, or in this process when it is
 * undefined), runs the closed-loop writers for `seconds`, then waits for every event (at most 10 s more).
 */
async function runScenario(
  server: BenchServer,
  s: Scenario,
  seconds: number,
  side: Followers | undefined,
): Promise<Outcome> {
  const url = server.url
  const waitedMs = await untilNoWatchers(url)
  const watchers = s.streams * s.watchersPerStream
  const open = watchers === 0 ? undefined : side ? await side.open(url, s) : await openWatchers(url, s)
  const counts = async (): Promise<Counts> => (open ? await open.counts() : { events: 0, messages: 0, lastEventAt: 0 })
  // Events each put makes: every watcher for one-key, the one watcher of its key otherwise.
  const perPut = s.shape === 'one-key' ? watchers : Math.min(watchers, 1)
  const pool = new Pool(url, { connections: s.writers, pipelining: 1 })
  const value = b64('x'.repeat(64))
  const bodies =
    s.shape === 'one-key'
      ? [JSON.stringify({ key: watchKey, value })]
      : Array.from({ length: s.keys }, (_, i) => JSON.stringify({ key: b64(keyAt(i)), value }))
  let next = 0
  let puts = 0
  let error: string | undefined
  const syncs0 = await walSyncs(url)
  const syncSecs0 = await metric(url, 'etcd_disk_wal_fsync_duration_seconds_sum')
  // Event messages the client got (a client pays per message: issue 17, docs/benchmarks.md), from here on.
  const counts0 = await counts()
  const cpu0 = process.cpuUsage()
  const serverCpu0 = treeCpuSecs(server.pid)
  const sideCpu0 = side ? processCpuSecs(side.pid) : Number.NaN
  const t0 = performance.now()
  const t0Epoch = epochMs()
  const tEnd = t0 + seconds * 1000
  try {
    await Promise.all(
      Array.from({ length: s.writers }, async () => {
        while (performance.now() < tEnd) {
          try {
            const body = bodies[next++ % bodies.length]!
            const res = await pool.request({ path: '/v3/kv/put', method: 'POST', body })
            await res.body.dump()
            if (res.statusCode === 200) puts++
            else error ??= `HTTP ${res.statusCode}`
          } catch (err) {
            error ??= String((err as Error).message)
            await new Promise((r) => setTimeout(r, 5))
          }
        }
      }),
    )
    const tWrites = performance.now()
    // Delivery may trail the writes: wait for every event, at most 10 s.
    const drainEnd = tWrites + 10_000
    let c = await counts()
    while (c.events - counts0.events < puts * perPut && performance.now() < drainEnd) {
      await new Promise((r) => setTimeout(r, 10))
      c = await counts()
    }
    const cpu = process.cpuUsage(cpu0)
    const serverCpu = treeCpuSecs(server.pid) - serverCpu0
    const sideCpu = side ? processCpuSecs(side.pid) - sideCpu0 : Number.NaN
    const wall = (performance.now() - t0) / 1000
    const syncs = (await walSyncs(url)) - syncs0
    const syncMs = (((await metric(url, 'etcd_disk_wal_fsync_duration_seconds_sum')) - syncSecs0) * 1000) / syncs
    const events = c.events - counts0.events
    const span = (events > 0 ? c.lastEventAt - t0Epoch : tWrites - t0) / 1000
    const perPutUs = (secs: number) => (puts === 0 ? 0 : (secs * 1e6) / puts)
    return {
      puts,
      putsPerSec: puts / ((tWrites - t0) / 1000),
      events,
      eventsPerSec: watchers === 0 ? 0 : events / span,
      delivered: watchers === 0 ? 1 : events / (puts * perPut),
      genCpu: (cpu.user + cpu.system) / 1e6 / wall,
      serverUsPerPut: perPutUs(serverCpu),
      putsPerSync: puts / syncs,
      syncMs,
      waitedMs,
      serverUsPerEvent: events === 0 ? 0 : (serverCpu * 1e6) / events,
      msgsPerPut: puts === 0 ? 0 : (c.messages - counts0.messages) / puts,
      benchUsPerPut: perPutUs((cpu.user + cpu.system) / 1e6),
      watchUsPerPut: watchers === 0 || !side ? Number.NaN : perPutUs(sideCpu),
      ...(error ? { error } : {}),
    }
  } finally {
    await pool.close()
    open?.close()
    // The next scenario waits until the server has dropped these watchers (untilNoWatchers).
  }
}

/** Round r's run of a put pair's baseline i: 0 before the round's first row with watchers, i after its i-th. */
const baselineKey = (none: Scenario, r: number, i: number) => `${none.name}#${r}.${i}`
/** Round r's run of a put row with watchers. */
const rowKey = (sc: Scenario, r: number) => `${sc.name}#${r}`
const n0 = (v: number) => Math.round(v).toLocaleString('en-US')
const pct = (v: number) => `${(v * 100).toFixed(v < 0.995 ? 1 : 0)}%`
const median = (xs: number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((x, y) => x - y)
  if (v.length === 0) return Number.NaN
  return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const p = plan(opts)
  const say = p.json ? (l: string) => console.error(l) : (l: string) => console.log(l)
  const servers: BenchServer[] = []
  const out = new Map<string, Map<string, Outcome>>()
  const load0 = loadavg()[0]!
  const loads: number[] = [load0]
  // The watchers' own process (one for both servers; scenarios run one at a time), unless --watchers inline.
  const side = p.inline ? undefined : await Followers.start()
  try {
    servers.push(
      await startEdgecd({
        serveArgs: ['--max-watchers=100000', '--max-watchers-per-stream=100000', '--max-watch-streams=100000'],
        // WATCH_MEMBER_NODE_ARGS: more node flags for the member, e.g. `--import <abs path>/bench/lib/socket-writes.mjs`.
        nodeArgs: [
          ...(p.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', p.cpuProf] : []),
          ...(process.env.WATCH_MEMBER_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? []),
        ],
      }),
    )
    if (p.etcd) servers.push(await startEtcd())
    // Unmeasured puts with a watcher on each server first, as the http and grpc benches do: otherwise the first rows
    // (1x1 above all) measure the member's JIT warming up (etcd, compiled ahead of time, has none).
    const warm: Scenario = {
      id: 'warmup',
      name: 'warm-up',
      streams: 1,
      watchersPerStream: 1,
      writers: 16,
      shape: 'one-key',
      keys: 1,
    }
    if (p.warmup > 0) for (const s of servers) await runScenario(s, warm, p.warmup, side)
    // Each put row with watchers is bracketed by its baseline, run right before and right after it on the same
    // server (baseline, row 1, baseline, row 2, baseline): its ratio is over the mean of the two next to it. One
    // baseline at the start measured every later row against a server that had since taken ~30,000 more revisions,
    // and against the host's speed of a minute before (it moves by tens of percent here). The whole sequence runs
    // --rounds times (default 5): a row's figure is the median of its rounds' ratios, and their range is printed.
    const steps: { sc: Scenario; key: string; round: number }[] = p.delivery.map((sc) => ({
      sc,
      key: sc.name,
      round: 0,
    }))
    for (let r = 0; r < p.rounds; r++) {
      for (const pair of p.puts) {
        steps.push({ sc: pair.none, key: baselineKey(pair.none, r, 0), round: r })
        pair.following.forEach((sc, i) => {
          steps.push({ sc, key: rowKey(sc, r), round: r })
          steps.push({ sc: pair.none, key: baselineKey(pair.none, r, i + 1), round: r })
        })
      }
    }
    for (const { sc, key, round } of steps) {
      for (const s of servers) {
        const o = await runScenario(s, sc, p.seconds, side)
        loads.push(loadavg()[0]!)
        if (!out.has(s.name)) out.set(s.name, new Map())
        out.get(s.name)!.set(key, o)
        const tag = p.rounds > 1 && sc.id.startsWith('puts:') ? ` r${round + 1}` : ''
        say(
          `  ${s.name.padEnd(7)} ${`${sc.name}${tag}`.padEnd(47)} ${n0(o.eventsPerSec).padStart(10)} events/s  ${n0(o.putsPerSec).padStart(7)} puts/s  ${n0(o.serverUsPerPut).padStart(5)} µs cpu/put${o.events > 0 ? ` ${o.serverUsPerEvent.toFixed(2).padStart(6)} µs cpu/event` : ''}  ${o.putsPerSync.toFixed(2)} puts/sync (${o.syncMs.toFixed(2)} ms)  delivered ${pct(o.delivered)}  bench ${n0(o.benchUsPerPut)}${Number.isNaN(o.watchUsPerPut) ? '' : ` + watchers ${n0(o.watchUsPerPut)}`} µs/put, gen cpu ${pct(o.genCpu)}${o.waitedMs > 1000 ? `  (waited ${(o.waitedMs / 1000).toFixed(1)} s for the last scenario's watchers to go)` : ''}${o.error ? `  (${o.error})` : ''}`,
        )
      }
    }
  } finally {
    for (const s of servers.reverse()) await s.stop()
    await side?.stop()
  }

  const names = [...out.keys()]
  const head = ['scenario']
  for (const n of names) head.push(`${n} events/s`, 'puts/s', 'delivered')
  if (names.includes('etcd')) head.push('edgecd/etcd')
  const rows: string[][] = []
  const results: BenchResult[] = []
  for (const sc of p.delivery) {
    const row = [sc.name]
    // The no-watcher baseline row is measured in puts/s.
    const alone = sc.streams === 0
    const rate = (o: Outcome) => (alone ? o.putsPerSec : o.eventsPerSec)
    for (const n of names) {
      const o = out.get(n)!.get(sc.name)!
      row.push(alone ? '-' : n0(o.eventsPerSec), n0(o.putsPerSec), alone ? '-' : pct(o.delivered))
      results.push({
        name: `${n} ${sc.name}`,
        value: Math.round(rate(o)),
        unit: alone ? 'puts/s' : 'events/s',
        note: `${n0(o.putsPerSec)} puts/s, ${pct(o.delivered)} delivered, generator ${pct(o.genCpu)} cpu${alone ? '' : `, ${o.msgsPerPut.toFixed(1)} msgs/put`}`,
      })
    }
    if (names.includes('etcd')) {
      const r = rate(out.get('edgecd')!.get(sc.name)!) / rate(out.get('etcd')!.get(sc.name)!)
      row.push(r.toFixed(2))
      const unit = alone ? 'puts/s' : 'events/s'
      results.push({ name: `edgecd/etcd ${sc.name}`, value: Number(r.toFixed(2)), unit: 'x', note: unit })
    }
    rows.push(row)
  }
  // The put rows: medians over the rounds (every baseline run of the pair for the baseline).
  const roundsOf = (n: string, keys: string[]) => keys.map((k) => out.get(n)!.get(k)!)
  const putRows = p.puts.flatMap((pair) => [
    ...pair.following.map((sc) => ({ sc, keys: Array.from({ length: p.rounds }, (_, r) => rowKey(sc, r)) })),
    {
      sc: { ...pair.none, name: `${pair.none.name} (all its runs)` },
      keys: Array.from({ length: p.rounds }, (_, r) =>
        Array.from({ length: Math.max(1, pair.following.length + (pair.following.length > 0 ? 1 : 0)) }, (_, i) =>
          baselineKey(pair.none, r, i),
        ),
      ).flat(),
    },
  ])
  for (const { sc, keys } of putRows) {
    const row = [sc.name]
    for (const n of names) {
      const os = roundsOf(n, keys)
      const put = median(os.map((o) => o.putsPerSec))
      row.push(
        sc.streams === 0 ? '-' : n0(median(os.map((o) => o.eventsPerSec))),
        n0(put),
        sc.streams === 0 ? '-' : pct(Math.min(...os.map((o) => o.delivered))),
      )
      results.push({ name: `${n} ${sc.name}`, value: Math.round(put), unit: 'puts/s', note: `median of ${os.length}` })
    }
    if (names.includes('etcd')) {
      const r =
        median(roundsOf('edgecd', keys).map((o) => o.putsPerSec)) /
        median(roundsOf('etcd', keys).map((o) => o.putsPerSec))
      row.push(r.toFixed(2))
    }
    rows.push(row)
  }
  // Puts with watchers over puts without, per server and round: the issue's target is >= 0.90 in etcd's shape.
  const ratioHead = [
    'puts with watchers / without',
    ...names.flatMap((n) => [`${n} median`, 'rounds', 'cpu/put', 'client cpu/put', 'sync ms']),
  ]
  const ratioRows: string[][] = []
  for (const pair of p.puts) {
    const bytesBound = pair.following[0]?.shape === 'one-key'
    for (const [i, sc] of pair.following.entries()) {
      const row = [`${sc.name.replace(/^puts, /, '')}${bytesBound ? '' : ' (target >= 0.90)'}`]
      for (const n of names) {
        const ratios: number[] = []
        const cpus: number[] = []
        const clients: number[] = []
        const syncs: number[] = []
        for (let r = 0; r < p.rounds; r++) {
          const w = out.get(n)!.get(rowKey(sc, r))!
          // The baselines right before and right after this row in this round.
          const before = out.get(n)!.get(baselineKey(pair.none, r, i))!
          const after = out.get(n)!.get(baselineKey(pair.none, r, i + 1))!
          const mean = (f: (o: Outcome) => number) => (f(before) + f(after)) / 2
          ratios.push(w.putsPerSec / mean((o) => o.putsPerSec))
          cpus.push(w.serverUsPerPut / mean((o) => o.serverUsPerPut))
          // The client side's CPU per put (writers, and the watchers wherever they run) with watchers over without.
          const client = (o: Outcome) => o.benchUsPerPut + (Number.isNaN(o.watchUsPerPut) ? 0 : o.watchUsPerPut)
          clients.push(client(w) / mean((o) => o.benchUsPerPut))
          // The mean WAL sync time with watchers over without: the rows' puts/s follows it (~20 puts per sync).
          syncs.push(w.syncMs / mean((o) => o.syncMs))
        }
        const m = median(ratios)
        row.push(
          m.toFixed(2),
          ratios.map((x) => x.toFixed(2)).join(' '),
          median(cpus).toFixed(2),
          median(clients).toFixed(2),
          median(syncs).toFixed(2),
        )
        results.push({
          name: `${n} ${sc.name} / without`,
          value: Number(m.toFixed(2)),
          unit: 'x',
          note: `${bytesBound ? 'all match: bound by bytes on one socket' : `${pair.label}; target >= 0.90`}; median of ${p.rounds} rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}`,
        })
      }
      ratioRows.push(row)
    }
  }
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) => r.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ')
  const where = p.inline ? 'in the bench process with the writers' : "in their own process, not the writers'"
  say('')
  say([line(head), line(widths.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n'))
  say('(events/s: events that reached the client over first put .. last event; delivered: share of puts x watchers')
  say(
    ` that arrived within 10 s of the last put; WebSocket watch through the JSON gateway on both (gRPC rows: the gRPC`,
  )
  say(
    ` Watch stream); watchers ${where}; ${p.seconds} s of puts per scenario; put rows: median of ${p.rounds} round${p.rounds === 1 ? '' : 's'};`,
  )
  say(
    ` load average before ${load0.toFixed(2)}, during ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)}, after ${loadavg()[0]!.toFixed(2)})`,
  )
  say('')
  if (ratioRows.length > 0) {
    const rw = ratioHead.map((h, c) => Math.max(h.length, ...ratioRows.map((r) => r[c]!.length)))
    const rline = (r: string[]) => r.map((s, c) => (c === 0 ? s.padEnd(rw[c]!) : s.padStart(rw[c]!))).join('  ')
    say([rline(ratioHead), rline(rw.map((x) => '-'.repeat(x))), ...ratioRows.map(rline)].join('\n'))
    for (const pair of p.puts) say(`  ${pair.none.name}: ${pair.label}`)
    say('(all match: every put is one message per watcher, ~2.5 MB per put to 10,000 watchers on one socket: bound by')
    say(" bytes for any server; etcd's shape: each put reaches its one watcher, the cost of matching and delivery;")
    say(' without: the mean of the baseline runs right before and right after the row in the same round, same server;')
    say(" median: of the rounds' ratios, listed under rounds (their spread is the noise of this run);")
    say(" cpu/put: the server's CPU per put with watchers over without, writes and delivery together: less noisy than")
    say(" puts/s when other processes share the cores; client cpu/put: the same for the bench's writers plus watchers;")
    say(" sync ms: the mean WAL sync time (etcd_disk_wal_fsync_duration_seconds; edgecd's is the whole save, its")
    say(" write, fsync and the wait for its callback) with watchers over without: in etcd's shape ~20 puts share a")
    say(' sync and puts/s x sync ms stays near constant, so a round whose syncs were slower falls with them)')
    say('')
  }
  return results
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  await run({ quick: args.includes('--quick'), args })
}
