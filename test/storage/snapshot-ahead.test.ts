/**
 * saveSnapshot writes the snapshot file alongside the queued WAL saves (a big snapshot must not hold them up) and
 * queues only the step that makes it current; a crash in between leaves nothing that the next open keeps; a
 * snapshot overtaken by a newer one (a leader's, installed meanwhile) is dropped with ErrSnapOutOfDate and its
 * file removed.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { WriteFile } from '../../src/storage/file-ops.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { ents, snap } from './contract.js'

/** MemoryFileOps whose snapshot file writes wait for `release()`. */
class SnapGate extends MemoryFileOps {
  private waiting: (() => void)[] = []
  held = 0

  release(): void {
    for (const w of this.waiting.splice(0)) w()
  }

  override async openWrite(name: string): Promise<WriteFile> {
    const f = await super.openWrite(name)
    if (!name.endsWith('.snap.tmp')) return f
    return {
      size: f.size,
      close: () => f.close(),
      writeDurable: async (data, at) => {
        this.held++
        await new Promise<void>((r) => this.waiting.push(r))
        await f.writeDurable(data, at)
      },
    }
  }
}

const open = (ops: MemoryFileOps) => openFileStorage(ops, { walPreallocateBytes: 0 })
const tick = () => new Promise((r) => setImmediate(r))

test('WAL saves go on while a snapshot file is being written; the snapshot becomes current after', async () => {
  const ops = new SnapGate()
  const s = await open(ops)
  await s.save({ term: 1, vote: '1', commit: 10 }, ents(1, 10, 1))
  let snapDone = false
  const taking = s.saveSnapshot(snap(10, 1)).then(() => {
    snapDone = true
  })
  await tick()
  assert.equal(ops.held, 1, 'the snapshot file is being written')
  // Saves called now are not queued behind it (bounded: a regression fails here instead of hanging).
  let saved = false
  const saving = s.save({ term: 1, vote: '1', commit: 20 }, ents(11, 20, 1)).then(() => {
    saved = true
  })
  for (let i = 0; i < 50 && !saved; i++) await tick()
  assert.ok(saved, 'the save is not held up behind the snapshot file')
  await saving
  assert.equal(s.lastIndex(), 20)
  assert.equal(snapDone, false)
  assert.equal(s.snapshot().metadata.index, 0, 'not current before its file is durable')
  ops.release()
  await taking
  assert.equal(s.snapshot().metadata.index, 10)
  await s.compact(10)
  assert.equal(s.firstIndex(), 11)
  await s.close()
  const again = await open(ops)
  assert.equal(again.snapshot().metadata.index, 10)
  assert.equal(again.lastIndex(), 20)
  await again.close()
})

test('a crash while the snapshot file is written: the saves are kept, the half-made snapshot is not', async () => {
  const ops = new SnapGate()
  const s = await open(ops)
  await s.save({ term: 1, vote: '1', commit: 10 }, ents(1, 10, 1))
  void s.saveSnapshot(snap(10, 1)).catch(() => {})
  await tick()
  await s.save({ term: 1, vote: '1', commit: 15 }, ents(11, 15, 1))
  ops.crash()
  const again = await open(ops)
  const left = (await ops.list())!.filter((n) => n.includes('.snap'))
  assert.deepEqual(left, [], 'no snapshot file (or temp) is kept')
  await again.close()
})

test('a snapshot overtaken by a newer one is refused with ErrSnapOutOfDate and its file removed', async () => {
  const ops = new SnapGate()
  const s = await open(ops)
  await s.save({ term: 1, vote: '1', commit: 10 }, ents(1, 10, 1))
  const ours = s.saveSnapshot(snap(10, 1)).then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  )
  await tick()
  // Meanwhile the leader's snapshot at 30 arrives (its file is written in the queue, through the gate too).
  const leader = s.save({ term: 2, vote: '', commit: 30 }, [], snap(30, 2))
  await tick()
  ops.release()
  await tick()
  ops.release()
  await leader
  assert.equal((await ours)?.code, 'ErrSnapOutOfDate')
  assert.equal(s.snapshot().metadata.index, 30)
  const files = (await ops.list())!.filter((n) => n.endsWith('.snap'))
  assert.equal(files.length, 1, `only the leader's snapshot file is left: ${files.join(', ')}`)
  await s.close()
})
