/**
 * The MVCC key-value store: etcd's mvcc.store plus the parts of etcdserver/apply.go that give requests their
 * meaning. Pure and deterministic: no clock, no randomness, no I/O. The Raft apply loop feeds every committed request
 * to `apply`, in log order, on every member; the same sequence of calls gives the same state everywhere (compare
 * `hash()`), which is what makes replication and simulation testing work.
 *
 * The model (etcd's):
 * - One global revision. Revision 1 is the empty store. Every write request that changes something takes the next
 *   revision; all changes of one request share it, ordered by `sub`. No-op deletes, read-only or failed txns without
 *   writes, compaction, lease grants and checkpoints do not bump it.
 * - Each key keeps its history (key-index.ts): each put a new row with `mod_revision`, `version` + 1 and the
 *   generation's `create_revision`; a delete writes a tombstone that ends the generation, so a re-created key starts
 *   again at version 1.
 * - Reads may name a past revision, until compaction drops history older than the compact revision.
 * - A revision log (one array of changes per revision since the compact revision) feeds watchers that start in the
 *   past or fell behind.
 *
 * Returned KeyValues are shared with the store's history and must not be mutated.
 */
import CRC32C from 'crc-32/crc32c.js'
import { EtcdError } from '../protocol/errors.js'
import {
  AlarmAction,
  type AlarmMember,
  type AlarmRequest,
  type AlarmResponse,
  AlarmType,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type HashKVResponse,
  type KeyValue,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  type LeaseRevokeRequest,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
} from '../protocol/types.js'
import { compareBytes, emptyBytes, type KeyRange, keyBytes, keyString, ownBytes, resolveRange } from './bytes.js'
import { type KvConfig, validateKvConfig } from './config.js'
import { goSort } from './go-sort.js'
import { hashRows } from './hash.js'
import { type Change, type KeyHistory, KeyIndex } from './key-index.js'
import { Lessor } from './lessor.js'
import { AlarmStore, changeOverheadBytes, costPut, costTxn, leaseOverheadBytes, quotaAlarmMemberId } from './quota.js'
import {
  header,
  type InternalRequest,
  type LeaseCheckpointRequest,
  type LeaseCheckpointResponse,
  type ResponseOf,
} from './requests.js'
import { initialRevision } from './revision.js'
import {
  decodeKvSnapshot,
  encodeKvSnapshot,
  encodeKvSnapshotInSteps,
  type KvSnapshot,
  type SnapshotRow,
  snapshotFormat,
  snapshotVersion,
} from './snapshot.js'
import {
  applyCompare,
  checkDeleteRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  isTxnReadOnly,
  txnHasPut,
} from './txn.js'
import { type WatchHistory, WatchHub } from './watch.js'

/** One write request in progress (etcd's storeTxnWrite): its changes all get revision beginRev + 1. */
interface WriteTxn {
  beginRev: number
  changes: Change[]
}

/** The store. See the module comment. */
export class KvStore implements WatchHistory {
  readonly config: KvConfig
  /** Leases: replicated state changed by apply, and the leader's clock (promote, renew, expired, checkpoints). */
  readonly lessor: Lessor
  /** Watchers: the server opens a stream per client connection (`watchHub.openStream(sink)`). */
  readonly watchHub: WatchHub

  private index = new KeyIndex()
  /** log[i] holds the changes of revision logFirstRev + i. */
  private log: Change[][] = []
  private logFirstRev = initialRevision + 1
  private currentRev = initialRevision
  /** etcd's compactMainRev: -1 until the first compaction. */
  private compactRev = -1
  private alarms = new AlarmStore()
  private size = 0

  constructor(config: Partial<KvConfig> = {}) {
    this.config = validateKvConfig(config)
    this.lessor = new Lessor(this.config)
    this.watchHub = new WatchHub(this.config, this)
  }

  /** A store holding the state of a snapshot made by `snapshot()`. */
  static restore(bytes: Uint8Array, config: Partial<KvConfig> = {}): KvStore {
    const s = new KvStore(config)
    s.restore(bytes)
    return s
  }

