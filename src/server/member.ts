import { decode, encode } from 'cbor-x'
import { EtcdError } from '../kv/errors.js'
import type { AlarmRequest, InternalRequest } from '../kv/requests.js'
import { KvStore } from '../kv/store.js'
import {
  AlarmAction,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
  type WatchRequest,
  type WatchResponse,
} from '../kv/types.js'
import type { NodeId } from '../raft/index.js'
import type { DurableStorage } from '../storage/durable-storage.js'
import { etcdVersion } from './app.js'
import type { ServerConfig } from './config.js'
import type { MemberApi, MemberInfo, StatusInfo, WatchStream } from './member-api.js'
import { RaftMember, type StateMachine, type Transport } from './raft-member.js'

export interface MemberOptions {
  config: ServerConfig
  storage: DurableStorage
  memberId: NodeId
  clusterId: string
  /** Every member of the initial cluster, this one included. */
  members: MemberInfo[]
  transport?: Transport
  /** A monotonic clock in ms (performance.now by default): lease expiry is decided by the leader's clock. */
  nowMs?: () => number
  onFatal?: (err: unknown) => void
}

/** How often the leader looks for expired leases (etcd's lessor checks every 500 ms). */
const leaseExpiryCheckMs = 500

/** Adapts the KV store to the Raft member: proposals are CBOR-encoded InternalRequests. */
class KvStateMachine implements StateMachine {
  constructor(public kv: KvStore) {}
  apply(data: Uint8Array): unknown {
    return this.kv.apply(decode(data) as InternalRequest)
  }
  snapshot(): Uint8Array {
    return this.kv.snapshot()
  }
  restore(data: Uint8Array): void {
    this.kv.restore(data)
  }
}

/**
 * One edgecd member: the KV store replicated through Raft, answering etcd's API (MemberApi). Every write goes
 * through the log, even on a single member; linearizable reads use ReadIndex, serializable reads are local.
 */
export class Member implements MemberApi {
  readonly kv: KvStore
  readonly raft: RaftMember
  private readonly opts: MemberOptions
  private readonly now: () => number
  private leaseTimer: ReturnType<typeof setInterval> | undefined
  private progressTimer: ReturnType<typeof setInterval> | undefined
  private lastCheckpointMs: number
  private readonly streams = new Set<WatchStream>()

  private constructor(opts: MemberOptions, kv: KvStore, raft: RaftMember) {
    this.opts = opts
    this.kv = kv
    this.raft = raft
    this.now = opts.nowMs ?? (() => performance.now())
    this.lastCheckpointMs = this.now()
  }

  static async start(opts: MemberOptions): Promise<Member> {
    const c = opts.config
    const kv = new KvStore({
      maxTxnOps: c.maxTxnOps,
      maxWatchers: c.maxWatchers,
      quotaBackendBytes: c.quotaBackendBytes,
      minLeaseTtlSeconds: Math.ceil((1.5 * c.electionTimeoutMs) / 1000),
    })
    const sm = new KvStateMachine(kv)
    const now = opts.nowMs ?? (() => performance.now())
    let member: Member | undefined
    const raft = await RaftMember.start({
      id: opts.memberId,
      storage: opts.storage,
      stateMachine: sm,
      tickMs: c.heartbeatIntervalMs,
      electionTicks: Math.round(c.electionTimeoutMs / c.heartbeatIntervalMs),
      snapshotCount: c.snapshotCount,
      snapshotCatchUpEntries: 5000,
      requestTimeoutMs: c.requestTimeoutMs,
      initialPeers: opts.members.map((m) => m.ID),
      transport: opts.transport,
      onFatal: (err) => {
        member?.stopTimers()
        opts.onFatal?.(err)
      },
    })
    member = new Member(opts, kv, raft)
    raft.onLeaderChange.push((isLeader) => {
      if (isLeader) kv.lessor.promote(now())
      else kv.lessor.demote()
    })
    if (raft.isLeader()) kv.lessor.promote(now())
    member.leaseTimer = setInterval(() => member!.leaseDuties(), leaseExpiryCheckMs)
    member.progressTimer = setInterval(() => kv.watchHub.progressNotify(), c.watchProgressNotifyIntervalMs)
    return member
  }

