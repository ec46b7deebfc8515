/**
 * Layer: src/raftnode, the Ready loop (etcd's raftNode): drives src/raft's RawNode, persists each Ready to the
 * durable storage, sends messages through a Transport, hands committed entries to the state machine and advances.
 * May import: src/raft, src/storage, src/protocol, src/metrics. Never src/etcdserver, src/api or src/runtime. Web-standard APIs
 * only.
 */

import { exponentialBuckets, Registry } from '../metrics/registry.js'
import { EtcdError } from '../protocol/errors.js'
import {
  type ConfChange,
  cryptoRand,
  decodeConfChange,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  None,
  RaftError,
  type Rand,
  RawNode,
  type Ready,
  StateType,
} from '../raft/index.js'
import { type DurableStorage, durableNow } from '../storage/durable-storage.js'
import { assert, type Clock, realClock, sleep, type TimerHandle } from './clock.js'
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeEnvelopeSeq,
  envelopeHeadBytesMax,
  scanEnvelope,
  scannedIdAt,
  scannedIdLen,
} from './envelope.js'
import { ProposalWaiters } from './proposal-waiters.js'

/**
 * The application state a member replicates: it applies committed entries in order, and can be snapshotted and
 * restored. Deterministic: every member applying the same entries reaches the same state.
 */
export interface StateMachine {
  /** Applies one committed proposal; returns its result or throws an EtcdError (which is answered, not fatal). */
  apply(data: Uint8Array, index: number): unknown
  /** The whole state as bytes, for a Raft snapshot. */
  snapshot(): Uint8Array
  /**
   * Optional: snapshot()'s bytes of the state at this call, built over several steps (each `next()` a few ms) so a
   * large state does not stall the Ready loop; the node yields to its clock between steps. Used when present.
   */
  snapshotInSteps?(): Iterator<void, Uint8Array, void>
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void
  /**
   * Optional: called around the applies of one Ready's committed entries (a batch of several revisions), e.g. so that
   * watchers get one message for the batch. endApplyBatch is called even if an apply throws.
   */
  beginApplyBatch?(): void
  endApplyBatch?(): void
  /** Applies a committed membership change (before Raft applies it at advance); false refuses it. */
  applyConfChange?(cc: ConfChange, index: number): boolean
  /** Whether Raft may apply a membership change (deterministic; see Config.acceptConfChange). */
  acceptsConfChange?(cc: ConfChange): boolean
}

/** How peers' messages leave this member. A single member has none. */
export interface Transport {
  send(msgs: Message[]): void
}

export interface RaftNodeOptions {
  id: NodeId
  storage: DurableStorage
  stateMachine: StateMachine
  /** The tick, in ms: etcd's --heartbeat-interval divided by heartbeatTicks. */
  tickMs: number
  /** Ticks between heartbeats (default 1, as etcd: the tick is the heartbeat interval). */
  heartbeatTicks?: number
  /** etcd's --election-timeout in ticks (10 with etcd's tick). */
  electionTicks: number
  /** etcd's --snapshot-count: applied entries between snapshots (default 100,000, as etcd 3.4). */
  snapshotCount: number
  /** Entries kept behind a snapshot for slow followers (etcd's SnapshotCatchUpEntries, 5,000). */
  snapshotCatchUpEntries: number
  /** A proposal or read not answered within this many ms fails with etcd's "request timed out". */
  requestTimeoutMs: number
  /** Peers of a new cluster, this member included; ignored when the storage already has state. */
  initialPeers: NodeId[]
  transport?: Transport
  /** Called on fatal errors (a failed fsync): the member has stopped and must not serve. */
  onFatal?: (err: unknown) => void
  /** Time and timers (realClock by default; the simulator's virtual clock under simulation). */
  clock?: Clock
  /** Raft's randomness (election timeouts); seeded from crypto by default, from the run's seed under simulation. */
  rand?: Rand
  /** Proposals (and membership changes) waiting to be applied here; past it a new one fails with "too many requests". */
  proposalsPendingCountMax?: number
  /** Linearizable reads waiting for their ReadIndex or for apply to reach it; past it a new one fails the same way. */
  readsPendingCountMax?: number
}

/** The default bounds of the Ready loop's queues (ServerConfig carries them, validated in validateServerConfig). */
export const raftNodeLimitsDefault = {
  proposalsPendingCountMax: 100_000,
  readsPendingCountMax: 100_000,
} as const

