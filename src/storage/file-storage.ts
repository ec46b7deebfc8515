import type { HardState, Snapshot } from '../raft/types.js'
import { isEmptyHardState } from '../raft/types.js'
import { CachedStorage, type SaveRecords } from './cached-storage.js'
import type { DurableStorage } from './durable-storage.js'
import { StorageError } from './errors.js'
import { type SegmentName, type SnapshotName, segmentFileName, snapshotFileName } from './file-names.js'
import { type FileOps, type WriteFile, writeFileAtomic } from './file-ops.js'
import { encodeFileHeader, FrameWriter, walMagic } from './format.js'
import { addEntryRecord, addHardStateRecord, addSnapshotRecord, encodeSnapshotFile } from './records.js'
import { checkOurs, recover } from './recovery.js'

/** Limits of the file backend; each has a unit in its name and a default. */
export interface FileStorageOptions {
  /** A WAL segment is closed and a new one started once it reaches this size (etcd: 64 MiB). Default 64 MiB. */
  walSegmentBytesMax?: number
  /** Snapshot files kept, newest first; older ones are deleted. Default 2: the one in use and the one before. */
  snapshotFilesMax?: number
  /**
   * The WAL segment is kept this far ahead of the write position in zeros that are already written and synced, filled
   * in the background, so that a save overwrites allocated blocks and its sync flushes no file size or extent metadata
   * (etcd preallocates its segments for the same reason). Measured on this VM's disk: 1.3-3x the syncs per second of
   * an append that grows the file (docs/storage.md). 0 turns it off. Default 1 MiB.
   */
  walPreallocateBytes?: number
  /**
   * Open without writing anything (no repair, no cleanup, no lock); every write is refused with ErrReadOnly.
   */
  readOnly?: boolean
}

export const fileStorageDefaults = {
  walSegmentBytesMax: 64 * 1024 * 1024,
  snapshotFilesMax: 2,
  walPreallocateBytes: 1024 * 1024,
  readOnly: false,
} as const

/** Checks the options and fills in defaults; throws a RangeError naming the bad limit. */
export function validateFileStorageOptions(o: FileStorageOptions = {}): Required<FileStorageOptions> {
  const v = { ...fileStorageDefaults, ...o }
  if (!Number.isSafeInteger(v.walSegmentBytesMax) || v.walSegmentBytesMax < 1024) {
    throw new RangeError(`walSegmentBytesMax must be an integer >= 1024, got ${v.walSegmentBytesMax}`)
  }
  if (!Number.isSafeInteger(v.walPreallocateBytes) || v.walPreallocateBytes < 0) {
    throw new RangeError(`walPreallocateBytes must be an integer >= 0, got ${v.walPreallocateBytes}`)
  }
  if (!Number.isSafeInteger(v.snapshotFilesMax) || v.snapshotFilesMax < 1) {
    throw new RangeError(`snapshotFilesMax must be an integer >= 1, got ${v.snapshotFilesMax}`)
  }
  return v
}

/** What opening found and fixed, for the member to log. */
export interface RecoveryReport {
  /** The torn write cut off the end of the newest segment, if there was one. */
  tornTail?: string
  /** Temp files of interrupted writes that were deleted. */
  removedTemps: string[]
}

/**
 * Opens (or creates) the WAL and snapshots in the directory behind `ops` and returns a ready DurableStorage. Every
 * check runs before the first write, so a directory we refuse is left exactly as it was (the lock file, if one was
 * taken, is removed again). Unless `readOnly`, the directory's lock is taken first and held until close().
 */
export async function openFileStorage(ops: FileOps, options?: FileStorageOptions): Promise<FileStorage> {
  const opts = validateFileStorageOptions(options)
  if (opts.readOnly) {
    const rec = await recover(ops)
    return new FileStorage(ops, opts, rec.mem, rec.listing.segments, rec.listing.snapshots, undefined, 0, {
      removedTemps: [],
      ...(rec.tornTail ? { tornTail: rec.tornTail } : {}),
    })
  }
  // The lock file lives in the directory: create the directory for it, but never lock a directory that is not ours.
  const names = await ops.list()
  if (names === undefined) await ops.mkdir()
  else checkOurs(ops, names)
  const unlock = ops.lock ? await ops.lock() : undefined
  try {
    return await openLocked(ops, opts, unlock)
  } catch (err) {
    await unlock?.()
    throw err
  }
}

