/**
 * etcd's lessor (lease/lessor.go), split the way Raft forces it to be:
 *
 * - Replicated state, changed only by `KvStore.apply` (grant, revoke, checkpoint, key attach/detach): each lease's
 *   ID, granted TTL, the remaining TTL of its last checkpoint, and its keys. Identical on every member.
 * - Local state, on the leader only: when each lease expires, in monotonic milliseconds passed in by the caller.
 *   A follower's leases never expire ("forever" in etcd); when a member becomes leader, `promote(nowMs)` starts every
 *   clock at its remaining TTL, and the leader proposes revokes for what `expired(nowMs)` returns. Expiry is thus
 *   decided outside apply and replicated as an ordinary revoke, so apply stays deterministic.
 */

import { EtcdError } from '../protocol/errors.js'
import type { KvConfig } from './config.js'
import type { LeaseCheckpoint } from './requests.js'

/** One lease. Fields above the line replicate; the ones below are the leader's clock and differ per member. */
export interface Lease {
  readonly ID: bigint
  /** The granted TTL in seconds, already raised to the minimum. */
  readonly ttl: number
  /** Remaining TTL in seconds at the last applied checkpoint; 0 when there is none (the full TTL applies). */
  remainingTTL: number
  /** The attached keys, as binary strings. */
  readonly keys: Set<string>
  // ---- local, leader only ----
  /** When the lease expires (monotonic ms); undefined while this member is not the leader. */
  expiryMs: number | undefined
  /** Handed out by expired(): not handed out again before this (monotonic ms). */
  revokeRetryMs: number | undefined
  /** Granted or promoted without a clock reading: the expiry is set at the next call that brings one. */
  expiryPending: boolean
  /** When the leader next checkpoints this lease's remaining TTL. */
  checkpointDueMs: number | undefined
  /** Renewed after a checkpoint: the leader must checkpoint remaining_TTL 0 so a new leader grants the full TTL. */
  clearCheckpoint: boolean
  /** When expired() should look at this lease next (its expiry, or its revoke retry): its live entry in the heap. */
  heapAt: number | undefined
}

/** An entry of the expiry heap; stale (skipped) once the lease is gone or its heapAt moved on. */
interface HeapEntry {
  at: number
  lease: Lease
}

/**
 * A binary min-heap of (at, lease ID), with lazy deletion: a renew pushes a new entry instead of finding the old one,
 * so a renew is O(log n) and expired() pops only what is due (etcd's LeaseQueue, lease/lease_queue.go).
 */
class ExpiryHeap {
  private readonly a: HeapEntry[] = []

  get size(): number {
    return this.a.length
  }

  clear(): void {
    this.a.length = 0
  }

  peek(): HeapEntry | undefined {
    return this.a[0]
  }

  push(e: HeapEntry): void {
    const a = this.a
    a.push(e)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(a[i]!, a[p]!)) break
      ;[a[i], a[p]] = [a[p]!, a[i]!]
      i = p
    }
  }

  pop(): HeapEntry | undefined {
    const a = this.a
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && less(a[l]!, a[m]!)) m = l
        if (r < a.length && less(a[r]!, a[m]!)) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m]!, a[i]!]
        i = m
      }
    }
    return top
  }

  /** Keeps only the entries `live` accepts (O(n)); used when stale entries outnumber live ones. */
  rebuild(live: (e: HeapEntry) => boolean): void {
    const keep = this.a.filter(live)
    this.a.length = 0
    for (const e of keep) this.push(e)
  }
}

function less(x: HeapEntry, y: HeapEntry): boolean {
  return x.at < y.at || (x.at === y.at && x.lease.ID < y.lease.ID)
}

/** The TimeToLive answer for a lease that exists. */
export interface LeaseTimeToLive {
  ID: bigint
  TTL: number
  grantedTTL: number
  keys: string[]
}

/** The leases of the store, see the module comment. */
export class Lessor {
  private readonly leases = new Map<bigint, Lease>()
  /** Leases whose clock waits for the next clock reading (expiryPending), so that reading visits only them. */
  private readonly pending = new Set<Lease>()
  /** The leader's expiry queue (empty on a follower). */
  private readonly heap = new ExpiryHeap()
  /**
   * The leader's checkpoint queue (etcd's leaseCheckpointHeap): (checkpointDueMs, lease), lazily deleted like the
   * expiry heap, so checkpoints() pops only what is due instead of walking every lease.
   */
  private readonly checkpointHeap = new ExpiryHeap()
  /** Leases with clearCheckpoint set (renewed after a checkpoint): checkpoints() takes them without a walk. */
  private readonly clearing = new Set<Lease>()
  /** Leases checkpoints() has looked at (heap entries popped, clears taken), for tests: O(due), not O(leases). */
  checkpointVisits = 0
  private primary = false

