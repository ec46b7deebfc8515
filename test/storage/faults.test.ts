/**
 * Fault injection on the WAL and snapshot files: torn tails at every byte offset, flipped bits, zero-filled tails,
 * half-written snapshots, and bad data directories. Each must give a clean start that lost nothing acknowledged, or a
 * clear refusal (naming file and offset) that leaves every byte as it was. Byte-level cases run on the in-memory file
 * system (every offset, fast) and on real files through the Node backend.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { NodeFileOps, storageErrorFromNode } from '../../src/runtime/node/file-ops.js'
import { crc32c } from '../../src/storage/crc32c.js'
import { isStorageError } from '../../src/storage/errors.js'
import type { FileOps } from '../../src/storage/file-ops.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { fileHeaderBytes, scanFrames } from '../../src/storage/format.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { assertLog, ent, ents, snap } from './contract.js'

/** A place to damage: its FileOps plus raw byte access that bypasses them, as a disk fault would. */
interface Disk {
  ops: FileOps
  names(): Promise<string[]>
  get(name: string): Promise<Uint8Array>
  put(name: string, bytes: Uint8Array): Promise<void>
  cleanup(): Promise<void>
}

async function memoryDisk(): Promise<Disk> {
  const ops = new MemoryFileOps()
  return {
    ops,
    names: async () => (await ops.list()) ?? [],
    get: async (n) => ops.getFile(n),
    put: async (n, b) => ops.setFile(n, b),
    cleanup: async () => {},
  }
}

async function nodeDisk(): Promise<Disk> {
  const root = await mkdtemp(join(tmpdir(), 'edgecd-faults-'))
  const dir = join(root, 'data')
  return {
    ops: new NodeFileOps(dir),
    names: async () => (await readdir(dir).catch(() => [])).sort(),
    get: async (n) => new Uint8Array(await readFile(join(dir, n))),
    put: (n, b) => writeFile(join(dir, n), b),
    cleanup: () => rm(root, { recursive: true, force: true }),
  }
}

const opts = { walSegmentBytesMax: 2048 }
const open = (d: Disk) => openFileStorage(d.ops, opts)

async function lastSegment(d: Disk): Promise<string> {
  return (await d.names()).filter((n) => n.endsWith('.wal')).at(-1)!
}

/** The bytes of records in a segment: the rest of the file is the zeros the WAL preallocates. */
function used(bytes: Uint8Array): number {
  return scanFrames(bytes, fileHeaderBytes, 'seg', true).end
}

/** Every file and its bytes: proof that a refused open wrote nothing. */
async function snapshotDir(d: Disk): Promise<Map<string, string>> {
  const m = new Map<string, string>()
  for (const n of await d.names()) m.set(n, Buffer.from(await d.get(n)).toString('hex'))
  return m
}

/** Opening must fail with `code`, mention each of `words`, twice in a row (no crash loop), touching nothing. */
async function assertRefused(d: Disk, code: string, words: (string | RegExp)[]): Promise<void> {
  const before = await snapshotDir(d)
  for (let attempt = 0; attempt < 2; attempt++) {
    await assert.rejects(open(d), (err: unknown) => {
      assert.ok(isStorageError(err, code as never), `expected ${code}, got ${err}`)
      for (const w of words)
        assert.match((err as Error).message, typeof w === 'string' ? new RegExp(w.replace(/[.+]/g, '\\$&')) : w)
      return true
    })
  }
  assert.deepEqual(await snapshotDir(d), before, 'a refused open must not change any file')
}

/** 3 saves on a fresh disk; returns the storage (closed) and the last segment's size before the third save. */
async function populate(d: Disk): Promise<{ sizeBefore: number }> {
  const s = await open(d)
  await s.save({ term: 1, vote: '1', commit: 2 }, ents(1, 3, 1))
  await s.save({ term: 1, vote: '1', commit: 3 }, ents(4, 5, 1))
  const sizeBefore = used(await d.get(await lastSegment(d)))
  await s.save({ term: 2, vote: '2', commit: 5 }, ents(6, 8, 2))
  await s.close()
  return { sizeBefore }
}