  /** The current revision (1 for an empty store). */
  get revision(): number {
    return this.currentRev
  }

  /** The revision of the last compaction, 0 before any. */
  get compactRevision(): number {
    return Math.max(0, this.compactRev)
  }

  /** etcd's compactMainRev: -1 before any compaction, 0 after one at revision 0 (WatchHistory). */
  get etcdCompactRevision(): number {
    return this.compactRev
  }

  /** The estimated size in bytes that the quota is checked against (what status reports as dbSize). */
  get sizeBytes(): number {
    return this.size
  }

  /** How many keys have retained history (live or deleted but not yet compacted). */
  get keyCount(): number {
    return this.index.size
  }

  // ================================================================ the write side

  /**
   * Applies one committed request and returns etcd's response for it, with `header.revision` = the store revision
   * after the request (the server fills the rest of the header). Throws EtcdError for requests etcd refuses; a
   * refused request changes nothing, except that a write over the quota raises the NOSPACE alarm first, as in etcd.
   * `nowMs` (monotonic) lets the leader start a granted lease's clock at once; it never changes replicated state.
   */
  apply<R extends InternalRequest>(req: R, nowMs?: number): ResponseOf<R> {
    const r = req as InternalRequest
    let resp: unknown
    if ('put' in r) resp = this.put(r.put)
    else if ('delete_range' in r) resp = this.deleteRange(r.delete_range)
    else if ('txn' in r) resp = this.txn(r.txn)
    else if ('compaction' in r) resp = this.compact(r.compaction)
    else if ('lease_grant' in r) resp = this.leaseGrant(r.lease_grant, nowMs)
    else if ('lease_revoke' in r) resp = this.leaseRevoke(r.lease_revoke)
    else if ('lease_checkpoint' in r) resp = this.leaseCheckpoint(r.lease_checkpoint)
    else if ('alarm' in r) resp = this.alarm(r.alarm)
    else throw new Error(`kv: unknown internal request ${JSON.stringify(Object.keys(r))}`)
    return resp as ResponseOf<R>
  }

  private put(p: PutRequest): PutResponse {
    checkPutRequest(p)
    this.checkWritable(costPut(p))
    if (p.lease !== 0n && this.lessor.lookup(p.lease) === undefined) throw new EtcdError('ErrLeaseNotFound')
    const w = this.begin()
    const resp = this.doPut(w, p)
    this.end(w)
    return resp
  }

  private deleteRange(d: DeleteRangeRequest): DeleteRangeResponse {
    checkDeleteRequest(d)
    this.checkNotCorrupt()
    const w = this.begin()
    const resp = this.doDelete(w, d)
    this.end(w)
    return resp
  }

  /**
   * etcd's applierV3backend.Txn: every compare (nested ones too) is evaluated first, against the state before the
   * txn (etcd's compareToPath), then the chosen path's puts and ranges are checked, then the ops run in order, each
   * seeing the earlier ones. Once ops run, only one txn can still fail: a from-key delete followed by an ignore_value
   * or ignore_lease put of a key it deleted (the pre-checks saw the key, etcd's duplicate check does not see the
   * overlap). etcd panics on it; here the txn is rolled back and answered with ErrKeyNotFound.
   */
  private txn(t: TxnRequest): TxnResponse {
    checkTxnRequest(t, this.config.maxTxnOps)
    const write = !isTxnReadOnly(t)
    if (write) {
      if (txnHasPut(t)) this.checkWritable(costTxn(t))
      else this.checkNotCorrupt()
    }
    return this.runTxn(t, write)
  }

  private runTxn(t: TxnRequest, write: boolean): TxnResponse {
    const path: boolean[] = []
    this.compareToPath(t, path)
    if (write) this.checkPath(t, path, { i: 0 }, (op) => op.request_put && this.checkTxnPut(op.request_put))
    this.checkPath(t, path, { i: 0 }, (op) => op.request_range && this.checkTxnRange(op.request_range))
    const w = this.begin()
    let resp: TxnResponse
    try {
      resp = this.execTxn(w, t, path, { i: 0 })
    } catch (err) {
      this.rollback(w)
      throw err
    }
    this.end(w)
    resp.header = header(this.currentRev)
    return resp
  }