/** etcd's metrics of the Ready loop (etcdserver/metrics.go, wal/metrics.go, backend/metrics.go). */
export class RaftNodeMetrics {
  readonly registry = new Registry()
  /** `pending`: the proposals waiting now (read at scrape time: nothing to count per proposal). */
  constructor(private readonly pending: () => number = () => 0) {}
  readonly leaderChanges = this.registry.counter(
    'etcd_server_leader_changes_seen_total',
    'The number of leader changes seen.',
  )
  readonly proposalsPending = this.registry.gauge(
    'etcd_server_proposals_pending',
    'The current number of pending proposals to commit.',
    [],
    () => this.pending(),
  )
  readonly proposalsFailed = this.registry.counter(
    'etcd_server_proposals_failed_total',
    'The total number of failed proposals seen.',
  )
  /** Each durable save of a Ready (write + sync of the WAL records): etcd times the fsync alone. */
  readonly walFsync = this.registry.histogram(
    'etcd_disk_wal_fsync_duration_seconds',
    'The latency distributions of fsync called by WAL.',
    exponentialBuckets(0.001, 2, 14),
  )
  /** Each Ready's committed entries applied to the store (edgecd's backend is the in-memory store; see metrics.md). */
  readonly backendCommit = this.registry.histogram(
    'etcd_disk_backend_commit_duration_seconds',
    'The latency distributions of commit called by backend.',
    exponentialBuckets(0.001, 2, 14),
  )
  readonly snapshotSave = this.registry.histogram(
    'etcd_debugging_snap_save_total_duration_seconds',
    'The total latency distributions of save called by snapshot.',
    exponentialBuckets(0.001, 2, 14),
  )
}

/** Messages a leader may send before its own disk write completes. */
const leaderEarlyTypes = new Set<MessageType>([MessageType.MsgApp, MessageType.MsgHeartbeat, MessageType.MsgSnap])

interface Waiter {
  resolve(v: unknown): void
  reject(e: unknown): void
  timer: TimerHandle
}

/** A linearizable read; `timedOut` once its caller was answered by the timeout while it sat in a round. */
interface ReadWaiter extends Waiter {
  timedOut: boolean
}

/** RaftNode's queued-proposal arrays are kept between flushes up to this many slots (see pendingEntries). */
const pendingArrayKeepMax = 1024

const resolved: Promise<void> = Promise.resolve()
const timedOut = (): EtcdError => new EtcdError('ErrTimeout')

/** How long a read index round waits for its answer before asking again (etcd 3.5's readIndexRetryTime). */
const readIndexRetryMs = 500

/**
 * The run loop that glues Raft, durable storage and the state machine (etcd's raftNode + EtcdServer.apply):
 * ticks, proposals and linearizable reads in; each Ready persisted, sent, applied, advanced in that order.
 * Only one Ready is in flight; proposals arriving during its fsync are batched into the next (group commit).
 */
export class RaftNode {
  readonly node: RawNode
  readonly opts: RaftNodeOptions
  private readonly clock: Clock
  private readonly proposalsPendingCountMax: number
  private readonly readsPendingCountMax: number
  /** Reads queued, in a ReadIndex round or waiting for apply (the sum of the three queues below). */
  private readsPending = 0
  private ticker: TimerHandle | undefined
  private running = false
  private stopped = false
  private fatal: unknown
  private reqSeq = 0
  /**
   * Request ids are `member:start:seq`. `start` differs between runs of this member, so that an entry proposed before
   * a restart, committed and applied after it, never answers a new request that happens to reuse its sequence number
   * (etcd's idutil.Generator puts a timestamp in its ids for the same reason). The simulator found this one.
   */
  private readonly reqPrefix: string
  /** reqPrefix's bytes when it is ASCII (ids are then written and matched as bytes, never made into strings). */
  private readonly reqPrefixBytes: Uint8Array | undefined
  /**
   * Proposals by request sequence number, oldest first (every proposal gets the same timeout): one timer, armed for
   * the oldest one's deadline, times them all out (proposalTimer), instead of a timer per proposal. A proposal fails
   * with "request timed out" once the clock passes its deadline.
   */
  private readonly waiters = new ProposalWaiters()
  private proposalTimer: TimerHandle | undefined
  /** Membership changes by request id, each with its own timer (rare). */
  private readonly confWaiters = new Map<string, Waiter>()
  /** Reads waiting for the next ReadIndex round, and the round in flight. */
  private readWaiting: ReadWaiter[] = []
  private readInFlight: { ctx: string; waiters: ReadWaiter[]; retry?: TimerHandle } | undefined
  /** Reads whose read index is known, waiting for apply to reach it. */
  private readApplyWait: { index: number; waiters: ReadWaiter[] }[] = []
  private appliedIndex = 0
  private snapshotIndex = 0
  private readonly te = new TextEncoder()
  private readonly td = new TextDecoder()
  /** Listeners told about leadership and applied index changes (leases, watches, status). */
  readonly onLeaderChange: ((isLeader: boolean, lead: NodeId) => void)[] = []
  readonly onApplied: ((index: number) => void)[] = []
  readonly onConfChange: ((index: number) => void)[] = []
  readonly metrics = new RaftNodeMetrics(() => this.waiters.size)
  /** The leader last seen in a Ready (etcd's raftNode getLead), for counting leader changes. */
  private lastLead: NodeId = ''

