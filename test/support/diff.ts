/**
 * The two servers of the differential tests (test/diff, test/grpc/*-diff): a fresh etcd 3.4 and a fresh in-process
 * edgecd member side by side, and the one normalisation of what differs between them by design (cluster and member
 * ids, raft terms), in the gateway's JSON and in protobuf-JSON.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { type EtcdProcess, startEtcd } from './etcd.js'
import { silent } from './http.js'
import { freePort } from './ports.js'

export interface DiffPair {
  etcd: EtcdProcess
  edge: RunningMember
  /** edgecd's client URL. */
  edgeUrl: string
  /** Stops both and removes edgecd's data dir (safe to call after a failed start). */
  stop(): Promise<void>
}

/** Starts etcd and a single edgecd member (default flags, `overrides` on top) on loopback; resolves once both serve. */
export async function startDiffPair(
  overrides: Partial<ServerConfig> = {},
  o: { /** More etcd flags (e.g. --auth-token). */ etcdExtra?: string[] } = {},
): Promise<DiffPair> {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-diff-'))
  let etcd: EtcdProcess | undefined
  let edge: RunningMember | undefined
  const stop = async () => {
    await edge?.stop().catch(() => {})
    await etcd?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const url = `http://127.0.0.1:${await freePort()}`
    ;[etcd, edge] = await Promise.all([
      startEtcd(o.etcdExtra ? { extra: o.etcdExtra } : {}),
      startNodeMember(
        {
          ...serverDefaults,
          dataDir: dir,
          listenClientUrls: [url],
          advertiseClientUrls: [url],
          initialAdvertisePeerUrls: [url],
          logLevel: 'error',
          ...overrides,
        },
        silent,
      ),
    ])
    return { etcd, edge, edgeUrl: edge.urls[0]!, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/**
 * Replaces what differs between the two servers by design (cluster and member ids, raft terms, ids of members and
 * leases in member lists and status) in JSON text: the gateway's snake_case strings and protobuf-JSON's camelCase.
 */
export function normalizeServerIds(text: string): string {
  return text
    .replace(/"(cluster_id|clusterId)":"\d+"/g, '"$1":"C"')
    .replace(/"(member_id|memberId)":"\d+"/g, '"$1":"M"')
    .replace(/"(raft_term|raftTerm)":"\d+"/g, '"$1":"T"')
    .replace(/"(leader|memberID|ID)":"\d{12,}"/g, '"$1":"ID"')
}
