/**
 * Layer: src/etcdserver, the member (etcd's EtcdServer): the replicated state machine and its apply, lease duties,
 * membership (membership.ts), forwarding to the leader, the API interface the front doors use (api.ts), ids, the
 * server config and its validation, TLS config, the saved-snapshot format, logging and the version it answers as.
 * May import: src/protocol, src/raftnode, src/rafthttp, src/raft, src/kv, src/auth, src/storage. Never src/api
 * (front doors import the member, not the other way round) nor src/runtime. Web-standard APIs only.
 */
import { decode, encode } from 'cbor-x'
import { txnHasChecks } from '../auth/check.js'
import { PermType } from '../auth/permissions.js'
import { type AuthConfig, AuthService, authConfigDefault, authOffCaller, checkWriteAtApply } from '../auth/service.js'
import { type AuthInfo, type AuthRequest, type AuthSnapshot, AuthStore } from '../auth/store.js'
import type { InternalRequest } from '../kv/requests.js'
import { cborHead, concatBytes } from '../kv/snapshot.js'
import { KvStore } from '../kv/store.js'
import { checkTxnRequest } from '../kv/txn.js'
import { Registry } from '../metrics/registry.js'
import { EtcdError, grpcStatusText } from '../protocol/errors.js'
import type { AlarmRequest, MemberInfo, StatusResponse } from '../protocol/types.js'
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
  type WatchId,
  type WatchRequest,
  type WatchResponse,
  watchIdOf,
} from '../protocol/types.js'
import { type ConfChange, ConfChangeType, type NodeId, ProgressState, type Rand, StateType } from '../raft/index.js'
import {
  type DialPeer,
  idLabel,
  type PeerSession,
  type PeerSocket,
  PeerTransport,
  type PeerUpgradeHeaders,
} from '../rafthttp/transport.js'
import { assert, type Clock, realClock, sleep, type TimerHandle } from '../raftnode/clock.js'
import { RaftNode, type StateMachine, type Transport } from '../raftnode/raft-node.js'
import type { DurableStorage } from '../storage/durable-storage.js'
import type { MemberApi, WatchStream } from './api.js'
import type { ServerConfig } from './config.js'
import { computeMemberId } from './ids.js'
import { ClusterState, decodeConfChangeContext, encodeConfChangeContext, type MemberAttributes } from './membership.js'
import { decodeProposal, encodeProposal } from './proposal.js'
import { encodeSavedSnapshot } from './saved-snapshot.js'
import { etcdVersion } from './version.js'

export interface MemberOptions {
  config: ServerConfig
  storage: DurableStorage
  memberId: NodeId
  clusterId: string
  /** Every member of the initial cluster, this one included. */
  members: MemberInfo[]
  /** --initial-cluster-state existing: join a running cluster (no bootstrap; the leader sends the log). */
  join?: boolean
  /** Opens outbound peer sockets (runtime-specific); without it the member cannot reach peers. */
  dial?: DialPeer
  /**
   * The peers' shared secret (--peer-secret / --peer-secret-file, or --initial-cluster-token on loopback). Without it
   * this member refuses every /raft connection and dials no peer (fine for a single member).
   */
  peerSecret?: string
  /** Calls other members' client URLs (forwarding to the leader); the runtime's, with its TLS options. */
  fetch?: typeof fetch
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void
  /** A monotonic clock in ms (the clock's now by default): lease expiry is decided by the leader's clock. */
  nowMs?: () => number
  /**
   * Time and timers for the member and its Ready loop (realClock by default). The deterministic simulator passes a
   * virtual clock (test/sim/member/), so that a whole member runs on virtual time.
   */
  clock?: Clock
  /** Randomness for Raft's election timeouts and lease ids (crypto by default; seeded under simulation). */
  rand?: Rand
  /** Without `dial`: how Raft messages leave this member (the simulator's network). */
  raftTransport?: Transport
  /** Entries kept behind a snapshot for slow followers (etcd's SnapshotCatchUpEntries, 5,000 by default). */
  snapshotCatchUpEntries?: number
  /** A new member's id from its peer URLs and a salt (computeMemberId, SHA-1 by Web Crypto, by default). */
  memberIdOf?: (peerURLs: string[], salt: string) => Promise<NodeId>
  onFatal?: (err: unknown) => void
  /** Auth: token keys, hashing cost, failure limits (authConfigDefault when absent). */
  auth?: AuthConfig
}

/** How often the leader looks for expired leases (etcd's lessor checks every 500 ms). */
const leaseExpiryCheckMs = 500

/**
 * The snapshot format of a member's state: [version, KV snapshot bytes, cluster state, auth state]. Version 1 had no
 * auth state (restored as an empty, disabled auth store).
 */
const memberSnapshotVersion = 2

/**
 * What a member replicates: the KV store and the cluster membership. Normal entries are CBOR InternalRequests
 * for the store, or `{member_attr}` for a member publishing its name and client URLs.
 */
