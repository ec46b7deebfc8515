/**
 * The member-level simulator's world: whole edgecd members (src/etcdserver/member.ts with its real KV store, lessor,
 * auth store and watch hub, the real Ready loop of src/raftnode/raft-node.ts, the real WAL and snapshot code of
 * src/storage over MemoryFileOps) on virtual time (scheduler.ts), joined by a simulated network that loses,
 * duplicates, delays (and so reorders) and partitions messages, all decided by one seeded stream.
 *
 * A crash kills a member's process (every timer it set dies with it, so nothing it had in flight ever completes)
 * and keeps its disk under MemoryFileOps' crash model: writes in flight are torn at a random byte, directory changes
 * not synced are lost. A restart opens the same disk with the production recovery code.
 *
 * What each member persists, applies and believes is reported to the Raft checker of the raft-level simulator
 * (../checkers.ts): election safety, log matching, leader completeness, state machine safety, durability.
 */

import { type ServerConfig, serverDefaults, validateServerConfig } from '../../../src/etcdserver/config.js'
import { Member } from '../../../src/etcdserver/member.js'
import { EtcdError } from '../../../src/protocol/errors.js'
import type { MemberInfo } from '../../../src/protocol/types.js'
import { seededRand } from '../../../src/raft/rand.js'
import { type Message, MessageType, type NodeId } from '../../../src/raft/types.js'
import type { Transport } from '../../../src/raftnode/raft-node.js'
import type { DurableStorage } from '../../../src/storage/durable-storage.js'
import { openFileStorage } from '../../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../../src/storage/memory-file-ops.js'
import { nextChain } from '../app.js'
import { Checker } from '../checkers.js'
import type { SimRand } from '../rng.js'
import { ProcessClock, type Scheduler } from './scheduler.js'

/** A deliberately broken member, to prove the checkers and assertions catch it. */
export type MemberBug =
  /** The disk acknowledges a write before it is durable (a skipped fsync): a crash loses acknowledged state. */
  | 'skip-fsync'
  /** The Ready loop does not wait for its save: it sends, applies and answers before anything is on disk. */
  | 'apply-before-persist'
  /** Linearizable reads are answered at once, without a ReadIndex round (a stale read from a deposed leader). */
  | 'read-before-index'
  /** One member applies every put twice: the revision assertion must stop it. */
  | 'double-apply'
  /** One member skips an index when applying: the applied-index assertion must stop it. */
  | 'skip-apply'
  /** One member applies every put with another value: its KV hash (and what its watchers see) must differ. */
  | 'diverge-apply'
  /**
   * Not a bug of the member but of its operator: a member whose removal was acknowledged is restarted with its old
   * data (etcd: never do this, discard its data dir). Its peers that applied the removal tell it so and it stops;
   * while all of them are down it can still win an election with stale members (docs/testing.md, seed 2539).
   */
  | 'restart-removed'

export const memberBugs: readonly MemberBug[] = [
  'skip-fsync',
  'apply-before-persist',
  'read-before-index',
  'double-apply',
  'skip-apply',
  'diverge-apply',
  'restart-removed',
]

export interface NetFaults {
  dropPct: number
  duplicatePct: number
  /** One-way latency of a message, drawn in [latencyMsMin, latencyMsMax] (different draws reorder messages). */
  latencyMsMin: number
  latencyMsMax: number
}

export interface WorldOptions {
  seed: number
  rng: SimRand
  sched: Scheduler
  /** Founding members. */
  size: number
  snapshotCount: number
  snapshotCatchUpEntries: number
  walPreallocateBytes: number
  walSegmentBytesMax: number
  /** A write's virtual fsync latency, drawn in [0.1, fsyncMsMax] ms. */
  fsyncMsMax: number
  bug?: MemberBug
  /** Trace of events, hashed into the run's fingerprint (and printed with --verbose). */
  trace: (line: string) => void
}

/** One member slot: its disk outlives its processes. */
export interface SimMember {
  id: NodeId
  name: string
  peerURL: string
  clientURL: string
  disk: MemoryFileOps
  proc?: ProcessClock
  member?: Member
  /** Resolves when the current process dies (crash, fatal error, removal). */
  died: Promise<void>
  markDied: () => void
  incarnation: number
  /** Founding members bootstrap; added ones join. */
  join: boolean
  /** Its removal was applied somewhere: it must never serve again. */
  removed: boolean
  /** A fatal error that is not a removal: always a violation. */
  fatal?: unknown
  starting: boolean
  /** The checker's view of what it applied: index and hash chain. */
  applied: number
  chain: number
}