  private compact(c: CompactionRequest): CompactionResponse {
    // A watch message never coalesces revisions across a compaction (WatchHub.beginBatch).
    this.watchHub.flush()
    this.checkNotCorrupt()
    const rev = c.revision
    // etcd's updateCompactRev; `physical` only makes etcd wait for the disk, which has no meaning here.
    if (rev <= this.compactRev) throw new EtcdError('ErrCompacted')
    if (rev > this.currentRev) throw new EtcdError('ErrFutureRev')
    this.compactRev = rev
    const emptied: string[] = []
    for (const h of this.index.all()) {
      for (const gone of h.compact(rev)) this.size -= rowBytes(gone)
      if (h.changes.length === 0) emptied.push(h.key)
    }
    for (const k of emptied) this.index.delete(k)
    if (rev >= this.logFirstRev) {
      this.log.splice(0, rev - this.logFirstRev)
      this.logFirstRev = rev
      // The compact revision's own tombstones are gone from the key index (etcd's keyIndex.compact drops a tombstone
      // at the compact revision), and its puts' previous values are gone: keep the log equal to what is left.
      const first = this.log[0]
      if (first !== undefined) {
        this.log[0] = first.filter((ch) => !ch.tombstone)
        for (const ch of this.log[0]) ch.prev = undefined
      }
    }
    return { header: header(this.currentRev) }
  }

  private leaseGrant(g: LeaseGrantRequest, nowMs: number | undefined): LeaseGrantResponse {
    this.checkWritable(leaseOverheadBytes)
    const l = this.lessor.grant(g.ID, g.TTL, nowMs)
    this.size += leaseOverheadBytes
    return { header: header(this.currentRev), ID: l.ID, TTL: l.ttl, error: '' }
  }

  /** etcd's lessor.Revoke: the lease's keys, in key order so every member writes the same rows, in one revision. */
  private leaseRevoke(r: LeaseRevokeRequest): LeaseRevokeResponse {
    this.checkNotCorrupt()
    const l = this.lessor.lookup(r.ID)
    if (l === undefined) throw new EtcdError('ErrLeaseNotFound')
    const w = this.begin()
    for (const key of [...l.keys].sort()) {
      const h = this.index.get(key)
      const cur = h?.live()
      if (h !== undefined && cur !== undefined) this.writeTombstone(w, h, cur)
    }
    this.lessor.remove(r.ID)
    this.size -= leaseOverheadBytes
    this.end(w)
    return { header: header(this.currentRev) }
  }

  private leaseCheckpoint(c: LeaseCheckpointRequest): LeaseCheckpointResponse {
    this.lessor.checkpoint(c.checkpoints)
    return { header: header(this.currentRev) }
  }

  /** etcd's applierV3backend.Alarm: GET lists (NONE = every type), ACTIVATE and DEACTIVATE answer what changed. */
  private alarm(a: AlarmRequest): AlarmResponse {
    let alarms: AlarmMember[] = []
    if (a.action === AlarmAction.GET) {
      alarms = this.alarms.get(a.alarm)
    } else if (a.action === AlarmAction.ACTIVATE) {
      const m = a.alarm === AlarmType.NONE ? undefined : this.alarms.activate(a.memberID, a.alarm)
      if (m !== undefined) alarms = [m]
    } else if (a.action === AlarmAction.DEACTIVATE) {
      const m = this.alarms.deactivate(a.memberID, a.alarm)
      if (m !== undefined) alarms = [m]
    }
    return { header: header(this.currentRev), alarms }
  }

  // ================================================================ the read side (no Raft round needed)

  /**
   * etcd's Range at the current revision (or at `revision`, a past one). The server decides whether to serve it
   * linearizably (ReadIndex first) or serializably. header.revision is the current revision even for past reads.
   */
  range(req: RangeRequest): RangeResponse {
    checkRangeRequest(req)
    this.checkNotCorrupt()
    const resp = this.doRange(req, undefined)
    resp.header = header(this.currentRev)
    return resp
  }

