/**
 * The chaos harness (test/chaos/run.ts) against a mixed cluster: one Node, one Deno and one workerd (Durable Object)
 * member, each started with `edgecd serve --runtime ...` behind a fault-injecting proxy on its peer URL. A seeded
 * schedule of partitions, link delays and cuts, SIGSTOP and kill -9 (of a member's whole process group: the launcher
 * and its deno or workerd child) with restarts on the same data dir, while clients write, read linearizably and watch
 * through all three members; then the history is checked: linearizable, no acknowledged write lost, watches complete
 * and in order.
 *
 * Bounded: a short run here (EDGECD_MIXED_CHAOS_SECONDS, default 30 s of workload); a long one is
 * `CHAOS_RUNTIMES=node,deno,workerd CHAOS_SECONDS=600 npm run chaos`. CHAOS_SEED=X replays a schedule.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runChaos } from '../chaos/run.js'

const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31)
const seconds = Number(process.env.EDGECD_MIXED_CHAOS_SECONDS ?? 30)

test(`chaos against a Node + Deno + workerd cluster: linearizable, no acknowledged write lost (seed ${seed})`, {
  // Members start in ~10-30 s on a loaded machine (workerd bundles and boots), a kill -9 restart as long again.
  timeout: 240_000 + seconds * 4000,
}, async (t) => {
  t.diagnostic(
    `mixed chaos seed ${seed}: replay with CHAOS_SEED=${seed} npm test -- test/workers/mixed-chaos.test.ts, or longer with CHAOS_RUNTIMES=node,deno,workerd CHAOS_SEED=${seed} CHAOS_SECONDS=600 npm run chaos`,
  )
  const lines: string[] = []
  const report = await runChaos({
    seed,
    seconds,
    runtimes: ['node', 'deno', 'workerd'],
    // Slower Raft timing than the Node-only run: three runtimes' start-up and GC pauses on a loaded 2-core machine.
    heartbeatMs: 50,
    electionMs: 1000,
    log: (l) => lines.push(l),
  })
  t.diagnostic(report.summary)
  const problems = [
    ...report.linearizability.keys
      .filter((k) => k.verdict === 'violation')
      .map((k) => `linearizability ${k.key}:\n${k.detail}`),
    ...report.watch.slice(0, 20).map((v) => `${v.kind}: ${v.detail}`),
  ]
  assert.ok(
    report.ok,
    `${report.summary}\nreplay with CHAOS_SEED=${seed}\nschedule:\n${lines.join('\n')}\n${problems.join('\n')}`,
  )
  assert.ok(report.ops.ok > 20, `the workload made progress (${report.ops.ok} ok operations)`)
  assert.ok(report.faults > 0, 'faults were injected')
})