  private constructor(opts: RaftNodeOptions) {
    this.opts = opts
    this.clock = opts.clock ?? realClock
    this.proposalsPendingCountMax = opts.proposalsPendingCountMax ?? raftNodeLimitsDefault.proposalsPendingCountMax
    this.readsPendingCountMax = opts.readsPendingCountMax ?? raftNodeLimitsDefault.readsPendingCountMax
    this.reqPrefix = `${opts.id}:${(opts.rand ?? cryptoRand()).intn(0x7fffffff).toString(36)}:`
    const prefixBytes = this.te.encode(this.reqPrefix)
    this.reqPrefixBytes = prefixBytes.length === this.reqPrefix.length ? prefixBytes : undefined
    this.proposalHeadroom = envelopeHeadBytesMax(this.reqPrefix.length)
    const snap = opts.storage.snapshot()
    this.snapshotIndex = snap.metadata.index
    if (snap.metadata.index > 0) opts.stateMachine.restore(snap.data)
    this.appliedIndex = snap.metadata.index
    this.node = new RawNode({
      id: opts.id,
      storage: opts.storage,
      rand: opts.rand ?? cryptoRand(),
      electionTicks: opts.electionTicks,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      // Five seconds' worth of etcd's ticks before an unreported snapshot is retried, whatever the tick.
      snapshotTimeoutTicks: 50 * (opts.heartbeatTicks ?? 1),
      applied: snap.metadata.index,
      acceptConfChange: opts.stateMachine.acceptsConfChange
        ? (cc) => opts.stateMachine.acceptsConfChange!(cc)
        : undefined,
    })
    if (opts.storage.lastIndex() === 0 && snap.metadata.index === 0 && opts.initialPeers.length > 0)
      this.node.bootstrap(opts.initialPeers)
  }