  /** A read-only txn (`isTxnReadOnly`), served like a range without a Raft round. Throws on a txn that writes. */
  readTxn(t: TxnRequest): TxnResponse {
    if (!isTxnReadOnly(t)) throw new Error('kv: readTxn called with a txn that writes; propose it through Raft')
    checkTxnRequest(t, this.config.maxTxnOps)
    this.checkNotCorrupt()
    return this.runTxn(t, false)
  }

  /**
   * etcd's LeaseTimeToLive. Unknown lease: TTL -1, as etcd answers (HTTP 200). `nowMs` is the local monotonic clock;
   * on the leader it gives the exact remaining TTL, elsewhere the last checkpoint or the granted TTL is reported.
   */
  leaseTimeToLive(req: LeaseTimeToLiveRequest, nowMs?: number): LeaseTimeToLiveResponse {
    const t = this.lessor.timeToLive(req.ID, nowMs)
    if (t === undefined) return { header: header(this.currentRev), ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] }
    return {
      header: header(this.currentRev),
      ID: t.ID,
      TTL: t.TTL,
      grantedTTL: t.grantedTTL,
      keys: req.keys ? t.keys.map(keyBytes) : [],
    }
  }

  /** etcd's LeaseLeases, ids ascending. */
  leaseLeases(): LeaseLeasesResponse {
    return { header: header(this.currentRev), leases: this.lessor.idsByExpiry().map((ID) => ({ ID })) }
  }

  /** The active alarms (what an alarm GET answers), without a Raft round. */
  activeAlarms(): AlarmMember[] {
    return this.alarms.get(AlarmType.NONE)
  }

  /**
   * etcd's HashKV: CRC-32C over the history up to `revision` (0 = current), over the same bytes etcd hashes, so two
   * members (or edgecd and etcd) with the same history agree. ErrCompacted at or below the compact revision,
   * ErrFutureRev above the current one, as etcd. A negative revision hashes no row (etcd's HashByRev takes only 0
   * as "current"; its bound rev + 1 then admits nothing): the hash of the empty history.
   */
  hashKV(revision: number): HashKVResponse {
    if (revision > 0 && revision <= this.compactRev) throw new EtcdError('ErrCompacted')
    if (revision > 0 && revision > this.currentRev) throw new EtcdError('ErrFutureRev')
    const rev = revision === 0 ? this.currentRev : revision
    // etcd hashes the rows below the compact revision only when compaction at `rev` would keep them (kvindex.Keep).
    const keep = new Set<Change>()
    const rows: Change[] = []
    for (const h of this.index.all()) {
      const k = h.liveAt(rev)
      if (k !== undefined) keep.add(k)
      for (const c of h.changes) if (c.main <= rev) rows.push(c)
    }
    rows.sort((a, b) => a.main - b.main || a.sub - b.sub)
    const lower = this.compactRev + 1
    const hashed = keep.size === 0 ? rows : rows.filter((c) => c.main >= lower || keep.has(c))
    return { header: header(this.currentRev), hash: hashRows(hashed), compact_revision: this.compactRev }
  }

  /**
   * A CRC-32C of the whole replicated state (the snapshot bytes): history, revisions, leases, alarms. Two members that
   * applied the same requests have equal hashes. (etcd's maintenance Hash covers its whole database file.)
   */
  hash(): number {
    return CRC32C.buf(this.snapshot()) >>> 0
  }

  // ================================================================ snapshot

  /** The complete replicated state; see snapshot.ts for the layout. */
  snapshot(): Uint8Array {
    const keys: [Uint8Array, SnapshotRow[]][] = []
    for (const h of this.index.all()) keys.push([h.keyBytes, h.changes.map(snapshotRow)])
    const h = this.snapshotHead()
    // The original field order (keys before leases): the bytes, and so hash(), stay what they were.
    return encodeKvSnapshot({
      format: h.format,
      version: h.version,
      revision: h.revision,
      compact_revision: h.compact_revision,
      keys,
      leases: h.leases,
      alarms: h.alarms,
    })
  }

  /**
   * snapshot()'s bytes (as parts, end to end), of the state at this call, built over several steps (see
   * encodeKvSnapshotInSteps): the call itself only copies each key's list of changes (the Change objects are
   * immutable), so applies may go on between the steps without changing what is encoded.
   */
  snapshotInSteps(rowsPerStep?: number): Generator<void, Uint8Array[], void> {
    const keys: [Uint8Array, Change[]][] = []
    for (const h of this.index.all()) keys.push([h.keyBytes, h.changes.slice()])
    return encodeKvSnapshotInSteps(this.snapshotHead(), keys, snapshotRow, rowsPerStep)
  }

  private snapshotHead(): Omit<KvSnapshot, 'keys'> {
    return {
      format: snapshotFormat,
      version: snapshotVersion,
      revision: this.currentRev,
      compact_revision: this.compactRev,
      leases: this.lessor.toSnapshot(),
      alarms: this.alarms.toSnapshot(),
    }
  }

  /**
   * Replaces the state with a snapshot's (a member catching up from the leader's snapshot). Lease clocks restart at
   * the next promote (or at once on a leader); open watchers re-read history from where they were, or get the
   * compacted cancel if it is gone.
   */
  restore(bytes: Uint8Array): void {
    const s = decodeKvSnapshot(bytes)
    const index = new KeyIndex()
    let size = 0
    const all: Change[] = []
    for (const [kb, rows] of s.keys) {
      const h = index.getOrCreate(keyString(kb), kb)
      let prev: KeyValue | undefined
      for (const row of rows) {
        const [main, sub] = row
        const tombstone = row.length === 2
        const kv: KeyValue = tombstone
          ? { key: kb, create_revision: 0, mod_revision: main, version: 0, value: emptyBytes, lease: 0n }
          : {
              key: kb,
              create_revision: row[2],
              mod_revision: main,
              version: row[3],
              value: row[4],
              lease: row[5] === '' ? 0n : BigInt(row[5]),
            }
        // The previous value survives only for rows after the compact revision (see compact()).
        const last = h.changes[h.changes.length - 1]
        // Within one txn the previous value is the one from before the txn (writeChange).
        const before = last !== undefined && last.main === main ? last.prev : prev
        const c: Change = { key: h.key, main, sub, kv, tombstone, prev: main > s.compact_revision ? before : undefined }
        h.changes.push(c)
        all.push(c)
        size += rowBytes(c)
        prev = tombstone ? undefined : kv
      }
    }
    this.index = index
    this.currentRev = s.revision
    this.compactRev = s.compact_revision
    this.logFirstRev = Math.max(initialRevision + 1, s.compact_revision)
    this.log = []
    for (let r = this.logFirstRev; r <= this.currentRev; r++) this.log.push([])
    all.sort((a, b) => a.main - b.main || a.sub - b.sub)
    for (const c of all) if (c.main >= this.logFirstRev) this.log[c.main - this.logFirstRev]!.push(c)
    this.lessor.loadSnapshot(s.leases)
    for (const h of index.all()) {
      const cur = h.live()
      if (cur !== undefined && cur.kv.lease !== 0n) this.lessor.attach(cur.kv.lease, h.key)
    }
    size += s.leases.length * leaseOverheadBytes
    this.size = size
    this.alarms.loadSnapshot(s.alarms)
    this.watchHub.resync()
  }

  // ================================================================ WatchHistory

  /** @internal The log from revision `from`, for watchers catching up. */
  changesFrom(from: number, maxRevisions: number): { rev: number; changes: readonly Change[] }[] {
    const out: { rev: number; changes: readonly Change[] }[] = []
    for (let r = Math.max(from, this.logFirstRev); r <= this.currentRev && out.length < maxRevisions; r++) {
      out.push({ rev: r, changes: this.log[r - this.logFirstRev]! })
    }
    return out
  }

  // ================================================================ internals

  private begin(): WriteTxn {
    return { beginRev: this.currentRev, changes: [] }
  }

  /** etcd's storeTxnWrite.End: the revision moves only when something changed; then watchers hear of it. */
  private end(w: WriteTxn): void {
    if (w.changes.length === 0) return
    this.currentRev = w.beginRev + 1
    // The log keeps every revision until compaction (it outlives young-generation GCs): a one-change revision (a put)
    // is kept as an array of exactly one slot, not the 17-slot backing store the write's array grew on its first push.
    const changes = w.changes.length === 1 ? [w.changes[0]!] : w.changes
    this.log.push(changes)
    this.watchHub.notify(this.currentRev, changes)
  }

  /** Undoes a write in progress: rows, lease attachments and size, newest first. */
  private rollback(w: WriteTxn): void {
    for (let i = w.changes.length - 1; i >= 0; i--) {
      const c = w.changes[i]!
      const h = this.index.get(c.key)!
      h.changes.pop()
      // The key's state before c (c.prev is the state before the txn: writeChange).
      const before = h.changes[h.changes.length - 1]
      if (h.changes.length === 0) this.index.delete(c.key)
      this.size -= rowBytes(c)
      if (!c.tombstone && c.kv.lease !== 0n) this.lessor.detach(c.kv.lease, c.key)
      if (before !== undefined && !before.tombstone && before.kv.lease !== 0n)
        this.lessor.attach(before.kv.lease, c.key)
    }
    w.changes.length = 0
  }

  /** The revision a read inside w sees: the write's own revision once it has changed something. */
  private static readRev(w: WriteTxn): number {
    return w.changes.length > 0 ? w.beginRev + 1 : w.beginRev
  }

  private checkNotCorrupt(): void {
    // etcd's applierV3Corrupt refuses everything while a CORRUPT alarm is active.
    if (this.alarms.has(AlarmType.CORRUPT)) throw new EtcdError('ErrCorrupt')
  }

  /** etcd's quota check and applierV3Capped, for requests that add data. */
  private checkWritable(cost: number): void {
    this.checkNotCorrupt()
    if (this.alarms.has(AlarmType.NOSPACE)) throw new EtcdError('ErrNoSpace')
    if (this.size + cost >= this.config.quotaBackendBytes) {
      this.alarms.activate(quotaAlarmMemberId, AlarmType.NOSPACE)
      throw new EtcdError('ErrNoSpace')
    }
  }

  /** etcd's mvcc rangeKeys: the live KeyValues of a range at a revision, and how many there are (before limit). */
  private rangeKeys(
    r: KeyRange,
    atRev: number,
    curRev: number,
    limit: number,
    countOnly: boolean,
  ): { kvs: KeyValue[]; count: number } {
    if (atRev > curRev) throw new EtcdError('ErrFutureRev')
    const rev = atRev <= 0 ? curRev : atRev
    if (rev < this.compactRev) throw new EtcdError('ErrCompacted')
    const kvs: KeyValue[] = []
    let count = 0
    // At the view's own revision the newest row is the answer; no search needed.
    const current = rev === curRev
    for (const h of this.index.scan(r)) {
      const c = current ? h.live() : h.liveAt(rev)
      if (c === undefined) continue
      count++
      if (!countOnly && (limit <= 0 || kvs.length < limit)) kvs.push(c.kv)
    }
    return { kvs, count }
  }

  /** etcd's applierV3backend.Range over a view: the store now (w undefined) or a write in progress. */
  private doRange(req: RangeRequest, w: WriteTxn | undefined): RangeResponse {
    const curRev = w === undefined ? this.currentRev : KvStore.readRev(w)
    // etcd fetches everything when it must sort or filter, otherwise limit + 1 to know `more`. A non-KEY target with
    // order NONE sorts but keeps that limit + 1: etcd sorts only the first limit + 1 keys then. Copied as is.
    let limit = req.limit
    if (
      req.sort_order !== SortOrder.NONE ||
      req.min_mod_revision !== 0 ||
      req.max_mod_revision !== 0 ||
      req.min_create_revision !== 0 ||
      req.max_create_revision !== 0
    ) {
      limit = 0
    }
    if (limit > 0) limit++
    const rr = this.rangeKeys(resolveRange(req.key, req.range_end), req.revision, curRev, limit, req.count_only)
    let kvs = rr.kvs
    if (req.max_mod_revision !== 0) kvs = kvs.filter((kv) => kv.mod_revision <= req.max_mod_revision)
    if (req.min_mod_revision !== 0) kvs = kvs.filter((kv) => kv.mod_revision >= req.min_mod_revision)
    if (req.max_create_revision !== 0) kvs = kvs.filter((kv) => kv.create_revision <= req.max_create_revision)
    if (req.min_create_revision !== 0) kvs = kvs.filter((kv) => kv.create_revision >= req.min_create_revision)
    let order = req.sort_order
    if (req.sort_target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND
    if (order === SortOrder.ASCEND || order === SortOrder.DESCEND) {
      const cmp = sortComparator(req.sort_target)
      // etcd's sort.Sort (DESCEND: sort.Reverse), as Go 1.19 runs it: ties keep key order up to 12 keys (insertion
      // sort), past that they come out where pdqsort leaves them (./go-sort.ts).
      kvs = kvs.slice()
      goSort(kvs, order === SortOrder.ASCEND ? (a, b) => cmp(a, b) < 0 : (a, b) => cmp(b, a) < 0)
    }
    let more = false
    if (req.limit > 0 && kvs.length > req.limit) {
      kvs = kvs.slice(0, req.limit)
      more = true
    }
    if (req.keys_only) kvs = kvs.map((kv) => ({ ...kv, value: emptyBytes }))
    return { header: header(curRev), kvs, more, count: rr.count }
  }

  private doPut(w: WriteTxn, p: PutRequest): PutResponse {
    const key = keyString(p.key)
    const existing = this.index.get(key)
    const cur = existing?.live()
    if ((p.ignore_value || p.ignore_lease) && cur === undefined) throw new EtcdError('ErrKeyNotFound')
    const value = p.ignore_value ? cur!.kv.value : ownBytes(p.value)
    const lease = p.ignore_lease ? cur!.kv.lease : p.lease
    const rev = w.beginRev + 1
    const h = existing ?? this.index.getOrCreate(key, ownBytes(p.key))
    const kv: KeyValue = {
      key: h.keyBytes,
      create_revision: cur === undefined ? rev : cur.kv.create_revision,
      mod_revision: rev,
      version: cur === undefined ? 1 : cur.kv.version + 1,
      value,
      lease,
    }
    this.writeChange(w, h, kv, false, cur?.kv)
    // etcd's put: detach from the old lease, attach to the new one (a put without a lease detaches).
    const oldLease = cur?.kv.lease ?? 0n
    if (oldLease !== 0n) this.lessor.detach(oldLease, key)
    if (lease !== 0n) this.lessor.attach(lease, key)
    const resp: PutResponse = { header: header(rev) }
    if (p.prev_kv && cur !== undefined) resp.prev_kv = cur.kv
    return resp
  }

  private doDelete(w: WriteTxn, d: DeleteRangeRequest): DeleteRangeResponse {
    const victims: [KeyHistory, Change][] = []
    for (const h of this.index.scan(resolveRange(d.key, d.range_end))) {
      const cur = h.live()
      if (cur !== undefined) victims.push([h, cur])
    }
    const prev_kvs = d.prev_kv ? victims.map(([, c]) => c.kv) : []
    for (const [h, c] of victims) this.writeTombstone(w, h, c)
    // etcd's storeTxnWrite.DeleteRange: the txn's revision if anything changed so far, else the current one.
    const rev = w.changes.length > 0 ? w.beginRev + 1 : w.beginRev
    return { header: header(rev), deleted: victims.length, prev_kvs }
  }

  private writeTombstone(w: WriteTxn, h: KeyHistory, cur: Change): void {
    const rev = w.beginRev + 1
    const kv: KeyValue = {
      key: h.keyBytes,
      create_revision: 0,
      mod_revision: rev,
      version: 0,
      value: emptyBytes,
      lease: 0n,
    }
    this.writeChange(w, h, kv, true, cur.kv)
    if (cur.kv.lease !== 0n) this.lessor.detach(cur.kv.lease, h.key)
  }

  private writeChange(w: WriteTxn, h: KeyHistory, kv: KeyValue, tombstone: boolean, prev: KeyValue | undefined): void {
    const main = w.beginRev + 1
    // A watch event's prev_kv is etcd's read at mod_revision - 1: a key this txn changed before has its value from
    // before the txn (none when the txn created it), not the txn's own earlier change.
    const last = h.changes[h.changes.length - 1]
    const before = last !== undefined && last.main === main ? last.prev : prev
    const c: Change = { key: h.key, main, sub: w.changes.length, kv, tombstone, prev: before }
    h.changes.push(c)
    w.changes.push(c)
    this.size += rowBytes(c)
  }

  /** etcd's compareToPath: the branch each txn on the executed path takes, nested ones included, in pre-order. */
  private compareToPath(t: TxnRequest, path: boolean[]): void {
    const ok = t.compare.every((c) => {
      const { kvs } = this.rangeKeys(resolveRange(c.key, c.range_end), 0, this.currentRev, 0, false)
      return applyCompare(c, kvs)
    })
    path.push(ok)
    for (const op of ok ? t.success : t.failure) if (op.request_txn) this.compareToPath(op.request_txn, path)
  }

  /** etcd's checkRequests: runs f on every non-txn op of the executed path, before anything is written. */
  private checkPath(t: TxnRequest, path: boolean[], pos: { i: number }, f: (op: RequestOp) => void): void {
    const ok = path[pos.i++]
    for (const op of ok ? t.success : t.failure) {
      if (op.request_txn) this.checkPath(op.request_txn, path, pos, f)
      else f(op)
    }
  }

  /** etcd's checkRequestPut, against the state before the txn. */
  private checkTxnPut(p: PutRequest): void {
    if (p.ignore_value || p.ignore_lease) {
      if (this.index.get(keyString(p.key))?.live() === undefined) throw new EtcdError('ErrKeyNotFound')
    }
    if (p.lease !== 0n && this.lessor.lookup(p.lease) === undefined) throw new EtcdError('ErrLeaseNotFound')
  }

  /** etcd's checkRequestRange, against the state before the txn (etcd compares with compactMainRev, -1 at first). */
  private checkTxnRange(r: RangeRequest): void {
    if (r.revision === 0) return
    if (r.revision > this.currentRev) throw new EtcdError('ErrFutureRev')
    if (r.revision < this.compactRev) throw new EtcdError('ErrCompacted')
  }

  private execTxn(w: WriteTxn, t: TxnRequest, path: boolean[], pos: { i: number }): TxnResponse {
    const succeeded = path[pos.i++]!
    const responses: ResponseOp[] = []
    for (const op of succeeded ? t.success : t.failure) {
      if (op.request_range) responses.push({ response_range: this.doRange(op.request_range, w) })
      else if (op.request_put) responses.push({ response_put: this.doPut(w, op.request_put) })
      else if (op.request_delete_range)
        responses.push({ response_delete_range: this.doDelete(w, op.request_delete_range) })
      else if (op.request_txn) responses.push({ response_txn: this.execTxn(w, op.request_txn, path, pos) })
    }
    // A nested txn's header is empty in etcd; the top level's is set by the caller after the write ends.
    return { header: header(0), succeeded, responses }
  }
}

/** A change as a snapshot row (snapshot.ts). */
function snapshotRow(c: Change): SnapshotRow {
  return c.tombstone
    ? [c.main, c.sub]
    : [c.main, c.sub, c.kv.create_revision, c.kv.version, c.kv.value, c.kv.lease === 0n ? '' : c.kv.lease.toString()]
}

/** The estimated bytes one revision row occupies. */
function rowBytes(c: Change): number {
  return c.key.length + c.kv.value.length + changeOverheadBytes
}

function sortComparator(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version
    case SortTarget.CREATE:
      return (a, b) => a.create_revision - b.create_revision
    case SortTarget.MOD:
      return (a, b) => a.mod_revision - b.mod_revision
    case SortTarget.VALUE:
      return (a, b) => compareBytes(a.value, b.value)
    default:
      return (a, b) => compareBytes(a.key, b.key)
  }
}
