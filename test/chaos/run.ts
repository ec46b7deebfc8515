/**
 * One chaos run, shared by the test (chaos.test.ts) and `npm run chaos` (scripts/chaos.mjs -> cli.ts). As in
 * TigerBeetle's VOPR, a seed decides the fault schedule (which faults, on which role, when, for how long), there is
 * a safety phase under faults and then a liveness phase after healing, and a failure prints the seed to replay.
 * Real processes are not deterministic, so a replay repeats the schedule, not the interleaving.
 *
 * Phases: start 3 members behind chaos proxies; run the workload while faults come and go; heal everything; let the
 * workload run healthy for a while, stop the clients, read the store's history back, wait for the watchers to
 * cover the final revision; then check linearizability, the watch guarantees and durability.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SimRand } from '../sim/rng.js'
import { ChaosCluster, type ServeRuntime } from './cluster.js'
import type { History } from './history.js'
import { type CheckResult, checkLinearizable } from './linearizability.js'
import { checkDurability, checkWatches, readReference, type WatchViolation } from './watch-checker.js'
import { Workload } from './workload.js'

export type FaultKind = 'partition-leader' | 'partition-follower' | 'delay' | 'pause' | 'kill' | 'cut-follower'

/** One step of the schedule: a fault held for holdMs, then healed, then quiet for gapMs. */
export interface FaultStep {
  kind: FaultKind
  /** Which member: the leader at the time, a follower, or any (chosen by `pick` among candidates). */
  target: 'leader' | 'follower' | 'any'
  pick: number
  holdMs: number
  gapMs: number
  /** delay: ms added to every link into the target. kill: ms before the restart (within holdMs). */
  param: number
}

export interface ChaosOptions {
  seed: number
  /** How long the workload runs, faults included (the last settleMs are healthy). */
  seconds: number
  settleMs?: number
  clients?: number
  watchers?: number
  keys?: number
  /** Deliberately non-linearizable reads, to see the checker catch them (workload.ts). */
  serializableReads?: boolean
  /** Per-key search budget of the linearizability checker. */
  stepsMax?: number
  /** Each member's runtime (`edgecd serve --runtime`), e.g. ['node', 'deno', 'workerd']; default three Node members. */
  runtimes?: ServeRuntime[]
  /** Raft timing (default 20 ms heartbeats, 200 ms election timeout). */
  heartbeatMs?: number
  electionMs?: number
  log?: (line: string) => void
}

export interface ChaosReport {
  seed: number
  seconds: number
  ok: boolean
  ops: { total: number; ok: number; fail: number; unknown: number }
  linearizability: CheckResult
  watch: WatchViolation[]
  watchEvents: number
  finalRevision: number
  faults: number
  historyPath?: string
  summary: string
}

