/**
 * Group commit across calls on the file backend: saves called while a write is in flight are written by the next
 * step with one durable write, resolve only after it, in call order; if that write fails, every save in the group
 * fails and nothing of it shows on the read side.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isStorageError, StorageError } from '../../src/storage/errors.js'
import type { FileOps, WriteFile } from '../../src/storage/file-ops.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { assertLog, ents } from './contract.js'

/** MemoryFileOps whose WAL writes wait for `release()` while `hold` is set, and are counted. */
class GatedOps extends MemoryFileOps {
  hold = false
  fail = false
  walWrites = 0
  private waiting: (() => void)[] = []

  release(): void {
    for (const w of this.waiting.splice(0)) w()
  }

  override async openWrite(name: string): Promise<WriteFile> {
    const f = await super.openWrite(name)
    if (!name.endsWith('.wal')) return f
    return {
      size: f.size,
      close: () => f.close(),
      writeDurable: async (data, at) => {
        // Preallocation zeros are not saves.
        if (data.some((b) => b !== 0)) this.walWrites++
        if (this.hold) await new Promise<void>((r) => this.waiting.push(r))
        if (this.fail) throw new StorageError('ErrIO', `write ${name}: EIO`)
        await f.writeDurable(data, at)
      },
    }
  }
}

const open = (ops: FileOps) => openFileStorage(ops, { walPreallocateBytes: 0 })

test('saves called during a write go out together in one durable write, resolving in order after it', async () => {
  const ops = new GatedOps()
  const s = await open(ops)
  ops.hold = true
  const resolved: number[] = []
  const first = s.save({ term: 1, vote: '1', commit: 0 }, ents(1, 10, 1)).then(() => void resolved.push(0))
  await new Promise((r) => setImmediate(r))
  assert.equal(ops.walWrites, 1, 'the first save is being written')
  const rest = Array.from({ length: 9 }, (_, k) =>
    s
      .save({ term: 1, vote: '1', commit: 10 + k }, ents(11 + k * 10, 20 + k * 10, 1))
      .then(() => void resolved.push(k + 1)),
  )
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(resolved, [], 'nothing resolves before its write is durable')
  assert.equal(s.lastIndex(), 0, 'the read side shows nothing unacknowledged')
  ops.hold = false
  ops.release()
  await first
  await Promise.all(rest)
  assert.equal(ops.walWrites, 2, 'one write for the first save, one for the nine saves queued behind it')
  assert.deepEqual(resolved, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  assertLog(s, ents(1, 100, 1), { term: 1, vote: '1', commit: 18 })
  await s.close()
  ops.crash()
  const again = await open(ops)
  assertLog(again, ents(1, 100, 1), { term: 1, vote: '1', commit: 18 })
  await again.close()
})

test('a failed group write fails every save of the group and poisons the storage', async () => {
  const ops = new GatedOps()
  const s = await open(ops)
  await s.save({ term: 1, vote: '1', commit: 0 }, ents(1, 2, 1))
  ops.hold = true
  const first = s.save(undefined, ents(3, 3, 1))
  await new Promise((r) => setImmediate(r))
  const group = [s.save(undefined, ents(4, 4, 1)), s.save(undefined, ents(5, 5, 1))]
  ops.fail = true
  ops.release()
  ops.hold = false
  for (const p of [first, ...group]) await assert.rejects(p, (e) => isStorageError(e, 'ErrIO'))
  assert.equal(s.lastIndex(), 2)
  await assert.rejects(s.save(undefined, ents(3, 3, 1)), (e) => isStorageError(e, 'ErrIO'), 'poisoned')
  await s.close()
})

/** MemoryFileOps whose WAL file also writes "at once" (WriteFile.writeDurableNow, as Node's blocking small write). */
class NowOps extends MemoryFileOps {
  now = 0
  fail = false
  override async openWrite(name: string): Promise<WriteFile> {
    const f = await super.openWrite(name)
    if (!name.endsWith('.wal')) return f
    // MemoryFileOps' own write completes without waiting for anything: its effect is there once the call returns.
    const writeNow = (data: Uint8Array, at: number): undefined => {
      this.now++
      if (this.fail) throw new StorageError('ErrIO', `write ${name}: EIO`)
      void f.writeDurable(data, at)
      return undefined
    }
    return {
      size: f.size,
      close: () => f.close(),
      writeDurable: (d, at) => f.writeDurable(d, at),
      writeDurableNow: writeNow,
    }
  }
}

test('a save written durably at once (writeDurableNow) resolves with the read side updated; a failed one poisons', async () => {
  const ops = new NowOps()
  const s = await openFileStorage(ops, { walPreallocateBytes: 0 })
  for (let i = 1; i <= 5; i++) {
    const p = s.save({ term: 1, vote: '1', commit: i - 1 }, ents(i, i, 1))
    assert.equal(s.lastIndex(), i, 'the read side has the save as soon as the write is durable')
    await p
  }
  assert.equal(ops.now, 5, 'each save was one write made at once')
  ops.fail = true
  await assert.rejects(s.save(undefined, ents(6, 6, 1)), (e) => isStorageError(e, 'ErrIO'))
  assert.equal(s.lastIndex(), 5)
  ops.fail = false
  await assert.rejects(s.save(undefined, ents(6, 6, 1)), (e) => isStorageError(e, 'ErrIO'), 'poisoned')
  await s.close()
  ops.crash()
  const again = await openFileStorage(ops, { walPreallocateBytes: 0 })
  assertLog(again, ents(1, 5, 1), { term: 1, vote: '1', commit: 4 })
  await again.close()
})
