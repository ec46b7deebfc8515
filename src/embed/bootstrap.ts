/**
 * Layer: src/embed, start a member from a config (etcd's embed). Used by every runtime entry (src/runtime/*).
 * May import: src/etcdserver, src/api/http, src/api/grpc (its fetch handler), src/auth, src/storage. Never src/runtime (the runtime passes its
 * storage, dialer, fetch and WebSocket upgrade in). Web-standard APIs only.
 */
/**
 * What every runtime's member entry does the same way (src/runtime/node/serve.ts, src/runtime/deno/serve.ts): derive
 * the member and cluster ids as etcd does, look this member up in a running cluster when it joins, check the data
 * dir's identity, build the auth configuration, start the Member, and create the Hono app with the logging the entries
 * share. The runtime supplies storage, file reads, the peer dialer, its fetch and its WebSocket upgrade.
 */

import type { UpgradeWebSocket } from 'hono/ws'
import { createRpcFetchHandler } from '../api/grpc/fetch.js'
import { type AppOptions, createApp, grpcRecvBytesMax } from '../api/http/app.js'
import { HttpMetrics } from '../api/http/metrics.js'
import { authConfigFromFlags } from '../auth/config.js'
import type { AuthConfig } from '../auth/service.js'
import { ConfigError, parseInitialCluster, resolvePeerSecret, type ServerConfig } from '../etcdserver/config.js'
import { computeClusterId, computeMemberId } from '../etcdserver/ids.js'
import type { Logger } from '../etcdserver/log.js'
import { Member } from '../etcdserver/member.js'
import type { MemberInfo } from '../protocol/types.js'
import type { DialPeer } from '../rafthttp/transport.js'
import type { DurableStorage } from '../storage/durable-storage.js'

/** Asks the other members of --initial-cluster (peers share the client port) which id the cluster gave us. */
async function lookupSelf(
  config: ServerConfig,
  cluster: Map<string, string[]>,
  fetch: typeof globalThis.fetch,
): Promise<{ memberId: string; clusterId: string }> {
  const mine = [...config.initialAdvertisePeerUrls].sort().join(',')
  const errors: string[] = []
  for (const [name, urls] of cluster) {
    if (name === config.name) continue
    for (const u of urls) {
      try {
        const r = await fetch(u.replace(/\/$/, '') + '/v3/cluster/member/list', {
          method: 'POST',
          body: '{}',
          signal: AbortSignal.timeout(3000),
        })
        const j = (await r.json()) as {
          header?: { cluster_id?: string }
          members?: { ID: string; peerURLs?: string[] }[]
        }
        const me = j.members?.find((m) => [...(m.peerURLs ?? [])].sort().join(',') === mine)
        if (me && j.header?.cluster_id) return { memberId: me.ID, clusterId: j.header.cluster_id }
        errors.push(`${u}: not a member yet`)
      } catch (err) {
        errors.push(`${u}: ${(err as Error).message}`)
      }
    }
  }
  throw new ConfigError(
    `--initial-cluster-state existing: no running member lists this member's peer URLs (${mine}); add it first with member add (${errors.join('; ')})`,
  )
}

/** Who this member is: the initial members with etcd's ids, and this member's and the cluster's id. */
export interface ClusterIdentity {
  members: MemberInfo[]
  memberId: string
  clusterId: string
}

/**
 * Derives the ids from --initial-cluster and --initial-cluster-token as etcd does; a joining member
 * (--initial-cluster-state existing) asks a running member for the id `member add` gave it.
 */
export async function resolveClusterIdentity(
  config: ServerConfig,
  fetch: typeof globalThis.fetch,
): Promise<ClusterIdentity> {
  const cluster = parseInitialCluster(config)
  const members: MemberInfo[] = []
  for (const [name, peerURLs] of cluster) {
    const ID = await computeMemberId(peerURLs, config.initialClusterToken)
    const self = name === config.name
    members.push({ ID, name, peerURLs, clientURLs: self ? config.advertiseClientUrls : [], isLearner: false })
  }
  let memberId = members.find((m) => m.name === config.name)!.ID
  let clusterId = await computeClusterId(members.map((m) => m.ID))
  if (config.initialClusterState === 'existing') {
    // Joining: the cluster chose our id in `member add`; find it by our peer URLs on a running member, as etcd does.
    const found = await lookupSelf(config, cluster, fetch)
    memberId = found.memberId
    clusterId = found.clusterId
  }
  return { members, memberId, clusterId }
}

/** What a data dir records about its member (etcd keeps both ids in its WAL metadata). */
export interface MemberIdentity {
  name: string
  memberId: string
  clusterId: string
}

/** The identity file's reads and writes, from the runtime. */
export interface IdentityFileIo {
  /** The file's text, or undefined when it does not exist. */
  readText(path: string): Promise<string | undefined>
  /** Writes the file durably and atomically (temporary name, sync, rename). */
  writeText(path: string, text: string): Promise<void>
}

/**
 * A data dir belongs to one member of one cluster (etcd records both in its WAL metadata): the first start writes
 * them, every later start must match, so a member never joins another cluster with this cluster's data, and a data
 * dir copied to another member is refused instead of corrupting both.
 */