  private stopTimers(): void {
    if (this.leaseTimer) clearInterval(this.leaseTimer)
    if (this.progressTimer) clearInterval(this.progressTimer)
    this.leaseTimer = undefined
    this.progressTimer = undefined
  }

  /** On the leader: revoke expired leases and checkpoint remaining TTLs, both through Raft. */
  private leaseDuties(): void {
    if (!this.raft.isLeader()) return
    const now = this.now()
    for (const ID of this.kv.lessor.expired(now)) this.propose({ lease_revoke: { ID } }).catch(() => {})
    if (now - this.lastCheckpointMs >= this.kv.config.leaseCheckpointIntervalMs) {
      this.lastCheckpointMs = now
      this.checkpointLeases()
    }
  }

  private checkpointLeases(): Promise<unknown> {
    const checkpoints = this.kv.lessor.checkpoints(this.now())
    if (checkpoints.length === 0) return Promise.resolve()
    return this.propose({ lease_checkpoint: { checkpoints } }).catch(() => {})
  }

  header(revision = this.kv.revision): ResponseHeader {
    return {
      cluster_id: this.opts.clusterId,
      member_id: this.opts.memberId,
      revision,
      raft_term: this.raft.node.raft.term,
    }
  }

  private withHeader<T extends { header?: ResponseHeader }>(resp: T): T {
    resp.header = this.header(resp.header?.revision ?? this.kv.revision)
    return resp
  }

  /** Proposes a write; refuses one whose encoding exceeds --max-request-bytes, as etcd does. */
  private async propose(req: InternalRequest): Promise<unknown> {
    const data = encode(req) as Uint8Array
    if (data.length > this.opts.config.maxRequestBytes) throw new EtcdError('ErrRequestTooLarge')
    return this.raft.propose(data)
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    if (!req.serializable) await this.raft.linearizableRead()
    return this.withHeader(this.kv.range(req))
  }

  async put(req: PutRequest): Promise<PutResponse> {
    return this.withHeader((await this.propose({ put: req })) as PutResponse)
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.withHeader((await this.propose({ delete_range: req })) as DeleteRangeResponse)
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    if (isReadOnlyTxn(req)) {
      // A read-only txn needs no log entry, only a linearizable read (etcd does the same).
      await this.raft.linearizableRead()
      return this.withHeader(this.kv.readTxn(req))
    }
    return this.withHeader((await this.propose({ txn: req })) as TxnResponse)
  }

  async compact(req: CompactionRequest): Promise<CompactionResponse> {
    return this.withHeader((await this.propose({ compaction: req })) as CompactionResponse)
  }

  // ---- leases ----