const acknowledged = ents(1, 5, 1)
const hsBefore = { term: 1, vote: '1', commit: 3 }

for (const [kind, makeDisk] of [
  ['memory', memoryDisk],
  ['node', nodeDisk],
] as const) {
  describe(`storage faults (${kind} files)`, () => {
    test('a last save cut at every byte offset opens cleanly with a prefix of it, and keeps working', async () => {
      const d = await makeDisk()
      try {
        const { sizeBefore } = await populate(d)
        const seg = await lastSegment(d)
        const full = await d.get(seg)
        const end = used(full)
        assert.ok(full.byteLength > end && full.subarray(end).every((b) => b === 0), 'the segment is preallocated')
        for (let cut = sizeBefore; cut < end; cut++) {
          // A save that grew the file (the preallocation was used up) and was cut short: the file ends at `cut`.
          await d.put(seg, full.subarray(0, cut))
          const s = await open(d)
          // The hard state is the last record, so it is never there when the save was cut.
          assert.deepEqual(s.initialState().hardState, hsBefore, `cut at ${cut}`)
          const extra = s.lastIndex() - 5
          assert.ok(extra >= 0 && extra <= 3, `cut at ${cut}: lastIndex ${s.lastIndex()}`)
          assertLog(s, [...acknowledged, ...ents(6, 8, 2).slice(0, extra)])
          if (cut === sizeBefore + 20) assert.match(s.recovery.tornTail!, /cut short .* at offset \d+; truncated there/)
          // The file was cut at a whole record: a new save lands after it and survives a reopen.
          await s.save({ term: 3, vote: '3', commit: 5 }, [ent(6 + extra, 3)])
          await s.close()
          const again = await open(d)
          assertLog(again, [...acknowledged, ...ents(6, 8, 2).slice(0, extra), ent(6 + extra, 3)], {
            term: 3,
            vote: '3',
            commit: 5,
          })
          await again.close()
        }
      } finally {
        await d.cleanup()
      }
    })

    test('a last save torn at each disk sector inside the preallocated zeros opens cleanly with a prefix', async () => {
      const d = await makeDisk()
      try {
        const big = { walSegmentBytesMax: 16384 }
        let s = await openFileStorage(d.ops, big)
        await s.save({ term: 1, vote: '1', commit: 2 }, ents(1, 2, 1, 100))
        const seg = await lastSegment(d)
        const before = used(await d.get(seg))
        await s.save({ term: 1, vote: '1', commit: 8 }, ents(3, 8, 1, 300))
        await s.close()
        const full = await d.get(seg)
        const end = used(full)
        // A disk writes whole 512-byte sectors: a torn save left the sectors up to some boundary, and zeros after.
        const cuts = [before]
        for (let b = Math.ceil(before / 512) * 512; b < end; b += 512) if (b > before) cuts.push(b)
        assert.ok(cuts.length >= 3, `the save spans several sectors (${cuts})`)
        for (const cut of cuts) {
          const torn = full.slice()
          torn.fill(0, cut)
          await d.put(seg, torn)
          s = await openFileStorage(d.ops, big)
          assert.deepEqual(s.initialState().hardState, { term: 1, vote: '1', commit: 2 }, `torn at ${cut}`)
          assert.ok(s.lastIndex() >= 2 && s.lastIndex() <= 8, `torn at ${cut}: lastIndex ${s.lastIndex()}`)
          assertLog(
            s,
            ents(1, s.lastIndex(), 1).map((e) => ent(e.index, 1, e.index <= 2 ? 100 : 300)),
          )
          await s.save({ term: 2, vote: '2', commit: 2 }, [ent(s.lastIndex() + 1, 2)])
          const last = s.lastIndex()
          await s.close()
          const again = await openFileStorage(d.ops, big)
          assert.equal(again.lastIndex(), last, `torn at ${cut}: the save after recovery survives`)
          assert.deepEqual(again.initialState().hardState, { term: 2, vote: '2', commit: 2 })
          await again.close()
        }
      } finally {
        await d.cleanup()
      }
    })

    test('a flipped bit in a middle record is refused with file and offset', async () => {
      const d = await makeDisk()
      try {
        await populate(d)
        const seg = await lastSegment(d)
        const bytes = await d.get(seg)
        // Second frame: after the 16-byte header and the first frame (12-byte frame header + body).
        const first = 16 + 12 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(16, true)
        for (const [at, what] of [
          [first + 20, 'record checksum mismatch'],
          [first + 1, 'frame header checksum mismatch'],
        ] as const) {
          const bad = bytes.slice()
          bad[at]! ^= 0x10
          await d.put(seg, bad)
          await assertRefused(d, 'ErrCorrupt', [seg, what, `offset ${first}`])
        }
      } finally {
        await d.cleanup()
      }
    })

    test('a flipped bit in the last whole record is refused, not truncated away', async () => {
      const d = await makeDisk()
      try {
        await populate(d)
        const seg = await lastSegment(d)
        const bad = (await d.get(seg)).slice()
        bad[used(bad) - 3]! ^= 0x01
        await d.put(seg, bad)
        await assertRefused(d, 'ErrCorrupt', [seg, 'record checksum mismatch'])
      } finally {
        await d.cleanup()
      }
    })

    test('a zero tail is the end of the log and is kept; zeros before valid records are corruption', async () => {
      const d = await makeDisk()
      try {
        await populate(d)
        const seg = await lastSegment(d)
        const good = await d.get(seg)
        const padded = new Uint8Array(good.byteLength + 5000)
        padded.set(good)
        await d.put(seg, padded)
        let s = await open(d)
        assert.equal(s.recovery.tornTail, undefined, 'zeros after the last record are preallocated space, not damage')
        assertLog(s, [...acknowledged, ...ents(6, 8, 2)], { term: 2, vote: '2', commit: 5 })
        await s.close()
        assert.equal((await d.get(seg)).byteLength, padded.byteLength, 'the zeros stay')

        // A big last record whose final sector never reached the disk: torn, cut off. (Bigger segments here, so
        // that the record stays in the last one.)
        s = await openFileStorage(d.ops, { walSegmentBytesMax: 65536 })
        await s.save(undefined, [ent(9, 2, 3000)])
        await s.close()
        assert.equal(await lastSegment(d), seg)
        const withBig = await d.get(seg)
        const zeroed = withBig.slice()
        zeroed.fill(0, used(withBig) - 1100)
        await d.put(seg, zeroed)
        s = await open(d)
        assert.match(s.recovery.tornTail!, /zeroed sector/)
        assert.equal(s.lastIndex(), 8)
        await s.close()

        const holed = (await d.get(seg)).slice()
        holed.fill(0, 16, 40)
        await d.put(seg, holed)
        await assertRefused(d, 'ErrCorrupt', [seg, 'offset 16'])
      } finally {
        await d.cleanup()
      }
    })

    test('damage in a segment that is not the last is refused', async () => {
      const d = await makeDisk()
      try {
        const s = await open(d)
        for (let i = 1; i <= 40; i++) await s.save({ term: 1, vote: '1', commit: i }, [ent(i, 1, 100)])
        await s.close()
        const segs = (await d.names()).filter((n) => n.endsWith('.wal'))
        assert.ok(segs.length >= 2, 'several segments')
        const first = await d.get(segs[0]!)
        await d.put(segs[0]!, first.subarray(0, first.byteLength - 5))
        await assertRefused(d, 'ErrCorrupt', [segs[0]!, 'cut short'])
        await d.put(segs[0]!, first)
        const middle = segs[1]!
        const removed = await d.get(middle)
        if (segs.length >= 3) {
          await d.ops.unlink(middle)
          await assertRefused(d, 'ErrCorrupt', ['segment 1 is missing'])
          await d.put(middle, removed)
        }
        const ok = await open(d)
        assertLog(ok, ents(1, 40, 1, 100))
        await ok.close()
      } finally {
        await d.cleanup()
      }
    })

    test('half-written snapshots: a temp file, an unacknowledged file, a truncated or missing file', async () => {
      const d = await makeDisk()
      try {
        let s = await open(d)
        await s.save({ term: 1, vote: '1', commit: 10 }, ents(1, 10, 1))
        await s.saveSnapshot(snap(8, 1))
        await s.close()
        const snapName = (await d.names()).find((n) => n.endsWith('.snap'))!
        const snapBytes = await d.get(snapName)

        // A crash while writing the next snapshot left its temp file, and a crash after the rename left a snapshot
        // the WAL never recorded: both are from saves that were never acknowledged.
        await d.put('snap-0000000000000009-0000000000000001.snap.tmp', snapBytes.subarray(0, 30))
        await d.put('snap-000000000000000a-0000000000000001.snap', snapBytes)
        s = await open(d)
        assert.deepEqual(s.recovery.removedTemps, ['snap-0000000000000009-0000000000000001.snap.tmp'])
        assert.deepEqual(s.snapshot(), snap(8, 1))
        assertLog(s, ents(9, 10, 1), { term: 1, vote: '1', commit: 10 })
        await s.close()
        assert.deepEqual(
          (await d.names()).filter((n) => n.includes('snap')),
          [snapName],
        )

        await d.put(snapName, snapBytes.subarray(0, snapBytes.byteLength - 10))
        await assertRefused(d, 'ErrCorrupt', [snapName, 'cut short'])
        await d.ops.unlink(snapName)
        await assertRefused(d, 'ErrCorrupt', [snapName, 'is missing'])
        await d.put(snapName, snapBytes)
        s = await open(d)
        assert.deepEqual(s.snapshot(), snap(8, 1))
        await s.close()
      } finally {
        await d.cleanup()
      }
    })

    test('a data directory of another format version is refused and left alone', async () => {
      const d = await makeDisk()
      try {
        await populate(d)
        const seg = (await d.names()).find((n) => n.endsWith('.wal'))!
        const bytes = (await d.get(seg)).slice()
        const view = new DataView(bytes.buffer)
        view.setUint32(8, 2, true)
        view.setUint32(12, crc32c(bytes.subarray(0, 12)), true)
        await d.put(seg, bytes)
        await assertRefused(d, 'ErrVersion', [seg, 'format version 2', 'reads version 1'])
      } finally {
        await d.cleanup()
      }
    })

    test('a directory holding files that are not ours is refused and left alone', async () => {
      const d = await makeDisk()
      try {
        await d.ops.mkdir()
        await d.put('notes.txt', new TextEncoder().encode('mine'))
        await d.put('wal-1.wal', new Uint8Array(3))
        await assertRefused(d, 'ErrNotEdgecdDir', ['notes.txt', 'wal-1.wal', 'edgecd did not write'])
        assert.deepEqual(await d.names(), ['notes.txt', 'wal-1.wal'])
      } finally {
        await d.cleanup()
      }
    })

    test('a directory that cannot be written is refused with ErrReadOnly; readOnly opens serve reads', async () => {
      const d = await makeDisk()
      try {
        await populate(d)
        const ro = readOnlyOps(d.ops)
        const before = await snapshotDir(d)
        await assert.rejects(
          openFileStorage(ro, opts),
          (e) => isStorageError(e, 'ErrReadOnly') && /read-only/.test((e as Error).message),
        )
        await assert.rejects(
          openFileStorage(
            readOnlyOps(
              kind === 'node' ? new NodeFileOps(join(tmpdir(), 'edgecd-missing-ro', 'x')) : new MemoryFileOps(),
            ),
            opts,
          ),
          (e) => isStorageError(e, 'ErrReadOnly'),
        )
        const s = await openFileStorage(ro, { ...opts, readOnly: true })
        assertLog(s, [...acknowledged, ...ents(6, 8, 2)], { term: 2, vote: '2', commit: 5 })
        await assert.rejects(s.save(undefined, [ent(9, 2)]), (e) => isStorageError(e, 'ErrReadOnly'))
        await s.close()
        assert.deepEqual(await snapshotDir(d), before)
      } finally {
        await d.cleanup()
      }
    })

    test('after a failed write every later write fails, and a reopen has exactly what was acknowledged', async () => {
      const d = await makeDisk()
      try {
        const failing = failAfter(d.ops)
        const s = await openFileStorage(failing, opts)
        await s.save({ term: 1, vote: '1', commit: 1 }, ents(1, 2, 1))
        failing.fail = true
        await assert.rejects(s.save({ term: 1, vote: '1', commit: 2 }, [ent(3, 1)]), (e) => isStorageError(e, 'ErrIO'))
        failing.fail = false
        await assert.rejects(s.save(undefined, [ent(3, 1)]), (e) => isStorageError(e, 'ErrIO'), 'poisoned')
        assert.equal(s.lastIndex(), 2, 'the read side never shows an unacknowledged write')
        await s.close()
        const again = await open(d)
        assert.ok(again.lastIndex() === 2 || again.lastIndex() === 3)
        assertLog(again, again.lastIndex() === 2 ? ents(1, 2, 1) : ents(1, 3, 1))
        await again.close()
      } finally {
        await d.cleanup()
      }
    })
  })
}

