/**
 * etcd's revision: `main` is the store revision of one write request, `sub` orders the changes inside it (the keys
 * of one txn share `main` and get sub 0, 1, 2, ...). Revision 1 is the empty store; the first write is 2, as in etcd.
 */
export interface Revision {
  main: number
  sub: number
}

/** The revision of an empty store (etcd starts its currentRev at 1, so the first put gets revision 2). */
export const initialRevision = 1

/** Orders revisions by main, then sub. */
export function compareRevision(a: Revision, b: Revision): number {
  return a.main - b.main || a.sub - b.sub
}

/**
 * etcd's on-disk revision key (mvcc/revision.go revToBytes): 8 bytes big-endian main, '_', 8 bytes big-endian sub,
 * plus a trailing 't' for a tombstone. Used by hashKV so the hash is computed over the same bytes as etcd's.
 */
export function revisionBytes(rev: Revision, tombstone: boolean): Uint8Array {
  const out = new Uint8Array(tombstone ? 18 : 17)
  const view = new DataView(out.buffer)
  view.setBigInt64(0, BigInt(rev.main))
  out[8] = 0x5f
  view.setBigInt64(9, BigInt(rev.sub))
  if (tombstone) out[17] = 0x74
  return out
}
