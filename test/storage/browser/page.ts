/**
 * Runs inside Chromium (bundled by esbuild in chromium.test.ts): writes a known log through the IndexedDB backend and
 * reads it back, so the test can check it across a page reload and a browser restart. Exposed on `window`.
 */

import type { Entry } from '../../../src/raft/types.js'
import { openIndexedDbStorage } from '../../../src/runtime/browser/indexeddb-storage.js'

const dbName = 'edgecd-e2e'

function entry(index: number, term: number): Entry {
  const data = new Uint8Array(64)
  for (let i = 0; i < data.length; i++) data[i] = (index * 31 + term * 17 + i * 7 + 1) & 0xff
  return { index, term, type: 0, data }
}

/** What the page reports: everything a reopened storage holds, in JSON-friendly form. */
async function read(): Promise<unknown> {
  const s = await openIndexedDbStorage(dbName)
  try {
    const entries =
      s.lastIndex() >= s.firstIndex() ? s.entries(s.firstIndex(), s.lastIndex() + 1, Number.POSITIVE_INFINITY) : []
    return {
      hardState: s.initialState().hardState,
      snapshot: { ...s.snapshot().metadata, data: Array.from(s.snapshot().data) },
      firstIndex: s.firstIndex(),
      lastIndex: s.lastIndex(),
      entries: entries.map((e) => ({ index: e.index, term: e.term, type: e.type, data: Array.from(e.data) })),
      dataIsUint8Array: entries.every((e) => e.data instanceof Uint8Array),
    }
  } finally {
    await s.close()
  }
}

/** Step 1: 10 saves of 5 entries, an application snapshot at 30, then a new leader overwriting from 46. */
async function writeInitial(): Promise<void> {
  const s = await openIndexedDbStorage(dbName)
  for (let k = 0; k < 10; k++) {
    const es = [1, 2, 3, 4, 5].map((i) => entry(k * 5 + i, 1))
    await s.save({ term: 1, vote: '1', commit: k * 5 + 3 }, es)
  }
  await s.saveSnapshot({
    data: new Uint8Array([1, 2, 3]),
    metadata: { index: 30, term: 1, confState: { voters: ['1'], learners: [] } },
  })
  await s.save({ term: 2, vote: '2', commit: 45 }, [entry(46, 2), entry(47, 2)])
  await s.close()
}

/** Step 2 (after a browser restart): a snapshot from the leader replaces the log, then two more entries. */
async function writeMore(): Promise<void> {
  const s = await openIndexedDbStorage(dbName)
  const snap = {
    data: new Uint8Array([9, 9]),
    metadata: { index: 60, term: 3, confState: { voters: ['1', '2'], learners: ['3'] } },
  }
  await s.save({ term: 3, vote: '', commit: 60 }, [], snap)
  await s.save({ term: 3, vote: '', commit: 61 }, [entry(61, 3), entry(62, 3)])
  await s.close()
}

;(globalThis as unknown as { edgecdStorage: unknown }).edgecdStorage = { read, writeInitial, writeMore }
