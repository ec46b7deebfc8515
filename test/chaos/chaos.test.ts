import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runChaos } from './run.js'

// About a minute: members start (~3 s), 40 s of workload under a seeded fault schedule (the last 5 s healthy), then
// the store's history is read back and checked. CHAOS_SEED=X replays the schedule; `npm run chaos` runs longer.
const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31)

test(`chaos: linearizable KV and watch guarantees under partitions, delays, pauses and kill -9 (seed ${seed})`, {
  timeout: 150_000,
}, async (t) => {
  t.diagnostic(`chaos seed ${seed}: replay with CHAOS_SEED=${seed} npm test -- test/chaos/chaos.test.ts`)
  const lines: string[] = []
  const report = await runChaos({ seed, seconds: 40, log: (l) => lines.push(l) })
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
  assert.ok(report.ops.ok > 100, `the workload made progress (${report.ops.ok} ok operations)`)
  assert.ok(report.watchEvents > 0, 'the watchers saw events')
})