async function openLocked(
  ops: FileOps,
  opts: Required<FileStorageOptions>,
  unlock: (() => Promise<void>) | undefined,
): Promise<FileStorage> {
  const rec = await recover(ops)
  const report: RecoveryReport = { removedTemps: [], ...(rec.tornTail ? { tornTail: rec.tornTail } : {}) }
  const segments = rec.listing.segments
  let activeSize = rec.activeSize
  if (rec.fresh) {
    const first = segmentFileName(0, 1)
    const header = encodeFileHeader(walMagic)
    await writeFileAtomic(ops, first, header)
    segments.push({ name: first, seq: 0, firstIndex: 1 })
    activeSize = header.byteLength
  }
  const active = segments[segments.length - 1]!
  if (rec.tornTail) await ops.truncate(active.name, activeSize)
  const file = await ops.openWrite(active.name)
  try {
    for (const t of rec.listing.temps) {
      await ops.unlink(t)
      report.removedTemps.push(t)
    }
    // Snapshot files newer than the one the WAL names are from a save that crashed before it was acknowledged.
    const inUse = rec.mem.snapshot().metadata.index
    const snapshots: SnapshotName[] = []
    for (const s of rec.listing.snapshots) {
      if (s.index > inUse) await ops.unlink(s.name)
      else snapshots.push(s)
    }
    return new FileStorage(ops, opts, rec.mem, segments, snapshots, file, activeSize, report, unlock)
  } catch (err) {
    await file.close()
    throw err
  }
}

/**
 * The zero fill is written in pieces, one in flight at a time, of 32 times the last save's size, at least this and at
 * most `walPreallocateBytes`. A save that reaches the disk while a piece is being written and synced waits for it: for
 * one-put saves (~0.5 KiB) a 128 KiB piece is a fraction of a millisecond where a 1 MiB one was 2-3 ms, a tail latency
 * for the one-client put that met it (docs/benchmarks.md, gRPC section); batches (28 KiB for 100 entries) keep large
 * pieces, so the fill's own syncs stay about one per 32 saves.
 */
const fillPieceBytesMin = 128 * 1024

/** A shared all-zero buffer for preallocation, grown as needed; nothing ever writes into it. */
let zeroChunk = new Uint8Array(0)
function zeros(n: number): Uint8Array {
  if (zeroChunk.byteLength < n) zeroChunk = new Uint8Array(n)
  return zeroChunk.subarray(0, n)
}

/**
 * Adds the records of a group of saves: every entry in order, then only the group's last hard state (recovery keeps
 * the last one anyway, and no save of the group is acknowledged before the whole write is durable).
 */
function addSaves(w: FrameWriter, saves: readonly SaveRecords[]): void {
  let hs: HardState | undefined
  for (const s of saves) {
    for (const e of s.entries) addEntryRecord(w, e)
    hs = s.hs ?? hs
  }
  if (hs) addHardStateRecord(w, hs)
}

const resolved: Promise<void> = Promise.resolve()

/**
 * The WAL + snapshot files backend (docs/storage.md). The log lives in memory for Raft's reads; each write appends
 * checksummed records to the newest WAL segment and syncs once. Runtime-neutral: the runtime supplies `FileOps`.
 */
export class FileStorage extends CachedStorage implements DurableStorage {
  constructor(
    private readonly ops: FileOps,
    private readonly opts: Required<FileStorageOptions>,
    mem: import('../raft/storage.js').MemoryStorage,
    /** Segments on disk, oldest first; the last is the one being appended to. */
    private readonly segments: SegmentName[],
    /** Snapshot files on disk, oldest first. */
    private readonly snapshots: SnapshotName[],
    private file: WriteFile | undefined,
    /** Bytes of records in the active segment: where the next save is written. */
    private activeSize: number,
    /** What opening found and fixed. */
    readonly recovery: RecoveryReport,
    private readonly unlock?: () => Promise<void>,
  ) {
    super(mem, opts.readOnly, ops.path(''))
    this.allocEnd = file?.size ?? 0
    this.preallocate()
  }

  /** The active segment's length: [activeSize, allocEnd) is zeros on disk, unless a fill is in flight. */
  private allocEnd: number
  /** The zero fill in flight, if any; it covers [allocEnd, its end) and no save writes there until it is done. */
  private filling: Promise<void> | undefined
  private fillFailure: Error | undefined
  /** The size of the last save's write: sets the zero fill's piece size (fillPieceBytesMin). */
  private lastSaveBytes = 0
  /** Reused by every save (saves run one at a time and the buffer is free again once the write resolves). */
  private readonly writer = new FrameWriter(64 * 1024)

