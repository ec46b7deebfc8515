/**
 * The replica (docs/replica.md):
 *
 *   browser  one member; 100,000 keys of 256 B under `r/`; Chromium (Debian's, playwright-core) opens the replica
 *            from /ui/replica.js with IndexedDB storage: time of the initial copy (openReplica until it resolves);
 *            then the replica is closed, 10,000 puts are made, and it is opened again: time until it reflects the
 *            last one (catch-up from IndexedDB + watch replay); local get time in the page (batched: the page's
 *            clock is coarse) and, with the same engine on Node, the p50/p99 of single local gets
 *   reads    the p50/p99 of single local gets on Node (memory storage, fine clock)
 *   apply    (only when asked) the replica's CPU per live change without the network: 200 replicas on one member,
 *            synthetic one-PUT watch frames handed to each replica's socket handler
 *   fanout   a three-member cluster; R Node replicas (memory storage, one client and WebSocket each, or
 *            --replicas-per-client K sharing one; in a worker thread, off the load generator's thread) follow
 *            `bench/key/000` (100 keys, 1% of the writes; --fanout-prefix bench/key/0 follows all 10,000, every write)
 *            on a follower while 64 clients put 256 B values over
 *            bench/key/* on the leader: put throughput with the replicas against the mean of the two runs without
 *            them around it, in --rounds alternated rounds (without, with, without, ..., without: medians, every
 *            round listed), and the time from the end of the writes until every replica reflects the last write
 *            of its range (the worst round). The replicas are opened for each round and closed after it. --replicas takes a list (1000,10000): one row set per count, one cluster; the members'
 *            --max-watch-streams / --max-watchers are raised to fit the largest. --coalesce-ms takes a list of the
 *            replicas' watch windows (edgecd_coalesce_ms; default the replica's, 500 ms; 0: none): `0,100` runs
 *            each count with each window, alternated on one cluster (an A/B in one run)
 *
 *   npm run bench -- replica [--quick] [--parts browser,reads,fanout,apply] [--keys 100000] [--offline-writes 10000]
 *                            [--replicas 1000[,10000]] [--replicas-per-client 1] [--seconds 10]
 *                            [--fanout-prefix bench/key/000] [--coalesce-ms 500[,100,0]] [--rounds 3]
 *
 * --quick: 10,000 keys, 1,000 offline writes, 100 replicas, 3 s, 1 round. Every wait is bounded; servers, the browser and the
 * replica worker are stopped at the end, also on failure.
 */
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import WebSocket from 'ws'
import { openReplica } from '../src/replica/index.js'
import { defaultCoalesceMs } from '../src/replica/source.js'
import { chromiumArgs, chromiumPath } from '../test/support/chromium.js'
import { startEdgecdCluster } from './lib/clusters.js'
import { Bodies, openPool, preload, runLoad } from './lib/load.js'
import { processCpuSecs, startEdgecd } from './lib/servers.js'
import type { BenchOptions, BenchResult } from './types.js'

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function call(url: string, path: string, body: unknown): Promise<any> {
  let r: Response | undefined
  // A kept-alive connection the server closed meanwhile fails a POST once ("other side closed"): send it again
  // (the bench's writes set fixed values, so a repeat changes nothing but the revision).
  for (let attempt = 0; r === undefined; attempt++) {
    try {
      r = await fetch(url + path, { method: 'POST', body: JSON.stringify(body) })
    } catch (err) {
      if (attempt >= 3)
        throw new Error(`${url}${path}: ${(err as Error).message}: ${String((err as { cause?: unknown }).cause)}`)
      await sleep(50)
    }
  }
  const j = await r.json()
  if (r.status !== 200) throw new Error(`${path}: ${JSON.stringify(j)}`)
  return j
}

/** Writes `n` keys `<prefix><i>` of 256 B in txns of 128 puts, 8 at a time. */
async function fill(url: string, prefix: string, n: number): Promise<number> {
  const value = b64(new Uint8Array(256).fill(120))
  let next = 0
  let rev = 0
  const writer = async () => {
    while (next < n) {
      const from = next
      next = Math.min(n, next + 128)
      const success = []
      for (let i = from; i < next; i++)
        success.push({ request_put: { key: b64(`${prefix}${String(i).padStart(6, '0')}`), value } })
      const j = await call(url, '/v3/kv/txn', { success })
      rev = Math.max(rev, Number(j.header.revision))
    }
  }
  await Promise.all(Array.from({ length: 8 }, writer))
  return rev
}

