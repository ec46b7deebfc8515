/**
 * The contract every DurableStorage backend must meet (the TinyBase style: one suite, a thin runner per backend).
 * Each case gets a backend whose `open()` opens the same place every time; a "reopen" is close() then open(), and a
 * backend may add a simulated power cut in between (the memory one does), since nothing acknowledged may be lost.
 *
 * Portable: node:assert only, so it also runs under `deno test` and, bundled, in a browser page.
 */
import assert from 'node:assert/strict'
import { isRaftError } from '../../src/raft/errors.js'
import type { Entry, HardState, Snapshot } from '../../src/raft/types.js'
import type { DurableStorage } from '../../src/storage/durable-storage.js'
import { isStorageError } from '../../src/storage/errors.js'

export interface StorageBackend {
  /** Opens the storage at this backend's one location, creating it on first use. */
  open(): Promise<DurableStorage>
}

export interface ContractCase {
  name: string
  run(backend: StorageBackend): Promise<void>
}

/** A deterministic, non-zero payload for (index, term), so a swapped or stale entry is caught. */
export function payload(index: number, term: number, size = 16): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (index * 31 + term * 17 + i * 7 + 1) & 0xff
  return out
}

export function ent(index: number, term: number, size = 16): Entry {
  return { index, term, type: 0, data: payload(index, term, size) }
}

export function ents(lo: number, hi: number, term: number, size = 16): Entry[] {
  const out: Entry[] = []
  for (let i = lo; i <= hi; i++) out.push(ent(i, term, size))
  return out
}

export function snap(index: number, term: number, voters = ['1', '2', '3']): Snapshot {
  return { data: payload(index, term, 64), metadata: { index, term, confState: { voters, learners: ['4'] } } }
}

async function reopen(b: StorageBackend, s: DurableStorage): Promise<DurableStorage> {
  await s.close()
  return b.open()
}

/** Asserts the storage holds exactly `want` as its log (after the snapshot) and `hs` as its hard state. */
export function assertLog(s: DurableStorage, want: Entry[], hs?: HardState): void {
  if (want.length > 0) {
    assert.equal(s.firstIndex(), want[0]!.index, 'firstIndex')
    assert.equal(s.lastIndex(), want[want.length - 1]!.index, 'lastIndex')
    assert.deepEqual(s.entries(s.firstIndex(), s.lastIndex() + 1, Number.POSITIVE_INFINITY), want)
  }
  if (hs) assert.deepEqual(s.initialState().hardState, hs)
}

const raftErr = (code: string) => (err: unknown) => isRaftError(err, code as never)