  protected persistSaves(saves: readonly SaveRecords[], snap?: Snapshot): Promise<void> {
    if (snap) return this.persistLeaderSnapshot(saves, snap)
    return this.persistSavesNow(saves) ?? resolved
  }

  /** A plain group of saves; undefined when the write was durable at once (a blocking write: one client's puts). */
  protected override persistSavesNow(saves: readonly SaveRecords[]): Promise<void> | undefined {
    const w = this.writer
    w.reset()
    addSaves(w, saves)
    return this.appendAndSync(w)
  }

  /** A leader's snapshot with its save: the snapshot file first, then its record and the save's in one write. */
  private async persistLeaderSnapshot(saves: readonly SaveRecords[], snap: Snapshot): Promise<void> {
    await this.writeSnapshotFile(snap)
    const w = this.writer
    w.reset()
    addSnapshotRecord(w, { index: snap.metadata.index, term: snap.metadata.term, reset: true })
    addSaves(w, saves)
    await this.appendAndSync(w)
  }

  protected async persistSnapshot(snap: Snapshot): Promise<void> {
    await this.writeSnapshotFile(snap)
    const w = this.writer
    w.reset()
    addSnapshotRecord(w, { index: snap.metadata.index, term: snap.metadata.term, reset: false })
    await this.appendAndSync(w)
  }

  protected override afterSaveNeeded(snapshotSaved: boolean): boolean {
    return snapshotSaved || this.activeSize >= this.opts.walSegmentBytesMax
  }

  protected override async afterSave(snapshotSaved: boolean): Promise<void> {
    if (this.activeSize >= this.opts.walSegmentBytesMax) await this.cut()
    if (snapshotSaved) await this.releaseBehindSnapshot()
  }

  protected async release(): Promise<void> {
    await this.filling
    const f = this.file
    this.file = undefined
    try {
      await f?.close()
    } finally {
      await this.unlock?.()
    }
  }

  /**
   * Writes the writer's frames at the end of the active segment, durably; undefined when the file wrote them durably
   * at once (WriteFile.writeDurableNow), else the promise of the write. Not an async function: the one-client put
   * path makes no promise here (docs/benchmarks.md gRPC "Session 11").
   */
  private appendAndSync(w: FrameWriter): Promise<void> | undefined {
    const file = this.file
    if (!file) return Promise.reject(new StorageError('ErrReadOnly', `${this.ops.path('')} was opened read-only`))
    // Never write where a zero fill is still going on: it would overwrite the records with zeros.
    if (this.activeSize + w.byteLength > this.allocEnd && (this.filling || this.fillFailure))
      return this.appendAfterFill(file, w)
    this.writeEnd = this.activeSize + w.byteLength
    let written: Promise<void> | undefined
    try {
      written = file.writeDurableNow
        ? file.writeDurableNow(w.bytes(), this.activeSize)
        : file.writeDurable(w.bytes(), this.activeSize)
    } catch (err) {
      return Promise.reject(err)
    }
    if (written === undefined) {
      this.appended()
      return undefined
    }
    return written.then(this.appended)
  }

  /** appendAndSync past the zeros already on disk: waits for the zero fill in flight (and fails with its error). */
  private async appendAfterFill(file: WriteFile, w: FrameWriter): Promise<void> {
    await this.settleFill()
    this.writeEnd = this.activeSize + w.byteLength
    await file.writeDurable(w.bytes(), this.activeSize)
    this.appended()
  }

  /** Where the write in flight ends (writes are one at a time: CachedStorage's queue). */
  private writeEnd = 0

  /** The write in flight is durable: the segment's size moves past it, and the zero fill keeps ahead. */
  private readonly appended = (): void => {
    const end = this.writeEnd
    this.lastSaveBytes = end - this.activeSize
    this.activeSize = end
    if (end > this.allocEnd) this.allocEnd = end
    this.preallocate()
  }

  /**
   * Starts a background zero fill of the next piece of the active segment (see fillPieceBytesMin) once less than
   * `walPreallocateBytes` is left ahead of the write position (not past the segment's cut size). The fill is durable
   * before any save writes there; if it fails, the next write fails with its error and so poisons the storage like any
   * failed write.
   */
  private preallocate(): void {
    const ahead = this.opts.walPreallocateBytes
    const file = this.file
    if (!file || ahead === 0 || this.filling || this.fillFailure) return
    if (this.allocEnd - this.activeSize >= ahead || this.allocEnd >= this.opts.walSegmentBytesMax) return
    const from = this.allocEnd
    const piece = Math.min(ahead, Math.max(fillPieceBytesMin, this.lastSaveBytes * 32))
    const n = Math.min(piece, this.opts.walSegmentBytesMax - from)
    this.filling = file.writeDurable(zeros(n), from, true).then(
      () => {
        this.allocEnd = Math.max(this.allocEnd, from + n)
        this.filling = undefined
      },
      (err: Error) => {
        this.fillFailure = err
        this.filling = undefined
      },
    )
  }

