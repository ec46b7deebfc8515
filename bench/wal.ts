/**
 * WAL throughput on this disk: saves of 256-byte entries through the Node file backend, one entry per save (every
 * entry pays a sync) and 100 entries per save, each save awaited before the next (sequential: what the targets refer
 * to, and what the member's Ready loop does), next to raw rates of the same directory measured by this script: append
 * 4 KiB + fdatasync (the reference), append the bytes of a 100-entry save + fdatasync, and the same bytes as
 * one O_DSYNC pwrite inside a file already filled with zeros and synced (how the WAL writes: the ceiling of our
 * method on this disk). A last row, reported apart, keeps 4 saves of 100 entries in flight (pipelined: group commit
 * across calls writes the ones queued behind a write together). Each save also carries a hard state, as a Raft Ready
 * usually does. Targets: one entry per save >= 90% of the raw 4 KiB sync rate; 100 per save (sequential) >= 200,000
 * entries/s.
 *
 *   node --import tsx bench/wal.ts [--quick] [--dir <dir>] [--methods]     or   npm run bench -- wal
 *
 * --methods measures, instead, how the same bytes (one 100-entry save) can be made durable on this disk, all raw
 * loops in one directory: append + fdatasync, overwrite inside a file grown by ftruncate + fdatasync, overwrite
 * inside a file filled with zeros and synced + fdatasync, the same with one O_DSYNC pwrite, and an O_DSYNC append
 * (docs/storage.md, "Why preallocation and O_DSYNC").
 *
 * The directory defaults to the OS temp directory (WAL_BENCH_DIR or --dir to measure another disk); every file is
 * removed afterwards. Each of the 6 phases runs for 1.5 s (0.5 s with --quick) in 5 interleaved slices, so the whole run
 * takes about 10 s.
 */
import { constants } from 'node:fs'
import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Entry } from '../src/raft/types.js'
import { openNodeStorage } from '../src/runtime/node/storage.js'
import type { BenchOptions, BenchResult } from './types.js'

const entryBytes = 256
/** Each phase runs in this many interleaved slices. */
const slicesMax = 5
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

/** A measured loop that can run in several slices: `runFor(ms)` adds to its totals, `rate()` is steps per second. */
interface Phase {
  runFor(ms: number): Promise<void>
  rate(): number
  /** Microseconds of process CPU (user + system, every thread) per step: what a step costs besides waiting. */
  cpuPerStepUs(): number
  close(): Promise<void>
}

function phase(step: () => Promise<void>, perStep: number, close: () => Promise<void>): Phase {
  let steps = 0
  let secs = 0
  let cpuUs = 0
  return {
    async runFor(ms) {
      const cpu0 = process.cpuUsage()
      const r = await timed(ms, step)
      const cpu = process.cpuUsage(cpu0)
      cpuUs += cpu.user + cpu.system
      steps += r.n
      secs += r.secs
    },
    rate: () => (steps * perStep) / secs,
    cpuPerStepUs: () => cpuUs / steps,
    close,
  }
}

/** Saves kept in flight by the pipelined phase. */
const pipelineDepth = 4

/** The raw rate of appending `bytes` and fdatasync, with nothing else in the loop. */
async function rawPhase(dir: string, bytes: number): Promise<Phase> {
  const fh = await open(join(dir, `raw-sync-${bytes}`), 'a')
  const block = new Uint8Array(bytes).fill(0x5a)
  return phase(
    async () => {
      await fh.write(block)
      await fh.datasync()
    },
    1,
    () => fh.close(),
  )
}

/**
 * The raw rate of the WAL's own method: `bytes` as one O_DSYNC pwrite at the next offset of a 64 MiB file that was
 * filled with zeros and synced first (the fill is not timed; it wraps around at the end).
 */