/** Wraps ops so that every write fails as on a read-only mount (EROFS), the way the Node adapter reports it. */
function readOnlyOps(ops: FileOps): FileOps {
  const refuse = async (name: string): Promise<never> => {
    const err = Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' })
    throw storageErrorFromNode(err, 'write', ops.path(name))
  }
  return {
    path: (n) => ops.path(n),
    list: () => ops.list(),
    read: (n) => ops.read(n),
    mkdir: () => refuse(''),
    openWrite: (n) => refuse(n),
    truncate: (n) => refuse(n),
    rename: (_f, t) => refuse(t),
    unlink: (n) => refuse(n),
    syncDir: () => refuse(''),
  }
}

/** Wraps ops so that, while `fail` is set, durable writes fail with EIO (a dying disk). */
function failAfter(ops: FileOps): FileOps & { fail: boolean } {
  const w = {
    fail: false,
    path: (n: string) => ops.path(n),
    list: () => ops.list(),
    read: (n: string) => ops.read(n),
    mkdir: () => ops.mkdir(),
    truncate: (n: string, s: number) => ops.truncate(n, s),
    rename: (f: string, t: string) => ops.rename(f, t),
    unlink: (n: string) => ops.unlink(n),
    syncDir: () => ops.syncDir(),
    openWrite: async (n: string) => {
      const f = await ops.openWrite(n)
      return {
        size: f.size,
        close: () => f.close(),
        writeDurable: async (b: Uint8Array, at: number) => {
          if (w.fail)
            throw storageErrorFromNode(
              Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }),
              'fdatasync',
              ops.path(n),
            )
          await f.writeDurable(b, at)
        },
      }
    },
  }
  return w
}