export async function checkMemberIdentity(
  io: IdentityFileIo,
  path: string,
  dataDir: string,
  want: MemberIdentity,
): Promise<void> {
  const text = await io.readText(path)
  if (text === undefined) {
    await io.writeText(path, JSON.stringify(want) + '\n')
    return
  }
  let have: MemberIdentity
  try {
    have = JSON.parse(text) as MemberIdentity
  } catch {
    throw new ConfigError(`${path} is not a valid identity file; refusing to start`)
  }
  if (have.clusterId !== want.clusterId)
    throw new ConfigError(
      `--data-dir ${dataDir} belongs to cluster ${have.clusterId}, but the flags describe cluster ${want.clusterId} (check --initial-cluster and --initial-cluster-token)`,
    )
  if (have.memberId !== want.memberId)
    throw new ConfigError(
      `--data-dir ${dataDir} belongs to member ${have.name} (${have.memberId}), not ${want.name} (${want.memberId})`,
    )
}

/** What a runtime gives bootMember. */
export interface MemberRuntime {
  /** Opens (and locks) the data dir's storage. */
  openStorage(dataDir: string): Promise<DurableStorage & { close(): Promise<void> }>
  /** Checks (or on the first start records) the data dir's identity; throws ConfigError on a mismatch. */
  checkIdentity(dataDir: string, want: MemberIdentity): Promise<void>
  /** Reads a file named by a flag (JWT keys, a JWKS), synchronously at start. */
  readText(path: string): string
  /** Opens outbound peer sockets, with the runtime's TLS options. */
  dial: DialPeer
  /** Calls other members' client URLs (joining, forwarding to the leader), with the runtime's TLS options. */
  fetch: typeof globalThis.fetch
}

/**
 * Starts the Member of a validated configuration: ids, storage, identity, auth, then Member.start. Storage is closed
 * again when a later step fails. `onFatal` runs when the member stops itself (a failed fsync, removal).
 */
export async function bootMember(
  config: ServerConfig,
  log: Logger,
  rt: MemberRuntime,
  onFatal: (err: unknown) => void,
  /** The member's clock for lease TTLs (tests inject one); performance.now by default. */
  nowMs?: () => number,
): Promise<{ member: Member; memberId: string; clusterId: string }> {
  // Before anything else: a member exposed to the internet without a peer secret does not start.
  const peer = resolvePeerSecret(config, rt.readText)
  if (peer.warning) log.warn(peer.warning)
  const { members, memberId, clusterId } = await resolveClusterIdentity(config, rt.fetch)
  const storage = await rt.openStorage(config.dataDir)
  try {
    await rt.checkIdentity(config.dataDir, { name: config.name, memberId, clusterId })
  } catch (err) {
    await storage.close()
    throw err
  }
  let auth: AuthConfig
  try {
    auth = authConfigFromFlags(config, rt.readText)
  } catch (err) {
    await storage.close()
    throw new ConfigError((err as Error).message)
  }
  const member = await Member.start({
    config,
    auth,
    storage,
    memberId,
    clusterId,
    members,
    join: config.initialClusterState === 'existing',
    ...(nowMs ? { nowMs } : {}),
    dial: rt.dial,
    ...(peer.secret ? { peerSecret: peer.secret } : {}),
    fetch: rt.fetch,
    log: (level, msg, fields) => log[level](msg, fields),
    onFatal: (err) => {
      log.error('member stopped on a fatal error', { error: String((err as Error)?.message ?? err) })
      onFatal(err)
    },
  })
  return { member, memberId, clusterId }
}

/** The member's Hono app with the configuration's limits and a warning for each refused /raft connection. */
export function createMemberApp(
  member: Member,
  config: ServerConfig,
  log: Logger,
  upgradeWebSocket: UpgradeWebSocket<any>,
  mtls?: AppOptions['mtls'],
  processStats?: AppOptions['processStats'],
  uiReplicaScript?: AppOptions['uiReplicaScript'],
  metrics?: AppOptions['metrics'],
): ReturnType<typeof createApp> {
  // One set of grpc_server_* counters for the gateway's calls and the gRPC-Web/Connect ones.
  const shared = metrics ?? new HttpMetrics(processStats)
  return createApp(member, {
    maxRequestBytes: config.maxRequestBytes,
    maxTxnOps: config.maxTxnOps,
    maxWatchStreams: config.maxWatchStreams,
    upgradeWebSocket,
    onPeerRefused: (claimed, address, reason) =>
      log.warn(`refused a /raft connection: ${reason ?? 'no valid cluster credential'}`, {
        claimedId: claimed,
        address,
      }),
    ...(mtls ? { mtls } : {}),
    ...(processStats ? { processStats } : {}),
    ...(uiReplicaScript ? { uiReplicaScript } : {}),
    metrics: shared,
    // etcd's gRPC routes over fetch (gRPC-Web, Connect): src/api/grpc/fetch.ts, docs/grpc.md.
    rpc: createRpcFetchHandler(member, {
      recvBytesMax: grpcRecvBytesMax(config.maxRequestBytes),
      maxRequestBytes: config.maxRequestBytes,
      maxTxnOps: config.maxTxnOps,
      maxWatchStreams: config.maxWatchStreams,
      leaderCheckMs: config.electionTimeoutMs,
      metrics: shared,
    }),
  })
}
