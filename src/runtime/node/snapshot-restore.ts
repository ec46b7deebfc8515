/**
 * `edgecd snapshot restore`: a new data dir from a file saved by `snapshot save`, as etcdctl's restore does. The
 * file is the snapshot the member streamed (src/etcdserver/saved-snapshot.ts: the KV store and auth) followed by the
 * SHA-256 of it (32 bytes, as etcd appends to its snapshot stream). The restored member keeps every key, its history
 * and the revision, users, roles and whether auth is on (with a new token signing key), but belongs
 * to a new membership made from the flags (etcd: "restore creates new member and cluster IDs"; the old membership
 * is dropped): a Raft snapshot at index = member count and term 1 holding the member state, a hard state committing
 * it, and the identity file, so `edgecd serve` with the same --name/--initial-cluster/--initial-cluster-token starts
 * on it and serves the data at the same revision.
 */
import { readdir, readFile } from 'node:fs/promises'
import { encode } from 'cbor-x'
import { type AuthSnapshot, AuthStore } from '../../auth/store.js'
import { generateSigningKey } from '../../auth/token.js'
import { parseInitialCluster, serverDefaults } from '../../etcdserver/config.js'
import { computeClusterId, computeMemberId } from '../../etcdserver/ids.js'
import { ClusterState } from '../../etcdserver/membership.js'
import { decodeSavedSnapshot } from '../../etcdserver/saved-snapshot.js'
import { decodeKvSnapshot } from '../../kv/snapshot.js'
import type { MemberInfo } from '../../protocol/types.js'
import type { Snapshot } from '../../raft/types.js'
import { checkIdentity } from './identity.js'
import { openNodeStorage } from './storage.js'

/** Bytes of the SHA-256 appended to a saved snapshot. */
export const snapshotHashBytes = 32

/** The member snapshot format version this writes (src/etcdserver/member.ts: [version, kv, cluster, auth]). */
const memberSnapshotVersion = 2

/** A snapshot file or data dir that restore refuses; the message says why. */
export class SnapshotRestoreError extends Error {
  override readonly name = 'SnapshotRestoreError'
}

/** The SHA-256 of a snapshot's bytes, to append when saving it. */
export async function snapshotHash(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
}

const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

/**
 * The snapshot bytes of a saved file after checking its trailing SHA-256. With `skipHashCheck` a file without the
 * hash (or with a wrong one) is taken whole, as etcdctl's --skip-hash-check; a valid trailing hash is still removed.
 */
export async function verifySnapshotFile(file: Uint8Array, skipHashCheck: boolean): Promise<Uint8Array> {
  if (file.length > snapshotHashBytes) {
    const data = file.subarray(0, file.length - snapshotHashBytes)
    const want = file.subarray(file.length - snapshotHashBytes)
    const got = await snapshotHash(data)
    if (hexOf(got) === hexOf(want)) return data
    if (!skipHashCheck)
      throw new SnapshotRestoreError(
        `snapshot hash mismatch: expected sha256 ${hexOf(want)}, got ${hexOf(got)} (the file is corrupt or truncated; use --skip-hash-check only for a file saved without a hash)`,
      )
  } else if (!skipHashCheck) throw new SnapshotRestoreError('snapshot missing hash but --skip-hash-check=false')
  return file
}

/** etcdctl restore's flags. */
export interface RestoreOptions {
  snapshotFile: string
  dataDir: string
  name: string
  /** name=url,... ('' = this member alone at initialAdvertisePeerUrls, as `edgecd serve`). */
  initialCluster: string
  initialClusterToken: string
  initialAdvertisePeerUrls: string[]
  skipHashCheck: boolean
}

export interface RestoreResult {
  revision: number
  memberId: string
  clusterId: string
  members: MemberInfo[]
}

async function mustBeEmpty(dir: string): Promise<void> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new SnapshotRestoreError(`data-dir "${dir}" could not be read: ${(err as Error).message}`)
  }
  if (entries.length > 0) throw new SnapshotRestoreError(`data-dir "${dir}" exists and is not empty`)
}

/** Writes a new data dir from a saved snapshot file (see the file comment). */
export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  await mustBeEmpty(o.dataDir)
  let file: Uint8Array
  try {
    file = new Uint8Array(await readFile(o.snapshotFile))
  } catch (err) {
    throw new SnapshotRestoreError(`open ${o.snapshotFile}: ${(err as Error).message}`)
  }
  const saved = await verifySnapshotFile(file, o.skipHashCheck)
  let revision: number
  let kvBytes: Uint8Array
  let auth: AuthSnapshot
  try {
    const s = decodeSavedSnapshot(saved)
    kvBytes = s.kv
    revision = decodeKvSnapshot(kvBytes).revision
    auth = s.auth ? { ...s.auth } : new AuthStore().toSnapshot()
  } catch (err) {
    throw new SnapshotRestoreError(`${o.snapshotFile}: ${(err as Error).message}`)
  }
  // The signing key never leaves a member: a restored cluster with auth on signs its tokens with a new one.
  if (auth.enabled) auth.key = await generateSigningKey('ES256')

  const cluster = parseInitialCluster({
    ...serverDefaults,
    name: o.name,
    initialCluster: o.initialCluster,
    initialAdvertisePeerUrls: o.initialAdvertisePeerUrls,
  })
  const members: MemberInfo[] = []
  for (const [name, peerURLs] of cluster)
    members.push({
      ID: await computeMemberId(peerURLs, o.initialClusterToken),
      name,
      peerURLs,
      clientURLs: [],
      isLearner: false,
    })
  const memberId = members.find((m) => m.name === o.name)!.ID
  const clusterId = await computeClusterId(members.map((m) => m.ID))

  // The member state as MemberStateMachine.snapshot() makes it: the KV store and auth as saved (users, roles, the
  // enabled flag; empty for a file of the first, KV-only format), and the new membership.
  const data = new Uint8Array(encode([memberSnapshotVersion, kvBytes, new ClusterState(members).toSnapshot(), auth]))
  const index = members.length
  const snapshot: Snapshot = {
    data,
    metadata: { index, term: 1, confState: { voters: members.map((m) => m.ID), learners: [] } },
  }
  const storage = await openNodeStorage(o.dataDir)
  try {
    await storage.save({ term: 1, vote: '', commit: index }, [], snapshot)
  } finally {
    await storage.close()
  }
  await checkIdentity(o.dataDir, { name: o.name, memberId, clusterId })
  return { revision, memberId, clusterId, members }
}
