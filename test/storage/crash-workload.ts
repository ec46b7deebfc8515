/**
 * The deterministic workload of the crash test, shared by the child that writes (crash-child.ts) and the parent that
 * checks (crash.test.ts): given the same starting state and seed, both derive the same sequence of operations, so the
 * parent knows exactly what the child's n-th acknowledged save contained without the child telling it.
 */
import { MemoryStorage } from '../../src/raft/storage.js'
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js'
import type { DurableStorage } from '../../src/storage/durable-storage.js'

/** A small seeded PRNG (mulberry32): the test must replay from its printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type Op =
  | { kind: 'save'; hs: HardState; entries: Entry[]; snap?: Snapshot }
  | { kind: 'saveSnapshot'; snap: Snapshot }

/** What the workload reads to decide the next op: the same on a DurableStorage and on the parent's model. */
interface LogView {
  lastIndex(): number
  term(i: number): number
  initialState(): { hardState: HardState }
  snapshot(): Snapshot
}

function bytes(r: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = 1 + Math.floor(r() * 255)
  return out
}

/**
 * The next operation: mostly appends by the current leader, sometimes a new leader overwriting the uncommitted tail,
 * an application snapshot of committed state, or a snapshot from the leader that replaces the log. Commit never goes
 * back and never passes the log, as in Raft.
 */
export function nextOp(s: LogView, r: () => number): Op {
  const hs = s.initialState().hardState
  const last = s.lastIndex()
  const snapIndex = s.snapshot().metadata.index
  const term = Math.max(hs.term, 1)
  const x = r()
  if (x < 0.07 && hs.commit > snapIndex) {
    const index = hs.commit
    return {
      kind: 'saveSnapshot',
      snap: {
        data: bytes(r, 64),
        metadata: { index, term: s.term(index), confState: { voters: ['1'], learners: [] } },
      },
    }
  }
  if (x < 0.1) {
    const index = last + 1 + Math.floor(r() * 5)
    const snap = { data: bytes(r, 128), metadata: { index, term, confState: { voters: ['1', '2'], learners: [] } } }
    return { kind: 'save', hs: { term, vote: '2', commit: index }, entries: [], snap }
  }
  if (x < 0.18 && last > hs.commit) {
    const from = hs.commit + 1 + Math.floor(r() * (last - hs.commit))
    const n = 1 + Math.floor(r() * 4)
    const entries: Entry[] = []
    for (let i = 0; i < n; i++)
      entries.push({ index: from + i, term: term + 1, type: 0, data: bytes(r, 16 + Math.floor(r() * 300)) })
    return { kind: 'save', hs: { term: term + 1, vote: '3', commit: hs.commit }, entries }
  }
  const n = 1 + Math.floor(r() * 12)
  const entries: Entry[] = []
  for (let i = 0; i < n; i++)
    entries.push({ index: last + 1 + i, term, type: 0, data: bytes(r, 16 + Math.floor(r() * 600)) })
  const commit = Math.max(hs.commit, last + n - Math.floor(r() * 4))
  return { kind: 'save', hs: { term, vote: hs.vote || '1', commit: Math.min(commit, last + n) }, entries }
}

/** Runs op on a durable storage, with the compaction a member would do after an application snapshot. */
export async function runOp(s: DurableStorage, op: Op): Promise<void> {
  if (op.kind === 'save') {
    await s.save(op.hs, op.entries, op.snap)
    return
  }
  await s.saveSnapshot(op.snap)
  const keep = op.snap.metadata.index - 20
  if (keep >= s.firstIndex()) await s.compact(keep)
}

/** Applies op to the parent's model: the log exactly as the storage should hold it after op is acknowledged. */
export function applyOp(m: MemoryStorage, op: Op): void {
  if (op.kind === 'saveSnapshot') {
    m.createSnapshot(op.snap.metadata.index, op.snap.metadata.confState, op.snap.data)
    return
  }
  if (op.snap) m.applySnapshot(op.snap)
  m.append(op.entries)
  m.setHardState(op.hs)
}

/** A model holding what a reopened storage holds: its snapshot, the entries after it, its hard state. */
export function modelOf(
  s: LogView & { entries(lo: number, hi: number, max: number): Entry[]; firstIndex(): number },
): MemoryStorage {
  const m = new MemoryStorage()
  const snap = s.snapshot()
  if (snap.metadata.index > 0) m.applySnapshot(snap)
  if (s.lastIndex() >= s.firstIndex()) m.append(s.entries(s.firstIndex(), s.lastIndex() + 1, Number.POSITIVE_INFINITY))
  m.setHardState(s.initialState().hardState)
  return m
}