export class MemberStateMachine implements StateMachine {
  onMembershipChange: () => void = () => {}
  /** Called after a member's attributes (name, client URLs) are applied. */
  onAttributes: () => void = () => {}
  readonly auth = new AuthStore()
  /** The member's monotonic clock: a lease granted on the leader starts its clock as it is applied, as etcd's. */
  now: (() => number) | undefined
  constructor(
    public kv: KvStore,
    public cluster: ClusterState,
  ) {}
  apply(data: Uint8Array): unknown {
    const req = decodeProposal(data) as
      | (InternalRequest & { auth_info?: AuthInfo })
      | { member_attr: MemberAttributes }
      | { auth: AuthRequest; auth_info?: AuthInfo }
    if ('member_attr' in req) {
      this.cluster.applyAttributes(req.member_attr)
      this.onAttributes()
      return {}
    }
    if ('auth' in req) return this.auth.apply(req.auth, req.auth_info)
    // A client write carries its user when the serving member had auth on: check again on the state it applies to.
    if ('auth_info' in req) {
      const info = req.auth_info
      delete req.auth_info
      checkWriteAtApply(this.auth, this.kv, req, info)
    }
    const before = this.kv.revision
    const resp = this.kv.apply(req, 'lease_grant' in req ? this.now?.() : undefined)
    // The store's revision moves by exactly one per write that changed something (a txn counts as one), never more,
    // never back: anything else means apply diverged and the member must stop (src/raftnode/clock.ts, assert).
    const moved = this.kv.revision - before
    if (moved !== ('put' in req ? 1 : moved === 0 ? 0 : 1))
      assert(false, () => `revision moved by ${moved} (from ${before}) in one apply of ${Object.keys(req)[0]}`)
    return resp
  }
  /** The hub a batch began on (kv is replaced on a restore). */
  private batchHub: KvStore['watchHub'] | undefined
  /** One Ready's entries: each watcher gets one message for all its revisions of the batch (WatchHub.beginBatch). */
  beginApplyBatch(): void {
    this.batchHub = this.kv.watchHub
    this.batchHub.beginBatch()
  }
  endApplyBatch(): void {
    const hub = this.batchHub
    this.batchHub = undefined
    hub?.endBatch()
  }
  applyConfChange(cc: ConfChange): boolean {
    const ok = this.cluster.applyConfChange(cc)
    if (ok) this.onMembershipChange()
    return ok
  }
  acceptsConfChange(cc: ConfChange): boolean {
    return this.cluster.accepts(cc)
  }
  snapshot(): Uint8Array {
    return encode([
      memberSnapshotVersion,
      this.kv.snapshot(),
      this.cluster.toSnapshot(),
      this.auth.toSnapshot(),
    ]) as Uint8Array
  }
  /**
   * snapshot()'s bytes over several steps (StateMachine.snapshotInSteps): the state is captured at this call, the KV
   * store's history encoded between the steps, and the wrapper array written around its parts with one copy: the
   * array's head and the version, the byte string's tag 64 and head, the KV parts, then cluster and auth.
   */
  snapshotInSteps(): Generator<void, Uint8Array, void> {
    const kv = this.kv.snapshotInSteps()
    const tail = new Uint8Array(encode([this.cluster.toSnapshot(), this.auth.toSnapshot()]))
    const head = new Uint8Array(encode(memberSnapshotVersion))
    return (function* () {
      const parts = yield* kv
      let n = 0
      for (const p of parts) n += p.length
      // cbor-x writes a Uint8Array as tag 64 (0xd8 0x40) and a byte string; `tail` is a 2-array whose head is dropped.
      return concatBytes([
        cborHead(4, 4),
        head,
        Uint8Array.of(0xd8, 0x40),
        cborHead(2, n),
        ...parts,
        tail.subarray(cborHead(4, 2).length),
      ])
    })()
  }
  restore(data: Uint8Array): void {
    const v = decode(data) as [number, Uint8Array, unknown, AuthSnapshot?]
    if (!Array.isArray(v) || (v[0] !== 1 && v[0] !== memberSnapshotVersion))
      throw new Error(`member snapshot of unknown version ${String(Array.isArray(v) ? v[0] : v)}`)
    this.kv.restore(v[1])
    this.cluster = ClusterState.fromSnapshot(v[2])
    this.auth.restore(v[0] === 1 || v[3] === undefined ? { enabled: false, revision: 1, users: [], roles: [] } : v[3])
    this.onMembershipChange()
  }
}

/**
 * One edgecd member: the KV store replicated through Raft, answering etcd's API (MemberApi). Every write goes
 * through the log, even on a single member; linearizable reads use ReadIndex, serializable reads are local.
 */
/** What a proposal's CBOR encoding may exceed --max-request-bytes by (field names; etcd measures protobuf). */
const proposalSlackBytes = 64 * 1024

/** Raft ticks per heartbeat interval: ten, with a tick of at least 10 ms. */
function subTicks(heartbeatMs: number): number {
  return Math.max(1, Math.min(10, Math.floor(heartbeatMs / 10)))
}

/**
 * What etcd 3.4's status reports for a nearly empty store (its bolt file: 20,480 bytes, 16,384 in use). edgecd's
 * size is an estimate of its data, 0 for an empty store: status never reports less than etcd's floor (clients read a
 * dbSize of 0, which proto3 JSON leaves out, as a missing field).
 */
const emptyDbSize = { total: 20_480, inUse: 16_384 }

export class Member implements MemberApi {
  readonly kv: KvStore
  readonly raft: RaftNode
  readonly transport: PeerTransport | undefined
  private readonly sm: MemberStateMachine
  private readonly opts: MemberOptions
  private publishTimer: TimerHandle | undefined
  private readonly now: () => number
  private readonly clock: Clock
  private leaseTimer: TimerHandle | undefined
  private progressTimer: TimerHandle | undefined
  private lastCheckpointMs: number
  private readonly streams = new Set<WatchStream>()
  /** Auth: tokens, permission checks, /v3/auth/* (src/auth/service.ts). */
  readonly auth: AuthService
  /** Open watches of authenticated users, re-checked when the auth state changes. */
  private readonly authedWatches = new Map<
    WatchStream,
    { info: AuthInfo; cancel: (id: WatchId) => void; ranges: Map<WatchId, [Uint8Array, Uint8Array]> }
  >()

  private constructor(
    opts: MemberOptions,
    sm: MemberStateMachine,
    raft: RaftNode,
    transport: PeerTransport | undefined,
  ) {
    this.opts = opts
    this.sm = sm
    this.kv = sm.kv
    this.raft = raft
    this.transport = transport
    this.clock = opts.clock ?? realClock
    const clock = this.clock
    this.now = opts.nowMs ?? (() => clock.now())
    this.lastCheckpointMs = this.now()
    this.auth = new AuthService({
      store: sm.auth,
      kv: sm.kv,
      config: opts.auth ?? authConfigDefault,
      propose: (req) => this.propose(req as InternalRequest),
      linearizableRead: () => this.raft.linearizableRead(),
      header: () => this.header(),
      nowSeconds: () => Math.floor(clock.wallMs() / 1000),
      nowMs: this.now,
    })
    sm.auth.onChange = () => this.recheckWatches()
  }

  /** Checks a unary call against auth (synchronous no-op while auth is off); see AuthService.authorize. */
  authorize(
    method: string,
    req: unknown,
    authorization: string | undefined,
    certUser?: string,
  ): AuthInfo | undefined | Promise<AuthInfo | undefined> {
    return this.auth.authorize(method, req, authorization, certUser)
  }

  authEnabled(): boolean {
    return this.sm.auth.enabled
  }