export const contractCases: ContractCase[] = [
  {
    name: 'a new storage is empty',
    async run(b) {
      const s = await b.open()
      assert.equal(s.firstIndex(), 1)
      assert.equal(s.lastIndex(), 0)
      assert.equal(s.term(0), 0)
      assert.deepEqual(s.initialState(), {
        hardState: { term: 0, vote: '', commit: 0 },
        confState: { voters: [], learners: [] },
      })
      assert.equal(s.snapshot().metadata.index, 0)
      assert.throws(() => s.entries(1, 2, 100), raftErr('ErrUnavailable'))
      await s.close()
    },
  },
  {
    name: 'hard state, entries and a snapshot survive a reopen',
    async run(b) {
      let s = await b.open()
      const hs1 = { term: 1, vote: '1', commit: 3 }
      await s.save(hs1, ents(1, 5, 1))
      assertLog(s, ents(1, 5, 1), hs1)
      s = await reopen(b, s)
      assertLog(s, ents(1, 5, 1), hs1)
      assert.equal(s.term(3), 1)

      const hs2 = { term: 2, vote: '2', commit: 10 }
      await s.save(hs2, ents(11, 12, 2), snap(10, 2))
      s = await reopen(b, s)
      assert.deepEqual(s.snapshot(), snap(10, 2))
      assert.deepEqual(s.initialState().confState, { voters: ['1', '2', '3'], learners: ['4'] })
      assertLog(s, ents(11, 12, 2), hs2)
      assert.equal(s.term(10), 2)
      await s.close()
    },
  },
  {
    name: 'an entry at an existing index replaces it and drops the tail (new leader)',
    async run(b) {
      let s = await b.open()
      await s.save({ term: 1, vote: '1', commit: 5 }, ents(1, 10, 1))
      await s.save({ term: 2, vote: '2', commit: 5 }, ents(6, 7, 2))
      const want = [...ents(1, 5, 1), ...ents(6, 7, 2)]
      assertLog(s, want, { term: 2, vote: '2', commit: 5 })
      s = await reopen(b, s)
      assertLog(s, want, { term: 2, vote: '2', commit: 5 })
      await s.save(undefined, [ent(8, 2)])
      await s.save({ term: 3, vote: '3', commit: 5 }, [ent(7, 3)])
      s = await reopen(b, s)
      assertLog(s, [...ents(1, 5, 1), ent(6, 2), ent(7, 3)], { term: 3, vote: '3', commit: 5 })
      await s.close()
    },
  },
  {
    name: 'a snapshot from the leader replaces the log',
    async run(b) {
      let s = await b.open()
      await s.save({ term: 1, vote: '1', commit: 4 }, ents(1, 10, 1))
      await s.save({ term: 3, vote: '', commit: 8 }, [], snap(8, 3))
      assert.equal(s.firstIndex(), 9)
      assert.equal(s.lastIndex(), 8)
      assert.equal(s.term(8), 3)
      s = await reopen(b, s)
      assert.equal(s.firstIndex(), 9)
      assert.equal(s.lastIndex(), 8, 'the stale entries 9 and 10 must not come back')
      assert.deepEqual(s.snapshot(), snap(8, 3))
      await s.save(undefined, ents(9, 10, 3))
      s = await reopen(b, s)
      assertLog(s, ents(9, 10, 3), { term: 3, vote: '', commit: 8 })
      await s.close()
    },
  },
  {
    name: 'saveSnapshot keeps the log after the snapshot; compact drops what is behind it',
    async run(b) {
      let s = await b.open()
      await s.save({ term: 1, vote: '1', commit: 20 }, ents(1, 20, 1))
      await s.saveSnapshot(snap(15, 1))
      assert.equal(s.firstIndex(), 1, 'saveSnapshot alone does not compact the read side')
      await s.compact(10)
      assert.equal(s.firstIndex(), 11)
      assert.equal(s.term(10), 1)
      assert.throws(() => s.term(9), raftErr('ErrCompacted'))
      assert.throws(() => s.entries(10, 12, 1000), raftErr('ErrCompacted'))
      await assert.rejects(s.compact(10), raftErr('ErrCompacted'))
      await assert.rejects(s.compact(16), /past the snapshot/)
      assertLog(s, ents(11, 20, 1))
      s = await reopen(b, s)
      // After a restart the log starts right after the snapshot, as etcd's does.
      assert.deepEqual(s.snapshot(), snap(15, 1))
      assertLog(s, ents(16, 20, 1), { term: 1, vote: '1', commit: 20 })
      await s.close()
    },
  },
  {
    name: 'entries() stops at maxBytes but always returns one entry',
    async run(b) {
      let s = await b.open()
      await s.save(undefined, ents(1, 10, 1, 100))
      for (let round = 0; round < 2; round++) {
        // entrySize is data + 24 = 124 bytes.
        assert.equal(s.entries(1, 11, 250).length, 2)
        assert.equal(s.entries(1, 11, 248).length, 2)
        assert.equal(s.entries(1, 11, 247).length, 1)
        assert.equal(s.entries(1, 11, 0).length, 1)
        assert.deepEqual(s.entries(3, 6, 10_000), ents(3, 5, 1, 100))
        s = await reopen(b, s)
      }
      await s.close()
    },
  },
  {
    name: 'ErrCompacted below the log, ErrUnavailable past it',
    async run(b) {
      let s = await b.open()
      await s.save(undefined, ents(1, 10, 1))
      await s.saveSnapshot(snap(5, 1))
      s = await reopen(b, s)
      assert.throws(() => s.entries(5, 7, 100), raftErr('ErrCompacted'))
      assert.throws(() => s.entries(6, 12, 100), raftErr('ErrUnavailable'))
      assert.throws(() => s.term(4), raftErr('ErrCompacted'))
      assert.throws(() => s.term(11), raftErr('ErrUnavailable'))
      assert.equal(s.term(5), 1)
      await assert.rejects(s.saveSnapshot(snap(11, 1)), raftErr('ErrUnavailable'))
      await s.close()
    },
  },
  {
    name: 'a snapshot not newer than the current one is rejected and changes nothing',
    async run(b) {
      let s = await b.open()
      await s.save({ term: 2, vote: '1', commit: 10 }, ents(11, 12, 2), snap(10, 2))
      await assert.rejects(s.save({ term: 9, vote: '9', commit: 10 }, [], snap(10, 2)), raftErr('ErrSnapOutOfDate'))
      await assert.rejects(s.save(undefined, [], snap(7, 2)), raftErr('ErrSnapOutOfDate'))
      await assert.rejects(s.saveSnapshot(snap(9, 2)), raftErr('ErrSnapOutOfDate'))
      s = await reopen(b, s)
      assert.deepEqual(s.snapshot(), snap(10, 2))
      assertLog(s, ents(11, 12, 2), { term: 2, vote: '1', commit: 10 })
      await s.close()
    },
  },
  {
    name: 'everything survives a reopen after many saves, snapshots and compactions',
    async run(b) {
      let s = await b.open()
      let hs: HardState = { term: 1, vote: '1', commit: 0 }
      const savesMax = 600
      for (let i = 1; i <= savesMax; i++) {
        const term = 1 + Math.floor(i / 250)
        hs = { term, vote: '1', commit: Math.max(0, i - 2) }
        await s.save(hs, [ent(i, term, 200)])
        if (i % 100 === 0) {
          await s.saveSnapshot(snap(i - 2, s.term(i - 2)))
          await s.compact(Math.max(i - 50, s.firstIndex()))
        }
        if (i === 350) s = await reopen(b, s)
      }
      s = await reopen(b, s)
      assert.equal(s.snapshot().metadata.index, 598)
      const want: Entry[] = [599, 600].map((i) => ent(i, 1 + Math.floor(i / 250), 200))
      assertLog(s, want, hs)
      await s.close()
    },
  },
  {
    name: 'saves called without waiting (group commit) resolve in order, each durable; a bad one is refused alone',
    async run(b) {
      let s = await b.open()
      await s.save({ term: 1, vote: '1', commit: 0 }, ents(1, 2, 1))
      const order: number[] = []
      const calls: Promise<void>[] = []
      for (let k = 0; k < 20; k++) {
        const lo = 3 + k * 3
        calls.push(s.save({ term: 1, vote: '1', commit: lo }, ents(lo, lo + 2, 1)).then(() => void order.push(k)))
        // A save with a gap, called in the middle of the pipeline: refused, and nothing else is affected.
        if (k === 7) {
          calls.push(
            assert.rejects(s.save(undefined, [ent(500, 1)]), { name: 'RaftAssertionError' }).then(() => {
              order.push(-1)
            }),
          )
        }
        // An entry at an existing index in the same pipeline: the later save replaces the tail of the earlier one.
        if (k === 19)
          calls.push(s.save({ term: 2, vote: '2', commit: 60 }, [ent(62, 2)]).then(() => void order.push(20)))
      }
      await Promise.all(calls)
      // The refused save is refused when its turn comes, before the group it was in is written; the others resolve
      // in call order.
      assert.deepEqual(
        order.filter((k) => k >= 0),
        Array.from({ length: 21 }, (_, k) => k),
      )
      assert.equal(order.filter((k) => k === -1).length, 1)
      const want = [...ents(1, 61, 1), ent(62, 2)]
      assertLog(s, want, { term: 2, vote: '2', commit: 60 })
      s = await reopen(b, s)
      assertLog(s, want, { term: 2, vote: '2', commit: 60 })
      await s.close()
    },
  },
  {
    name: 'writes after close are refused with ErrClosed',
    async run(b) {
      const s = await b.open()
      await s.save(undefined, [ent(1, 1)])
      await s.close()
      await assert.rejects(s.save(undefined, [ent(2, 1)]), (e) => isStorageError(e, 'ErrClosed'))
      const again = await b.open()
      assertLog(again, [ent(1, 1)])
      await again.close()
    },
  },
]
