/**
 * A/B of the member's CPU per watch message it sends to replicas, for a noisy machine: starts one single-member
 * edgecd per source tree (each `src/cli/main.ts serve` of that tree, all alive at once so they share the machine's
 * load), opens W WebSockets to each with one watch on `f/` (as W replicas following one range do: id 0 on every
 * stream), then alternates rounds between the trees: P puts inside the range (W frames each) and P puts outside it
 * (no frame), 8 at a time. The member's CPU (from /proc) per frame is (CPU of the puts inside - CPU of the puts
 * outside) / frames received (a frame carries the events of one apply batch, several puts). Prints per tree the median over the rounds after the first (warm-up), and every round.
 *
 *   git archive <old-commit> | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/node_modules
 *   node --import tsx bench/replica-fanout-ab.ts /tmp/old $PWD      # W=500 P=100 ROUNDS=8
 *
 * A tree given as `<tree>@<ms>` has its watches ask for a coalescing window (edgecd_coalesce_ms, issue 13), e.g.
 * `$PWD@0 $PWD@100`: then the member's CPU per put inside the range (to all W streams) is the figure to compare,
 * since a frame carries several puts; it is printed for every tree. PACE_MS=<ms> spaces the puts inside the range
 * (one at a time, every PACE_MS), as a steady stream of writes; default as fast as 8 writers go.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { freePort } from '../test/support/index.js'

const specs = process.argv.slice(2).map((a) => {
  const at = a.lastIndexOf('@')
  return at > 0 ? { root: a.slice(0, at), window: Number(a.slice(at + 1)) } : { root: a, window: 0 }
})
const roots = specs.map((s) => s.root)
const PACE_MS = Number(process.env.PACE_MS ?? 0)
if (roots.length === 0) {
  console.error('usage: node --import tsx bench/replica-fanout-ab.ts <source tree> [<source tree> ...]')
  process.exit(2)
}
const W = Number(process.env.W ?? 500)
const P = Number(process.env.P ?? 100)
const ROUNDS = Number(process.env.ROUNDS ?? 8)
const b64 = (s: string) => Buffer.from(s).toString('base64')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const value = b64('v'.repeat(256))

function cpuSecs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

interface Member {
  root: string
  url: string
  child: ChildProcess
  dir: string
  sockets: WebSocket[]
  frames: number
  /** Events received (a message carries the events of one apply batch: several puts). */
  events: number
}

async function start(root: string, window: number): Promise<Member> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-fanout-ab-'))
  const child = spawn(
    process.execPath,
    [
      // e.g. MEMBER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the members.
      ...(process.env.MEMBER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      'src/cli/main.ts',
      'serve',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url,
      '--log-level',
      'error',
      '--max-watch-streams',
      String(W + 100),
    ],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  )
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) break
    } catch {}
    if (i > 600) throw new Error(`${root}: the member did not start`)
    await sleep(100)
  }
  const m: Member = { root, url, child, dir, sockets: [], frames: 0, events: 0 }
  const req = JSON.stringify({
    create_request: { key: b64('f/'), range_end: b64('f0'), ...(window > 0 ? { edgecd_coalesce_ms: window } : {}) },
  })
  for (let i = 0; i < W; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, W - i) }, async () => {
        const ws = new WebSocket(`${url.replace('http:', 'ws:')}/v3/watch`)
        m.sockets.push(ws)
        await new Promise((ok, no) => {
          ws.once('open', ok)
          ws.once('error', no)
        })
        ws.on('message', (d) => {
          m.frames++
          m.events += JSON.parse(String(d)).result?.events?.length ?? 0
        })
        ws.send(req)
      }),
    )
  }
  const deadline = Date.now() + 60_000
  while (m.frames < W && Date.now() < deadline) await sleep(20)
  return m
}

async function puts(m: Member, inside: boolean): Promise<void> {
  let next = 0
  if (PACE_MS > 0) {
    for (; next < P; next++) {
      const t = performance.now()
      const key = b64(`${inside ? 'f' : 'g'}/${next % 100}`)
      const r = await fetch(`${m.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key, value }) })
      await r.arrayBuffer()
      const left = PACE_MS - (performance.now() - t)
      if (left > 0) await sleep(left)
    }
    return
  }
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < P) {
        const i = next++
        const key = b64(`${inside ? 'f' : 'g'}/${i % 100}`)
        const r = await fetch(`${m.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key, value }) })
        await r.arrayBuffer()
      }
    }),
  )
}

const members: Member[] = []
// Stopped early (Ctrl-C, timeout): the members go too.
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    for (const m of members) m.child.kill('SIGKILL')
    process.exit(1)
  })
try {
  for (const s of specs) members.push(await start(s.root, s.window))
  const perFrame = roots.map(() => [] as number[])
  const perPut = roots.map(() => [] as number[])
  const framesPerPut = roots.map(() => [] as number[])
  for (let round = 0; round < ROUNDS; round++) {
    for (const [v, m] of members.entries()) {
      const c0 = cpuSecs(m.child.pid!)
      await puts(m, false)
      const c1 = cpuSecs(m.child.pid!)
      const f0 = m.frames
      const e0 = m.events
      await puts(m, true)
      const deadline = Date.now() + 30_000
      while (m.events - e0 < P * W && Date.now() < deadline) await sleep(5)
      if (m.events - e0 < P * W) throw new Error(`${m.root}: ${m.events - e0} of ${P * W} events arrived`)
      const c2 = cpuSecs(m.child.pid!)
      perFrame[v]!.push(((c2 - c1 - (c1 - c0)) * 1e6) / (m.frames - f0))
      perPut[v]!.push(((c2 - c1 - (c1 - c0)) * 1e6) / P)
      framesPerPut[v]!.push((m.frames - f0) / P)
      if (process.env.VERBOSE)
        console.error(
          `round ${round} ${m.root}: ${m.frames - f0} frames, ${m.events - e0} events, CPU ${(c1 - c0).toFixed(2)} s outside, ${(c2 - c1).toFixed(2)} s inside`,
        )
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!
  for (const [v, r] of roots.entries())
    console.log(
      `${r}${specs[v]!.window ? ` (window ${specs[v]!.window} ms)` : ''}: ${median(perFrame[v]!.slice(1)).toFixed(2)} µs of member CPU per watch frame, ${median(perPut[v]!.slice(1)).toFixed(0)} µs per put inside the range, ${median(framesPerPut[v]!.slice(1)).toFixed(1)} frames per put (medians after 1 warm-up round; ${W} streams, ${P} puts per round${PACE_MS ? `, one every ${PACE_MS} ms` : ''}; per frame by round: ${perFrame[v]!.map((x) => x.toFixed(1)).join(' ')})`,
    )
} finally {
  for (const m of members) {
    for (const ws of m.sockets) ws.terminate()
    m.child.kill('SIGTERM')
  }
  await sleep(500)
  for (const m of members) rmSync(m.dir, { recursive: true, force: true })
}
process.exit(0)