  /** A permission revoked (or auth changed) after a watch was created cancels it, with etcd's permission reason. */
  private recheckWatches(): void {
    const store = this.sm.auth
    for (const w of this.authedWatches.values()) {
      for (const [id, [key, end]] of [...w.ranges]) {
        try {
          store.checkRange({ user: w.info.user, rev: store.revision }, PermType.READ, key, end)
        } catch {
          w.ranges.delete(id)
          w.cancel(id)
        }
      }
    }
  }

  static async start(opts: MemberOptions): Promise<Member> {
    const c = opts.config
    const kv = new KvStore({
      maxTxnOps: c.maxTxnOps,
      maxWatchers: c.maxWatchers,
      maxWatchersPerStream: c.maxWatchersPerStream,
      quotaBackendBytes: c.quotaBackendBytes,
      // 0: no growth (the hub never goes under a stream's own window).
      watchBusyWindowMaxMs: Math.max(1, c.watchBatchIntervalMaxMs ?? 100),
      minLeaseTtlSeconds: Math.ceil((1.5 * c.electionTimeoutMs) / 1000),
    })
    // Client URLs are not known alike on every member at bootstrap: they arrive through publish (see publish()).
    const sm = new MemberStateMachine(kv, new ClusterState(opts.members.map((m) => ({ ...m, clientURLs: [] }))))
    const clock = opts.clock ?? realClock
    const now = opts.nowMs ?? (() => clock.now())
    sm.now = now
    let member: Member | undefined
    let raftRef: RaftNode | undefined
    let transport: PeerTransport | undefined
    if (opts.dial && opts.peerSecret) {
      transport = new PeerTransport({
        selfId: opts.memberId,
        clusterId: opts.clusterId,
        peerSecret: opts.peerSecret,
        maxSnapshotBytes: 2 * c.quotaBackendBytes,
        onPeerAuthenticated: (id) => transport?.redialNow(id),
        dial: opts.dial,
        onMessages: (msgs) => {
          for (const m of msgs) raftRef?.step(m)
        },
        reportUnreachable: (id) => raftRef?.reportUnreachable(id),
        reportSnapshot: (id, ok) => raftRef?.reportSnapshot(id, ok),
        onDropped: (msgs) => raftRef?.failUndelivered(msgs),
        log: opts.log,
        // etcd's rafthttp: a member that applied a removal answers the removed member 410 Gone, and a member told so
        // stops ("the member has been permanently removed from the cluster").
        isRemoved: (id) => sm.cluster.removed.has(id) && !sm.cluster.members.has(id),
        onRemoved: (by) => scheduleRemoval(`peer ${by} says so`),
      })
      await transport.start()
    }
    let removalScheduled = false
    /**
     * Removed for good: this member must not serve or disturb the cluster any more (etcd exits the same way). As
     * etcd's stopWithDelay, it stops ten heartbeats later, not at once: a leader that removed itself has yet to send
     * MsgTimeoutNow to its successor (raft.ts applyConfChange), and the commit of its removal has yet to reach the
     * others. Stopping at once lost the handover (found by the member-level simulator, test/sim/member).
     */
    const scheduleRemoval = (why: string) => {
      if (removalScheduled) return
      removalScheduled = true
      opts.log?.('warn', 'the member has been permanently removed from the cluster; stopping', { reason: why })
      clock.setTimeout(() => void member?.removedFromCluster(), 10 * c.heartbeatIntervalMs)
    }
    const updatePeers = () => {
      if (sm.cluster.removed.has(opts.memberId) && !sm.cluster.members.has(opts.memberId))
        scheduleRemoval('it applied its own removal')
      if (!transport) return
      const peers = new Map<NodeId, string[]>()
      for (const m of sm.cluster.members.values()) if (m.ID !== opts.memberId) peers.set(m.ID, m.peerURLs)
      transport.setPeers(peers)
    }
    sm.onMembershipChange = updatePeers
    sm.onAttributes = () => member?.checkPublished()
    const raft = await RaftNode.start({
      id: opts.memberId,
      storage: opts.storage,
      stateMachine: sm,
      // Raft ticks ten times per heartbeat (at most every 10 ms): the randomized election timeout then takes one of
      // 100 values between 1x and 2x --election-timeout instead of etcd's 10, so two followers of a dead leader
      // rarely time out in the same tick and split the vote (a split costs a second timeout, over 3 s in all).
      tickMs: c.heartbeatIntervalMs / subTicks(c.heartbeatIntervalMs),
      heartbeatTicks: subTicks(c.heartbeatIntervalMs),
      electionTicks: Math.round((c.electionTimeoutMs * subTicks(c.heartbeatIntervalMs)) / c.heartbeatIntervalMs),
      snapshotCount: c.snapshotCount,
      snapshotCatchUpEntries: opts.snapshotCatchUpEntries ?? 5000,
      requestTimeoutMs: c.requestTimeoutMs,
      initialPeers: opts.join ? [] : opts.members.map((m) => m.ID),
      transport: transport ?? opts.raftTransport,
      clock,
      rand: opts.rand,
      proposalsPendingCountMax: c.proposalsPendingCountMax,
      readsPendingCountMax: c.readsPendingCountMax,
      onFatal: (err) => {
        member?.stopTimers()
        transport?.close()
        opts.onFatal?.(err)
      },
    })
    raftRef = raft
    raft.confChangeReqIdOf = (cc) => decodeConfChangeContext(cc.context).reqId || undefined
    updatePeers()
    member = new Member(opts, sm, raft, transport)
    member.scheduleRemoval = scheduleRemoval
    member.publishTimer = clock.setInterval(() => member!.publish(), 500)
    member.publish()
    raft.onLeaderChange.push((isLeader, lead) => {
      if (lead !== '') member!.publish()
      if (isLeader) kv.lessor.promote(now())
      else kv.lessor.demote()
      // etcd's "elected leader" / "lost leader" lines, so an election's timeline can be read off the logs.
      const r = raft.node.raft
      if (lead === '') opts.log?.('info', 'no leader', { term: r.term, state: StateType[r.state] })
      else opts.log?.('info', isLeader ? 'elected leader' : 'following leader', { leader: lead, term: r.term })
    })
    if (raft.isLeader()) kv.lessor.promote(now())
    member.leaseTimer = clock.setInterval(() => member!.leaseDuties(), leaseExpiryCheckMs)
    member.progressTimer = clock.setInterval(() => kv.watchHub.progressNotify(), c.watchProgressNotifyIntervalMs)
    // The watch hub's replay turns (catch-up from history, src/kv/watch.ts) run on the member's clock.
    kv.watchHub.defer = (fn) => void clock.setTimeout(fn, 0)
    // Its coalescing windows (edgecd_coalesce_ms) too.
    kv.watchHub.now = () => clock.now()
    kv.watchHub.setTimer = (fn, ms) => void clock.setTimeout(fn, ms)
    return member
  }