async function rawPreallocatedPhase(dir: string, bytes: number): Promise<Phase> {
  const fileBytes = 64 * 1024 * 1024
  const fill = await open(join(dir, `raw-prealloc-${bytes}`), 'w')
  const zeros = new Uint8Array(1024 * 1024)
  for (let at = 0; at < fileBytes; at += zeros.byteLength) await fill.write(zeros, 0, zeros.byteLength, at)
  await fill.datasync()
  await fill.close()
  const fh = await open(join(dir, `raw-prealloc-${bytes}`), constants.O_RDWR | constants.O_DSYNC)
  const block = new Uint8Array(bytes).fill(0x5a)
  let at = 0
  return phase(
    async () => {
      if (at + bytes > fileBytes) at = 0
      await fh.write(block, 0, bytes, at)
      at += bytes
    },
    1,
    () => fh.close(),
  )
}

/**
 * Entries/s through FileStorage.save with `perSave` entries (and a hard state) per save; `depth` saves in flight
 * (1: each awaited before the next).
 */
async function walPhase(dir: string, perSave: number, depth = 1): Promise<Phase> {
  const s = await openNodeStorage(dir)
  const data = new Uint8Array(entryBytes).fill(0xa5)
  let next = 1
  const inFlight: Promise<void>[] = []
  let snapshotting = false
  const save = async () => {
    const entries: Entry[] = []
    for (let i = 0; i < perSave; i++) entries.push({ index: next + i, term: 1, type: 0, data })
    next += perSave
    await s.save({ term: 1, vote: '1', commit: next - 1 }, entries)
    // Keep memory flat, as a member does once entries are applied and snapshotted (one snapshot at a time).
    if (!snapshotting && s.lastIndex() - s.firstIndex() > 100_000) {
      snapshotting = true
      const confState = { voters: ['1'], learners: [] }
      const index = s.lastIndex()
      await s.saveSnapshot({ data: new Uint8Array(0), metadata: { index, term: 1, confState } })
      await s.compact(index)
      snapshotting = false
    }
  }
  const p = phase(
    async () => {
      inFlight.push(save())
      if (inFlight.length >= depth) await inFlight.shift()
    },
    perSave,
    async () => {
      await Promise.all(inFlight)
      await s.close()
    },
  )
  // A slice ends with every save it started done, so that it counts only durable saves.
  return {
    ...p,
    async runFor(ms) {
      await p.runFor(ms)
      await Promise.all(inFlight.splice(0))
    },
    cpuPerStepUs: () => p.cpuPerStepUs(),
  }
}

/** A raw loop writing `bytes` at successive offsets of `fh` (wrapping at `fileBytes`), with fdatasync unless O_DSYNC. */
function overwritePhase(fh: FileHandle, bytes: number, fileBytes: number, datasync: boolean): Phase {
  const block = new Uint8Array(bytes).fill(0x5a)
  let at = 0
  return phase(
    async () => {
      if (at + bytes > fileBytes) at = 0
      await fh.write(block, 0, bytes, at)
      at += bytes
      if (datasync) await fh.datasync()
    },
    1,
    () => fh.close(),
  )
}

