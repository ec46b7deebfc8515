/**
 * Per-thread scheduler counters of a process from /proc (Linux): CPU time, time spent runnable but waiting for a core
 * (the run queue), times scheduled in, voluntary and involuntary context switches. Two snapshots around a run, divided
 * by the calls made, say how many times per call each thread slept and woke and how long it waited for a core each
 * time: the figure that separates a one-thread server from a many-thread one on a busy machine (docs/benchmarks.md,
 * "Session 8: the 1-client put under load"). Elsewhere than Linux the snapshots are empty.
 */

import { readdirSync, readFileSync } from 'node:fs'

export interface ThreadCounters {
  comm: string
  /** ns on a CPU, ns runnable but waiting for one, times scheduled in (/proc/.../schedstat). */
  run: number
  wait: number
  slices: number
  voluntary: number
  involuntary: number
}

/** Thread id -> counters, for every thread of `pid` (or of this process). */
export type SchedSnapshot = Map<string, ThreadCounters>

export function schedSnapshot(pid: number | 'self'): SchedSnapshot {
  const m: SchedSnapshot = new Map()
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return m
  }
  for (const t of tids) {
    try {
      const dir = `/proc/${pid}/task/${t}`
      const [run, wait, slices] = readFileSync(`${dir}/schedstat`, 'utf8').trim().split(' ').map(Number)
      const status = readFileSync(`${dir}/status`, 'utf8')
      m.set(t, {
        comm: readFileSync(`${dir}/comm`, 'utf8').trim(),
        run: run ?? 0,
        wait: wait ?? 0,
        slices: slices ?? 0,
        voluntary: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
        involuntary: Number(/\nnonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0),
      })
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return m
}

const zero: ThreadCounters = { comm: '', run: 0, wait: 0, slices: 0, voluntary: 0, involuntary: 0 }

function line(label: string, d: ThreadCounters, calls: number): string {
  return (
    `  ${label.padEnd(24)} run ${(d.run / calls / 1000).toFixed(0)} µs  run-queue wait ${(d.wait / calls / 1000).toFixed(0)} µs  ` +
    `runs ${(d.slices / calls).toFixed(2)}  voluntary ${(d.voluntary / calls).toFixed(2)}  involuntary ${(d.involuntary / calls).toFixed(2)}` +
    `  (per call${d.slices > 0 ? `; ${(d.wait / d.slices / 1000).toFixed(0)} µs wait per run` : ''})`
  )
}

/**
 * Per call between two snapshots: the process's total, then each thread that ran at least `minRunUsPerCall` µs of CPU
 * per call (the busy ones: the event loop, Go's threads; not idle helpers).
 */
export function schedReport(
  label: string,
  before: SchedSnapshot,
  after: SchedSnapshot,
  calls: number,
  minRunUsPerCall = 5,
): string {
  if (calls <= 0 || after.size === 0) return `  ${label}: no scheduler counters`
  const total = { ...zero }
  const rows: string[] = []
  for (const [tid, b] of after) {
    const a = before.get(tid) ?? zero
    const d: ThreadCounters = {
      comm: b.comm,
      run: b.run - a.run,
      wait: b.wait - a.wait,
      slices: b.slices - a.slices,
      voluntary: b.voluntary - a.voluntary,
      involuntary: b.involuntary - a.involuntary,
    }
    total.run += d.run
    total.wait += d.wait
    total.slices += d.slices
    total.voluntary += d.voluntary
    total.involuntary += d.involuntary
    if (d.run / calls / 1000 >= minRunUsPerCall) rows.push(line(`${label} ${d.comm}[${tid}]`, d, calls))
  }
  return [line(`${label} (${after.size} threads)`, total, calls), ...rows].join('\n')
}
