/**
 * Watch fan-out, side by side with etcd 3.4 on the same machine: events per second delivered to 1, 100 and 10,000
 * watchers on one stream and to 1,000 streams of one watcher, and put throughput while 10,000 watchers follow against
 * none (issue 17's targets: at least etcd's delivery rate; puts with 10,000 watchers within 10% of puts without).
 *
 * Both servers are driven through the same door: the JSON gateway's WebSocket watch (`GET /v3/watch` upgraded; etcd
 * 3.4 serves it through its grpc-websocket-proxy), one text frame per request and per response, and puts through
 * `POST /v3/kv/put` from closed-loop writers on keep-alive connections. Every watcher watches the one key the writers
 * put, so each put is one event per watcher (one message per watcher, as etcd sends it).
 *
 *   npm run bench -- watch [--etcd] [--quick] [--seconds 3] [--writers 4]
 *
 *   --etcd      also run every scenario against etcd (/usr/bin/etcd, default flags) and print edgecd/etcd
 *   --quick     smoke: 1, 10 and 100 watchers, 10 streams, 100 following, 0.5 s each
 *   --seconds   how long the writers put per scenario (default 3); delivery is then awaited at most 10 s more
 *   --writers   concurrent writers (default 4; 16 for the put-throughput pair)
 *
 * edgecd runs with --max-watchers, --max-watchers-per-stream and --max-watch-streams raised to 100,000 (etcd has no
 * such limits). Events/s is what reached the client: events received over the time from the first put to the last
 * event received; "delivered" is the share of put × watchers that arrived before the deadline. The bench process is
 * the client of both and counts messages without parsing them; its CPU share is printed ("gen cpu"): near 100% means
 * the client, not the server, was the ceiling.
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import WebSocket from 'ws'
import { type BenchServer, startEdgecd, startEtcd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')
const watchKey = b64('bench/watch/k')
const eventsMark = Buffer.from('"events"')
const createdMark = Buffer.from('"created":true')
const kvMark = Buffer.from('"kv":')

interface Scenario {
  name: string
  streams: number
  watchersPerStream: number
  writers: number
}

interface Outcome {
  puts: number
  putsPerSec: number
  events: number
  eventsPerSec: number
  delivered: number
  genCpu: number
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
    },
    strict: true,
    allowPositionals: false,
  })
  const quick = opts.quick || values.quick === true
  const seconds = values.seconds ? Number(values.seconds) : quick ? 0.5 : 3
  if (!(seconds > 0 && seconds <= 120)) throw new Error(`--seconds: (0, 120], got ${values.seconds}`)
  const writers = values.writers ? Number(values.writers) : 4
  if (!Number.isInteger(writers) || writers < 1 || writers > 256) throw new Error(`--writers: 1..256, got ${writers}`)
  const [n1, n2, n3, streams, following] = quick ? [1, 10, 100, 10, 100] : [1, 100, 10_000, 1_000, 10_000]
  const fmt = (n: number) => n.toLocaleString('en-US')
  const delivery: Scenario[] = [
    { name: `1 stream x ${fmt(n1)} watcher${n1 === 1 ? '' : 's'}`, streams: 1, watchersPerStream: n1, writers },
    { name: `1 stream x ${fmt(n2)} watchers`, streams: 1, watchersPerStream: n2, writers },
    { name: `1 stream x ${fmt(n3)} watchers`, streams: 1, watchersPerStream: n3, writers },
    { name: `${fmt(streams)} streams x 1 watcher`, streams, watchersPerStream: 1, writers },
  ]
  const putWriters = values.writers ? writers : 16
  const puts: Scenario[] = [
    { name: 'puts, no watchers', streams: 0, watchersPerStream: 0, writers: putWriters },
    {
      name: `puts, ${fmt(following)} watchers following`,
      streams: 1,
      watchersPerStream: following,
      writers: putWriters,
    },
  ]
  return { etcd: values.etcd === true, seconds, delivery, puts, json: values.json === true }
}

/** Opens the streams and creates every watcher; resolves once all are created. */
async function openWatchers(url: string, s: Scenario, onEvent: () => void): Promise<WebSocket[]> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/v3/watch`
  const sockets: WebSocket[] = []
  let created = 0
  const want = s.streams * s.watchersPerStream
  for (let i = 0; i < s.streams; i++) {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false })
    sockets.push(ws)
    ws.on('message', (data: Buffer) => {
      // A catching-up watcher gets several events in one message: count each event's "kv".
      if (data.indexOf(eventsMark) >= 0) {
        for (let i = data.indexOf(kvMark); i >= 0; i = data.indexOf(kvMark, i + kvMark.length)) onEvent()
      } else if (data.indexOf(createdMark) >= 0) created++
    })
    ws.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const req = JSON.stringify({ create_request: { key: watchKey } })
    for (let j = 0; j < s.watchersPerStream; j++) ws.send(req)
  }
  const deadline = Date.now() + 120_000
  while (created < want) {
    if (Date.now() > deadline) throw new Error(`only ${created} of ${want} watchers created`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return sockets
}

async function runScenario(url: string, s: Scenario, seconds: number): Promise<Outcome> {
  let events = 0
  let lastEventAt = 0
  const sockets = await openWatchers(url, s, () => {
    events++
    lastEventAt = performance.now()
  })
  const watchers = s.streams * s.watchersPerStream
  const pool = new Pool(url, { connections: s.writers, pipelining: 1 })
  const body = JSON.stringify({ key: watchKey, value: b64('x'.repeat(64)) })
  let puts = 0
  let error: string | undefined
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const tEnd = t0 + seconds * 1000
  try {
    await Promise.all(
      Array.from({ length: s.writers }, async () => {
        while (performance.now() < tEnd) {
          try {
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
    while (events < puts * watchers && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 10))
    const cpu = process.cpuUsage(cpu0)
    const span = ((events > 0 ? lastEventAt : tWrites) - t0) / 1000
    return {
      puts,
      putsPerSec: puts / ((tWrites - t0) / 1000),
      events,
      eventsPerSec: watchers === 0 ? 0 : events / span,
      delivered: watchers === 0 ? 1 : events / (puts * watchers),
      genCpu: (cpu.user + cpu.system) / 1e6 / ((performance.now() - t0) / 1000),
      ...(error ? { error } : {}),
    }
  } finally {
    await pool.close()
    for (const ws of sockets) ws.terminate()
    // Let the server notice the closed streams before the next scenario.
    await new Promise((r) => setTimeout(r, 200))
  }
}

const n0 = (v: number) => Math.round(v).toLocaleString('en-US')
const pct = (v: number) => `${(v * 100).toFixed(v < 0.995 ? 1 : 0)}%`

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const p = plan(opts)
  const say = p.json ? (l: string) => console.error(l) : (l: string) => console.log(l)
  const servers: BenchServer[] = []
  const out = new Map<string, Map<string, Outcome>>()
  const load0 = loadavg()[0]!
  try {
    servers.push(
      await startEdgecd({
        serveArgs: ['--max-watchers=100000', '--max-watchers-per-stream=100000', '--max-watch-streams=100000'],
      }),
    )
    if (p.etcd) servers.push(await startEtcd())
    for (const sc of [...p.delivery, ...p.puts]) {
      for (const s of servers) {
        const o = await runScenario(s.url, sc, p.seconds)
        if (!out.has(s.name)) out.set(s.name, new Map())
        out.get(s.name)!.set(sc.name, o)
        say(
          `  ${s.name.padEnd(7)} ${sc.name.padEnd(34)} ${n0(o.eventsPerSec).padStart(10)} events/s  ${n0(o.putsPerSec).padStart(7)} puts/s  delivered ${pct(o.delivered)}  gen cpu ${pct(o.genCpu)}${o.error ? `  (${o.error})` : ''}`,
        )
      }
    }
  } finally {
    for (const s of servers.reverse()) await s.stop()
  }

  const names = [...out.keys()]
  const head = ['scenario']
  for (const n of names) head.push(`${n} events/s`, 'puts/s', 'delivered')
  if (names.includes('etcd')) head.push('edgecd/etcd')
  const rows: string[][] = []
  const results: BenchResult[] = []
  for (const sc of p.delivery) {
    const row = [sc.name]
    for (const n of names) {
      const o = out.get(n)!.get(sc.name)!
      row.push(n0(o.eventsPerSec), n0(o.putsPerSec), pct(o.delivered))
      results.push({
        name: `${n} ${sc.name}`,
        value: Math.round(o.eventsPerSec),
        unit: 'events/s',
        note: `${n0(o.putsPerSec)} puts/s, ${pct(o.delivered)} delivered, generator ${pct(o.genCpu)} cpu`,
      })
    }
    if (names.includes('etcd')) {
      const r = out.get('edgecd')!.get(sc.name)!.eventsPerSec / out.get('etcd')!.get(sc.name)!.eventsPerSec
      row.push(r.toFixed(2))
      results.push({ name: `edgecd/etcd ${sc.name}`, value: Number(r.toFixed(2)), unit: 'x', note: 'events/s' })
    }
    rows.push(row)
  }
  const [none, following] = p.puts
  for (const sc of p.puts) {
    const row = [sc.name]
    for (const n of names) {
      const o = out.get(n)!.get(sc.name)!
      row.push(sc.streams === 0 ? '-' : n0(o.eventsPerSec), n0(o.putsPerSec), sc.streams === 0 ? '-' : pct(o.delivered))
      results.push({ name: `${n} ${sc.name}`, value: Math.round(o.putsPerSec), unit: 'puts/s' })
    }
    if (names.includes('etcd')) {
      const r = out.get('edgecd')!.get(sc.name)!.putsPerSec / out.get('etcd')!.get(sc.name)!.putsPerSec
      row.push(r.toFixed(2))
    }
    rows.push(row)
  }
  const ratioRow = ['puts with watchers / without']
  for (const n of names) {
    const r = out.get(n)!.get(following!.name)!.putsPerSec / out.get(n)!.get(none!.name)!.putsPerSec
    ratioRow.push('', r.toFixed(2), '')
    results.push({
      name: `${n} puts with watchers / without`,
      value: Number(r.toFixed(2)),
      unit: 'x',
      note: 'target >= 0.90',
    })
  }
  if (names.includes('etcd')) ratioRow.push('')
  rows.push(ratioRow)
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) => r.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ')
  say('')
  say([line(head), line(widths.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n'))
  say('(events/s: events that reached the client over first put .. last event; delivered: share of puts x watchers')
  say(
    ` that arrived within 10 s of the last put; WebSocket watch through the JSON gateway on both; ${p.seconds} s of puts`,
  )
  say(` per scenario; load average before ${load0.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)})`)
  say('')
  return results
}

if (process.argv[1] !== undefined && import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  await run({ quick: args.includes('--quick'), args })
}