describe('storage faults (a real read-only mount)', () => {
  test('opening on a read-only bind mount fails with ErrReadOnly and changes nothing', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'edgecd-rofs-'))
    const src = join(root, 'src')
    const mnt = join(root, 'mnt')
    await mkdir(mnt)
    let mounted = false
    try {
      const s = await openFileStorage(new NodeFileOps(src), opts)
      await s.save({ term: 1, vote: '1', commit: 1 }, ents(1, 3, 1))
      await s.close()
      const bind = spawnSync('mount', ['--bind', src, mnt], { stdio: 'ignore' })
      mounted = bind.status === 0
      const ro = mounted && spawnSync('mount', ['-o', 'remount,ro,bind', mnt], { stdio: 'ignore' }).status === 0
      if (!ro) {
        t.skip(
          'cannot make a read-only bind mount here (needs root and CAP_SYS_ADMIN); the EROFS wrapper cases cover the logic',
        )
        return
      }
      const before = await readdir(src)
      await assert.rejects(
        openFileStorage(new NodeFileOps(mnt), opts),
        (e) => isStorageError(e, 'ErrReadOnly') && /EROFS/.test((e as Error).message),
      )
      const r = await openFileStorage(new NodeFileOps(mnt), { ...opts, readOnly: true })
      assertLog(r, ents(1, 3, 1), { term: 1, vote: '1', commit: 1 })
      await r.close()
      assert.deepEqual(await readdir(src), before)
    } finally {
      if (mounted) spawnSync('umount', [mnt], { stdio: 'ignore' })
      await rm(root, { recursive: true, force: true })
    }
  })
})