/** A member's private state machine, reached for the checks only. */
interface MemberInternals {
  sm: { cluster: { removed: Set<NodeId>; members: Map<NodeId, unknown> }; kv: { apply: (...a: unknown[]) => unknown } }
}

export function internals(m: Member): MemberInternals {
  return m as unknown as MemberInternals
}

export class World {
  readonly members: SimMember[] = []
  readonly checker = new Checker()
  net: NetFaults = { dropPct: 0, duplicatePct: 0, latencyMsMin: 0.1, latencyMsMax: 2 }
  /** Partition groups: members in different groups cannot talk; absent = group 0. */
  private readonly group = new Map<NodeId, number>()
  readonly config: ServerConfig
  private readonly clusterId = '7001'
  readonly stats = {
    delivered: 0,
    dropped: 0,
    crashes: 0,
    restarts: 0,
    snapshotsSent: 0,
    confChanges: 0,
    /** Starts of a member whose removal was acknowledged (only with the operator error `restart-removed`). */
    removedRestarts: 0,
  }
  /** Members whose removal the operator saw acknowledged. */
  readonly acknowledgedRemoved = new Set<NodeId>()
  private nextId: number

  constructor(readonly o: WorldOptions) {
    this.config = validateServerConfig({
      ...serverDefaults,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1000,
      snapshotCount: o.snapshotCount,
      requestTimeoutMs: 3000,
      initialClusterToken: 'sim',
      proposalsPendingCountMax: 1000,
      readsPendingCountMax: 1000,
    })
    for (let i = 1; i <= o.size; i++) this.addSlot(String(i), false)
    this.nextId = o.size + 1
  }

  private addSlot(id: NodeId, join: boolean): SimMember {
    let markDied = () => {}
    const died = new Promise<void>((r) => {
      markDied = r
    })
    const m: SimMember = {
      id,
      name: `m${id}`,
      peerURL: `http://m${id}:2380`,
      clientURL: `http://m${id}:2379`,
      disk: new MemoryFileOps(`m${id}`),
      died,
      markDied,
      incarnation: 0,
      join,
      removed: false,
      starting: false,
      applied: 0,
      chain: 0,
    }
    this.members.push(m)
    return m
  }

  /** A fresh slot for a member about to be added (its id is what memberAdd will return). */
  newSlot(): SimMember {
    return this.addSlot(String(this.nextId++), true)
  }

  byId(id: NodeId): SimMember | undefined {
    return this.members.find((m) => m.id === id)
  }

  up(): SimMember[] {
    return this.members.filter((m) => m.member && m.proc?.alive)
  }

  isUp(m: SimMember): boolean {
    return m.member !== undefined && m.proc?.alive === true
  }

  leader(): SimMember | undefined {
    let best: SimMember | undefined
    for (const m of this.up()) {
      if (!m.member!.raft.isLeader()) continue
      if (!best || m.member!.raft.node.raft.term > best.member!.raft.node.raft.term) best = m
    }
    return best
  }

  /** Whether any member's applied membership says `id` was removed. */
  removedAnywhere(id: NodeId): boolean {
    for (const m of this.up()) if (internals(m.member!).sm.cluster.removed.has(id)) return true
    return false
  }

  memberInfos(): MemberInfo[] {
    return this.members
      .filter((m) => !m.join)
      .map((m) => ({ ID: m.id, name: m.name, peerURLs: [m.peerURL], clientURLs: [m.clientURL], isLearner: false }))
  }

  // ---------------------------------------------------------------- processes