function serveStatic(js: string): Promise<{ server: Server; url: string }> {
  const html = `<!doctype html><meta charset="utf-8"><script type="module">import * as R from '/replica.js'; window.R = R; window.loaded = true</script>`
  const server = createServer((req, res) => {
    if (req.url === '/replica.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
  })
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () =>
      ok({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` }),
    ),
  )
}

async function browserPart(keys: number, offlineWrites: number): Promise<BenchResult[]> {
  const out: BenchResult[] = []
  const member = await startEdgecd()
  const { chromium } = await import('playwright-core')
  let browser: import('playwright-core').Browser | undefined
  let site: { server: Server; url: string } | undefined
  try {
    await fill(member.url, 'r/', keys)
    const js = await (await fetch(`${member.url}/ui/replica.js`)).text()
    site = await serveStatic(js)
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    const page = await browser.newPage()
    await page.goto(site.url)
    await page.waitForFunction('window.loaded === true', undefined, { timeout: 30_000 })
    const opts = JSON.stringify({ endpoint: member.url, prefix: 'r/', shareTabs: false, openTimeoutMs: 600_000 })
    const copyMs = (await page.evaluate(
      `(async () => { const t = performance.now(); window.r = await R.openReplica(${opts}); return performance.now() - t })()`,
    )) as number
    const count = (await page.evaluate(
      `r.range({ prefix: 'r/' }, { countOnly: true, consistency: 'local' }).then((x) => x.count)`,
    )) as number
    if (count !== keys) throw new Error(`the browser replica has ${count} keys, not ${keys}`)
    out.push({
      name: `browser: initial copy of ${keys.toLocaleString('en-US')} keys x 256 B into IndexedDB`,
      value: copyMs / 1000,
      unit: 's',
      note: 'target < 10 s; pages of 1,000 keys growing to 8,000',
    })

    // Local gets in the page: batches of 1,000 (the page's clock is coarse), mean per get.
    const perGetUs = (await page.evaluate(`(async () => {
      const keys = []
      for (let i = 0; i < 1000; i++) keys.push('r/' + String(Math.floor(Math.random() * ${keys})).padStart(6, '0'))
      for (const k of keys) await r.get(k, { consistency: 'local' })
      const t = performance.now()
      for (let round = 0; round < 20; round++) for (const k of keys) await r.get(k, { consistency: 'local' })
      return (performance.now() - t) * 1000 / 20000
    })()`)) as number
    out.push({ name: 'browser: local get (mean, 20,000 gets)', value: perGetUs, unit: 'µs', note: 'consistency local' })

    // Offline writes, then catch-up.
    await page.evaluate('r.close()')
    const pool = openPool(member.url, 64)
    const value = b64(new Uint8Array(256).fill(121))
    let next = 0
    let last = 0
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < offlineWrites) {
          const i = next++
          const body = JSON.stringify({ key: b64(`r/${String(i % keys).padStart(6, '0')}`), value })
          const res = await pool.request({ path: '/v3/kv/put', method: 'POST', body })
          const j = (await res.body.json()) as { header: { revision: string } }
          last = Math.max(last, Number(j.header.revision))
        }
      }),
    )
    await pool.close()
    const catchUpMs = (await page.evaluate(`(async () => {
      const t = performance.now()
      window.r = await R.openReplica(${opts})
      while (r.status.revision < ${last}) await new Promise((res) => setTimeout(res, 5))
      return performance.now() - t
    })()`)) as number
    out.push({
      name: `browser: catch-up after ${offlineWrites.toLocaleString('en-US')} writes while closed`,
      value: catchUpMs / 1000,
      unit: 's',
      note: 'target < 2 s; open from IndexedDB + watch replay',
    })
    await page.evaluate('r.close()')
  } finally {
    await browser?.close().catch(() => {})
    site?.server.close()
    await member.stop()
  }
  return out
}

/** p50/p99 of single local gets with the same engine on Node (memory storage, fine clock). */
async function nodeReads(keys: number): Promise<BenchResult[]> {
  const member = await startEdgecd()
  try {
    await fill(member.url, 'r/', keys)
    const r = await openReplica({ endpoint: member.url, prefix: 'r/', WebSocket })
    const samples: number[] = []
    for (let i = 0; i < 50_000; i++) {
      const k = `r/${String(Math.floor(Math.random() * keys)).padStart(6, '0')}`
      const t = performance.now()
      await r.get(k, { consistency: 'local' })
      samples.push(performance.now() - t)
    }
    await r.close()
    samples.sort((a, b) => a - b)
    const p = (q: number) => samples[Math.floor(q * (samples.length - 1))]! * 1000
    return [
      { name: `node: local get p50 (${keys.toLocaleString('en-US')} keys)`, value: p(0.5), unit: 'µs' },
      {
        name: `node: local get p99 (${keys.toLocaleString('en-US')} keys)`,
        value: p(0.99),
        unit: 'µs',
        note: 'target < 100 µs',
      },
    ]
  } finally {
    await member.stop()
  }
}

/**
 * The replica's own cost per live change, without the network: R replicas (memory storage) open on one member, then
 * N synthetic watch messages (one PUT of a 256 B value each, like the member's) are handed straight to each replica's
 * WebSocket message handler. CPU of this process per change: JSON, base64, the index, subscribers, the storage.
 */
async function applyPart(replicas: number, changes: number): Promise<BenchResult[]> {
  const member = await startEdgecd()
  const sockets: { ws: { onmessage: ((ev: { data: string }) => void) | null }; id: string }[] = []
  class Recording extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols)
      const rec = { ws: this as never, id: '' }
      sockets.push(rec)
      const send = this.send.bind(this)
      this.send = ((d: string) => {
        const m = JSON.parse(d)
        if (m.create_request) rec.id = String(m.create_request.watch_id)
        send(d)
      }) as never
    }
  }
  const opened: Awaited<ReturnType<typeof openReplica>>[] = []
  try {
    await call(member.url, '/v3/kv/put', { key: b64('bench/key/00000'), value: b64('x') })
    for (let i = 0; i < replicas; i += 50)
      opened.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, replicas - i) }, () =>
            openReplica({ endpoint: member.url, prefix: 'bench/key/000', WebSocket: Recording }),
          ),
        )),
      )
    let seen = 0
    for (const r of opened) r.watch({ prefix: 'bench/key/000' }, (c) => (seen += c.events.length))
    await sleep(300)
    const value = b64(new Uint8Array(256).fill(118))
    const rounds = Math.ceil(changes / replicas)
    const frame = (rev: number, id: string, key: string, version: number) =>
      `{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"${rev}","raft_term":"2"},"watch_id":"${id}","events":[{"kv":{"key":"${key}","create_revision":"2","mod_revision":"${rev}","version":"${version}","value":"${value}"}}]}}`
    let rev = 1_000_000
    const c0 = process.cpuUsage()
    for (let n = 0; n < rounds; n++) {
      rev++
      const key = b64(`bench/key/000${String(n % 100).padStart(2, '0')}`)
      for (const s of sockets) s.ws.onmessage?.({ data: frame(rev, s.id, key, n + 2) })
      // Let the storage commits run, as they do between socket reads.
      await new Promise((r) => setImmediate(r))
    }
    const c = process.cpuUsage(c0)
    const n = rounds * sockets.length
    if (seen < n) throw new Error(`the replicas saw ${seen} of ${n} changes`)
    return [
      {
        name: `apply: CPU per live change and replica (${replicas.toLocaleString('en-US')} replicas, ${n.toLocaleString('en-US')} changes)`,
        value: (c.user + c.system) / n,
        unit: 'µs',
        note: 'no network: synthetic frames handed to each socket handler (building them is included, ~1 µs)',
      },
    ]
  } finally {
    for (const r of opened) await r.close().catch(() => {})
    await member.stop()
  }
}

/** User + system (or only system) CPU seconds of a thread from its /proc stat file; NaN where there is none. */
function statTimes(statPath: string | undefined, user: boolean): number {
  if (statPath === undefined) return Number.NaN
  try {
    const stat = readFileSync(statPath, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((user ? Number(f[11]) : 0) + Number(f[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** The machine's CPU seconds so far from /proc/stat's first line: busy (everything but idle and iowait) and all. */
interface MachineCpu {
  busy: number
  total: number
}

function machineCpu(): MachineCpu {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const total = f.slice(0, 8).reduce((a, x) => a + x, 0) / 100
    return { busy: total - (f[3]! + f[4]!) / 100, total }
  } catch {
    return { busy: Number.NaN, total: Number.NaN }
  }
}

/**
 * Where one run's CPU went, over its measured window: µs per put of the writers (this process's main thread: the 64
 * HTTP clients), the three members, the replicas' thread, and this process's other threads (V8's garbage collector
 * helpers, mostly for the replicas' heap, which is by far the larger), and the machine's cores split into ours (all
 * of those), the other processes' (other sessions, the kernel's own threads) and idle. On a machine whose cores are
 * all busy, throughput is about ours / (their µs per put): a round whose ratio falls with no rise of µs per put lost
 * its cores to the others.
 */
export interface CpuShares {
  writersUs: number
  membersUs: number
  replicasUs: number
  /** The bench process's other threads: V8's GC helpers (mostly for the replicas' heap) and libuv's pool. */
  helpersUs: number
  oursCores: number
  othersCores: number
  idleCores: number
}

function cpuShares(
  at: { members: number; bench: number; main: number; fleet: number; machine: MachineCpu }[],
  ops: number,
): CpuShares {
  const a = at[at.length - 2]
  const b = at[at.length - 1]
  if (a === undefined || b === undefined || ops <= 0)
    return {
      writersUs: NaN,
      membersUs: NaN,
      replicasUs: NaN,
      helpersUs: NaN,
      oursCores: NaN,
      othersCores: NaN,
      idleCores: NaN,
    }
  const fleet = Number.isNaN(b.fleet - a.fleet) ? 0 : b.fleet - a.fleet
  const members = b.members - a.members
  // The main thread runs the writers; the process's other threads (V8's garbage collector helpers and compiler,
  // libuv's pool) work mostly for the replicas' heap, the larger one by far.
  const main = Number.isNaN(b.main - a.main) ? b.bench - a.bench - fleet : b.main - a.main
  const writers = main
  const helpers = Math.max(0, b.bench - a.bench - fleet - main)
  const total = b.machine.total - a.machine.total
  const cores = cpus().length
  const wall = total / cores
  const busy = b.machine.busy - a.machine.busy
  const ours = members + writers + fleet + helpers
  return {
    writersUs: (writers * 1e6) / ops,
    membersUs: (members * 1e6) / ops,
    replicasUs: (fleet * 1e6) / ops,
    helpersUs: (helpers * 1e6) / ops,
    oursCores: ours / wall,
    othersCores: Math.max(0, busy - ours) / wall,
    idleCores: (total - busy) / wall,
  }
}

const meanShares = (a: CpuShares, b: CpuShares): CpuShares => ({
  writersUs: (a.writersUs + b.writersUs) / 2,
  membersUs: (a.membersUs + b.membersUs) / 2,
  replicasUs: (a.replicasUs + b.replicasUs) / 2,
  helpersUs: (a.helpersUs + b.helpersUs) / 2,
  oursCores: (a.oursCores + b.oursCores) / 2,
  othersCores: (a.othersCores + b.othersCores) / 2,
  idleCores: (a.idleCores + b.idleCores) / 2,
})

const total = (s: CpuShares) => s.writersUs + s.membersUs + s.replicasUs + s.helpersUs

const sharesText = (s: CpuShares) =>
  `${s.writersUs.toFixed(0)}+${s.membersUs.toFixed(0)}+${s.replicasUs.toFixed(0)}+${s.helpersUs.toFixed(0)}=${total(s).toFixed(0)} µs/put, cores ours ${s.oursCores.toFixed(2)} others ${s.othersCores.toFixed(2)} idle ${s.idleCores.toFixed(2)}`

/** The replica fleet worker (bench/lib/replica-fleet.ts) and a request/answer helper over its messages. */
function startFleet(): {
  ask(m: Record<string, unknown>): Promise<any>
  /** CPU seconds of the fleet's thread so far (NaN where /proc is not there). */
  cpuSecs(): number
  /** Of which in the kernel (system time), seconds so far. */
  sysSecs(): number
  stop(): Promise<void>
} {
  const w = new Worker(new URL('./lib/replica-fleet-worker.mjs', import.meta.url))
  let waiting: { ok: (x: any) => void; no: (e: Error) => void } | undefined
  let statPath: string | undefined
  w.on('message', (m: { type: string; message?: string; stat?: string }) => {
    if (m.type === 'thread') {
      statPath = m.stat
      return
    }
    const p = waiting
    waiting = undefined
    if (m.type === 'error') p?.no(new Error(`replica fleet: ${m.message}`))
    else p?.ok(m)
  })
  w.on('error', (e) => waiting?.no(e as Error))
  return {
    // Bounded: opening 10,000 replicas on a loaded machine takes minutes, nothing takes 20.
    ask: (m) =>
      new Promise((ok, no) => {
        const timer = setTimeout(() => no(new Error(`replica fleet: no answer to ${m.type} in 20 min`)), 1_200_000)
        waiting = {
          ok: (x) => {
            clearTimeout(timer)
            ok(x)
          },
          no: (e) => {
            clearTimeout(timer)
            no(e)
          },
        }
        w.postMessage(m)
      }),
    cpuSecs: () => statTimes(statPath, true),
    sysSecs: () => statTimes(statPath, false),
    stop: async () => {
      await w.terminate()
    },
  }
}

/**
 * R replicas in a worker thread follow `bench/key/000` (100 of the 10,000 keys) on a follower of a three-member
 * cluster while 64 clients put on the leader; for each R of `replicaCounts` (and window), `rounds` rounds: the put
 * throughput with the replicas against the mean of the runs without them just before and just after, and the time
 * from the end of the writes until every replica reflects the last write of its range. The members' watch limits are
 * raised to fit the largest R.
 */
async function fanoutPart(
  replicaCounts: number[],
  seconds: number,
  perClient: number,
  prefix = 'bench/key/000',
  windows: (number | undefined)[] = [undefined],
  rounds = 3,
): Promise<BenchResult[]> {
  const out: BenchResult[] = []
  const most = Math.max(...replicaCounts)
  // One watch stream per client (WebSocket) and one watcher per replica on the follower, with room for the rest.
  const streams = Math.ceil(most / perClient) + 100
  const watchers = most + 100
  const limits = [
    ...(streams > 1000 ? ['--max-watch-streams', String(streams)] : []),
    ...(watchers > 10_000 ? ['--max-watchers', String(watchers)] : []),
  ]
  const cluster = await startEdgecdCluster(3, limits)
  const fleet = startFleet()
  // The keys are bench/key/00000-09999 (the first digit always 0): each further digit divides the share by 10.
  const share = prefix.startsWith('bench/key/0') ? 10 ** -(prefix.length - 'bench/key/0'.length) : 0
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)
  try {
    const { leader, follower } = await cluster.roles()
    const bodies = new Bodies()
    const pool = openPool(leader, 64)
    // At a high load average the preload's 64 large txns in flight can time out in Raft ("request timed out"): it
    // writes fixed values, so it is tried again.
    for (let attempt = 0; ; attempt++) {
      try {
        await preload(pool, bodies, 64)
        break
      } catch (err) {
        if (attempt >= 3) throw err
        await sleep(2000)
      }
    }
    // Every run: the same 64 writers for the same time; the replicas' thread CPU is counted over the whole run (its
    // 500 ms warm-up included) and reported apart from the load generator's (the bench process's other threads).
    // The followed member's own CPU per put (it sends every replica's frames), read at the same two points as the
    // members' total (runLoad calls its CPU reader when the measured window starts and when it ends).
    const followerPid = cluster.members[cluster.urls.indexOf(follower)]!.pid
    const run = async () => {
      const t0 = performance.now()
      const c0 = fleet.cpuSecs()
      const s0 = fleet.sysSecs()
      // Read at the measured window's two ends (runLoad calls the reader there): the followed member, every member,
      // this process (the writers and the replicas' thread), the replicas' thread alone, and the whole machine.
      const fol: number[] = []
      const folSys: number[] = []
      const at: { members: number; bench: number; main: number; fleet: number; machine: MachineCpu }[] = []
      const r = await runLoad(pool, bodies, { kind: 'put', clients: 64 }, seconds * 1000, 500, () => {
        fol.push(processCpuSecs(followerPid))
        folSys.push(statTimes(`/proc/${followerPid}/stat`, false))
        const members = cluster.cpuSecs()
        at.push({
          members,
          bench: processCpuSecs(process.pid),
          main: statTimes(`/proc/${process.pid}/task/${process.pid}/stat`, true),
          fleet: fleet.cpuSecs(),
          machine: machineCpu(),
        })
        return members
      })
      const fleetSecs = fleet.cpuSecs() - c0
      const fleetSysSecs = fleet.sysSecs() - s0
      const fleetCores = fleetSecs / ((performance.now() - t0) / 1000)
      const ops = r.opsPerSec * seconds
      const delta = (a: number[]) => (a.length >= 2 ? a[a.length - 1]! - a[a.length - 2]! : Number.NaN)
      const followerUsPerOp = (delta(fol) * 1e6) / ops
      const followerSysShare = delta(folSys) / delta(fol)
      return {
        ...r,
        fleetCores,
        fleetSecs,
        fleetSysSecs,
        followerUsPerOp,
        followerSysShare,
        shares: cpuShares(at, ops),
      }
    }
    // Rounds alternate without and with the replicas (without, with, without, with, ..., without), so each run with
    // replicas is set against the two runs without that bracket it: the host's speed drifts by tens of percent within
    // a minute on a shared machine, and the cluster's history (and its Raft snapshots, every --snapshot-count
    // entries) grows through the run; one pair of samples would compare the two.
    type Run = Awaited<ReturnType<typeof run>>
    const withouts: Run[] = [await run()]
    const rows: {
      n: number
      window: number | undefined
      /** Per round: the run with the replicas, the ratio to the mean of the runs without around it, and the rest. */
      rounds: {
        r: Run
        ratio: number
        capacity: number
        baseFollowerUs: number
        messages: number
        changes: number
        convergeMs: number
        behind: number
        openSecs: number
        /** The mean of the two runs without around it. */
        base: CpuShares
      }[]
    }[] = []
    // Each count's windows alternate within a round (100, 500, 100, 500, ...: an A/B on one cluster sees the same
    // drift of the host), each run with replicas between two without.
    for (const n of replicaCounts) {
      const row0 = rows.length
      for (const window of windows) rows.push({ n, window, rounds: [] })
      for (let round = 0; round < rounds; round++)
        for (const [wi, window] of windows.entries()) {
          const row = rows[row0 + wi]!
          const { secs: openSecs } = await fleet.ask({
            type: 'open',
            url: follower,
            prefix,
            count: n,
            perClient,
            coalesceMs: window,
          })
          await fleet.ask({ type: 'count' })
          const withReplicas = await run()
          // Frames the replicas received during the run (warm-up included) and the changes they carried: how many
          // revisions of one apply batch the member coalesced into one message, free of the machine's noise.
          const { messages, changes } = await fleet.ask({ type: 'count' })
          const stopped = performance.timeOrigin + performance.now()
          // The last write of the followed range, on the cluster.
          const tail = await call(leader, '/v3/kv/range', {
            key: b64(prefix),
            range_end: b64(end),
            sort_order: 'DESCEND',
            sort_target: 'MOD',
            limit: 1,
          })
          const target = Number(tail.kvs?.[0]?.mod_revision ?? 0)
          const { at, behind } = await fleet.ask({ type: 'await', target, timeoutMs: 60_000 })
          await fleet.ask({ type: 'close' })
          const prev = withouts[withouts.length - 1]!
          const next = await run()
          withouts.push(next)
          row.rounds.push({
            r: withReplicas,
            ratio: withReplicas.opsPerSec / ((prev.opsPerSec + next.opsPerSec) / 2),
            capacity: (prev.serverCpuUsPerOp + next.serverCpuUsPerOp) / 2 / withReplicas.serverCpuUsPerOp,
            baseFollowerUs: (prev.followerUsPerOp + next.followerUsPerOp) / 2,
            messages,
            changes,
            convergeMs: Math.max(0, at - stopped),
            behind,
            openSecs,
            base: meanShares(prev.shares, next.shares),
          })
        }
    }
    await pool.close()
    const median = (a: number[]) => {
      const s = [...a].sort((x, y) => x - y)
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
    }
    const list = (a: number[], digits = 0) => a.map((x) => x.toFixed(digits)).join(', ')
    const flags = limits.length ? `; members: ${limits.join(' ')}` : ''
    out.push({
      name: `fanout: put throughput, no replicas (median of ${withouts.length} runs)`,
      value: median(withouts.map((w) => w.opsPerSec)),
      unit: 'ops/s',
      note: `64 clients on the leader, ${seconds} s each; runs in order ${list(withouts.map((w) => w.opsPerSec))} ops/s; members' CPU ${list(withouts.map((w) => w.serverCpuUsPerOp))} µs/put; followed member ${list(withouts.map((w) => w.followerUsPerOp))} µs/put; writers + members + replicas + GC helpers: ${withouts.map((w) => `[${sharesText(w.shares)}]`).join(', ')}${flags}`,
    })
    for (const { n, window, rounds: rs } of rows) {
      const win = window === undefined ? '' : window === 0 ? ', no window' : `, window ${window} ms`
      const who = `${n.toLocaleString('en-US')} replicas${perClient > 1 ? ` (${perClient} per client)` : ''}${win}`
      const m = (f: (x: (typeof rs)[number]) => number) => median(rs.map(f))
      const fleetSecs = rs.reduce((a, x) => a + x.r.fleetSecs, 0)
      const fleetSysSecs = rs.reduce((a, x) => a + x.r.fleetSysSecs, 0)
      const changes = rs.reduce((a, x) => a + x.changes, 0)
      const messages = rs.reduce((a, x) => a + x.messages, 0)
      const ops = rs.reduce((a, x) => a + x.r.opsPerSec * seconds, 0)
      out.push(
        {
          name: `fanout: put throughput with ${who} / without (median of ${rs.length} rounds)`,
          value: m((x) => x.ratio) * 100,
          unit: '%',
          note: `target >= 90%; by round ${list(rs.map((x) => x.ratio * 100))}% (each run with the replicas against the mean of the two runs without around it)`,
        },
        {
          name: `fanout: put throughput with ${who} (median)`,
          value: m((x) => x.r.opsPerSec),
          unit: 'ops/s',
          note: `by round ${list(rs.map((x) => x.r.opsPerSec))}; members' CPU ${list(rs.map((x) => x.r.serverCpuUsPerOp))} µs/put: their write capacity ${(m((x) => x.capacity) * 100).toFixed(0)}% of without (median; replicas elsewhere, as deployed); replicas' thread ${m((x) => x.r.fleetCores).toFixed(2)} cores (${m((x) => (x.r.fleetCores * 1e6) / x.r.opsPerSec).toFixed(0)} µs/put); bench process (load + replicas) ${m((x) => x.r.clientCpuCores).toFixed(2)} cores; the replicas' watch window ${window ?? `${defaultCoalesceMs} ms (their default)`}${window === undefined ? '' : ' ms'}`,
        },
        {
          name: `fanout: ${who}: replicas' CPU per change`,
          value: (fleetSecs * 1e6) / Math.max(1, changes),
          unit: 'µs',
          note: `the replicas' thread (WebSocket frames, JSON, apply, the bench's subscriber), all rounds: ${((fleetSecs * 1e6) / Math.max(1, messages)).toFixed(1)} µs per message, ${fleetSecs.toFixed(2)} s (${((fleetSysSecs / fleetSecs) * 100).toFixed(0)}% in the kernel) for ${changes.toLocaleString('en-US')} changes`,
        },
        {
          name: `fanout: ${who}: followed member's CPU per put (median)`,
          value: m((x) => x.r.followerUsPerOp),
          unit: 'µs',
          note: `the member the replicas follow (it sends their frames), ${(m((x) => x.r.followerSysShare) * 100).toFixed(0)}% in the kernel; by round ${list(rs.map((x) => x.r.followerUsPerOp))} µs, without (the runs around each) ${list(rs.map((x) => x.baseFollowerUs))} µs`,
        },
        {
          name: `fanout: ${who} at the last revision after writes stop (worst round)`,
          value: Math.max(...rs.map((x) => x.convergeMs)),
          unit: 'ms',
          note: `target < 1,000 ms; by round ${list(rs.map((x) => x.convergeMs))} ms; ${rs.reduce((a, x) => a + x.behind, 0)} behind after 60 s`,
        },
        {
          // What the ratio would be had our three parts had the same cores with and without the replicas (a quiet
          // machine's case): the runs' µs per put, without against with. Free of the other processes' share of the
          // cores, not of their effect on our µs per put (caches, the kernel).
          name: `fanout: ${who}: CPU per put without / with the replicas (writers, members, replicas, GC helpers; median)`,
          value: m((x) => total(x.base) / total(x.r.shares)) * 100,
          unit: '%',
          note: `the throughput ratio on the same cores; by round ${list(rs.map((x) => (total(x.base) / total(x.r.shares)) * 100))}%`,
        },
        {
          // Per round: the run with the replicas, then the mean of the runs without around it. A ratio under 90% is
          // the replicas' µs per put (on these cores) plus any rise of the others', or fewer cores for ours.
          name: `fanout: ${who}: CPU per put, writers + members + replicas + GC helpers (median of the rounds)`,
          value: m((x) => x.r.shares.writersUs + x.r.shares.membersUs + x.r.shares.replicasUs),
          unit: 'µs',
          note: `by round, with | without (mean of the two around it): ${rs.map((x) => `[${sharesText(x.r.shares)} | ${sharesText(x.base)}]`).join('; ')}`,
        },
        {
          name: `fanout: ${who}: changes per watch message`,
          value: changes / Math.max(1, messages),
          unit: 'x',
          note: `${messages.toLocaleString('en-US')} messages carried ${changes.toLocaleString('en-US')} changes in all rounds (an apply batch's, or with a window the window's, revisions per message); about ${(messages / Math.max(1, ops)).toFixed(2)} frames per put to all the replicas`,
        },
        {
          name: `fanout: open ${who} (${Math.round(share * 10_000).toLocaleString('en-US')} keys each; median)`,
          value: m((x) => x.openSecs),
          unit: 's',
        },
      )
    }
  } finally {
    await fleet.ask({ type: 'close' }).catch(() => {})
    await fleet.stop()
    await cluster.stop()
  }
  return out
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const { values } = parseArgs({
    args: opts.args,
    options: {
      parts: { type: 'string' },
      keys: { type: 'string' },
      'offline-writes': { type: 'string' },
      replicas: { type: 'string' },
      'replicas-per-client': { type: 'string' },
      'fanout-prefix': { type: 'string' },
      'coalesce-ms': { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
    },
    strict: false,
  })
  const q = opts.quick
  const parts = String(values.parts ?? 'browser,reads,fanout').split(',')
  const keys = Number(values.keys ?? (q ? 10_000 : 100_000))
  const offline = Number(values['offline-writes'] ?? (q ? 1_000 : 10_000))
  const replicas = String(values.replicas ?? (q ? 100 : 1_000))
    .split(',')
    .map(Number)
  const perClient = Number(values['replicas-per-client'] ?? 1)
  const seconds = Number(values.seconds ?? (q ? 3 : 10))
  const out: BenchResult[] = []
  const load = () => `load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`
  if (parts.includes('browser'))
    out.push(...(await browserPart(keys, offline)).map((r) => ({ ...r, note: `${r.note ?? ''}; ${load()}` })))
  if (parts.includes('reads')) out.push(...(await nodeReads(keys)))
  if (parts.includes('apply')) out.push(...(await applyPart(q ? 50 : 200, q ? 10_000 : 100_000)))
  if (parts.includes('fanout'))
    out.push(
      ...(
        await fanoutPart(
          replicas,
          seconds,
          perClient,
          values['fanout-prefix'] as string | undefined,
          values['coalesce-ms'] === undefined ? undefined : String(values['coalesce-ms']).split(',').map(Number),
          Number(values.rounds ?? (q ? 1 : 3)),
        )
      ).map((r) => ({
        ...r,
        note: `${r.note ?? ''}; ${load()}`,
      })),
    )
  return out
}