  private stopTimers(): void {
    for (const w of [...this.readyWaiters]) w(false)
    if (this.leaseTimer) this.clock.clearInterval(this.leaseTimer)
    if (this.progressTimer) this.clock.clearInterval(this.progressTimer)
    if (this.publishTimer) this.clock.clearInterval(this.publishTimer)
    this.publishTimer = undefined
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

  private lastWatchHeader: ResponseHeader | undefined

  /** this.header(revision), the same object while the revision and term stay the same (watch fan-out). */
  private watchHeader(revision: number): ResponseHeader {
    const h = this.lastWatchHeader
    if (h !== undefined && h.revision === revision && h.raft_term === this.raft.node.raft.term) return h
    this.lastWatchHeader = this.header(revision)
    return this.lastWatchHeader
  }

  private withHeader<T extends { header?: ResponseHeader }>(resp: T): T {
    resp.header = this.header(resp.header?.revision ?? this.kv.revision)
    return resp
  }

  /**
   * Proposes a write; refuses one whose encoding exceeds --max-request-bytes (with slack, see proposalSlackBytes). With `info` the caller
   * rides along so that apply checks the write again: the user (auth on at the serving check) or authOffCaller (auth
   * off then: refused if auth is on by the time it applies). Internal proposals (lease expiry, checkpoints) carry none.
   */
  private propose(req: InternalRequest, info?: AuthInfo): Promise<unknown> {
    // Not an async function (one promise and microtask fewer per write): every failure is still a rejection.
    try {
      // Written with room in front for the entry's envelope head: RaftNode writes the entry around it, no copy.
      const headroom = this.raft.proposalHeadroom
      const data = encodeProposal(req, info, headroom)
      // The front doors measure a request as etcd does (its protobuf raft request); this CBOR check is the backstop,
      // with room for CBOR's field names, so that it never refuses what etcd accepts.
      if (data.length > this.opts.config.maxRequestBytes + proposalSlackBytes) throw new EtcdError('ErrRequestTooLarge')
      return this.raft.propose(data, headroom)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  // ---- KV ----

  async range(req: RangeRequest): Promise<RangeResponse> {
    if (!req.serializable) {
      await this.raft.linearizableRead()
      // A check with auth on waits itself and marks the read serializable (AuthService.authorize): this one was
      // checked with auth off, and auth came on during the wait. etcd answers a request without a user so.
      if (this.sm.auth.enabled) throw new EtcdError('ErrUserEmpty')
    }
    return this.withHeader(this.kv.range(req))
  }

  async put(req: PutRequest, info?: AuthInfo): Promise<PutResponse> {
    return this.withHeader((await this.propose({ put: req }, info ?? authOffCaller)) as PutResponse)
  }

  async deleteRange(req: DeleteRangeRequest, info?: AuthInfo): Promise<DeleteRangeResponse> {
    return this.withHeader((await this.propose({ delete_range: req }, info ?? authOffCaller)) as DeleteRangeResponse)
  }

  async txn(req: TxnRequest, info?: AuthInfo): Promise<TxnResponse> {
    // etcd's v3rpc checks the op count (nested txns included) before anything walks the request.
    checkTxnRequest(req, this.opts.config.maxTxnOps)
    if (isReadOnlyTxn(req)) {
      // A read-only txn needs no log entry, only a linearizable read (etcd does the same).
      await this.raft.linearizableRead()
      // Checked with auth off, and auth came on during the wait (as for range). A txn with no compare and no op
      // checks no user in etcd: it passes either way.
      if (info === undefined && this.sm.auth.enabled && txnHasChecks(req)) throw new EtcdError('ErrUserEmpty')
      return this.withHeader(this.kv.readTxn(req))
    }
    return this.withHeader((await this.propose({ txn: req }, info ?? authOffCaller)) as TxnResponse)
  }

  async compact(req: CompactionRequest, info?: AuthInfo): Promise<CompactionResponse> {
    return this.withHeader((await this.propose({ compaction: req }, info ?? authOffCaller)) as CompactionResponse)
  }

  // ---- leases ----

  async leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    // The id is chosen here, before proposing, so that applying stays deterministic on every member.
    const ID = req.ID !== 0n ? req.ID : randomLeaseId(this.opts.rand)
    return this.withHeader((await this.propose({ lease_grant: { TTL: req.TTL, ID } })) as LeaseGrantResponse)
  }

  async leaseRevoke(req: LeaseRevokeRequest, info?: AuthInfo): Promise<LeaseRevokeResponse> {
    return this.withHeader((await this.propose({ lease_revoke: req }, info ?? authOffCaller)) as LeaseRevokeResponse)
  }

  async leaseKeepAlive(req: LeaseKeepAliveRequest, authorization?: string): Promise<LeaseKeepAliveResponse> {
    if (!this.raft.isLeader()) {
      // Only the leader's clock renews leases: forward the keepalive to it, with the caller's token (auth on, the
      // leader checks it again).
      const r = await this.forwardToLeader('/v3/lease/keepalive', JSON.stringify({ ID: String(req.ID) }), authorization)
      return { header: this.header(), ID: req.ID, TTL: Number(r.TTL ?? 0) }
    }
    // Make sure the grant (possibly just acknowledged) is applied here before renewing.
    await this.raft.linearizableRead()
    const ttl = this.kv.lessor.renew(req.ID, this.now())
    return { header: this.header(), ID: req.ID, TTL: Math.max(ttl, 0) }
  }

  async leaseTimeToLive(req: LeaseTimeToLiveRequest, authorization?: string): Promise<LeaseTimeToLiveResponse> {
    await this.raft.linearizableRead()
    if (!this.raft.isLeader() && this.kv.lessor.lookup(req.ID)) {
      // The remaining TTL is the leader's to tell; the keys are the same everywhere.
      const local = this.kv.leaseTimeToLive(req)
      try {
        const body = JSON.stringify({ ID: String(req.ID) })
        const r = await this.forwardToLeader('/v3/lease/timetolive', body, authorization)
        if (r.TTL !== undefined) local.TTL = Number(r.TTL)
      } catch {}
      return this.withHeader(local)
    }
    return this.withHeader(this.kv.leaseTimeToLive(req, this.raft.isLeader() ? this.now() : undefined))
  }

  async leaseLeases(): Promise<LeaseLeasesResponse> {
    await this.raft.linearizableRead()
    return this.withHeader(this.kv.leaseLeases())
  }

  // ---- watch ----

  /** `info`: the stream's user when auth is on (each create is checked for READ on its range). */
  openWatchStream(
    send: (resp: WatchResponse) => boolean | undefined,
    info?: AuthInfo,
    opts?: { busy?: boolean },
  ): WatchStream {
    const busyMs = opts?.busy === true ? (this.opts.config.watchBatchIntervalMs ?? 0) : 0
    const stream = this.kv.watchHub.openStream(
      {
        send: (resp) => {
          // The hub fills the revision; the rest of the header is the member's. A compacted cancel carries no revision.
          // Messages of one revision share one header object (a transport may cache its encoding by identity).
          resp.header = this.watchHeader(resp.header?.revision ?? 0)
          return send(resp) !== false
        },
      },
      busyMs,
    )
    const authed = {
      info: info ?? { user: '', rev: 0 },
      cancel: (id: WatchId) => stream.cancel(id, permissionDeniedReason),
      ranges: new Map<WatchId, [Uint8Array, Uint8Array]>(),
    }
    const handle: WatchStream = {
      request: (req: WatchRequest) => {
        if (req.create_request) {
          const c = req.create_request
          // A token that did not verify while auth was off: etcd refuses every create (AuthService.authorize).
          if (info?.refused) {
            stream.refuseCreate(watchRefusedReason(info.refused))
            return
          }
          if (this.sm.auth.enabled) {
            try {
              this.sm.auth.checkRange(info, PermType.READ, c.key, c.range_end)
            } catch (err) {
              stream.refuseCreate(watchRefusedReason(err))
              return
            }
          }
          // A client may choose a negative id (etcd takes any id but 0): success is a new watcher, not id >= 0.
          const before = stream.size
          const id = stream.create(c)
          if (stream.size > before && info) authed.ranges.set(id, [c.key, c.range_end])
        } else if (req.cancel_request) {
          const id = watchIdOf(req.cancel_request.watch_id)
          stream.cancel(id)
          authed.ranges.delete(id)
        } else if (req.progress_request) stream.requestProgress()
      },
      resume: () => stream.resume(),
      hold: () => stream.hold(),
      backedUp: () => stream.backedUp(),
      close: () => {
        stream.close()
        this.streams.delete(handle)
        this.authedWatches.delete(handle)
      },
    }
    if (info) this.authedWatches.set(handle, authed)
    this.streams.add(handle)
    return handle
  }

  // ---- maintenance and cluster ----

  async status(): Promise<StatusResponse> {
    const r = this.raft.node.raft
    return {
      header: this.header(),
      version: etcdVersion.etcdserver,
      dbSize: Math.max(this.kv.sizeBytes, emptyDbSize.total),
      leader: r.lead,
      raftIndex: r.raftLog.committed,
      raftTerm: r.term,
      raftAppliedIndex: this.raft.applied,
      // etcd's AlarmMember.String() (protobuf text format): zero fields left out, so an alarm raised by hand for
      // member 0 reads `alarm:NOSPACE ` (found by the session 9 soak, random-admin seed 9201).
      errors: this.kv
        .activeAlarms()
        .map(
          (a) =>
            `${a.memberID === '0' ? '' : `memberID:${a.memberID} `}${a.alarm === 0 ? '' : `alarm:${['NONE', 'NOSPACE', 'CORRUPT'][a.alarm]} `}`,
        ),
      dbSizeInUse: Math.max(this.kv.sizeBytes, emptyDbSize.inUse),
      isLearner: r.isLearner,
    }
  }

  async memberList() {
    return { header: { ...this.header(), revision: 0 }, members: this.sm.cluster.list() }
  }

  /**
   * etcd's publish: tells the cluster this member's name and client URLs, through the log, until it sticks. Until
   * then the member serves no client request (etcd's ReadyNotify): a member that answers is listed with its client
   * URLs by itself and by every member that applied as far.
   */
  private publish(): void {
    if (this.checkPublished() || this.raft.leader() === '') return
    const want = this.attributes()
    const attrs: MemberAttributes = { ID: this.opts.memberId, name: want.name, clientURLs: want.clientURLs }
    const data = encode({ member_attr: attrs }) as Uint8Array
    this.raft.propose(data).then(
      () => this.checkPublished(),
      () => {},
    )
  }

  /** Whether this member's attributes are applied; the first time they are, wakes the requests waiting for it. */
  private checkPublished(): boolean {
    if (this.published) return true
    // A restarted member finds its attributes in the log it replays, but serves only once it knows a leader too.
    if (this.raft.leader() === '') return false
    const me = this.sm.cluster.members.get(this.opts.memberId)
    const want = this.attributes()
    if (!me || me.name !== want.name || me.clientURLs.join(',') !== want.clientURLs.join(',')) return false
    this.published = true
    if (this.publishTimer) this.clock.clearInterval(this.publishTimer)
    this.publishTimer = undefined
    for (const w of [...this.readyWaiters]) w(true)
    return true
  }

  /**
   * What this member publishes: its --name and --advertise-client-urls (a joining member's id is the one `member add`
   * gave it, which is not in the --initial-cluster list the ids were derived from).
   */
  private attributes(): { name: string; clientURLs: string[] } {
    return { name: this.opts.config.name, clientURLs: this.opts.config.advertiseClientUrls }
  }

  private published = false
  private readonly readyWaiters: ((ok: boolean) => void)[] = []

  /** Whether the member has published its attributes and serves clients (etcd's ReadyNotify has fired). */
  isReady(): boolean {
    return this.published
  }

  /**
   * Resolves true once the member is ready (see publish), or false after the request timeout: where etcd leaves a
   * client's connection waiting indefinitely, a request here gets an error after --request-timeout.
   */
  whenReady(): Promise<boolean> {
    if (this.published) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.clock.clearTimeout(timer)
        const i = this.readyWaiters.indexOf(done)
        if (i >= 0) this.readyWaiters.splice(i, 1)
        resolve(ok)
      }
      const timer = this.clock.setTimeout(() => done(false), this.opts.config.requestTimeoutMs)
      this.readyWaiters.push(done)
    })
  }

  /** etcd's MemberAdd: a new member (a learner when asked), id derived from its peer URLs, the token and the time. */
  async memberAdd(req: { peerURLs: string[]; isLearner: boolean }) {
    const urls = req.peerURLs
    if (urls.length === 0 || urls.some((u) => !/^https?:\/\/[^/]+:\d+\/?$/.test(u)))
      throw new EtcdError('ErrMemberBadURLs')
    if (this.sm.cluster.peerURLsInUse(urls)) throw new EtcdError('ErrPeerURLExist')
    const ID = await (this.opts.memberIdOf ?? computeMemberId)(
      urls,
      this.opts.config.initialClusterToken + String(this.clock.wallMs()),
    )
    if (this.sm.cluster.members.has(ID)) throw new EtcdError('ErrMemberExist')
    if (!req.isLearner && !this.readyToAddVotingMember()) throw new EtcdError('ErrNotEnoughStartedMembers')
    const reqId = this.raft.nextRequestId()
    const type = req.isLearner ? ConfChangeType.ConfChangeAddLearnerNode : ConfChangeType.ConfChangeAddNode
    await this.raft.proposeConfChange(
      { type, nodeId: ID, context: encodeConfChangeContext({ reqId, name: '', peerURLs: urls }) },
      reqId,
    )
    const member = { ID, name: '', peerURLs: urls, clientURLs: [], isLearner: req.isLearner }
    return { header: { ...this.header(), revision: 0 }, member, members: this.sm.cluster.list() }
  }

  /**
   * etcd's strict reconfiguration check (--strict-reconfig-check, on by default) before adding a voting member:
   * the started voting members (those that published a name) must stay a quorum of the grown cluster, except that a
   * second member may join a one-member cluster (IsReadyToAddVotingMember).
   */
  private readyToAddVotingMember(): boolean {
    const voting = this.sm.cluster.list().filter((m) => !m.isLearner)
    const members = voting.length + 1
    const started = voting.filter((m) => m.name !== '').length
    if (started === 1 && members === 2) return true
    return started >= Math.floor(members / 2) + 1
  }

  /** etcd's IsReadyToRemoveVotingMember: the started voting members other than `id` must remain a quorum. */
  private readyToRemoveVotingMember(id: string): boolean {
    if (this.sm.cluster.members.get(id)?.isLearner) return true
    const others = this.sm.cluster.list().filter((m) => !m.isLearner && m.ID !== id)
    const started = others.filter((m) => m.name !== '').length
    return started >= Math.floor(others.length / 2) + 1
  }

  async memberRemove(req: { ID: string }) {
    if (!this.readyToRemoveVotingMember(req.ID)) throw new EtcdError('ErrNotEnoughStartedMembers')
    if (!this.sm.cluster.members.has(req.ID))
      throw new EtcdError(this.sm.cluster.removed.has(req.ID) ? 'ErrMemberNotFound' : 'ErrMemberNotFound')
    const reqId = this.raft.nextRequestId()
    await this.raft.proposeConfChange(
      {
        type: ConfChangeType.ConfChangeRemoveNode,
        nodeId: req.ID,
        context: encodeConfChangeContext({ reqId, name: '', peerURLs: [] }),
      },
      reqId,
    )
    return { header: { ...this.header(), revision: 0 }, members: this.sm.cluster.list() }
  }

  async memberUpdate(req: { ID: string; peerURLs: string[] }) {
    const m = this.sm.cluster.members.get(req.ID)
    if (!m) throw new EtcdError('ErrMemberNotFound')
    if (req.peerURLs.length === 0 || req.peerURLs.some((u) => !/^https?:\/\/[^/]+:\d+\/?$/.test(u)))
      throw new EtcdError('ErrMemberBadURLs')
    if (this.sm.cluster.peerURLsInUse(req.peerURLs, req.ID)) throw new EtcdError('ErrPeerURLExist')
    const reqId = this.raft.nextRequestId()
    await this.raft.proposeConfChange(
      {
        type: ConfChangeType.ConfChangeUpdateNode,
        nodeId: req.ID,
        context: encodeConfChangeContext({ reqId, name: m.name, peerURLs: req.peerURLs }),
      },
      reqId,
    )
    return { header: { ...this.header(), revision: 0 }, members: this.sm.cluster.list() }
  }

  /** etcd's MemberPromote: only a learner, and only once it has caught up with the leader (90% of its log). */
  async memberPromote(req: { ID: string }) {
    const m = this.sm.cluster.members.get(req.ID)
    if (!m) throw new EtcdError('ErrMemberNotFound')
    if (!m.isLearner) throw new EtcdError('ErrMemberNotLearner')
    if (!this.raft.isLeader()) {
      // Only the leader knows whether the learner has caught up: forward, as etcd does.
      const r = await this.forwardToLeader('/v3/cluster/member/promote', JSON.stringify({ ID: req.ID }))
      const members = ((r.members as Record<string, unknown>[] | undefined) ?? []).map((m) => ({
        ID: String(m.ID),
        name: String(m.name ?? ''),
        peerURLs: (m.peerURLs as string[] | undefined) ?? [],
        clientURLs: (m.clientURLs as string[] | undefined) ?? [],
        isLearner: m.isLearner === true,
      }))
      return { header: { ...this.header(), revision: 0 }, members }
    }
    {
      const pr = this.raft.node.raft.prs.get(req.ID)
      const last = this.raft.node.raft.raftLog.lastIndex()
      if (!pr || pr.state !== ProgressState.StateReplicate || pr.match < last * 0.9)
        throw new EtcdError('ErrLearnerNotReady')
    }
    const reqId = this.raft.nextRequestId()
    await this.raft.proposeConfChange(
      {
        type: ConfChangeType.ConfChangeAddNode,
        nodeId: req.ID,
        context: encodeConfChangeContext({ reqId, name: m.name, peerURLs: m.peerURLs }),
      },
      reqId,
    )
    return { header: { ...this.header(), revision: 0 }, members: this.sm.cluster.list() }
  }

  /** etcd's MoveLeader: only the leader can hand over, to a voting member. */
  async moveLeader(req: { targetID: string }) {
    if (!this.raft.isLeader()) throw new EtcdError('ErrNotLeader')
    const m = this.sm.cluster.members.get(req.targetID)
    if (!m || m.isLearner) throw new EtcdError('ErrBadLeaderTransferee')
    if (req.targetID !== this.opts.memberId) await this.raft.transferLeader(req.targetID)
    return { header: this.header() }
  }

  private scheduleRemoval: ((why: string) => void) | undefined

  /**
   * A peer that applied this member's removal says so (etcd's rafthttp 410 Gone): the member stops, ten heartbeats
   * later as after applying its own removal. The peer transport calls it on an authenticated notice; the simulator
   * calls it where its network drops a removed member's message at a peer that knows.
   */
  peerSaysRemoved(by: NodeId): void {
    this.scheduleRemoval?.(`peer ${by} says so`)
  }

  /** Called once this member applied its own removal. */
  private async removedFromCluster(): Promise<void> {
    if (this.removed) return
    this.removed = true
    this.stopTimers()
    for (const s of [...this.streams]) s.close()
    this.opts.onFatal?.(new EtcdError('ErrRemoved'))
  }

  private removed = false

  /**
   * Whether an inbound /raft upgrade may proceed: peers configured (a secret), and the sender a current member of
   * this member's configuration other than itself. The claimed id, or why it is refused.
   */
  admitPeer(headers: PeerUpgradeHeaders): { from: NodeId } | { refused: string } {
    if (!this.transport) return { refused: 'peers are off on this member (no --peer-secret)' }
    return this.transport.admit(headers)
  }

  /** An admitted /raft socket: the transport challenges it and takes its frames once it proved the secret. */
  acceptPeer(from: NodeId, nonce: string, socket: PeerSocket): PeerSession {
    return this.transport!.accept(from, nonce, socket)
  }

  /** Client URLs of the current leader, for forwarding what only the leader can answer. */
  private leaderClientUrl(): string | undefined {
    const m = this.sm.cluster.members.get(this.raft.leader())
    // Peers share the client listener (/raft), so a leader that has not published its client URLs yet (it does so
    // through Raft just after it starts) is reached on its peer URL.
    return m?.clientURLs[0] ?? m?.peerURLs[0]
  }

  /** Forwards a unary call to the leader's client URL and returns the parsed JSON result (etcd proxies these too). */
  private async forwardToLeader(path: string, body: string, authorization?: string): Promise<Record<string, unknown>> {
    const url = this.leaderClientUrl()
    if (!url) throw new EtcdError(this.raft.leader() === '' ? 'ErrNoLeader' : 'ErrNotLeader')
    let text: string
    try {
      const r = await (this.opts.fetch ?? fetch)(url.replace(/\/$/, '') + path, {
        method: 'POST',
        body,
        ...(authorization ? { headers: { authorization } } : {}),
        signal: AbortSignal.timeout(this.opts.config.requestTimeoutMs),
      })
      text = await r.text()
    } catch {
      throw new EtcdError('ErrTimeoutDueToConnectionLost')
    }
    const line = JSON.parse(text.split('\n')[0] || '{}') as Record<string, unknown>
    if (typeof line.error === 'string') throw new EtcdError('ErrGeneric', Number(line.code) || 14, line.error)
    return (line.result as Record<string, unknown>) ?? line
  }

  async alarm(req: AlarmRequest) {
    if (req.action === AlarmAction.GET) {
      // etcd 3.4 filters a GET by alarm type (NONE = all), not by member.
      const alarms = this.kv.activeAlarms().filter((a) => !req.alarm || a.alarm === req.alarm)
      return { header: this.header(), alarms }
    }
    const resp = (await this.propose({ alarm: req })) as { alarms: { memberID: string; alarm: number }[] }
    return { header: this.header(), alarms: resp.alarms }
  }

  /** Local, as etcd's maintenance server (no read index: it answers without a leader too). */
  async hash() {
    return { header: this.header(), hash: this.kv.hash() }
  }

  async hashKV(req: { revision: number }) {
    const r = this.kv.hashKV(req.revision)
    return { header: this.header(), hash: r.hash, compact_revision: r.compact_revision }
  }

  /** The state a restore needs (src/etcdserver/saved-snapshot.ts): the KV store and auth, without the signing key. */
  async snapshot() {
    return { header: this.header(), data: encodeSavedSnapshot(this.kv.snapshot(), this.sm.auth.toSnapshot()) }
  }

  /** The member's own families (etcd_server_*, etcd_mvcc_*, edgecd_*), made on the first scrape. */
  private registry: Registry | undefined

  /**
   * Prometheus text of the member: etcd's names where edgecd has the same thing (docs/metrics.md), read at scrape
   * time, then the Ready loop's and the peer transport's families.
   */
  metrics(): string {
    this.registry ??= this.memberRegistry()
    return (
      this.registry.render() + this.raft.metrics.registry.render() + (this.transport?.metrics.registry.render() ?? '')
    )
  }

  private memberRegistry(): Registry {
    const r = new Registry()
    const raft = () => this.raft.node.raft
    r.gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', [], () =>
      raft().lead === '' ? 0 : 1,
    )
    r.gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', [], () =>
      this.raft.isLeader() ? 1 : 0,
    )
    r.gauge('etcd_server_is_learner', 'Whether or not this member is a learner. 1 if is, 0 otherwise.', [], () =>
      this.sm.cluster.members.get(this.opts.memberId)?.isLearner ? 1 : 0,
    )
    // etcd's committed and applied "totals" are gauges set to the Raft indexes.
    r.gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', [], () =>
      Math.max(raft().raftLog.committed, this.raft.applied),
    )
    r.gauge(
      'etcd_server_proposals_applied_total',
      'The total number of consensus proposals applied.',
      [],
      () => this.raft.applied,
    )
    r.gauge(
      'etcd_server_quota_backend_bytes',
      'Current backend storage quota size in bytes.',
      [],
      () => this.opts.config.quotaBackendBytes,
    )
    r.gauge(
      'etcd_server_id',
      "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
      ['server_id'],
      () => [[[idLabel(this.opts.memberId)], 1]],
    )
    r.gauge(
      'etcd_server_version',
      "Which version is running. 1 for 'server_version' label with current version.",
      ['server_version'],
      () => [[[etcdVersion.etcdserver], 1]],
    )
    r.gauge(
      'etcd_cluster_version',
      "Which version is running. 1 for 'cluster_version' label with current cluster version",
      ['cluster_version'],
      () => [[[etcdVersion.etcdcluster.replace(/\.\d+$/, '')], 1]],
    )
    // edgecd's store is in memory: the estimate the quota is checked against is both the "file" and what is in use.
    r.gauge(
      'etcd_mvcc_db_total_size_in_bytes',
      'Total size of the underlying database physically allocated in bytes.',
      [],
      () => this.kv.sizeBytes,
    )
    r.gauge(
      'etcd_mvcc_db_total_size_in_use_in_bytes',
      'Total size of the underlying database logically in use in bytes.',
      [],
      () => this.kv.sizeBytes,
    )
    r.gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', [], () => this.kv.revision)
    r.gauge(
      'etcd_debugging_mvcc_compact_revision',
      'The revision of the last compaction in store.',
      [],
      () => this.kv.compactRevision,
    )
    r.gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', [], () => this.kv.keyCount)
    r.gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', [], () => this.kv.watchHub.watcherCount)
    r.gauge('etcd_debugging_mvcc_watch_stream_total', 'Total number of watch streams.', [], () => this.streams.size)
    r.gauge(
      'etcd_server_alarms',
      'Active alarms on this member, by type (edgecd; etcd lists them in Status).',
      ['alarm'],
      () => {
        const by = new Map<string, number>()
        for (const a of this.kv.activeAlarms()) {
          const name = a.alarm === 1 ? 'NOSPACE' : a.alarm === 2 ? 'CORRUPT' : 'UNKNOWN'
          by.set(name, (by.get(name) ?? 0) + 1)
        }
        return [...by].map(([k, v]) => [[k], v] as [string[], number])
      },
    )
    // edgecd's own: Raft state etcd shows only through Status.
    r.gauge('edgecd_raft_term', 'The current Raft term.', [], () => raft().term)
    r.gauge('edgecd_raft_committed_index', 'The Raft commit index.', [], () => raft().raftLog.committed)
    r.gauge('edgecd_raft_applied_index', 'The index applied to the KV store.', [], () => this.raft.applied)
    r.gauge('edgecd_leases', 'Granted leases.', [], () => this.kv.lessor.size)
    return r
  }

  healthy(): boolean {
    return this.unhealthyReason() === undefined
  }

  hasLeader(): boolean {
    return this.raft.leader() !== ''
  }

  /**
   * Why GET /health answers false, in etcd 3.5's words where it has them (etcd 3.4 checks the same but does not
   * say why), or undefined when healthy: an active alarm, no leader heard from within an election timeout, not yet
   * published (etcd would not answer at all), removed or stopped on a fatal error.
   */
  unhealthyReason(): string | undefined {
    if (this.removed) return 'REMOVED'
    if (this.raft.fatalError() !== undefined) return 'FATAL ERROR'
    const alarm = this.kv.activeAlarms()[0]
    if (alarm) return `ALARM ${['NONE', 'NOSPACE', 'CORRUPT'][alarm.alarm] ?? 'UNKNOWN'}`
    if (!this.raft.hasRecentLeader()) return 'RAFT NO LEADER'
    if (!this.published) return 'NOT PUBLISHED'
    return undefined
  }

  /**
   * Graceful stop: checkpoint leases (so their remaining TTL survives the restart), let the Ready in flight reach
   * disk, close watch streams and storage.
   */
  async stop(): Promise<void> {
    this.stopTimers()
    const bounded = (p: Promise<unknown>, ms: number) => Promise.race([p.catch(() => {}), sleep(this.clock, ms)])
    if (this.raft.isLeader()) {
      await bounded(this.checkpointLeases(), 1000)
      // As etcd does on a graceful stop: hand leadership to the most caught-up voter so clients see no election.
      const r = this.raft.node.raft
      let best: NodeId | undefined
      let bestMatch = -1
      for (const [id, pr] of r.prs) {
        if (id === r.id || pr.isLearner || !r.voters.has(id)) continue
        if (pr.match > bestMatch) {
          best = id
          bestMatch = pr.match
        }
      }
      if (best !== undefined) await bounded(this.raft.transferLeader(best), 1000)
    }
    for (const s of [...this.streams]) s.close()
    await this.raft.stop()
    this.transport?.close()
  }
}