  async start(m: SimMember, members: MemberInfo[] = this.memberInfos()): Promise<void> {
    if (m.removed || m.starting || this.isUp(m)) return
    m.starting = true
    if (this.acknowledgedRemoved.has(m.id)) {
      this.stats.removedRestarts++
      this.o.trace(`restart removed ${m.id} with its old data`)
    }
    const proc: ProcessClock = new ProcessClock(this.o.sched, 1_800_000_000_000, (err) => this.onFatal(m, proc, err))
    m.proc = proc
    m.member = undefined
    m.incarnation++
    let markDied = () => {}
    m.died = new Promise<void>((r) => {
      markDied = r
    })
    m.markDied = markDied
    const rng = this.o.rng
    const fsyncMax = this.o.fsyncMsMax
    // A skipped fsync leaves the write in the page cache for up to a couple of seconds (the kernel's write-back).
    const skipFsync = this.o.bug === 'skip-fsync'
    m.disk.durableWriteDelay = () =>
      new Promise<void>((r) =>
        proc.setTimeout(r, skipFsync ? rng.range(200, 2000) : rng.range(1, Math.max(1, fsyncMax * 10)) / 10),
      )
    m.disk.ackBeforeDurable = skipFsync
    this.o.trace(`start ${m.id}#${m.incarnation}`)
    try {
      const storage = await openFileStorage(m.disk, {
        walPreallocateBytes: this.o.walPreallocateBytes,
        walSegmentBytesMax: this.o.walSegmentBytesMax,
      })
      if (!proc.alive) return
      this.watchStorage(m, storage, proc)
      const transport: Transport = { send: (msgs) => this.send(m, m.incarnation, msgs) }
      const memberRand = seededRand(rng.fork())
      const member = await Member.start({
        config: this.config,
        storage,
        memberId: m.id,
        clusterId: this.clusterId,
        members: members.map((x) => (x.ID === m.id ? { ...x, name: m.name, clientURLs: [m.clientURL] } : x)),
        join: m.join,
        clock: proc,
        rand: memberRand,
        raftTransport: transport,
        snapshotCatchUpEntries: this.o.snapshotCatchUpEntries,
        memberIdOf: async (urls) => {
          const id = /^http:\/\/m(\d+):2380$/.exec(urls[0] ?? '')?.[1]
          if (!id) throw new EtcdError('ErrMemberBadURLs')
          return id
        },
        fetch: ((url: string, init: { body: string }) => this.forward(m, url, init.body)) as unknown as typeof fetch,
        onFatal: (err) => this.onFatal(m, proc, err),
      })
      if (!proc.alive) return
      m.member = member
      this.instrument(m, member)
    } catch (err) {
      if (proc.alive) this.onFatal(m, proc, err)
    } finally {
      m.starting = false
    }
  }

  /** The process dies where it stands; the disk keeps what the crash model lets it keep. */
  crash(m: SimMember): void {
    if (!m.proc?.alive) return
    this.stats.crashes++
    this.o.trace(`crash ${m.id}#${m.incarnation}`)
    m.proc.kill()
    m.member = undefined
    const rng = this.o.rng
    m.disk.crash((len) => {
      const r = rng.intn(3)
      return r === 0 ? 0 : r === 1 ? len : rng.intn(len + 1)
    })
    m.markDied()
  }

  /** A member removed from the cluster that did not stop by itself: stopped from outside, never restarted. */
  stopRemoved(m: SimMember): void {
    if (!m.proc?.alive) return
    this.o.trace(`stop removed ${m.id}#${m.incarnation}`)
    m.removed = true
    m.proc.kill()
    m.member = undefined
    m.markDied()
  }

  private onFatal(m: SimMember, proc: ProcessClock, err: unknown): void {
    if (!proc.alive) return
    const removal = err instanceof EtcdError && /permanently removed/.test(err.message)
    this.o.trace(`fatal ${m.id}#${m.incarnation}: ${removal ? 'removed' : String(err)}`)
    if (removal) m.removed = true
    else {
      m.fatal = err
      this.checker.report('assertion', m.id, `member stopped: ${err instanceof Error ? err.message : String(err)}`)
    }
    proc.kill()
    m.member = undefined
    m.markDied()
  }

  // ---------------------------------------------------------------- checker hooks

