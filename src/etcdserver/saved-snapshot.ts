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

export function encodeSavedSnapshot(kv: Uint8Array, auth: AuthSnapshot): Uint8Array {
  const { key: _key, ...withoutKey } = auth
  return new Uint8Array(encode({ format: savedSnapshotFormat, version: savedSnapshotVersion, kv, auth: withoutKey }))
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
