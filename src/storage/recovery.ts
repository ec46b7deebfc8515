import { MemoryStorage } from '../raft/storage.js'
import type { Entry, HardState, Snapshot } from '../raft/types.js'
import { emptyHardState } from '../raft/types.js'
import { StorageError } from './errors.js'
import { classify, type DirListing, type SegmentName, snapshotFileName } from './file-names.js'
import type { FileOps } from './file-ops.js'
import { checkFileHeader, fileHeaderBytes, scanFrames, walMagic } from './format.js'
import {
  decodeEntry,
  decodeHardState,
  decodeSnapshotFile,
  decodeSnapshotMarker,
  RecordType,
  type SnapshotMarker,
} from './records.js'

/** What recovery found on disk. Nothing has been written yet: repairs are the caller's, after every check passed. */
export interface Recovered {
  /** The log as acknowledged: snapshot, entries after it, hard state. */
  mem: MemoryStorage
  /** The directory did not exist or held no edgecd files: a new member. */
  fresh: boolean
  listing: DirListing
  /** Byte size of the last segment up to its last whole record. */
  activeSize: number
  /** Set when the last segment ends in a torn write that must be cut off at `activeSize`. */
  tornTail?: string
}

/**
 * Reads a data directory back into memory (docs/storage.md, "Recovery"). Refuses, without writing anything, a
 * directory holding files that are not ours (ErrNotEdgecdDir), a file of another format version (ErrVersion), and any
 * damage that a crash cannot explain (ErrCorrupt, naming the file and offset). The only damage it accepts is a torn
 * write at the end of the newest segment, reported in `tornTail` for the caller to cut off.
 *
 * Replay: the newest snapshot record in the WAL names the snapshot to load (its file must exist and check out);
 * records are then applied in order. An entry at or below the snapshot is skipped; an entry at an index already held
 * replaces it and drops everything after it (a new leader overwrote an uncommitted tail); a snapshot record with
 * `reset` drops every entry after the snapshot so far (the log was replaced by the leader's snapshot); the last hard
 * state record wins.
 */
export async function recover(ops: FileOps): Promise<Recovered> {
  const names = await ops.list()
  const listing = checkOurs(ops, names ?? [])
  const segs = listing.segments
  if (segs.length === 0) {
    if (listing.snapshots.length > 0) {
      throw new StorageError('ErrCorrupt', `${ops.path(listing.snapshots[0]!.name)}: snapshot files but no WAL`)
    }
    return { mem: new MemoryStorage(), fresh: true, listing, activeSize: 0 }
  }
  for (let i = 1; i < segs.length; i++) {
    if (segs[i]!.seq !== segs[i - 1]!.seq + 1) {
      throw new StorageError(
        'ErrCorrupt',
        `${ops.path('')}: WAL segment ${segs[i - 1]!.seq + 1} is missing (found ${segs[i - 1]!.name} then ${segs[i]!.name})`,
      )
    }
  }

  const records: { type: number; payload: Uint8Array; path: string; offset: number }[] = []
  let activeSize = 0
  let tornTail: string | undefined
  for (let i = 0; i < segs.length; i++) {
    const path = ops.path(segs[i]!.name)
    const bytes = await ops.read(segs[i]!.name)
    checkFileHeader(bytes, walMagic, path)
    const last = i === segs.length - 1
    const scan = scanFrames(bytes, fileHeaderBytes, path, last)
    for (const f of scan.frames) records.push({ type: f.type, payload: f.payload, path, offset: f.offset })
    if (last) {
      activeSize = scan.end
      tornTail = scan.torn
    }
  }

  // The newest snapshot record names the snapshot to start from. Snapshot records only ever grow (saves reject an
  // older snapshot), so the newest is the last; a smaller one after a bigger one means the WAL is damaged.
  let marker: (SnapshotMarker & { path: string; offset: number }) | undefined
  for (const r of records) {
    if (r.type !== RecordType.Snapshot) continue
    const m = decodeSnapshotMarker(r.payload, r)
    if (marker && m.index < marker.index) {
      throw new StorageError('ErrCorrupt', `${r.path}: snapshot record at offset ${r.offset} goes back to ${m.index}`)
    }
    marker = { ...m, path: r.path, offset: r.offset }
  }
  const mem = new MemoryStorage()
  let base = 0
  if (marker && marker.index > 0) {
    const snap = await loadSnapshot(ops, listing, marker)
    mem.applySnapshot(snap)
    base = marker.index
  }

  const entries: Entry[] = []
  let hs: HardState = { ...emptyHardState }
  for (const r of records) {
    if (r.type === RecordType.Entry) {
      const e = decodeEntry(r.payload, r)
      if (e.index <= base) continue
      const pos = e.index - base - 1
      if (pos > entries.length) {
        throw new StorageError(
          'ErrCorrupt',
          `${r.path}: entry ${e.index} at offset ${r.offset} leaves a gap after entry ${base + entries.length}`,
        )
      }
      entries.length = pos
      entries.push(e)
    } else if (r.type === RecordType.HardState) {
      hs = decodeHardState(r.payload, r)
    } else if (r.type === RecordType.Snapshot) {
      if (decodeSnapshotMarker(r.payload, r).reset) entries.length = 0
    } else {
      throw new StorageError('ErrCorrupt', `${r.path}: unknown record type ${r.type} at offset ${r.offset}`)
    }
  }
  mem.append(entries)
  if (hs.commit > mem.lastIndex()) {
    throw new StorageError(
      'ErrCorrupt',
      `${ops.path('')}: the hard state commits ${hs.commit} but the log ends at ${mem.lastIndex()}`,
    )
  }
  mem.setHardState(hs)
  return { mem, fresh: false, listing, activeSize, ...(tornTail ? { tornTail } : {}) }
}

/** Classifies a directory's names; throws ErrNotEdgecdDir, naming them, if any of them is not ours. */
export function checkOurs(ops: FileOps, names: readonly string[]): DirListing {
  const listing = classify(names)
  if (listing.foreign.length > 0) {
    const shown = listing.foreign.slice(0, 5).join(', ')
    throw new StorageError(
      'ErrNotEdgecdDir',
      `${ops.path('')} holds files edgecd did not write (${shown}${listing.foreign.length > 5 ? ', ...' : ''}); ` +
        'refusing to use it so nothing there is overwritten: point edgecd at an empty or new directory',
    )
  }
  return listing
}

async function loadSnapshot(
  ops: FileOps,
  listing: DirListing,
  marker: SnapshotMarker & { path: string; offset: number },
): Promise<Snapshot> {
  const name = snapshotFileName(marker.index, marker.term)
  const path = ops.path(name)
  if (!listing.snapshots.some((s) => s.name === name)) {
    throw new StorageError(
      'ErrCorrupt',
      `${path} is missing, but the WAL record at ${marker.path} offset ${marker.offset} says it was saved`,
    )
  }
  const snap = decodeSnapshotFile(await ops.read(name), path)
  if (snap.metadata.index !== marker.index || snap.metadata.term !== marker.term) {
    throw new StorageError(
      'ErrCorrupt',
      `${path} holds snapshot ${snap.metadata.index} of term ${snap.metadata.term}, not what its name says`,
    )
  }
  return snap
}

/** The segment that new records go to. */
export function activeSegment(listing: DirListing): SegmentName | undefined {
  return listing.segments[listing.segments.length - 1]
}
