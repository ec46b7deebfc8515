import { hex16 } from './format.js'

/**
 * The names edgecd gives its files, all flat in the data directory. Numbers are 16 lowercase hex digits so that a
 * plain sort is numeric order:
 *
 *   wal-<seq>-<firstIndex>.wal   a WAL segment; seq counts up from 0 with no gaps, firstIndex is lastIndex+1 when it
 *                                was started (every entry in the segments before it is below firstIndex)
 *   snap-<index>-<term>.snap     a snapshot file
 *   <one of those>.tmp           a file being written; never read, deleted on open
 *   edgecd.lock                  the lock (dir-lock.ts), and its edgecd.lock.<pid>.tmp / .stale while it is taken
 *   member-identity.json         the member's identity, written and checked by the runtime
 */
export interface SegmentName {
  name: string
  seq: number
  firstIndex: number
}

export interface SnapshotName {
  name: string
  index: number
  term: number
}

const walRe = /^wal-([0-9a-f]{16})-([0-9a-f]{16})\.wal$/
const snapRe = /^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$/
const tmpRe = /^(?:wal-[0-9a-f]{16}-[0-9a-f]{16}\.wal|snap-[0-9a-f]{16}-[0-9a-f]{16}\.snap)\.tmp$/
/** The member's identity (name, member id, cluster id), written by the runtime once, checked on every start. */
export const identityFileName = 'member-identity.json'
/** The data directory's lock (dir-lock.ts); its temp files are edgecd.lock.<pid>.tmp and edgecd.lock.<pid>.stale. */
export const lockFileName = 'edgecd.lock'
const lockTempRe = /^edgecd\.lock\.[0-9]+\.(?:tmp|stale)$/
/** Entries a data directory may hold besides the WAL and snapshots: a mount point's fsck directory, the identity, the lock. */
const ignored = new Set(['lost+found', identityFileName, lockFileName])

export function segmentFileName(seq: number, firstIndex: number): string {
  return `wal-${hex16(seq)}-${hex16(firstIndex)}.wal`
}

export function snapshotFileName(index: number, term: number): string {
  return `snap-${hex16(index)}-${hex16(term)}.snap`
}

/** The files of a data directory, sorted (segments by seq, snapshots by index), and any name that is not ours. */
export interface DirListing {
  segments: SegmentName[]
  snapshots: SnapshotName[]
  temps: string[]
  foreign: string[]
}

export function classify(names: readonly string[]): DirListing {
  const out: DirListing = { segments: [], snapshots: [], temps: [], foreign: [] }
  for (const name of names) {
    let m = walRe.exec(name)
    if (m) {
      out.segments.push({ name, seq: Number.parseInt(m[1]!, 16), firstIndex: Number.parseInt(m[2]!, 16) })
      continue
    }
    m = snapRe.exec(name)
    if (m) {
      out.snapshots.push({ name, index: Number.parseInt(m[1]!, 16), term: Number.parseInt(m[2]!, 16) })
      continue
    }
    if (tmpRe.test(name)) out.temps.push(name)
    else if (!ignored.has(name) && !lockTempRe.test(name)) out.foreign.push(name)
  }
  out.segments.sort((a, b) => a.seq - b.seq)
  out.snapshots.sort((a, b) => a.index - b.index)
  out.foreign.sort()
  return out
}
