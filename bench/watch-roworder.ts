/**
 * Issue 17, row order: does a row of 10,000 watchers leave something behind that makes a later watcher row dearer?
 * bench/watch.ts runs its rows on one member in turn, and the prefixes row after the ranges row was dearer per put
 * than alone. Here two members, X and Y, run the same sequence of rows but one, interleaved row by row (X's row, then
 * Y's, order alternating per round) so that the host's load hits both alike:
 *
 *   X: none, none,   none, prefixes, none
 *   Y: none, ranges, none, prefixes, none
 *
 * `none` is puts with no watcher; a watcher row is bench/watch.ts's etcd shape (100 WebSocket streams x 100 watchers,
 * watcher i on its own range or prefix, puts to key i in turn, each reaching its one watcher), its streams closed
 * after it and the next row waiting until etcd_debugging_mvcc_watcher_total is 0. Both members took the same number
 * of revisions before their prefixes row. Printed: the member's CPU (process tree) per put of every row, and the
 * prefixes row of Y over X's (1.00: nothing left behind).
 *
 *   npm run bench -- watch-roworder [--puts 8000] [--rounds 3]
 */
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import WebSocket from 'ws'
import { type BenchServer, startEdgecd, treeCpuSecs } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

type Shape = 'none' | 'ranges' | 'prefixes'

const b64 = (s: string) => Buffer.from(s).toString('base64')
const dir = (i: number) => `bench/watch/${String(i).padStart(6, '0')}/`
const keyAt = (i: number) => `${dir(i)}k`
const watchers = 10_000

function createRequest(shape: Shape, i: number): string {
  const d = dir(i)
  if (shape === 'ranges') return JSON.stringify({ create_request: { key: b64(`${d}a`), range_end: b64(`${d}z`) } })
  return JSON.stringify({ create_request: { key: b64(d), range_end: b64(`${d.slice(0, -1)}0`) } })
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'))
  return m ? Number(m[1]) : Number.NaN
}

/** One row: the watchers (none for `none`), then `puts` puts from 32 writers; the member's CPU per put and puts/s. */
async function row(s: BenchServer, shape: Shape, puts: number): Promise<{ us: number; rate: number }> {
  const t00 = performance.now()
  while ((await metric(s.url, 'etcd_debugging_mvcc_watcher_total')) > 0) {
    if (performance.now() - t00 > 60_000) throw new Error('the last row’s watchers did not go within 60 s')
    await new Promise((r) => setTimeout(r, 20))
  }
  let events = 0
  const sockets: WebSocket[] = []
  const streams = shape === 'none' ? 0 : 100
  await Promise.all(
    Array.from(
      { length: streams },
      (_, j) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`${s.url.replace('http', 'ws')}/v3/watch`)
          sockets.push(ws)
          const per = watchers / streams
          ws.on('open', () => {
            for (let k = 0; k < per; k++) ws.send(createRequest(shape, j * per + k))
          })
          let created = 0
          ws.on('message', (d) => {
            const r = JSON.parse(String(d)).result
            if (r?.created && ++created === per) resolve()
            if (r?.events) events += r.events.length
          })
          ws.on('error', reject)
        }),
    ),
  )
  const pool = new Pool(s.url, { connections: 16 })
  let next = 0
  const cpu0 = treeCpuSecs(s.pid)
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < puts) {
        const i = next++
        const body = JSON.stringify({ key: b64(keyAt((i * 7919) % watchers)), value: b64('v') })
        const res = await pool.request({ method: 'POST', path: '/v3/kv/put', body })
        await res.body.dump()
      }
    }),
  )
  while (shape !== 'none' && events < puts && performance.now() - t0 < 30_000) {
    await new Promise((r) => setTimeout(r, 5))
  }
  const cpu = treeCpuSecs(s.pid) - cpu0
  const secs = (performance.now() - t0) / 1000
  await pool.close()
  for (const ws of sockets) ws.terminate()
  if (shape !== 'none' && events < puts) throw new Error(`${shape}: ${events} of ${puts} events within 30 s`)
  return { us: (cpu * 1e6) / puts, rate: puts / secs }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const { values } = parseArgs({
    args: opts.args,
    options: { puts: { type: 'string' }, rounds: { type: 'string' } },
    strict: false,
  })
  const puts = Number(values.puts ?? (opts.quick ? 1000 : 8000))
  const rounds = Number(values.rounds ?? (opts.quick ? 1 : 3))
  if (!(puts >= 100 && puts <= 1_000_000)) throw new Error(`--puts: [100, 1000000], got ${values.puts}`)
  if (!(rounds >= 1 && rounds <= 20)) throw new Error(`--rounds: [1, 20], got ${values.rounds}`)
  const serveArgs = ['--max-watchers=100000', '--max-watchers-per-stream=100000', '--max-watch-streams=100000']
  const plan: [Shape, Shape][] = [
    ['none', 'none'],
    ['none', 'ranges'],
    ['none', 'none'],
    ['prefixes', 'prefixes'],
    ['none', 'none'],
  ]
  const results: BenchResult[] = []
  const ratios: number[] = []
  for (let round = 0; round < rounds; round++) {
    const x = await startEdgecd({ serveArgs })
    const y = await startEdgecd({ serveArgs })
    try {
      const lines = { X: [] as string[], Y: [] as string[] }
      const pref = { X: 0, Y: 0 }
      for (const [sx, sy] of plan) {
        const order: ['X' | 'Y', BenchServer, Shape][] = [
          ['X', x, sx],
          ['Y', y, sy],
        ]
        if (round % 2 === 1) order.reverse()
        for (const [who, s, shape] of order) {
          const o = await row(s, shape, puts)
          lines[who].push(`${shape} ${Math.round(o.us)} µs (${Math.round(o.rate).toLocaleString('en-US')}/s)`)
          if (shape === 'prefixes') pref[who] = o.us
        }
      }
      console.log(`  round ${round + 1} X: ${lines.X.join(', ')}`)
      console.log(`  round ${round + 1} Y: ${lines.Y.join(', ')}`)
      ratios.push(pref.Y / pref.X)
      results.push(
        {
          name: `round ${round + 1}: prefixes row, no watcher row before (X)`,
          value: Math.round(pref.X),
          unit: 'µs cpu/put',
        },
        {
          name: `round ${round + 1}: prefixes row after a ranges row (Y)`,
          value: Math.round(pref.Y),
          unit: 'µs cpu/put',
        },
      )
    } finally {
      await x.stop()
      await y.stop()
    }
  }
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length
  results.push({
    name: 'prefixes row after a ranges row / without (Y / X)',
    value: Number(mean.toFixed(2)),
    unit: 'x',
    note: `rounds ${ratios.map((r) => r.toFixed(2)).join(', ')}; 1.00: the ranges row left nothing behind`,
  })
  return results
}
