/**
 * `npm run chaos` (through scripts/chaos.mjs): one chaos run of CHAOS_SECONDS (default 60) with CHAOS_SEED (default
 * random), printing the schedule as it happens and a summary line. Exit code 1 on a violation (the history is
 * written to the file the summary names). CHAOS_RUNTIMES=node,deno,workerd runs it against a mixed cluster (one
 * member per runtime, each started with `edgecd serve --runtime`), with slower Raft timing (50 ms heartbeats, 1 s
 * election timeout) unless CHAOS_HEARTBEAT_MS / CHAOS_ELECTION_MS say otherwise.
 */
import type { ServeRuntime } from './cluster.js'
import { runChaos } from './run.js'

const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31)
const seconds = process.env.CHAOS_SECONDS ? Number(process.env.CHAOS_SECONDS) : 60
if (!Number.isSafeInteger(seed) || seed < 0)
  throw new Error(`CHAOS_SEED must be a non-negative integer, not ${process.env.CHAOS_SEED}`)
if (!Number.isFinite(seconds) || seconds < 5)
  throw new Error(`CHAOS_SECONDS must be at least 5, not ${process.env.CHAOS_SECONDS}`)
console.log(`chaos seed ${seed} (replay the schedule with CHAOS_SEED=${seed}), ${seconds} s`)
const verbose = process.env.CHAOS_VERBOSE !== '0'
const serializableReads = process.env.CHAOS_SERIALIZABLE_READS === '1'
if (serializableReads)
  console.log('CHAOS_SERIALIZABLE_READS=1: reads skip ReadIndex on purpose; the checker should report stale reads')
const runtimes = process.env.CHAOS_RUNTIMES
  ? (process.env.CHAOS_RUNTIMES.split(',').map((r) => r.trim()) as ServeRuntime[])
  : undefined
if (runtimes?.some((r) => !['node', 'deno', 'workerd'].includes(r)))
  throw new Error(`CHAOS_RUNTIMES takes node, deno and workerd, comma-separated, not ${process.env.CHAOS_RUNTIMES}`)
if (runtimes) console.log(`a mixed cluster: ${runtimes.join(', ')}`)
const timing = runtimes
  ? {
      heartbeatMs: Number(process.env.CHAOS_HEARTBEAT_MS ?? 50),
      electionMs: Number(process.env.CHAOS_ELECTION_MS ?? 1000),
    }
  : {}
const report = await runChaos({
  seed,
  seconds,
  serializableReads,
  ...(runtimes ? { runtimes } : {}),
  ...timing,
  log: verbose ? (l) => console.log(l) : undefined,
})
for (const k of report.linearizability.keys)
  if (k.detail) console.log(`linearizability ${k.key}: ${k.verdict}\n${k.detail}`)
for (const v of report.watch.slice(0, 30)) console.log(`${v.kind}: ${v.detail}`)
if (report.watch.length > 30) console.log(`... ${report.watch.length - 30} more`)
console.log(report.summary)
process.exit(report.ok ? 0 : 1)
