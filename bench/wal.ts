/**
 * WAL throughput on this disk: saves of 256-byte entries through the Node file backend, one entry per save (every
 * entry pays an fdatasync) and 100 entries per save (group commit), next to the raw sync rate of the same directory
 * measured the same way (append 4 KiB + fdatasync, in a loop). Each save also carries a hard state, as a Raft Ready
 * usually does. Targets: one entry per save >= 90% of the raw sync rate; 100 per save >= 200,000 entries/s.
 *
 *   node --import tsx bench/wal.ts [--quick] [--dir <dir>]     or   npm run bench -- wal
 *
 * The directory defaults to the OS temp directory (WAL_BENCH_DIR or --dir to measure another disk); every file is
 * removed afterwards. Each phase runs for a fixed time (1.5 s, 0.5 s with --quick), so the whole run takes a few seconds.
 */
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Entry } from '../src/raft/types.js'
import { openNodeStorage } from '../src/runtime/node/storage.js'
import type { BenchOptions, BenchResult } from './types.js'

const entryBytes = 256
const rawWriteBytes = 4096
/** What a save of 100 256-byte entries plus a hard state writes: 100 x (12 + 1 + 9 + 3 + 256) + 27 bytes. */
const batchSaveBytes = 100 * (12 + 1 + 9 + 3 + 256) + 27

/** Runs `step` until `ms` have passed (and at least once); returns the steps done and the seconds taken. */
async function timed(ms: number, step: (i: number) => Promise<void>): Promise<{ n: number; secs: number }> {
  const t0 = performance.now()
  let n = 0
  // Bounded by time: checked after every step, and a step is one fdatasync at most.
  do {
    await step(n)
    n++
  } while (performance.now() - t0 < ms)
  return { n, secs: (performance.now() - t0) / 1000 }
}

/** The raw rate: append `bytes` and fdatasync, as the WAL does, with nothing else in the loop. */
async function rawSyncRate(dir: string, ms: number, bytes: number): Promise<number> {
  const fh = await open(join(dir, `raw-sync-${bytes}`), 'a')
  const block = new Uint8Array(bytes).fill(0x5a)
  try {
    const { n, secs } = await timed(ms, async () => {
      await fh.write(block)
      await fh.datasync()
    })
    return n / secs
  } finally {
    await fh.close()
  }
}

/** Entries/s through FileStorage.save with `perSave` entries per save. */
async function walRate(dir: string, perSave: number, ms: number): Promise<number> {
  const s = await openNodeStorage(dir)
  const data = new Uint8Array(entryBytes).fill(0xa5)
  let next = 1
  try {
    const { n, secs } = await timed(ms, async () => {
      const entries: Entry[] = []
      for (let i = 0; i < perSave; i++) entries.push({ index: next + i, term: 1, type: 0, data })
      next += perSave
      await s.save({ term: 1, vote: '1', commit: next - 1 }, entries)
      // Keep memory flat, as a member does once entries are applied and snapshotted.
      if (s.lastIndex() - s.firstIndex() > 100_000) {
        await s.saveSnapshot({
          data: new Uint8Array(0),
          metadata: { index: next - 1, term: 1, confState: { voters: ['1'], learners: [] } },
        })
        await s.compact(next - 1)
      }
    })
    return (n * perSave) / secs
  } finally {
    await s.close()
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const dirArg = opts.args.indexOf('--dir')
  const base = dirArg >= 0 ? opts.args[dirArg + 1]! : (process.env.WAL_BENCH_DIR ?? tmpdir())
  const root = await mkdtemp(join(base, 'edgecd-wal-bench-'))
  const ms = opts.quick ? 500 : 1500
  try {
    const raw = await rawSyncRate(root, ms, rawWriteBytes)
    const one = await walRate(join(root, 'one'), 1, ms)
    const batched = await walRate(join(root, 'batched'), 100, ms)
    // The disk's ceiling for the batched case: the same bytes per fdatasync as a 100-entry save (about 28.6 KiB).
    const rawBatch = await rawSyncRate(root, ms, batchSaveBytes)
    const ratio = one / raw
    return [
      {
        name: `raw append ${rawWriteBytes} B + fdatasync`,
        value: Math.round(raw),
        unit: 'syncs/s',
        note: `same directory: ${root}`,
      },
      {
        name: `raw append ${batchSaveBytes} B + fdatasync`,
        value: Math.round(rawBatch),
        unit: 'syncs/s',
        note: `the bytes of one 100-entry save: at most ${Math.round(rawBatch * 100).toLocaleString('en-US')} entries/s`,
      },
      {
        name: `WAL save, 1 x ${entryBytes} B entry per save`,
        value: Math.round(one),
        unit: 'entries/s',
        note: `${(ratio * 100).toFixed(0)}% of the raw sync rate (target >= 90%)`,
      },
      {
        name: `WAL save, 100 x ${entryBytes} B entries per save`,
        value: Math.round(batched),
        unit: 'entries/s',
        note: `${Math.round(batched / 100)} saves/s (target >= 200,000 entries/s)`,
      },
    ]
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2)
  const rows = await run({ quick: args.includes('--quick'), args })
  const w = Math.max(...rows.map((r) => r.name.length))
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(w)}  ${r.value.toLocaleString('en-US').padStart(9)} ${r.unit.padEnd(9)}  ${r.note ?? ''}`,
    )
  }
}