  async leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    // The id is chosen here, before proposing, so that applying stays deterministic on every member.
    const ID = req.ID !== 0n ? req.ID : randomLeaseId()
    return this.withHeader((await this.propose({ lease_grant: { TTL: req.TTL, ID } })) as LeaseGrantResponse)
  }

  async leaseRevoke(req: LeaseRevokeRequest): Promise<LeaseRevokeResponse> {
    return this.withHeader((await this.propose({ lease_revoke: req })) as LeaseRevokeResponse)
  }

  async leaseKeepAlive(req: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse> {
    if (!this.raft.isLeader()) throw new EtcdError(this.raft.leader() === '' ? 'ErrNoLeader' : 'ErrNotLeader')
    // Make sure the grant (possibly just acknowledged) is applied here before renewing.
    await this.raft.linearizableRead()
    const ttl = this.kv.lessor.renew(req.ID, this.now())
    return { header: this.header(), ID: req.ID, TTL: ttl > 0 ? ttl : 0 }
  }

  async leaseTimeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    await this.raft.linearizableRead()
    return this.withHeader(this.kv.leaseTimeToLive(req, this.raft.isLeader() ? this.now() : undefined))
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    await this.raft.linearizableRead()
    return this.withHeader(this.kv.leaseLeases())
  }

  // ---- watch ----

  openWatchStream(send: (resp: WatchResponse) => boolean | void): WatchStream {
    const stream = this.kv.watchHub.openStream({
      send: (resp) => {
        // The hub fills the revision; the rest of the header is the member's. A compacted cancel carries no revision.
        resp.header = this.header(resp.header?.revision ?? 0)
        return send(resp) !== false
      },
    })
    const handle: WatchStream = {
      request: (req: WatchRequest) => {
        if (req.create_request) stream.create(req.create_request)
        else if (req.cancel_request) stream.cancel(req.cancel_request.watch_id)
        else if (req.progress_request) stream.requestProgress()
      },
      resume: () => stream.resume(),
      close: () => {
        stream.close()
        this.streams.delete(handle)
      },
    }
    this.streams.add(handle)
    return handle
  }

  // ---- maintenance and cluster ----

  async status(): Promise<StatusInfo> {
    const r = this.raft.node.raft
    return {
      header: this.header(),
      version: etcdVersion.etcdserver,
      dbSize: this.kv.sizeBytes,
      leader: r.lead,
      raftIndex: r.raftLog.committed,
      raftTerm: r.term,
      raftAppliedIndex: this.raft.applied,
      errors: this.kv.activeAlarms().map((a) => `memberID:${a.memberID} alarm:${['NONE', 'NOSPACE', 'CORRUPT'][a.alarm]} `),
      dbSizeInUse: this.kv.sizeBytes,
      isLearner: r.isLearner,
    }
  }

  async memberList() {
    return { header: { ...this.header(), revision: 0 }, members: this.opts.members }
  }

  async alarm(req: AlarmRequest) {
    if (req.action === AlarmAction.GET) {
      const alarms = this.kv.activeAlarms().filter((a) => req.memberID === '0' || a.memberID === req.memberID)
      return { header: this.header(), alarms }
    }
    const resp = (await this.propose({ alarm: req })) as { alarms: { memberID: string; alarm: number }[] }
    return { header: this.header(), alarms: resp.alarms }
  }

  async hash() {
    await this.raft.linearizableRead()
    return { header: this.header(), hash: this.kv.hash() }
  }

  async hashKV(req: { revision: number }) {
    await this.raft.linearizableRead()
    const r = this.kv.hashKV(req.revision)
    return { header: this.header(), hash: r.hash, compact_revision: r.compact_revision }
  }

  async snapshot() {
    await this.raft.linearizableRead()
    return { header: this.header(), data: this.kv.snapshot() }
  }

  metrics(): string {
    const r = this.raft.node.raft
    const g = (name: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${v}\n`
    return (
      g('edgecd_server_has_leader', 'Whether a leader is known (1) or not (0).', r.lead === '' ? 0 : 1) +
      g('edgecd_server_is_leader', 'Whether this member is the leader.', this.raft.isLeader() ? 1 : 0) +
      g('edgecd_raft_term', 'The current Raft term.', r.term) +
      g('edgecd_raft_committed_index', 'The Raft commit index.', r.raftLog.committed) +
      g('edgecd_raft_applied_index', 'The index applied to the KV store.', this.raft.applied) +
      g('edgecd_mvcc_db_total_size_in_bytes', 'Estimated size of the KV store.', this.kv.sizeBytes) +
      g('edgecd_mvcc_revision', 'The current store revision.', this.kv.revision) +
      g('edgecd_watchers', 'Open watchers.', this.kv.watchHub.watcherCount) +
      g('edgecd_watch_streams', 'Open watch streams.', this.streams.size) +
      g('edgecd_leases', 'Granted leases.', this.kv.lessor.size)
    )
  }

  healthy(): boolean {
    return this.raft.leader() !== '' && this.raft.fatalError() === undefined
  }

  /**
   * Graceful stop: checkpoint leases (so their remaining TTL survives the restart), let the Ready in flight reach
   * disk, close watch streams and storage.
   */
  async stop(): Promise<void> {
    this.stopTimers()
    if (this.raft.isLeader()) await this.checkpointLeases()
    for (const s of [...this.streams]) s.close()
    await this.raft.stop()
  }
}

function isReadOnlyTxn(t: TxnRequest): boolean {
  const ro = (ops: TxnRequest['success']): boolean =>
    ops.every((op) => op.request_range !== undefined || (op.request_txn !== undefined && isReadOnlyTxn(op.request_txn)))
  return ro(t.success) && ro(t.failure)
}

/** A random positive int64 lease id (etcd's are random too; never 0, which means "pick one"). */
function randomLeaseId(): bigint {
  const b = new Uint8Array(8)
  crypto.getRandomValues(b)
  let v = 0n
  for (const x of b) v = (v << 8n) | BigInt(x)
  v &= (1n << 63n) - 1n
  return v === 0n ? 1n : v
}