  /** Recovers from storage (snapshot + WAL tail), bootstraps a new cluster on empty storage, and starts ticking. */
  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    const m = new RaftNode(opts)
    await m.drain()
    // A lone member campaigns at once instead of waiting an election timeout.
    if (opts.initialPeers.length === 1 && opts.initialPeers[0] === opts.id) {
      m.node.campaign()
      await m.drain()
    }
    // Interval timers fire late on a busy machine, and a late tick stretches every timeout: count the ticks that are
    // due by the clock instead. A long stall (a paused process) is not made up beyond one heartbeat's worth: a
    // leader must not count its own pause as silence from its followers (etcd's ticker drops ticks the same way).
    const catchUpMax = opts.heartbeatTicks ?? 1
    const clock = m.clock
    let last = clock.now()
    let owed = 0
    m.ticker = clock.setInterval(() => {
      if (m.stopped) return
      const now = clock.now()
      owed += (now - last) / opts.tickMs
      last = now
      let n = Math.floor(owed)
      if (n > catchUpMax) {
        n = catchUpMax
        owed = 0
      } else owed -= n
      for (let i = 0; i < n; i++) m.node.tick()
      if (n > 0) m.kick()
    }, opts.tickMs)
    return m
  }

  get applied(): number {
    return this.appliedIndex
  }

  isLeader(): boolean {
    return this.node.raft.state === StateType.StateLeader
  }

  leader(): NodeId {
    return this.node.raft.lead
  }

  /**
   * Whether this member has a leader it heard from within an election timeout: a follower counts the ticks since the
   * leader's last message (raft resets electionElapsed on each), a leader is one while CheckQuorum keeps it (it steps
   * down after an election timeout without a quorum). A follower cut off from its leader keeps naming it until its
   * own randomized timeout (up to twice the election timeout) runs out; /health must not call it healthy till then.
   */
  hasRecentLeader(): boolean {
    const r = this.node.raft
    if (r.lead === None) return false
    if (r.state === StateType.StateLeader) return true
    return r.state === StateType.StateFollower && r.electionElapsed < this.opts.electionTicks
  }

  /** Feeds a message from a peer. */
  step(m: Message): void {
    if (this.stopped) return
    try {
      this.node.step(m)
    } catch (err) {
      if (!(err instanceof RaftError)) throw err
    }
    this.kick()
  }

  /**
   * The bytes a caller may leave free in front of a proposal's data (see `propose`) so that its entry is written
   * around the data in place: src/etcdserver/proposal.ts encodes the member's proposals so.
   */
  readonly proposalHeadroom: number

  /**
   * Proposes data and resolves with the state machine's result once it is applied on this member. Fails fast with
   * etcd's "no leader" when there is none, and with "request timed out" after requestTimeoutMs. With `headroom`, the
   * `headroom` bytes just before `data` in its buffer are the caller's and unused: the entry's envelope head is
   * written there and the entry views the same memory (no copy of the data).
   */
  propose(data: Uint8Array, headroom = 0): Promise<unknown> {
    this.checkServing()
    if (this.waiters.size + this.confWaiters.size >= this.proposalsPendingCountMax)
      throw new EtcdError('ErrTooManyRequests')
    const seq = ++this.reqSeq
    const prefix = this.reqPrefixBytes
    const entry =
      prefix !== undefined ? encodeEnvelopeSeq(prefix, seq, data, headroom) : encodeEnvelope(this.reqPrefix + seq, data)
    return new Promise<unknown>((resolve, reject) => {
      this.waiters.add(seq, resolve, reject, this.clock.now() + this.opts.requestTimeoutMs)
      if (this.proposalTimer === undefined) this.armProposalTimer()
      // Proposals wait here while a Ready is being persisted and go to Raft together just before the next one: one
      // append and one MsgApp per follower for all of them (group proposal, no extra latency when idle).
      const n = this.pendingCount++
      this.pendingEntries[n] = entry
      this.pendingSeqs[n] = seq
      if (!this.running) this.flushProposals()
      this.kick()
    })
  }

  /**
   * The proposals waiting for the next Ready are [0, pendingCount) of these two arrays, which are kept from one flush
   * to the next (fresh arrays per flush were two backing stores per put with one client); slots are cleared on flush
   * so no proposal's bytes stay reachable, and arrays grown past pendingArrayKeepMax by a burst are dropped.
   */
  private pendingEntries: (Uint8Array | undefined)[] = []
  private pendingSeqs: number[] = []
  private pendingCount = 0

  /** Arms the one proposal timer for the oldest waiting proposal's deadline (none when nothing waits). */
  private armProposalTimer(): void {
    const deadline = this.waiters.oldestDeadline()
    if (deadline === undefined) return
    this.proposalTimer = this.clock.setTimeout(this.onProposalTimer, Math.max(0, deadline - this.clock.now()))
  }

  /** Fails every proposal past its deadline (the oldest ones), then waits for the next oldest. */
  private readonly onProposalTimer = (): void => {
    this.proposalTimer = undefined
    const now = this.clock.now()
    const expired = this.waiters.expire(now, timedOut)
    if (expired > 0) this.metrics.proposalsFailed.inc(expired)
    this.armProposalTimer()
  }

  /** Answers the proposal `seq` (if this member still waits for it) with `error`, or else with `result`. */
  private settleProposal(seq: number, result: unknown, error: unknown): void {
    this.waiters.settle(seq, result, error)
  }

  /**
   * Reads a normal entry's envelope: its state machine bytes into `entryPayload`, and the sequence number of the
   * proposal if this run of the member made it (its id is reqPrefix + seq), else -1 (an entry proposed elsewhere or by
   * an earlier run). The hand path makes no id string; other envelopes go through cbor-x (and its errors).
   */
  private readEntry(data: Uint8Array): number {
    const at = scanEnvelope(data)
    const p = this.reqPrefixBytes
    if (at < 0 || p === undefined) {
      const [id, payload] = decodeEnvelope(data)
      this.entryPayload = payload
      return this.seqOfId(id)
    }
    this.entryPayload = data.subarray(at)
    const idAt = scannedIdAt
    const n = scannedIdLen
    const pl = p.length
    if (n <= pl || n > pl + 15) return -1
    for (let i = 0; i < pl; i++) if (data[idAt + i] !== p[i]) return -1
    let v = 0
    for (let i = idAt + pl; i < idAt + n; i++) {
      const c = data[i]! - 0x30
      if (c < 0 || c > 9) return -1
      v = v * 10 + c
    }
    return v
  }
  private entryPayload: Uint8Array | undefined

  /** ownSeq of an id string (entries read through cbor-x). */
  private seqOfId(id: unknown): number {
    if (typeof id !== 'string' || !id.startsWith(this.reqPrefix)) return -1
    const rest = id.slice(this.reqPrefix.length)
    return /^[0-9]{1,15}$/.test(rest) ? Number(rest) : -1
  }

  /** Hands queued proposals to Raft as one batch; if Raft drops them (no leader), their callers fail fast. */
  private flushProposals(): void {
    const n = this.pendingCount
    if (n === 0) return
    this.pendingCount = 0
    const batch = this.pendingEntries
    const seqs = this.pendingSeqs
    try {
      this.node.proposeBatch(batch as Uint8Array[], n)
    } catch (err) {
      const e = err instanceof RaftError && err.code === 'ErrProposalDropped' ? new EtcdError('ErrNoLeader') : err
      for (let i = 0; i < n; i++) {
        const seq = seqs[i]!
        if (!this.waiters.has(seq)) continue
        this.metrics.proposalsFailed.inc()
        this.settleProposal(seq, undefined, e)
      }
    } finally {
      if (batch.length > pendingArrayKeepMax) {
        this.pendingEntries = []
        this.pendingSeqs = []
      } else batch.fill(undefined, 0, n)
    }
  }

  /**
   * Proposes a membership change whose context starts with a request id (see cluster.ts) and resolves once it is
   * applied here. Raft allows one pending change at a time: a second is refused with etcd's "not enough started".
   */
  proposeConfChange(cc: ConfChange, reqId: string): Promise<ConfChange> {
    this.checkServing()
    if (this.waiters.size + this.confWaiters.size >= this.proposalsPendingCountMax)
      throw new EtcdError('ErrTooManyRequests')
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.confWaiters.delete(reqId)
        reject(new EtcdError('ErrTimeout'))
      }, this.opts.requestTimeoutMs)
      this.confWaiters.set(reqId, { resolve: resolve as (v: unknown) => void, reject, timer })
      try {
        this.node.proposeConfChange(cc)
      } catch (err) {
        this.clock.clearTimeout(timer)
        this.confWaiters.delete(reqId)
        if (err instanceof RaftError && err.code === 'ErrProposalDropped')
          reject(new EtcdError(this.node.raft.lead === '' ? 'ErrNoLeader' : 'ErrMemberNotEnoughStarted'))
        else reject(err)
        return
      }
      this.kick()
    })
  }

  /** A fresh request id for proposals made on this member. */
  nextRequestId(): string {
    return this.reqPrefix + ++this.reqSeq
  }

  confChangeReqIdOf?: (cc: ConfChange) => string | undefined

  private confChangeReqId(cc: ConfChange): string | undefined {
    return this.confChangeReqIdOf?.(cc)
  }

  /** Hands leadership to `transferee` (etcd's MoveLeader); resolves once it leads or rejects after the timeout. */
  async transferLeader(transferee: NodeId): Promise<void> {
    this.checkServing()
    this.node.transferLeader(transferee)
    this.kick()
    const deadline = this.clock.now() + this.opts.requestTimeoutMs
    while (this.node.raft.lead !== transferee) {
      if (this.clock.now() > deadline) throw new EtcdError('ErrTimeoutDueToLeaderFail')
      await sleep(this.clock, this.opts.tickMs)
    }
  }

  /**
   * Proposals forwarded to a leader that the transport could not reach were never delivered: fail their callers now
   * with a retriable "no leader" rather than letting them wait for the request timeout.
   */
  failUndelivered(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type !== MessageType.MsgProp) continue
      for (const e of m.entries) {
        if (e.type !== EntryType.EntryNormal || e.data.length === 0) continue
        let seq: number
        try {
          seq = this.readEntry(e.data)
        } catch {
          continue
        } finally {
          this.entryPayload = undefined
        }
        if (seq >= 0) this.settleProposal(seq, undefined, new EtcdError('ErrNoLeader'))
      }
    }
  }

  reportUnreachable(id: NodeId): void {
    this.node.reportUnreachable(id)
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.node.reportSnapshot(id, ok)
    this.kick()
  }

  /** Resolves once this member has applied everything committed before the call (ReadIndex, thesis §6.4). */
  linearizableRead(): Promise<void> {
    this.checkServing()
    // A leader that is the only voter answers ReadIndex with its commit index at once (raft.ts, stepLeader), so
    // when that index is already applied, the read can be served now instead of after a Ready round trip.
    if (this.isLeader() && this.node.raft.isSingleton() && this.node.raft.raftLog.committed <= this.appliedIndex) {
      return Promise.resolve()
    }
    if (this.readsPending >= this.readsPendingCountMax) throw new EtcdError('ErrTooManyRequests')
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        // It may sit in any of the three queues; whichever holds it skips it afterwards (settleRead).
        this.readWaiting = this.readWaiting.filter((w) => w !== waiter)
        waiter.timedOut = true
        this.readsPending--
        reject(new EtcdError('ErrTimeout'))
      }, this.opts.requestTimeoutMs)
      const waiter: ReadWaiter = { resolve: () => resolve(), reject, timer, timedOut: false }
      this.readsPending++
      this.readWaiting.push(waiter)
      this.startReadRound()
    })
  }

  private startReadRound(): void {
    if (this.readInFlight || this.readWaiting.length === 0) return
    const waiters = this.readWaiting
    this.readWaiting = []
    this.sendReadIndex(waiters, this.clock.now())
  }

  /**
   * Asks Raft for a read index for `waiters`. A request or answer can be lost without a word (a follower that just
   * learned its leader may have no socket to it yet; raft drops a ReadIndex it cannot forward): as etcd 3.5 does
   * (readIndexRetryTime), the round is asked again every readIndexRetryMs with a fresh context, until the request
   * timeout, after which its waiters have failed and the next round starts.
   */
  private sendReadIndex(waiters: ReadWaiter[], since: number): void {
    const ctx = `${this.reqPrefix}r${++this.reqSeq}`
    const round: { ctx: string; waiters: ReadWaiter[]; retry?: TimerHandle } = { ctx, waiters }
    this.readInFlight = round
    try {
      this.node.readIndex(this.te.encode(ctx))
    } catch (err) {
      this.readInFlight = undefined
      const e = err instanceof RaftError && err.code === 'ErrProposalDropped' ? new EtcdError('ErrNoLeader') : err
      for (const w of waiters) this.settleRead(w, e)
      return
    }
    round.retry = this.clock.setTimeout(() => {
      if (this.readInFlight !== round || this.stopped) return
      if (this.clock.now() - since >= this.opts.requestTimeoutMs) {
        this.readInFlight = undefined
        this.startReadRound()
        return
      }
      this.sendReadIndex(waiters, since)
    }, readIndexRetryMs)
    this.kick()
  }

  /** Answers a read once: a read that timed out was answered and counted out already. */
  private settleRead(w: ReadWaiter, err?: unknown): void {
    if (w.timedOut) return
    w.timedOut = true
    this.readsPending--
    this.clock.clearTimeout(w.timer)
    if (err === undefined) w.resolve(undefined)
    else w.reject(err)
  }

  private checkServing(): void {
    if (this.fatal) throw new EtcdError('ErrStopped')
    if (this.stopped) throw new EtcdError('ErrStopped')
  }

  /** Runs the Ready loop unless it is already running. */
  kick(): void {
    if (this.running || this.stopped) return
    void this.drain()
  }

  /**
   * Processes Ready batches until there are none; resolves when the loop stops. Not async: a Ready whose save was
   * durable at once (storage.save returned `durableNow`: one client's puts on Node's files) is sent, applied and
   * advanced in the same call, and the next Ready taken, without a promise or a microtask hop per Ready (two Readys
   * per put: its entry, then its commit; docs/benchmarks.md gRPC "Session 11"). A save still in flight continues the
   * loop from its promise, as before.
   */
  private drain(): Promise<void> {
    if (this.running) return resolved
    this.running = true
    return this.drainLoop() ?? resolved
  }

  /** The loop of drain: undefined once it stopped (running is false again), else the promise it goes on from. */
  private drainLoop(): Promise<void> | undefined {
    try {
      for (;;) {
        if (this.stopped) break
        this.flushProposals()
        if (!this.node.hasReady()) break
        const saving = this.handleReady(this.node.ready())
        if (saving !== undefined) return saving.then(this.drainResume, this.drainFailed)
      }
    } catch (err) {
      this.die(err)
    }
    this.running = false
    return undefined
  }

  private readonly drainResume = (): Promise<void> | undefined => this.drainLoop()
  private readonly drainFailed = (err: unknown): void => {
    this.die(err)
    this.running = false
  }

  /**
   * Handles one Ready: undefined when it is done (its save was durable at once, or it had none), else the promise of
   * the rest (afterPersist, once the save is durable).
   */
  private handleReady(rd: Ready): Promise<void> | undefined {
    const prevLead = this.node.raft.lead
    // A leader's appends and heartbeats may leave before its own disk write (Raft thesis §10.2.1, as etcd does):
    // it never counts an entry as committed, nor answers a client or a follower about it, before a later Ready, by
    // which time this one is on disk. Everything else (votes above all) waits for the disk.
    const isLeader = this.node.raft.state === StateType.StateLeader
    let later = rd.messages
    if (isLeader && rd.messages.length > 0) {
      const early: Message[] = []
      later = []
      for (const m of rd.messages) (leaderEarlyTypes.has(m.type) ? early : later).push(m)
      if (early.length > 0) this.opts.transport?.send(early)
    }
    // 1. Persist (a vote or an acknowledged entry must be on disk before any message that depends on it leaves). A
    // Ready whose only change is the commit index needs no sync: Raft relearns commit after a restart (etcd's
    // MustSync), so it is not written at all; the next synced save carries the then-current hard state.
    if (rd.snapshot || rd.entries.length > 0 || rd.mustSync) {
      const t0 = this.clock.now()
      const saved = this.opts.storage.save(rd.hardState, rd.entries, rd.snapshot)
      if (saved !== durableNow)
        return saved.then(() => {
          this.metrics.walFsync.observe((this.clock.now() - t0) / 1000)
          this.afterPersist(rd, later, prevLead)
        })
      this.metrics.walFsync.observe((this.clock.now() - t0) / 1000)
    }
    this.afterPersist(rd, later, prevLead)
    return undefined
  }

  /** The rest of a Ready once its save is durable: send, apply, advance (in that order), then what follows. */
  private afterPersist(rd: Ready, later: Message[], prevLead: NodeId): void {
    // 2. Send.
    if (later.length > 0) this.opts.transport?.send(later)
    // 3. Apply.
    if (rd.snapshot) {
      const si = rd.snapshot.metadata.index
      if (si <= this.appliedIndex) assert(false, () => `snapshot at ${si} is not past applied ${this.appliedIndex}`)
      this.opts.stateMachine.restore(rd.snapshot.data)
      this.appliedIndex = rd.snapshot.metadata.index
      this.snapshotIndex = rd.snapshot.metadata.index
    }
    if (rd.committedEntries.length > 0) {
      const t0 = this.clock.now()
      const sm = this.opts.stateMachine
      sm.beginApplyBatch?.()
      try {
        for (const e of rd.committedEntries) this.applyEntry(e.index, e.type, e.data)
      } finally {
        sm.endApplyBatch?.()
      }
      this.metrics.backendCommit.observe((this.clock.now() - t0) / 1000)
    }
    for (const rs of rd.readStates) this.onReadState(this.td.decode(rs.requestCtx), rs.index)
    this.node.advance(rd)
    if (rd.committedEntries.length > 0 || rd.snapshot) {
      for (const f of this.onApplied) f(this.appliedIndex)
      this.releaseReads()
    }
    if (rd.softState) {
      const lead = rd.softState.lead
      if (lead !== '' && lead !== this.lastLead) this.metrics.leaderChanges.inc()
      this.lastLead = lead
      const isLeader = rd.softState.raftState === StateType.StateLeader
      for (const f of this.onLeaderChange) f(isLeader, rd.softState.lead)
      if (rd.softState.lead !== prevLead || rd.softState.lead === '') this.failReadsOnLeaderLoss()
    }
    this.maybeSnapshot()
  }

  private applyEntry(index: number, type: EntryType, data: Uint8Array): void {
    // Applied indexes are contiguous: a gap or a repeat means the state machine diverged from the log.
    if (index !== this.appliedIndex + 1)
      assert(false, () => `applied index ${index} does not follow ${this.appliedIndex} on ${this.opts.id}`)
    this.appliedIndex = index
    if (type === EntryType.EntryConfChange) {
      const cc = decodeConfChange(data)
      const ok = this.opts.stateMachine.applyConfChange?.(cc, index) ?? true
      for (const f of this.onConfChange) f(index)
      const reqId = this.confChangeReqId(cc)
      const w = reqId ? this.confWaiters.get(reqId) : undefined
      if (w) {
        this.confWaiters.delete(reqId!)
        this.clock.clearTimeout(w.timer)
        if (ok) w.resolve(cc)
        else w.reject(new EtcdError('ErrMemberNotFound'))
      }
      return
    }
    if (data.length === 0) return // a leader's no-op
    const seq = this.readEntry(data)
    const payload = this.entryPayload!
    this.entryPayload = undefined
    let result: unknown
    let error: unknown
    try {
      result = this.opts.stateMachine.apply(payload, index)
    } catch (err) {
      if (!(err instanceof EtcdError)) throw err
      error = err
    }
    if (seq >= 0) this.settleProposal(seq, result, error)
  }

  private onReadState(ctx: string, index: number): void {
    const round = this.readInFlight
    if (!round || round.ctx !== ctx) return
    this.clock.clearTimeout(round.retry)
    this.readInFlight = undefined
    this.readApplyWait.push({ index, waiters: round.waiters })
    this.releaseReads()
    this.startReadRound()
  }

  private releaseReads(): void {
    if (this.readApplyWait.length === 0) return
    const keep: { index: number; waiters: ReadWaiter[] }[] = []
    for (const r of this.readApplyWait) {
      if (r.index > this.appliedIndex) {
        keep.push(r)
        continue
      }
      for (const w of r.waiters) this.settleRead(w)
    }
    this.readApplyWait = keep
  }

  /** A read round whose leader is gone will never be answered: fail it fast, as etcd does. */
  private failReadsOnLeaderLoss(): void {
    const round = this.readInFlight
    if (!round) return
    this.clock.clearTimeout(round.retry)
    this.readInFlight = undefined
    for (const w of round.waiters) this.settleRead(w, new EtcdError('ErrLeaderChanged'))
    this.startReadRound()
  }

  /** The snapshot being written, if any (one at a time). */
  private snapshotting: Promise<void> | undefined

  /**
   * Every snapshotCount applied entries: the state machine's snapshot at the applied index, then the log behind it
   * compacted. The state is taken here, synchronously, so it is exactly the applied index's; writing it does not hold
   * up the Ready loop (storage writes the file alongside the WAL saves that keep coming and queues only the step that
   * makes it current). The hard state is saved first, in order with the loop's saves, so that what is on disk never
   * has a commit index below its snapshot (commit-only hard states are not written: see handleReady).
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.snapshotIndex < this.opts.snapshotCount) return
    const index = this.appliedIndex
    const term = this.node.raft.raftLog.term(index)
    const sm = this.opts.stateMachine
    // The state at `index`, taken now; encoding a large one goes on in steps between the loop's turns (the first step
    // here: a small state is done at once).
    const steps = sm.snapshotInSteps?.()
    let step = steps?.next() ?? { done: true as const, value: sm.snapshot() }
    const confState = this.node.confState()
    const hardSaved = this.opts.storage.save(this.node.raft.hardState(), [])
    this.snapshotting = (async () => {
      while (!step.done) {
        await sleep(this.clock, 0)
        step = steps!.next()
      }
      const data = step.value
      await hardSaved
      try {
        const t0 = this.clock.now()
        await this.opts.storage.saveSnapshot({ data, metadata: { index, term, confState } })
        this.metrics.snapshotSave.observe((this.clock.now() - t0) / 1000)
      } catch (err) {
        // A leader's newer snapshot was installed meanwhile: ours is moot.
        if (err instanceof RaftError && err.code === 'ErrSnapOutOfDate') return
        throw err
      }
      if (index > this.snapshotIndex) this.snapshotIndex = index
      const compactTo = index - this.opts.snapshotCatchUpEntries
      if (compactTo > this.opts.storage.firstIndex() && compactTo <= this.opts.storage.snapshot().metadata.index) {
        try {
          await this.opts.storage.compact(compactTo)
        } catch (err) {
          // A leader's snapshot, installed while the compaction waited its turn, compacted further: nothing to do.
          // (Stopping the member on it was found by the member-level simulator, seed 2633.)
          if (!(err instanceof RaftError && err.code === 'ErrCompacted')) throw err
        }
      }
    })()
      .catch((err) => {
        if (!this.stopped) this.die(err)
      })
      .finally(() => {
        this.snapshotting = undefined
      })
  }

  /** Fails every waiting proposal and membership change with `e` (the member stops). */
  private failAllProposals(e: EtcdError): void {
    this.clock.clearTimeout(this.proposalTimer)
    this.proposalTimer = undefined
    this.waiters.rejectAll(e)
    const cs = [...this.confWaiters.values()]
    this.confWaiters.clear()
    for (const w of cs) {
      this.clock.clearTimeout(w.timer)
      w.reject(e)
    }
  }

  private die(err: unknown): void {
    this.fatal = err
    this.stopped = true
    if (this.ticker) this.clock.clearInterval(this.ticker)
    this.failAllProposals(new EtcdError('ErrStopped'))
    this.opts.onFatal?.(err)
  }

  /** Stops ticking, lets the Ready in flight finish (so what was acknowledged is synced), then closes storage. */
  async stop(): Promise<void> {
    if (this.ticker) this.clock.clearInterval(this.ticker)
    this.ticker = undefined
    while (this.running) await sleep(this.clock, 1)
    this.stopped = true
    await this.snapshotting
    const e = new EtcdError('ErrStopped')
    this.failAllProposals(e)
    const reads = [
      ...this.readWaiting,
      ...(this.readInFlight?.waiters ?? []),
      ...this.readApplyWait.flatMap((r) => r.waiters),
    ]
    this.readWaiting = []
    if (this.readInFlight) this.clock.clearTimeout(this.readInFlight.retry)
    this.readInFlight = undefined
    this.readApplyWait = []
    for (const w of reads) this.settleRead(w, e)
    await this.opts.storage.close()
  }

  /** Why the member stopped, if it died. */
  fatalError(): unknown {
    return this.fatal
  }
}
