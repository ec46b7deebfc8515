/**
 * Crash test on real processes: a child writes through the Node file backend and prints each acknowledged save; we
 * SIGKILL it at a seeded random moment, reopen the directory, and check that every acknowledged save is there,
 * intact and in order. The save in flight at the kill may be there, partly (a prefix of its entries) or not at all.
 *
 * Each round continues from the state the previous one left, so recovery is exercised on top of recovery. Default 6
 * rounds (a few seconds); `STORAGE_CRASH_ROUNDS=N` for more, `STORAGE_CRASH_SEED=S` to replay a printed seed.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { MemoryStorage } from '../../src/raft/storage.js'
import type { Entry } from '../../src/raft/types.js'
import { openNodeStorage } from '../../src/runtime/node/storage.js'
import { applyOp, modelOf, nextOp, type Op, rng } from './crash-workload.js'

const here = dirname(fileURLToPath(import.meta.url))
const rounds = Number(process.env.STORAGE_CRASH_ROUNDS ?? 6)
const seed = Number(process.env.STORAGE_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))
/** The child stops by itself after this many saves, so a round is bounded even if the kill never comes. */
const childStepsMax = 5000

interface LogState {
  snapIndex: number
  hs: unknown
  entries: Entry[]
}

function stateOf(
  m: Pick<MemoryStorage, 'snapshot' | 'initialState' | 'firstIndex' | 'lastIndex' | 'entries'>,
): LogState {
  const snapIndex = m.snapshot().metadata.index
  // The log a reopened storage has: everything after the snapshot.
  const entries = m.lastIndex() > snapIndex ? m.entries(snapIndex + 1, m.lastIndex() + 1, Number.POSITIVE_INFINITY) : []
  return { snapIndex, hs: m.initialState().hardState, entries }
}

/** Runs the child until it has acknowledged `killAfter` saves, kills it, and returns the last acknowledged save. */
async function runChild(dir: string, roundSeed: number, killAfter: number, layout: Layout): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(here, 'crash-child.ts'),
      dir,
      String(roundSeed),
      String(childStepsMax),
      String(layout.walSegmentBytesMax),
      String(layout.walPreallocateBytes),
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let acked = 0
  let buf = ''
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString()
    let nl = buf.indexOf('\n')
    while (nl >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      const m = /^ack (\d+)$/.exec(line)
      if (m) {
        acked = Number(m[1])
        if (acked === killAfter) child.kill('SIGKILL')
      }
      nl = buf.indexOf('\n')
    }
  })
  const [code, signal] = await new Promise<[number | null, string | null]>((res) =>
    child.on('close', (c, s) => res([c, s])),
  )
  assert.ok(signal === 'SIGKILL' || code === 0, `child failed (code ${code}): ${stderr}`)
  return acked
}

interface Layout {
  walSegmentBytesMax: number
  walPreallocateBytes: number
}
/** 16 KiB segments, each zero-filled whole when it starts (the fill chunk is capped at the segment's size). */
const small: Layout = { walSegmentBytesMax: 16 * 1024, walPreallocateBytes: 1024 * 1024 }
/**
 * 256 KiB segments filled 2 KiB at a time: a fill is under way every few saves, so kills land mid-segment with the
 * fill in flight or just done, and the zeros after the last record are a preallocated tail (not a torn record).
 */
const fillAhead: Layout = { walSegmentBytesMax: 256 * 1024, walPreallocateBytes: 2048 }

test(`acknowledged saves survive SIGKILL (${rounds} rounds, seed ${seed}; replay with STORAGE_CRASH_SEED=${seed})`, () =>
  crashRounds(small))

test(`acknowledged saves survive SIGKILL with the zero fill running ahead mid-segment (${rounds} rounds, seed ${seed})`, () =>
  crashRounds(fillAhead))

async function crashRounds(layout: Layout): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'edgecd-crash-'))
  const r = rng(seed)
  /** Rounds whose newest segment ended in preallocated zeros at the kill. */
  let zeroTails = 0
  try {
    for (let round = 0; round < rounds; round++) {
      // The state the child will start from: what the previous round left on disk.
      const before = await openNodeStorage(dir, layout)
      const model = modelOf(before)
      await before.close()

      const roundSeed = Math.floor(r() * 2 ** 31)
      const killAfter = 1 + Math.floor(r() * 400)
      const acked = await runChild(dir, roundSeed, killAfter, layout)
      const newest = (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort()
      const tail = await readFile(join(dir, newest[newest.length - 1]!))
      if (tail[tail.length - 1] === 0) zeroTails++

      // A: the model after every acknowledged save; B: after the one that may have been in flight.
      const wr = rng(roundSeed)
      let inFlight: Op | undefined
      for (let n = 1; n <= acked + 1; n++) {
        const op = nextOp(model, wr)
        if (n === acked + 1) {
          inFlight = op
          break
        }
        applyOp(model, op)
      }
      const a = stateOf(model)
      applyOp(model, inFlight!)
      const b = stateOf(model)

      const after = await openNodeStorage(dir, layout)
      const got = stateOf(after)
      await after.close()
      const where = `round ${round} (seed ${seed}, round seed ${roundSeed}, ${acked} saves acknowledged)`
      assert.ok(acked >= 1, `${where}: the child acknowledged nothing`)
      if (matches(got, a) || matches(got, b)) continue
      // Partly written: the in-flight save's entries are a prefix of a write that was cut short, so the log is A up to
      // the first of them, then some of them, and the hard state (written last) is still A's.
      assert.ok(
        inFlight!.kind === 'save' && !inFlight!.snap && inFlight!.entries.length > 0,
        `${where}: log is neither the acknowledged one nor the next`,
      )
      const k = inFlight!.entries[0]!.index
      assert.deepEqual(got.hs, a.hs, `${where}: hard state`)
      assert.equal(got.snapIndex, a.snapIndex, `${where}: snapshot`)
      const keep = a.entries.filter((e) => e.index < k)
      const written = got.entries.slice(keep.length)
      assert.deepEqual(got.entries.slice(0, keep.length), keep, `${where}: acknowledged entries before the cut`)
      assert.ok(written.length > 0 && written.length < inFlight!.entries.length, `${where}: partial save`)
      assert.deepEqual(written, inFlight!.entries.slice(0, written.length), `${where}: partial save`)
    }
    if (rounds >= 3) assert.ok(zeroTails > 0, `no kill left a preallocated zero tail (seed ${seed})`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function matches(got: LogState, want: LogState): boolean {
  try {
    assert.deepEqual(got, want)
    return true
  } catch {
    return false
  }
}