  constructor(private readonly config: KvConfig) {}

  /** Whether this member runs lease clocks (it is the leader). */
  get isPrimary(): boolean {
    return this.primary
  }

  get size(): number {
    return this.leases.size
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id)
  }

  /** Every lease id, ascending (etcd lists its map in random order; sorted is stable across members). */
  ids(): bigint[] {
    return [...this.leases.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }

  /**
   * Every lease id in etcd's LeaseLeases order: soonest expiry first (its leasesByExpiry). Leases without a running
   * clock (a follower's, or pending a clock reading) come last, as etcd's "forever", by id; equal expiries in grant
   * order.
   */
  idsByExpiry(): bigint[] {
    const inf = Number.POSITIVE_INFINITY
    const at = (id: bigint) => this.leases.get(id)?.expiryMs ?? inf
    const byId = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0)
    // In grant order (the map's), then a stable sort: leases whose clocks started at one reading stay in grant order.
    return [...this.leases.keys()].sort((a, b) => {
      const x = at(a)
      const y = at(b)
      return x === inf && y === inf ? byId(a, b) : x - y
    })
  }

  // ---------------------------------------------------------------- replicated: called from KvStore.apply only

  /** etcd's lessor.Grant. `nowMs` starts the clock at once on the leader; without it the next clock reading does. */
  grant(id: bigint, ttlSeconds: number, nowMs?: number): Lease {
    // The server picks a non-zero id before proposing (etcd's reqIDGen); 0 reaching apply is etcd's ErrLeaseNotFound.
    if (id === 0n) throw new EtcdError('ErrLeaseNotFound')
    if (ttlSeconds > this.config.maxLeaseTtlSeconds) throw new EtcdError('ErrLeaseTTLTooLarge')
    if (this.leases.has(id)) throw new EtcdError('ErrLeaseExist')
    const l: Lease = {
      ID: id,
      ttl: Math.max(ttlSeconds, this.config.minLeaseTtlSeconds),
      remainingTTL: 0,
      keys: new Set(),
      expiryMs: undefined,
      revokeRetryMs: undefined,
      expiryPending: false,
      checkpointDueMs: undefined,
      clearCheckpoint: false,
      heapAt: undefined,
    }
    this.leases.set(id, l)
    if (this.primary) this.startClock(l, nowMs)
    return l
  }

  /** Removes the lease (the store deletes its keys first). Throws ErrLeaseNotFound. */
  remove(id: bigint): Lease {
    const l = this.leases.get(id)
    if (l === undefined) throw new EtcdError('ErrLeaseNotFound')
    this.leases.delete(id)
    this.pending.delete(l)
    this.clearing.delete(l)
    return l
  }

  attach(id: bigint, key: string): void {
    this.leases.get(id)?.keys.add(key)
  }

  detach(id: bigint, key: string): void {
    this.leases.get(id)?.keys.delete(key)
  }

  /**
   * etcd's lessor.Checkpoint: records the remaining TTL, which a new leader (or a restarted member) uses instead of
   * the full TTL. Unknown leases are skipped, as in etcd (the lease may have been revoked since).
   */
  checkpoint(cps: LeaseCheckpoint[]): void {
    for (const cp of cps) {
      const l = this.leases.get(cp.ID)
      if (l !== undefined) l.remainingTTL = Math.max(0, cp.remaining_TTL)
    }
  }

  // ---------------------------------------------------------------- local: the leader's clock

  /**
   * This member became leader: every lease's clock starts now with its remaining TTL (the checkpointed one, else the
   * full TTL), as etcd's Promote does. etcd also spreads expiries when very many leases would expire at once; not here.
   */
  promote(nowMs: number): void {
    this.primary = true
    for (const l of this.leases.values()) this.startClock(l, nowMs)
  }

  /** This member is no longer leader: leases stop expiring here (etcd's Demote sets them to "forever"). */
  demote(): void {
    this.primary = false
    this.pending.clear()
    this.heap.clear()
    this.checkpointHeap.clear()
    this.clearing.clear()
    for (const l of this.leases.values()) {
      l.heapAt = undefined
      l.expiryMs = undefined
      l.revokeRetryMs = undefined
      l.expiryPending = false
      l.checkpointDueMs = undefined
      l.clearCheckpoint = false
    }
  }

  /**
   * etcd's Renew, for a keepalive on the leader: restarts the lease's clock at its full TTL and returns the TTL in
   * seconds; 0 when the lease does not exist or has already expired (its revoke is on the way), which the server
   * answers as etcd does (TTL omitted). On a follower it throws ErrNotLeader: keepalives go to the leader.
   */
  renew(id: bigint, nowMs: number): number {
    if (!this.primary) throw new EtcdError('ErrNotLeader')
    this.resolvePending(nowMs)
    const l = this.leases.get(id)
    if (l === undefined) return 0
    if (l.expiryMs !== undefined && l.expiryMs <= nowMs) return 0
    l.expiryMs = nowMs + l.ttl * 1000
    this.schedule(l, l.expiryMs)
    // A checkpointed remaining TTL would shorten the lease after a leader change; have the leader clear it
    // (etcd clears it on renew, so at most two Raft entries per lease per checkpoint interval).
    if (l.remainingTTL > 0) {
      l.clearCheckpoint = true
      this.clearing.add(l)
    }
    this.scheduleCheckpoint(l, nowMs)
    return l.ttl
  }

  /**
   * The leases whose time is up, oldest expiry first, at most `max` (etcd revokes at most 1000 a second, checking
   * every 500 ms), from the expiry heap. The leader proposes a revoke for each. A lease handed out is handed out again only after
   * leaseRevokeRetryMs, in case its revoke got lost (etcd's expiredLeaseRetryInterval). Empty on a follower.
   */
  expired(nowMs: number, max = 500): bigint[] {
    if (!this.primary) return []
    this.resolvePending(nowMs)
    const out: bigint[] = []
    // Pops only what is due (and stale entries): O((expired + stale) log n), not a walk over every lease.
    for (let top = this.heap.peek(); top !== undefined && top.at <= nowMs && out.length < max; top = this.heap.peek()) {
      this.heap.pop()
      const l = top.lease
      if (this.leases.get(l.ID) !== l || l.heapAt !== top.at) continue // revoked, renewed or rescheduled since
      if (l.expiryMs === undefined || l.expiryMs > nowMs) continue
      l.revokeRetryMs = nowMs + this.config.leaseRevokeRetryMs
      this.schedule(l, l.revokeRetryMs)
      out.push(l.ID)
    }
    return out
  }

  /** Entries in the expiry heap, live and stale (tests check it stays bounded). */
  get heapSize(): number {
    return this.heap.size
  }

  /** Makes `at` the time expired() next looks at l; drops stale entries when they outnumber live ones. */
  private schedule(l: Lease, at: number): void {
    l.heapAt = at
    this.heap.push({ at, lease: l })
    if (this.heap.size > 2 * this.leases.size + 1024) {
      this.heap.rebuild((e) => this.leases.get(e.lease.ID) === e.lease && e.lease.heapAt === e.at)
    }
  }

  /**
   * The checkpoints the leader should propose now (at most `max`, etcd's maxLeaseCheckpointBatchSize 1000): the
   * remaining TTL of leases whose checkpoint is due, and 0 for leases renewed since their last checkpoint. Only
   * leases longer than the checkpoint interval are checkpointed, as in etcd; shorter ones simply restart with their
   * full TTL after a leader change.
   */
  checkpoints(nowMs: number, max = 1000): LeaseCheckpoint[] {
    if (!this.primary) return []
    this.resolvePending(nowMs)
    const out: LeaseCheckpoint[] = []
    // Clears first, then what is due, oldest first: O((clears + due + stale) log n), not a walk over every lease.
    for (const l of this.clearing) {
      if (out.length >= max) return out
      this.checkpointVisits++
      this.clearing.delete(l)
      if (!l.clearCheckpoint || this.leases.get(l.ID) !== l) continue
      l.clearCheckpoint = false
      out.push({ ID: l.ID, remaining_TTL: 0 })
    }
    const h = this.checkpointHeap
    for (let top = h.peek(); top !== undefined && top.at <= nowMs && out.length < max; top = h.peek()) {
      h.pop()
      this.checkpointVisits++
      const l = top.lease
      if (this.leases.get(l.ID) !== l || l.checkpointDueMs !== top.at || l.expiryMs === undefined) continue
      const remaining = Math.max(0, Math.ceil((l.expiryMs - nowMs) / 1000))
      out.push({ ID: l.ID, remaining_TTL: remaining })
      l.checkpointDueMs = undefined
      this.scheduleCheckpoint(l, nowMs)
    }
    return out
  }

  /** Entries in the checkpoint heap, live and stale (tests check it stays bounded). */
  get checkpointHeapSize(): number {
    return this.checkpointHeap.size
  }

  /**
   * etcd's LeaseTimeToLive: undefined when the lease does not exist (the server answers TTL -1). TTL is the seconds
   * left, truncated as etcd's int64(Remaining().Seconds()): from the local clock on the leader, otherwise the last
   * checkpoint, otherwise the granted TTL.
   */
  timeToLive(id: bigint, nowMs?: number): LeaseTimeToLive | undefined {
    if (nowMs !== undefined && this.primary) this.resolvePending(nowMs)
    const l = this.leases.get(id)
    if (l === undefined) return undefined
    let ttl = l.remainingTTL > 0 ? l.remainingTTL : l.ttl
    if (l.expiryMs !== undefined && nowMs !== undefined) ttl = Math.max(0, Math.trunc((l.expiryMs - nowMs) / 1000))
    return { ID: l.ID, TTL: ttl, grantedTTL: l.ttl, keys: [...l.keys].sort() }
  }

  private startClock(l: Lease, nowMs: number | undefined): void {
    l.clearCheckpoint = false
    this.clearing.delete(l)
    if (nowMs === undefined) {
      l.expiryMs = undefined
      l.expiryPending = true
      this.pending.add(l)
      return
    }
    l.expiryPending = false
    this.pending.delete(l)
    l.revokeRetryMs = undefined
    l.expiryMs = nowMs + (l.remainingTTL > 0 ? l.remainingTTL : l.ttl) * 1000
    this.schedule(l, l.expiryMs)
    this.scheduleCheckpoint(l, nowMs)
  }

  /**
   * Starts the clocks left pending (granted or restored without a clock reading). Only those leases are visited, so a
   * keepalive or timetolive costs O(1) in the number of leases.
   */
  private resolvePending(nowMs: number): void {
    if (this.pending.size === 0) return
    for (const l of [...this.pending]) if (this.leases.get(l.ID) === l) this.startClock(l, nowMs)
    this.pending.clear()
  }

  /** etcd's scheduleCheckpointIfNeeded: only leases with more left than one interval get a checkpoint. */
  private scheduleCheckpoint(l: Lease, nowMs: number): void {
    const remainingMs = l.expiryMs === undefined ? 0 : l.expiryMs - nowMs
    l.checkpointDueMs =
      remainingMs > this.config.leaseCheckpointIntervalMs ? nowMs + this.config.leaseCheckpointIntervalMs : undefined
    if (l.checkpointDueMs === undefined) return
    // A renew pushes a new entry rather than finding the old one (stale, skipped when popped); the stale ones are
    // dropped when they outnumber the live ones.
    this.checkpointHeap.push({ at: l.checkpointDueMs, lease: l })
    if (this.checkpointHeap.size > 2 * this.leases.size + 1024) {
      this.checkpointHeap.rebuild((e) => this.leases.get(e.lease.ID) === e.lease && e.lease.checkpointDueMs === e.at)
    }
  }

  // ---------------------------------------------------------------- snapshot

  /** The replicated part, sorted by id: [id as decimal string, ttl, remainingTTL] per lease. */
  toSnapshot(): [string, number, number][] {
    return this.ids().map((id) => {
      const l = this.leases.get(id)!
      return [id.toString(), l.ttl, l.remainingTTL]
    })
  }

  /** Replaces every lease (keys are re-attached by the store). Clocks start again only at the next promote. */
  loadSnapshot(rows: [string, number, number][]): void {
    const wasPrimary = this.primary
    this.leases.clear()
    this.pending.clear()
    this.heap.clear()
    this.checkpointHeap.clear()
    this.clearing.clear()
    for (const [id, ttl, remainingTTL] of rows) {
      this.leases.set(BigInt(id), {
        ID: BigInt(id),
        ttl,
        remainingTTL,
        keys: new Set(),
        expiryMs: undefined,
        revokeRetryMs: undefined,
        expiryPending: wasPrimary,
        checkpointDueMs: undefined,
        clearCheckpoint: false,
        heapAt: undefined,
      })
      if (wasPrimary) this.pending.add(this.leases.get(BigInt(id))!)
    }
  }
}