  /** Reports what reaches the disk: entries (log matching) and hard states (durability), once durable. */
  private watchStorage(m: SimMember, storage: DurableStorage, proc: ProcessClock): void {
    const save = storage.save.bind(storage)
    const checker = this.checker
    const report = (
      hs: Parameters<DurableStorage['save']>[0],
      entries: Parameters<DurableStorage['save']>[1],
      prevTerm: number,
    ) => {
      if (!proc.alive) return
      checker.tick = Math.floor(this.o.sched.now)
      if (entries.length > 0) checker.onEntriesPersisted(m.id, entries, prevTerm)
      if (hs) checker.onHardState(m.id, hs)
    }
    storage.save = (hs, entries, snap) => {
      let prevTerm = -1
      if (entries.length > 0 && !snap) {
        try {
          prevTerm = storage.term(entries[0]!.index - 1)
        } catch {}
      }
      const p = save(hs, entries, snap)
      if (this.o.bug === 'apply-before-persist') {
        p.then(() => report(hs, entries, prevTerm)).catch(() => {})
        return Promise.resolve()
      }
      return p.then(() => report(hs, entries, prevTerm))
    }
  }

  /** Leadership and apply, reported to the Raft checker; the injected state machine bugs. */
  private instrument(m: SimMember, member: Member): void {
    const raft = member.raft
    const storage = raft.opts.storage
    const checker = this.checker
    // What it applied so far is its snapshot's state: the history another member applied up to there.
    const syncToSnapshot = () => {
      const si = storage.snapshot().metadata.index
      if (si <= m.applied && m.incarnation === 1) return
      if (si === 0) {
        m.applied = 0
        m.chain = 0
        return
      }
      const rec = checker.committedAt(si)
      if (!rec) checker.report('state-machine-safety', m.id, `snapshot at ${si}, which no member applied`)
      m.applied = si
      m.chain = rec?.chain ?? 0
    }
    m.applied = 0
    m.chain = 0
    syncToSnapshot()
    // Entries applied at start (replayed under the committed index on disk) came before this hook: feed them now.
    const feed = (index: number) => {
      checker.tick = Math.floor(this.o.sched.now)
      if (storage.snapshot().metadata.index > m.applied) syncToSnapshot()
      if (index <= m.applied) return
      let entries: ReturnType<DurableStorage['entries']>
      try {
        entries = storage.entries(m.applied + 1, index + 1, Number.MAX_SAFE_INTEGER)
      } catch {
        syncToSnapshot()
        return
      }
      for (const e of entries) {
        if (!checker.onApply(m.id, { applied: m.applied, chain: m.chain, kv: new Map(), removed: new Set() }, e)) {
          m.applied = index
          return
        }
        m.applied = e.index
        m.chain = nextChain(m.chain, e)
      }
    }
    feed(raft.applied)
    raft.onApplied.push(feed)
    raft.onLeaderChange.push((isLeader) => {
      if (!isLeader) return
      checker.tick = Math.floor(this.o.sched.now)
      checker.onLeader(m.id, raft.node.raft.term, storage)
      this.o.trace(`leader ${m.id} term ${raft.node.raft.term}`)
    })
    if (this.o.bug === 'read-before-index') raft.linearizableRead = () => Promise.resolve()
    if (this.o.bug === 'double-apply' && m.id === '1') {
      const kv = internals(member).sm.kv
      const apply = kv.apply.bind(kv)
      kv.apply = (req: unknown, ...rest: unknown[]) => {
        const r = apply(req, ...rest)
        if (typeof req === 'object' && req !== null && 'put' in req) apply(req, ...rest)
        return r
      }
    }
    if (this.o.bug === 'diverge-apply' && m.id === '1') {
      const kv = internals(member).sm.kv
      const apply = kv.apply.bind(kv)
      kv.apply = (req: unknown, ...rest: unknown[]) => {
        if (typeof req === 'object' && req !== null && 'put' in req) {
          const p = (req as { put: { value: Uint8Array } }).put
          return apply({ put: { ...p, value: new Uint8Array([...p.value, 0x21]) } }, ...rest)
        }
        return apply(req, ...rest)
      }
    }
    if (this.o.bug === 'skip-apply' && m.id === '1') {
      const r = raft as unknown as { applyEntry: (i: number, t: number, d: Uint8Array) => void }
      const applyEntry = r.applyEntry.bind(raft)
      let n = 0
      r.applyEntry = (i, t, d) => applyEntry(++n === 20 ? i + 1 : i, t, d)
    }
  }

  // ---------------------------------------------------------------- network