/** The fault schedule of a seed: a list of steps covering durationMs. */
export function schedule(seed: number, durationMs: number): FaultStep[] {
  const rng = new SimRand(seed)
  const steps: FaultStep[] = []
  let t = 0
  const kinds: FaultKind[] = ['partition-leader', 'partition-follower', 'delay', 'pause', 'kill', 'cut-follower']
  for (let n = 0; n < 10_000 && t < durationMs; n++) {
    const kind = rng.pick(kinds)
    const holdMs = rng.range(600, 3000)
    const gapMs = rng.range(200, 1200)
    const target =
      kind === 'partition-leader'
        ? 'leader'
        : kind === 'partition-follower' || kind === 'cut-follower'
          ? 'follower'
          : rng.pick(['leader', 'follower', 'any'] as const)
    const param = kind === 'delay' ? rng.range(10, 150) : kind === 'kill' ? rng.range(100, holdMs) : 0
    steps.push({ kind, target, pick: rng.intn(1000), holdMs, gapMs, param })
    t += holdMs + gapMs
  }
  return steps
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {})
  const t0 = performance.now()
  const now = () => performance.now() - t0
  const durationMs = o.seconds * 1000
  const settleMs = o.settleMs ?? Math.min(5000, durationMs / 4)
  const steps = schedule(o.seed, durationMs - settleMs)
  const prefix = `chaos/${o.seed}/`
  const history: History = { seed: String(o.seed), prefix, ops: [], watchers: [], faults: [] }
  const fault = (what: string) => {
    history.faults.push({ at: now(), what })
    log(`  ${(now() / 1000).toFixed(1)}s ${what}`)
  }
  // Snapshots every few hundred entries (CHAOS_SNAPSHOT_COUNT), so that runs cross snapshots, log compaction and
  // catch-up from a streamed snapshot under faults; etcd's default (100,000) would never be reached in a short run.
  const snapshotCount = process.env.CHAOS_SNAPSHOT_COUNT ?? '500'
  const cluster = await ChaosCluster.start({
    size: o.runtimes?.length ?? 3,
    heartbeatMs: o.heartbeatMs ?? 20,
    electionMs: o.electionMs ?? 200,
    extra: ['--snapshot-count', snapshotCount],
    ...(o.runtimes ? { runtimes: o.runtimes } : {}),
  })
  let workload: Workload | undefined
  try {
    await until(async () => ((await cluster.leader()) !== undefined ? true : undefined), 20_000, 'a first leader')
    workload = new Workload({
      urls: cluster.clientUrls,
      prefix,
      keys: o.keys ?? 6,
      clients: o.clients ?? 6,
      watchers: o.watchers ?? 3,
      seed: o.seed,
      requestTimeoutMs: 2000,
      thinkMsMax: 10,
      progressEveryMs: 250,
      watchStallMs: 1500,
      watchSessionMsMax: 8000,
      serializableReads: o.serializableReads,
      now,
    })
    const runStart = now()
    workload.start()

    // Safety phase: the schedule, one fault at a time.
    for (const step of steps) {
      if (now() - runStart > durationMs - settleMs) break
      await inject(cluster, step, fault)
      await sleep(step.gapMs)
    }
    // Liveness phase: heal everything; the cluster must serve writes again.
    cluster.healLinks()
    for (let i = 0; i < cluster.size; i++) cluster.resume(i)
    for (let i = 0; i < cluster.size; i++) if (!cluster.isUp(i)) await cluster.restart(i)
    fault('healed')
    const leader = await until(() => cluster.leader(), 60_000, 'a leader after healing')
    const left = durationMs - (now() - runStart)
    if (left > 0) await sleep(left)
    await workload.stopClients()
    log(`  ${(now() / 1000).toFixed(1)}s clients stopped; ${workload.history.length} operations`)

    // The final revision, from a linearizable read on the leader, then the store's history up to it.
    const leaderUrl = cluster.clientUrls[leader]!
    const finalRevision = await until(
      async () => {
        const r = await fetch(`${leaderUrl}/v3/kv/range`, {
          method: 'POST',
          body: JSON.stringify({ key: Buffer.from(prefix).toString('base64') }),
          signal: AbortSignal.timeout(2000),
        })
        return r.ok ? Number(((await r.json()) as any).header.revision) : undefined
      },
      60_000,
      'a linearizable read after healing',
    )
    const reference = await readReference(leaderUrl, workload.keys, finalRevision)
    history.reference = { finalRevision, events: reference }
    // Watchers must catch up with the final revision once healed (progress requests keep their coverage fresh).
    const w = workload
    await until(
      async () => (w.watchers.every((x) => w.coveredRevision(x) >= finalRevision) ? true : undefined),
      60_000,
      'watchers',
    ).catch(() => {})
    await workload.stop()
    history.ops = workload.history
    history.watchers = workload.watchers
    log(
      `  ${(now() / 1000).toFixed(1)}s final revision ${finalRevision}, ${reference.length} events in the store; checking`,
    )

    const lin = checkLinearizable(history.ops, { stepsMax: o.stepsMax })
    const watch = [
      ...checkWatches(history.watchers, reference, finalRevision),
      ...checkDurability(history.ops, reference, finalRevision),
    ]
    const ops = { total: history.ops.length, ok: 0, fail: 0, unknown: 0 }
    for (const op of history.ops) ops[op.status]++
    const watchEvents = history.watchers.reduce(
      (n, x) => n + x.sessions.reduce((m, s) => m + s.responses.reduce((k, r) => k + r.events.length, 0), 0),
      0,
    )
    const ok = lin.verdict !== 'violation' && watch.length === 0
    const report: ChaosReport = {
      seed: o.seed,
      seconds: o.seconds,
      ok,
      ops,
      linearizability: lin,
      watch,
      watchEvents,
      finalRevision,
      faults: history.faults.filter((f) => !f.what.startsWith('healed')).length,
      summary: '',
    }
    if (!ok || lin.verdict === 'unknown') {
      report.historyPath = join(tmpdir(), `edgecd-chaos-${o.seed}-${Date.now()}.json`)
      writeFileSync(report.historyPath, JSON.stringify({ ...history, report: { lin, watch } }, null, 1))
    }
    const unknownKeys = lin.keys.filter((k) => k.verdict === 'unknown').length
    report.summary =
      `chaos seed=${o.seed} seconds=${o.seconds} ${ok ? 'PASS' : 'FAIL'}: ${ops.total} ops (${ops.ok} ok, ${ops.unknown} unknown, ${ops.fail} failed), ` +
      `linearizability ${lin.verdict} (${lin.keys.length} keys${unknownKeys ? `, ${unknownKeys} over budget` : ''}, ${lin.steps} steps), ` +
      `${history.watchers.length} watchers ${watchEvents} events ${history.watchers.reduce((n, x) => n + x.sessions.length, 0)} sessions, ` +
      `${watch.length} watch/durability violations, final revision ${finalRevision}, ${report.faults} faults` +
      (report.historyPath ? `, history ${report.historyPath}` : '')
    return report
  } catch (err) {
    const logs = cluster.names.map((n, i) => `--- ${n} stderr ---\n${cluster.log(i).slice(-2000)}`).join('\n')
    throw new Error(`chaos seed=${o.seed}: ${(err as Error).message}\n${logs}`)
  } finally {
    await workload?.stop().catch(() => {})
    await cluster.close()
  }
}

