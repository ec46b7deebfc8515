/**
 * What `/v3/maintenance/snapshot` streams and `edgecd snapshot save` writes (before its trailing SHA-256): the
 * replicated state a restore needs, as etcd's snapshot (the whole backend) carries keys and auth alike.
 *
 *   { format: "edgecd-snapshot", version: 1, kv: <KV snapshot bytes, src/kv/snapshot.ts>, auth: AuthSnapshot }
 *
 * The auth part has users (with password hashes, never passwords), roles, permissions, the enabled flag and the auth
 * revision, but never the token signing key: a snapshot file must not let its holder mint tokens. A restore that
 * finds auth enabled makes a new key. Membership is not in it: a restore makes a new cluster, as etcd's does.
 * Files of the first format (the KV snapshot alone) are still read, with auth off.
 */
import { decode, encode } from 'cbor-x'
import type { AuthSnapshot } from '../auth/store.js'

export const savedSnapshotFormat = 'edgecd-snapshot'
export const savedSnapshotVersion = 1

export interface SavedSnapshot {
  kv: Uint8Array
  /** Absent in files made before auth was included. */
  auth?: Omit<AuthSnapshot, 'key'>
}

/**
 * The saved form's length is a multiple of 512 bytes, as etcd's (a bolt file of 4 KiB pages): etcdctl 3.4's
 * `snapshot save` takes a stream whose length is not 512*n + 32 (the file and etcd's trailing SHA-256) for one that
 * lacks the hash. A `pad` byte string inside the CBOR map makes up the difference; readers ignore it.
 */
export const savedSnapshotAlignBytes = 512

export function encodeSavedSnapshot(kv: Uint8Array, auth: AuthSnapshot): Uint8Array {
  const { key: _key, ...withoutKey } = auth
  const body = { format: savedSnapshotFormat, version: savedSnapshotVersion, kv, auth: withoutKey }
  // The length with a pad of k bytes is the length with an empty pad, plus k, plus the growth of the byte string's
  // head (1 byte below 24, 2 below 256, 3 below 65536); checked on the encoding itself.
  const head = (k: number) => (k < 24 ? 1 : k < 256 ? 2 : 3)
  const base = encode({ ...body, pad: new Uint8Array(0) }).length
  for (let k = 0; k < 2 * savedSnapshotAlignBytes; k++) {
    if ((base + k + head(k) - 1) % savedSnapshotAlignBytes !== 0) continue
    const padded = new Uint8Array(encode({ ...body, pad: new Uint8Array(k) }))
    if (padded.length % savedSnapshotAlignBytes === 0) return padded
  }
  const plain = new Uint8Array(encode(body))
  return plain
}

/** Reads a saved snapshot, or a bare KV snapshot of the first format; throws on anything else. */
export function decodeSavedSnapshot(bytes: Uint8Array): SavedSnapshot {
  let v: unknown
  try {
    v = decode(bytes)
  } catch (err) {
    throw new Error(`invalid snapshot (not an edgecd snapshot file): ${(err as Error).message}`)
  }
  const o = v as { format?: unknown; version?: unknown; kv?: unknown; auth?: unknown }
  if (o && typeof o === 'object' && o.format === savedSnapshotFormat) {
    if (o.version !== savedSnapshotVersion)
      throw new Error(`snapshot format version ${String(o.version)} is not supported`)
    if (!(o.kv instanceof Uint8Array)) throw new Error('snapshot has no KV state')
    const auth = o.auth as SavedSnapshot['auth']
    if (!auth || typeof auth !== 'object' || !Array.isArray(auth.users) || !Array.isArray(auth.roles))
      throw new Error('snapshot has no auth state')
    return { kv: o.kv, auth }
  }
  // The first format: the KV snapshot alone (decodeKvSnapshot checks it).
  return { kv: bytes }
}