  /** Waits for the zero fill in flight, and throws its error if it failed. */
  private async settleFill(): Promise<void> {
    await this.filling
    if (this.fillFailure) throw this.fillFailure
  }

  /** Snapshot files written ahead by prepareSnapshot, by name: resolves true once the file is durable. */
  private readonly prepared = new Map<string, Promise<boolean>>()

  protected override async prepareSnapshot(snap: Snapshot): Promise<void> {
    const name = snapshotFileName(snap.metadata.index, snap.metadata.term)
    const write = encodeSnapshotFile(snap).then((bytes) => writeFileAtomic(this.ops, name, bytes))
    this.prepared.set(
      name,
      write.then(
        () => true,
        () => false,
      ),
    )
    await write
  }

  protected override async abandonSnapshot(snap: Snapshot): Promise<void> {
    const name = snapshotFileName(snap.metadata.index, snap.metadata.term)
    if (!this.prepared.has(name)) return
    this.prepared.delete(name)
    // Only if no snapshot the storage keeps has that name (a leader's snapshot at the same index and term may).
    if (!this.snapshots.some((x) => x.name === name)) await this.ops.unlink(name)
  }

  private async writeSnapshotFile(snap: Snapshot): Promise<void> {
    const name = snapshotFileName(snap.metadata.index, snap.metadata.term)
    // Written ahead (saveSnapshot), or being written ahead: never write the same file twice at once.
    const ahead = this.prepared.get(name)
    this.prepared.delete(name)
    if (!ahead || !(await ahead)) await writeFileAtomic(this.ops, name, await encodeSnapshotFile(snap))
    this.snapshots.push({ name, index: snap.metadata.index, term: snap.metadata.term })
  }

  /**
   * Starts the next segment. It opens with the current snapshot record and hard state, so that older segments can be
   * deleted once a snapshot covers their entries without losing either. It is written whole under a temp name and
   * renamed, so a segment never has a torn header.
   */
  private async cut(): Promise<void> {
    const prev = this.segments[this.segments.length - 1]!
    const next: SegmentName = {
      name: segmentFileName(prev.seq + 1, this.mem.lastIndex() + 1),
      seq: prev.seq + 1,
      firstIndex: this.mem.lastIndex() + 1,
    }
    const w = new FrameWriter()
    const m = this.mem.snapshot().metadata
    if (m.index > 0) addSnapshotRecord(w, { index: m.index, term: m.term, reset: false })
    const hs = this.mem.hardStateNow()
    if (!isEmptyHardState(hs)) addHardStateRecord(w, hs)
    const header = encodeFileHeader(walMagic)
    const bytes = new Uint8Array(header.byteLength + w.byteLength)
    bytes.set(header, 0)
    bytes.set(w.bytes(), header.byteLength)
    await this.settleFill()
    await writeFileAtomic(this.ops, next.name, bytes)
    await this.file!.close()
    this.file = undefined
    // Drop the unused preallocation of the segment just closed, as etcd's cut does. A crash before this leaves a
    // zero tail in an older segment, which recovery reads as its end like any zero tail.
    await this.ops.truncate(prev.name, this.activeSize)
    this.file = await this.ops.openWrite(next.name)
    this.segments.push(next)
    this.activeSize = bytes.byteLength
    this.allocEnd = this.file.size
    this.preallocate()
  }

  /**
   * Deletes the segments whose every entry is at or below the newest snapshot (all entries of a segment are below the
   * next segment's firstIndex), and snapshot files beyond the kept count. The active segment always stays.
   */
  private async releaseBehindSnapshot(): Promise<void> {
    const snapIndex = this.mem.snapshot().metadata.index
    while (this.segments.length > 1 && this.segments[1]!.firstIndex - 1 <= snapIndex) {
      await this.ops.unlink(this.segments[0]!.name)
      this.segments.shift()
    }
    this.snapshots.sort((a, b) => a.index - b.index)
    while (this.snapshots.length > this.opts.snapshotFilesMax) {
      await this.ops.unlink(this.snapshots[0]!.name)
      this.snapshots.shift()
    }
  }
}
