/**
 * In process, no socket and no codec: the member's own cost per put (issue 12, docs/benchmarks.md gRPC "Session 11"),
 * from Member.put to its answer: the proposal's encode, Raft, the WAL save (node:fs files in a temp directory, the
 * runtime's blocking-write gate included), apply and the answer. 256-byte values over 1,000 keys, as bench/grpc.ts.
 * `--clients 1`: each put is called in a fresh event-loop turn after the last one answered (setImmediate), as a
 * network client's next request arrives; `--clients N`: N such callers at once.
 *
 *   node --expose-gc --max-semi-space-size=64 --min-semi-space-size=64 --import tsx bench/put-member-micro.ts \
 *       [--clients 1] [--puts 20000] [--rounds 3]
 *
 * `PUT_MICRO_SIGNAL=1` with `--import bench/lib/alloc-profile.mjs` and ALLOC_PROFILE_OUT: a heap profile of the
 * measured rounds, for bench/lib/alloc-report.mjs (puts = rounds x puts).
 *
 * Prints, per round (after one unmeasured round): wall and CPU µs per put (process.cpuUsage; user: JS and GC),
 * bytes allocated per put and scavenges per 1,000 puts. Bytes: the V8 heap's used size read every 50 puts, summing
 * its growth over the stretches with no GC in them (a GC is seen as the young generation's used size going down), so the figure does not move with
 * the machine's load; run with a large young generation (the flags above) so that most stretches have no GC.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { getHeapSpaceStatistics } from 'node:v8'
import { serverDefaults, validateServerConfig } from '../src/etcdserver/config.js'
import { Member } from '../src/etcdserver/member.js'
import { openNodeStorage } from '../src/runtime/node/storage.js'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1' },
    puts: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
  },
})
const clients = Number(values.clients)
const puts = Number(values.puts)
const rounds = Number(values.rounds)

const dir = mkdtempSync(join(tmpdir(), 'put-member-micro-'))
const config = validateServerConfig({ ...serverDefaults, dataDir: dir, name: 'm1' })
const storage = await openNodeStorage(dir)
const member = await Member.start({
  config,
  storage,
  memberId: 'm1',
  clusterId: 'c1',
  members: [{ ID: 'm1', name: 'm1', peerURLs: ['http://127.0.0.1:2380'], clientURLs: [], isLearner: false }],
})
while (!member.raft.isLeader()) await new Promise((r) => setTimeout(r, 10))

const enc = new TextEncoder()
const keys = Array.from({ length: 1000 }, (_, i) => enc.encode(`bench/${String(i).padStart(6, '0')}`))
const value = new Uint8Array(256).fill(0x61)
const turn = () => new Promise<void>((r) => setImmediate(r))

let scavenges = 0
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 1) scavenges++
}).observe({ entryTypes: ['gc'] })

function heapUsed(): { total: number; young: number } {
  let total = 0
  let young = 0
  for (const s of getHeapSpaceStatistics()) {
    total += s.space_used_size
    if (s.space_name === 'new_space') young = s.space_used_size
  }
  return { total, young }
}

let done = 0
let cleanBytes = 0
let cleanPuts = 0
let last = heapUsed()
let lastAt = 0
function sample(): void {
  const now = heapUsed()
  if (now.young >= last.young) {
    cleanBytes += now.total - last.total
    cleanPuts += done - lastAt
  }
  last = now
  lastAt = done
}

async function client(c: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await turn()
    await member.put({ key: keys[(c * 7919 + i) % keys.length]!, value, lease: 0n } as Parameters<Member['put']>[0])
    if (++done % 50 === 0) sample()
  }
}

async function round(): Promise<{ wall: number; cpu: number; user: number; bytes: number; scav: number }> {
  done = 0
  cleanBytes = 0
  cleanPuts = 0
  last = heapUsed()
  lastAt = 0
  scavenges = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c, Math.floor(puts / clients))))
  const c1 = process.cpuUsage(c0)
  const wall = performance.now() - t0
  await turn()
  return {
    wall: (wall * 1000) / done,
    cpu: (c1.user + c1.system) / done,
    user: c1.user / done,
    bytes: cleanBytes / Math.max(1, cleanPuts),
    scav: (scavenges / done) * 1000,
  }
}

await round()
// With bench/lib/alloc-profile.mjs preloaded (--import): its window is the measured rounds.
const signal = process.env.PUT_MICRO_SIGNAL === '1'
if (signal) {
  process.kill(process.pid, 'SIGUSR2')
  await new Promise((r) => setTimeout(r, 100))
}
for (let r = 0; r < rounds; r++) {
  const x = await round()
  console.log(
    `clients ${clients} round ${r + 1}: wall ${x.wall.toFixed(1)} µs/put, cpu ${x.cpu.toFixed(1)} µs/put ` +
      `(user ${x.user.toFixed(1)}), alloc ${x.bytes.toFixed(0)} B/put, ` +
      `scavenges ${x.scav.toFixed(2)} per 1,000 puts`,
  )
}
if (signal) {
  process.kill(process.pid, 'SIGUSR2')
  await new Promise((r) => setTimeout(r, 500))
}
await member.stop()
rmSync(dir, { recursive: true, force: true })