/** --methods: the ways to make one save's bytes durable, side by side (nothing of edgecd's code runs). */
async function methods(root: string, ms: number): Promise<BenchResult[]> {
  const fileBytes = 64 * 1024 * 1024
  const zeroFilled = async (name: string, flags: number): Promise<FileHandle> => {
    const fill = await open(join(root, name), 'w')
    const zeros = new Uint8Array(1024 * 1024)
    for (let at = 0; at < fileBytes; at += zeros.byteLength) await fill.write(zeros, 0, zeros.byteLength, at)
    await fill.datasync()
    await fill.close()
    return open(join(root, name), flags)
  }
  const grown = await open(join(root, 'ftruncate'), 'w+')
  await grown.truncate(fileBytes)
  await grown.datasync()
  const rows: [string, Phase][] = [
    ['append + fdatasync', await rawPhase(root, batchSaveBytes)],
    ['overwrite in ftruncate-grown file + fdatasync', overwritePhase(grown, batchSaveBytes, fileBytes, true)],
    [
      'overwrite in zero-filled file + fdatasync',
      overwritePhase(await zeroFilled('zeros', constants.O_RDWR), batchSaveBytes, fileBytes, true),
    ],
    [
      'O_DSYNC pwrite in zero-filled file',
      overwritePhase(
        await zeroFilled('zeros-dsync', constants.O_RDWR | constants.O_DSYNC),
        batchSaveBytes,
        fileBytes,
        false,
      ),
    ],
    [
      'O_DSYNC append',
      overwritePhase(
        await open(join(root, 'append-dsync'), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC),
        batchSaveBytes,
        Number.MAX_SAFE_INTEGER,
        false,
      ),
    ],
  ]
  try {
    for (let slice = 0; slice < slicesMax; slice++) for (const [, p] of rows) await p.runFor(ms / slicesMax)
  } finally {
    for (const [, p] of rows) await p.close()
  }
  const base = rows[0]![1].rate()
  return rows.map(([name, p]) => ({
    name: `${name}, ${batchSaveBytes} B`,
    value: Math.round(p.rate()),
    unit: 'syncs/s',
    note: `${((p.rate() / base) * 100).toFixed(0)}% of append + fdatasync`,
  }))
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const dirArg = opts.args.indexOf('--dir')
  const base = dirArg >= 0 ? opts.args[dirArg + 1]! : (process.env.WAL_BENCH_DIR ?? tmpdir())
  const root = await mkdtemp(join(base, 'edgecd-wal-bench-'))
  const ms = opts.quick ? 500 : 1500
  const phases: Phase[] = []
  try {
    if (opts.args.includes('--methods')) return await methods(root, ms)
    const rawP = await rawPhase(root, rawWriteBytes)
    const oneP = await walPhase(join(root, 'one'), 1)
    const batchedP = await walPhase(join(root, 'batched'), 100)
    // The disk's ceilings for the batched case: the same bytes per sync as a 100-entry save.
    const rawBatchP = await rawPhase(root, batchSaveBytes)
    const rawPreP = await rawPreallocatedPhase(root, batchSaveBytes)
    const pipeP = await walPhase(join(root, 'pipelined'), 100, pipelineDepth)
    phases.push(rawP, oneP, batchedP, rawBatchP, rawPreP, pipeP)
    // Interleaved slices, so that a disk that gets busier or quieter during the run (a shared CI machine) shifts
    // every number alike instead of skewing the ratios.
    for (let slice = 0; slice < slicesMax; slice++) for (const p of phases) await p.runFor(ms / slicesMax)
    const [raw, one, batched, rawBatch, rawPre, pipe] = phases.map((p) => p.rate()) as number[] as [
      number,
      number,
      number,
      number,
      number,
      number,
    ]
    const ratio = one / raw
    const cpu = (p: Phase) => `${Math.round(p.cpuPerStepUs())} us CPU/save`
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
        name: `raw O_DSYNC pwrite ${batchSaveBytes} B, preallocated`,
        value: Math.round(rawPre),
        unit: 'syncs/s',
        note: `the WAL's method, no encoding: at most ${Math.round(rawPre * 100).toLocaleString('en-US')} entries/s; ${cpu(rawPreP)}`,
      },
      {
        name: `WAL save, 1 x ${entryBytes} B entry per save`,
        value: Math.round(one),
        unit: 'entries/s',
        note: `${(ratio * 100).toFixed(0)}% of the raw sync rate (target >= 90%); ${cpu(oneP)}`,
      },
      {
        name: `WAL save, 100 x ${entryBytes} B entries per save`,
        value: Math.round(batched),
        unit: 'entries/s',
        note: `${Math.round(batched / 100)} saves/s, sequential (target >= 200,000 entries/s); ${cpu(batchedP)}`,
      },
      {
        name: `WAL save, 100 x ${entryBytes} B, ${pipelineDepth} in flight`,
        value: Math.round(pipe),
        unit: 'entries/s',
        note: `pipelined (group commit across calls), not what the target measures; ${cpu(pipeP)}`,
      },
    ]
  } finally {
    for (const p of phases) await p.close()
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