  connected(a: NodeId, b: NodeId): boolean {
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0)
  }

  partition(groups: NodeId[][]): void {
    this.group.clear()
    groups.forEach((g, i) => {
      for (const id of g) this.group.set(id, i)
    })
    this.o.trace(`partition ${JSON.stringify(groups)}`)
  }

  heal(): void {
    this.group.clear()
    this.o.trace('heal')
  }

  partitioned(): boolean {
    return this.group.size > 0
  }

  private latency(): number {
    const { latencyMsMin: lo, latencyMsMax: hi } = this.net
    return lo + (this.o.rng.intn(1000) / 1000) * (hi - lo)
  }

  private send(from: SimMember, inc: number, msgs: Message[]): void {
    const rng = this.o.rng
    for (const m of msgs) {
      if (m.type === MessageType.MsgSnap) this.stats.snapshotsSent++
      // Peers talk over one stream per pair (rafthttp): Raft's own retries duplicate messages, the wire does not.
      // A duplicated MsgProp would be a second proposal of the same write, which no transport produces.
      const copies = m.type !== MessageType.MsgProp && rng.chance(this.net.duplicatePct) ? 2 : 1
      for (let c = 0; c < copies; c++) {
        const msg = copyMessage(m)
        this.o.sched.after(this.latency(), () => this.deliver(from, inc, msg))
      }
    }
  }

  private deliver(from: SimMember, inc: number, m: Message): void {
    const to = this.byId(m.to)
    const sender = from.incarnation === inc && this.isUp(from) ? from.member : undefined
    const lost = this.o.rng.chance(this.net.dropPct)
    const ok =
      to !== undefined &&
      this.isUp(to) &&
      !lost &&
      this.connected(from.id, to.id) &&
      (m.type === MessageType.MsgTimeoutNow || !internals(to.member!).sm.cluster.removed.has(from.id))
    if (!ok) {
      this.stats.dropped++
      if (!sender) return
      // rafthttp: a peer that applied the sender's removal answers it 410 Gone, and the sender stops (etcd's rule).
      if (!lost && to !== undefined && this.isUp(to) && this.connected(from.id, to.id)) sender.peerSaysRemoved(to.id)
      // What rafthttp tells Raft when a message cannot go through.
      if (m.type === MessageType.MsgSnap) sender.raft.reportSnapshot(m.to, false)
      else if (m.type === MessageType.MsgProp) sender.raft.failUndelivered([m])
      if (!lost) sender.raft.reportUnreachable(m.to)
      return
    }
    this.stats.delivered++
    try {
      to!.member!.raft.step(m)
    } catch (err) {
      this.onFatal(to!, to!.proc!, err)
      return
    }
    if (m.type === MessageType.MsgSnap && sender) sender.raft.reportSnapshot(m.to, true)
  }

  /** Forwarding to the leader (lease keepalive and time-to-live, member promote): a fetch over the network. */
  private async forward(from: SimMember, url: string, body: string): Promise<{ text(): Promise<string> }> {
    const id = /^http:\/\/m(\d+):\d+/.exec(url)?.[1]
    const to = id ? this.byId(id) : undefined
    await this.o.sched.sleep(this.latency())
    if (!to || !this.isUp(to) || !this.connected(from.id, to.id)) throw new TypeError('fetch failed')
    const target = to.member!
    const req = JSON.parse(body) as { ID: string }
    let result: unknown
    try {
      const path = new URL(url).pathname
      if (path.endsWith('/v3/lease/keepalive')) result = await target.leaseKeepAlive({ ID: BigInt(req.ID) })
      else if (path.endsWith('/v3/lease/timetolive'))
        result = await target.leaseTimeToLive({ ID: BigInt(req.ID), keys: false })
      else if (path.endsWith('/v3/cluster/member/promote')) result = await target.memberPromote({ ID: req.ID })
      else throw new Error(`sim: no forwarding for ${path}`)
    } catch (err) {
      const e = err instanceof EtcdError ? err : new EtcdError('ErrGeneric', 2, String(err))
      const text = JSON.stringify({ error: e.message, code: e.grpcCode })
      return { text: async () => text }
    }
    await this.o.sched.sleep(this.latency())
    const text = JSON.stringify({ result }, (_k, v) => (typeof v === 'bigint' ? String(v) : v))
    return { text: async () => text }
  }
}

function copyMessage(m: Message): Message {
  const c: Message = { ...m, entries: m.entries.slice() }
  if (m.snapshot) c.snapshot = { data: m.snapshot.data, metadata: { ...m.snapshot.metadata } }
  return c
}