/** Applies one step: resolve the target, inject the fault, hold it, heal it. */
async function inject(c: ChaosCluster, step: FaultStep, fault: (what: string) => void): Promise<void> {
  const leader = await c.leader(500)
  const up = Array.from({ length: c.size }, (_, i) => i).filter((i) => c.isUp(i))
  const followers = up.filter((i) => i !== leader)
  const candidates =
    step.target === 'leader' && leader !== undefined
      ? [leader]
      : step.target === 'follower' && followers.length > 0
        ? followers
        : up
  const i = candidates[step.pick % candidates.length]!
  const who = `${c.names[i]}${i === leader ? ' (leader)' : ''}`
  switch (step.kind) {
    case 'partition-leader':
    case 'partition-follower':
      fault(`isolate ${who} for ${step.holdMs} ms`)
      c.isolate(i)
      await sleep(step.holdMs)
      c.healLinks()
      break
    case 'delay':
      fault(`delay links into ${who} by ${step.param} ms for ${step.holdMs} ms`)
      c.delayInto(i, step.param)
      await sleep(step.holdMs)
      c.healLinks()
      break
    case 'cut-follower':
      fault(`cut links into ${who} for ${step.holdMs} ms`)
      c.cutInto(i)
      await sleep(step.holdMs)
      c.healLinks()
      break
    case 'pause':
      fault(`SIGSTOP ${who} for ${step.holdMs} ms`)
      c.pause(i)
      await sleep(step.holdMs)
      c.resume(i)
      break
    case 'kill':
      fault(`kill -9 ${who}, restart after ${step.param} ms`)
      c.kill9(i)
      await sleep(step.param)
      await c.restart(i)
      break
  }
  fault(`healed ${step.kind} on ${c.names[i]}`)
}

/** Polls fn (each call bounded by the caller) until it yields a value, or throws after ms. */
async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = performance.now() + ms
  let last: unknown
  for (let n = 0; n < 100_000; n++) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (performance.now() > deadline) break
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}