function isReadOnlyTxn(t: TxnRequest): boolean {
  const ro = (ops: TxnRequest['success']): boolean =>
    ops.every((op) => op.request_range !== undefined || (op.request_txn !== undefined && isReadOnlyTxn(op.request_txn)))
  return ro(t.success) && ro(t.failure)
}

/** A random positive int64 lease id (etcd's are random too; never 0, which means "pick one"). */
function randomLeaseId(rand: Rand | undefined): bigint {
  const b = new Uint8Array(8)
  if (rand) for (let i = 0; i < 8; i++) b[i] = rand.intn(256)
  else crypto.getRandomValues(b)
  let v = 0n
  for (const x of b) v = (v << 8n) | BigInt(x)
  v &= (1n << 63n) - 1n
  return v === 0n ? 1n : v
}
/** etcd's cancel_reason for a forbidden watch (the gRPC status text, as the gateway relays it). */
const permissionDeniedReason = grpcStatusText('ErrPermissionDenied')

/**
 * The cancel_reason of a create refused by auth, as etcd 3.5's watch server (isWatchPermitted): a token that is no
 * longer valid or older than the auth store says so, so that a client with credentials renews it and creates the
 * watch again (clientv3's shouldRetryWatch); anything else is "permission denied".
 */
function watchRefusedReason(err: unknown): string {
  const code = err instanceof EtcdError ? err.code : undefined
  return code === 'ErrAuthOldRevision' || code === 'ErrInvalidAuthToken' || code === 'ErrUserEmpty'
    ? grpcStatusText(code)
    : permissionDeniedReason
}
