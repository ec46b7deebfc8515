/**
 * The watch hub: etcd's watchableStore and watchStream (mvcc/watchable_store.go, mvcc/watcher.go), without goroutines.
 *
 * The server opens one `WatchStream` per client connection (HTTP stream or WebSocket) with a `WatchSink`, then
 * creates and cancels watchers on it. Every message for the client (created, events, progress, canceled, compacted)
 * goes through `sink.send` with the gateway's WatchResponse shape; the hub fills `header.revision` and leaves
 * cluster_id, member_id and raft_term to the server.
 *
 * A watcher is either synced (it has been sent or has queued everything up to the store's revision, and gets each
 * new write as it is applied) or unsynced (behind: a start_revision in the past, or a client that could not keep up),
 * in which case it catches up from the store's history. Flow control is the sink's return value: `send` returning
 * false means "congested"; the hub then queues at most watcherQueueEventsMax events per watcher and, past that,
 * drops the queue and marks the watcher unsynced (etcd's victims and unsynced group). `stream.resume()`, called when
 * the transport has drained, flushes the queue and catches up. Memory stays bounded and a write never waits for a
 * client. If the history a watcher needs is compacted meanwhile, it gets etcd's compacted cancel.
 */

import { EtcdError } from '../protocol/errors.js'
import {
  type Event,
  EventType,
  FilterType,
  type WatchCreateRequest,
  type WatchId,
  type WatchResponse,
  watchIdOf,
} from '../protocol/types.js'
import { inRange, type KeyRange, resolveRange } from './bytes.js'
import type { KvConfig } from './config.js'
import type { Change } from './key-index.js'
import { RangeIndex } from './range-index.js'
import { header } from './requests.js'

/** Where a stream's messages go. Adapt it to an HTTP chunked body, a WebSocket, or a test array. */
export interface WatchSink {
  /**
   * Takes one message for the client. Return true to keep receiving, false when the transport is congested (say a
   * WebSocket's bufferedAmount is over a threshold): the message is still taken, but the hub holds back further
   * events until `WatchStream.resume()`. Must not throw; if it does, the stream is closed.
   */
  send(resp: WatchResponse): boolean
}

/** What the hub reads from the store. */
export interface WatchHistory {
  /** The store's current revision. */
  readonly revision: number
  /** The revision of the last compaction; 0 before any. */
  readonly compactRevision: number
  /**
   * etcd's compactMainRev: -1 before any compaction, and 0 after a compaction at revision 0, which etcd takes (the
   * store's own counter). Absent: compactRevision, -1 for 0.
   */
  readonly etcdCompactRevision?: number
  /** The changes of each revision from `from` on (one array per revision, in order), at most maxRevisions of them. */
  changesFrom(from: number, maxRevisions: number): { rev: number; changes: readonly Change[] }[]
}

/**
 * The longest coalescing window a watch create may ask for (`edgecd_coalesce_ms`, an edgecd extension); longer asks
 * get this. It bounds how long a member holds a watcher's events: at most this long's writes.
 */
export const watchCoalesceMsMax = 1000

/**
 * The compacted revision as etcd's watchers read it: its store's compactMainRev is -1 before any compaction (a watch
 * from a negative start_revision below it is cancelled with compact_revision -1), edgecd's store counts 0.
 */
function etcdCompactRevision(h: WatchHistory): number {
  return h.etcdCompactRevision ?? (h.compactRevision > 0 ? h.compactRevision : -1)
}

/** etcd's mvcc errors sent as cancel_reason. */
const errDuplicateWatchId = 'mvcc: duplicate watch ID provided on the WatchStream'
const errEmptyWatcherRange = 'mvcc: watcher range is empty'

/** A WatchResponse with proto3 defaults. */
export function watchResponse(fields: Partial<WatchResponse>): WatchResponse {
  return {
    watch_id: 0,
    created: false,
    canceled: false,
    compact_revision: 0,
    cancel_reason: '',
    fragment: false,
    events: [],
    ...fields,
  }
}

/**
 * A message waiting behind a congested transport: the events of one or more consecutive revisions of one watcher.
 * While the stream stays congested, later revisions of the watcher are merged into its last queued message, up to
 * watchBatchRevisionsMax revisions and watchCoalesceBytesMax bytes, so that a watcher that lags gets what it missed
 * in one WatchResponse when the transport drains (etcd's victim and unsynced batches) instead of one per apply
 * batch. `parts` are the hub's per-revision Event[] (shared by the watchers of a shape), joined when it is sent.
 */
interface Queued {
  /** The first revision of its events. */
  rev: number
  /** The last: the message's header.revision. */
  last: number
  /** The events of each revision, in revision order (one part per revision). */
  parts: Event[][]
  events: number
  bytes: number
}

/**
 * A synced watcher's events of several revisions of one apply batch, sent as one WatchResponse when the batch ends
 * (header.revision = the last of them), as etcd sends an unsynced watcher many revisions in one response. `parts` are
 * the hub's per-revision Event[] (shared by every watcher of a shape), so watchers of a shape that got the same
 * revisions share one concatenation too (WatchHub.joined) and a transport still encodes it once.
 */
interface Coalesced {
  first: number
  last: number
  parts: Event[][]
  events: number
  bytes: number
}

/**
 * What a catch-up batch already computed for another watcher (same shape, same position) costs of the replay budget:
 * its events (or revisions) divided by this. The transports encode a shared Event[] once (one encode per shape), so
 * handing it to the next watcher is a message, not its events again: 100 watchers at rev 1 over 2,000 revisions took
 * 99 turns at full cost (124 ms, bench/watch-catchup.ts) where one synchronous pass had taken 10 ms.
 */
const sharedBatchCostDivisor = 8

/** A catch-up batch (WatchHub.catchUpBatch): its events, and where each revision's events end, to cut it. */
interface CatchUpBatch {
  events: Event[]
  revs: number[]
  ends: number[]
  nextRev: number
  /** Whether a watcher got it whole (then its Event[] is being encoded, and the next one costs less). */
  taken: boolean
  /** The store's revision when it was read. */
  at: number
}

/** The events of a queued message (WatchHub.queuedJoin), and whether a watcher was sent them already. */
interface QueuedJoin {
  parts: Event[][]
  events: Event[]
  taken: boolean
}

/** What a queued event costs in memory, roughly: its keys and values and a fixed overhead. */
function eventBytes(events: Event[]): number {
  let n = 0
  for (const e of events) {
    n += 64 + (e.kv?.key.length ?? 0) + (e.kv?.value.length ?? 0)
    if (e.prev_kv) n += 64 + e.prev_kv.key.length + e.prev_kv.value.length
  }
  return n
}

/** The Event[] the hub hands to more than one watcher (see isSharedEvents). */
const sharedEvents = new WeakSet<readonly Event[]>()

/**
 * Whether the hub handed (or means to hand) this Event[] to more than one watcher: watchers of one shape in one
 * revision, a coalesced concatenation a second watcher asked for (WatchHub.joined), a catch-up batch. A transport
 * that keeps an encoding by array identity (codec/watch-json.ts, the gRPC Watch's watch-proto.ts) keeps it for these
 * only: any other array goes to one watcher in one message, and a WeakMap entry per message cost more than its
 * encoding (issue 17, put throughput with 10,000 watchers: ~3 µs per put, mostly the collector's weak-table work,
 * bench/watch-put-micro.ts `--part json`). Marking is a hint: a missed mark costs an encode, never a wrong message.
 */
export function isSharedEvents(events: readonly Event[]): boolean {
  return sharedEvents.has(events)
}

/** The copies withoutCompactedPrevKv made, by the array they were made of, with the compact revision they are for. */
const prevKvStripped = new WeakMap<readonly Event[], { compactRev: number; events: Event[] }>()

/**
 * events without the prev_kv etcd could not read when it sends them: etcd's sendLoop fills an event's prev_kv when
 * it sends it, by a range at mod_revision - 1 (v3rpc/watch.go), which fails with ErrCompacted below the compact
 * revision and leaves prev_kv unset; so an event at or below the compact revision that waited across a compaction
 * (queued behind a congested transport, held, merged) goes without it (diff seed 9108). A create event never has one
 * (etcd skips it; the hub sets none). A copy: the hub's Event[] and their encodings are shared by other watchers
 * (isSharedEvents), which may have been sent them before the compaction; the copy of a shared array is shared and
 * kept, so that the watchers of a shape still cost one encode.
 */
function withoutCompactedPrevKv(events: Event[], compactRev: number): Event[] {
  let out = prevKvStripped.get(events)
  if (out === undefined || out.compactRev !== compactRev) {
    let copy: Event[] | undefined
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!
      if (e.kv.mod_revision > compactRev) break
      if (e.prev_kv === undefined) continue
      copy ??= events.slice()
      copy[i] = { type: e.type, kv: e.kv }
    }
    out = { compactRev, events: copy ?? events }
    prevKvStripped.set(events, out)
  }
  // Marked shared when the array is (a queued join is, once a second watcher asks for it).
  if (out.events !== events && isSharedEvents(events)) sharedEvents.add(out.events)
  return out.events
}

/** A range as a Map key (keys are binary strings and may hold any byte, hence JSON). */
function rangeKey(r: KeyRange): string {
  return JSON.stringify([r.start, r.end ?? null])
}

/** One watcher. Internal to the hub; the server only sees watch ids. */
class Watcher {
  /** The next revision not yet sent or queued. */
  nextRev: number
  synced: boolean
  readonly queue: Queued[] = []
  queuedEvents = 0
  /**
   * Events not sent yet: of an apply batch (WatchHub.beginBatch), one message at the end of the batch; of a watcher
   * with a coalescing window, one message when its window group is next due (WatchHub windows).
   */
  pend: Coalesced | undefined
  /** Whether it is in its stream's list of watchers with a windowed message held (WatchStream.held), once at most. */
  listed = false
  /**
   * Whether it is in the hub's notify index (WatchHub.add). A paced-out watcher (WatchStream.paceOut) is not: puts
   * cost it nothing until it is caught up from history and synced again (etcd: its unsynced group is not notified).
   */
  indexed = true
  /** Paced out (WatchStream.paceOut): behind, caught up at its stream's sync ticks only. */
  paced = false
  /**
   * What decides this watcher's events for a revision: its range and filters. Watchers of one shape get the very same
   * Event[] from WatchHub.notify, so a transport can encode it once per shape (see the sinks) rather than per watcher.
   */
  readonly shape: string
  /**
   * The filters as bits (prev_kv 1, NOPUT 2, NODELETE 4): the watchers of one range group with the same bits are one
   * shape, so WatchHub.notify tells shapes apart by these without building or hashing the shape string.
   */
  readonly filterBits: number

  constructor(
    readonly id: WatchId,
    readonly stream: WatchStream,
    readonly range: KeyRange,
    readonly prevKv: boolean,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly progressNotify: boolean,
    startRev: number,
    /** The coalescing window in ms (edgecd_coalesce_ms, clamped to watchCoalesceMsMax); 0: none (etcd's behaviour). */
    readonly windowMs: number,
  ) {
    this.nextRev = startRev
    this.synced = false
    // `single` too: a one-key watcher on K and a from-key watcher on K have the same start and no end.
    this.shape = `${prevKv ? 1 : 0}${noPut ? 1 : 0}${noDelete ? 1 : 0}${range.single ? 1 : 0}${rangeKey(range)}`
    this.filterBits = (prevKv ? 1 : 0) | (noPut ? 2 : 0) | (noDelete ? 4 : 0)
  }

  /** This watcher's events among one revision's changes, in change order. */
  events(changes: readonly Change[]): Event[] {
    const out: Event[] = []
    for (const c of changes) {
      if (!inRange(this.range, c.key)) continue
      if (c.tombstone ? this.noDelete : this.noPut) continue
      const ev: Event = { type: c.tombstone ? EventType.DELETE : EventType.PUT, kv: c.kv }
      // etcd's sendLoop skips a create event (IsCreateEvent: a put whose create_revision is its mod_revision), also
      // when the same txn deleted the key before putting it, so the key had a value at mod_revision - 1 (seed 11219).
      if (this.prevKv && c.prev !== undefined && (c.tombstone || c.kv.create_revision !== c.kv.mod_revision))
        ev.prev_kv = c.prev
      out.push(ev)
    }
    return out
  }
}

/** One client connection's watchers, sharing one sink (etcd's watchStream). */
export class WatchStream {
  /** By id: a number, or a bigint for a client-chosen id past 2^53 (normalized by watchIdOf, so one id, one key). */
  private readonly watchers = new Map<WatchId, Watcher>()
  /**
   * Ids of watchers cancelled for a compaction: etcd keeps such an id on its stream until the client cancels it (its
   * watchStream.Cancel answers `canceled`), so a create of that id is a duplicate and the stream's counter skips it.
   */
  private readonly compactedIds = new Set<WatchId>()
  private nextId = 0
  private blocked = false
  private closed = false

  /** @internal: streams come from `WatchHub.openStream`. */
  constructor(
    private readonly hub: WatchHub,
    private readonly sink: WatchSink,
    /**
     * The busy window in ms (0: none): a watcher without its own window (edgecd_coalesce_ms) gets its events at the
     * end of the apply batch if this stream last sent its held events more than this long ago (an idle stream: at
     * once, as etcd), else they are held and merged until then (a busy stream: etcd's victims, retried every 10 ms).
     */
    readonly busyMs = 0,
  ) {
    this.busyGroup =
      busyMs > 0
        ? {
            ms: busyMs,
            lastSent: Number.NEGATIVE_INFINITY,
            timer: false,
            streams: new Set(),
            busy: true,
            sent: 0,
            stream: this,
            cur: busyMs,
            batches: 0,
            fresh: false,
          }
        : undefined
  }

  /** @internal The watchers with a message held (one message each when sent). */
  get heldCount(): number {
    return this.held.length
  }

  /** @internal This stream's busy window (see busyMs): a window group of its own, so that one stream's sends do not delay another's. */
  readonly busyGroup: WindowGroup | undefined

  /** How many watchers are open on this stream. */
  get size(): number {
    return this.watchers.size
  }

  /** Whether the sink reported congestion and has not been resumed since. */
  get isBlocked(): boolean {
    return this.blocked
  }

  /**
   * etcd's create_request: sends `created` (with the assigned watch id) and then, for a start_revision in the past,
   * the history from there, or the compacted cancel. A refused create is answered as etcd does: watch_id -1, created
   * and canceled, with the reason (duplicate id, empty range, too many watchers). Returns the watch id, or -1.
   */
  create(req: WatchCreateRequest): WatchId {
    if (this.closed) return -1
    const hub = this.hub
    const refuse = (reason: string): number => {
      this.deliver(
        watchResponse({
          header: header(hub.history.revision),
          watch_id: -1,
          created: true,
          canceled: true,
          cancel_reason: reason,
        }),
      )
      return -1
    }
    const range = resolveRange(req.key, req.range_end)
    if (range.empty) return refuse(errEmptyWatcherRange)
    if (hub.watcherCount >= hub.config.maxWatchers) return refuse(new EtcdError('ErrTooManyWatchers').message)
    if (this.watchers.size >= hub.config.maxWatchersPerStream) {
      return refuse(new EtcdError('ErrTooManyWatchersPerStream').message)
    }
    let id = watchIdOf(req.watch_id)
    if (id === 0) {
      // etcd's AutoWatchID is 0: the stream picks the lowest free id from its counter.
      while (this.watchers.has(this.nextId) || this.compactedIds.has(this.nextId)) this.nextId++
      id = this.nextId++
    } else if (this.watchers.has(id) || this.compactedIds.has(id)) {
      return refuse(errDuplicateWatchId)
    }

    const current = hub.history.revision
    // etcd: a watcher starting at 0 or in the future is synced from current+1 (events before its start are skipped).
    // A negative start_revision is etcd 3.4's too: below its compacted revision (-1 before any compaction) it gets
    // the compacted cancel (catchUp), else it reads nothing of the past and is synced as from 0.
    const negative = req.start_revision < 0 && req.start_revision < etcdCompactRevision(hub.history)
    const startRev = negative ? req.start_revision : req.start_revision <= 0 ? current + 1 : req.start_revision
    const w = new Watcher(
      id,
      this,
      range,
      req.prev_kv,
      req.filters.includes(FilterType.NOPUT),
      req.filters.includes(FilterType.NODELETE),
      req.progress_notify,
      startRev,
      coalesceWindowMs(req.edgecd_coalesce_ms),
    )
    w.synced = startRev > current
    this.watchers.set(id, w)
    hub.add(w)
    this.deliver(watchResponse({ header: header(current), watch_id: id, created: true }))
    if (!w.synced) {
      // etcd's unsynced group: the history from startRev is replayed through the pump, within the member's replay
      // budget of this turn (WatchHub.replayLeft), the rest on later turns, as a draining stream's. Before, a create
      // replayed all of it at once: `watch --rev 1` over 200,000 revisions held the event loop for the whole read.
      this.behind.add(w)
      if (!this.blocked) this.pump()
    }
    this.maybeSendProgress()
    return id
  }

  /**
   * etcd's cancel_request: sends `canceled` for a known id; unknown ids get no answer, as in etcd. A server-side
   * cancel (auth: permission revoked) gives a reason.
   */
  cancel(watchId: WatchId, reason = ''): boolean {
    const w = this.watchers.get(watchIdOf(watchId))
    if (w === undefined) {
      if (!this.compactedIds.delete(watchIdOf(watchId))) return false
      // etcd answers the cancel of a watcher its compaction ended (still on the stream there) as any other.
      this.deliver(
        watchResponse({ header: header(this.hub.history.revision), watch_id: watchIdOf(watchId), canceled: true }),
      )
      return true
    }
    // Its events of the batch so far are sent before the cancel, as they were one revision at a time.
    this.flushCoalesced()
    this.remove(w)
    this.deliver(
      watchResponse({
        header: header(this.hub.history.revision),
        watch_id: w.id,
        canceled: true,
        cancel_reason: reason,
      }),
    )
    return true
  }

  /** Refuses a create_request with a reason, as etcd answers a forbidden watch: watch_id -1, created and canceled. */
  refuseCreate(reason: string): void {
    if (this.closed) return
    this.deliver(
      watchResponse({
        header: header(this.hub.history.revision),
        watch_id: -1,
        created: true,
        canceled: true,
        cancel_reason: reason,
      }),
    )
  }

  /** etcd 3.4's progress_request: a message with watch_id -1 and the current revision. */
  requestProgress(): void {
    // A progress answer promises the client every event up to that revision has been sent: while anything is queued
    // or a watcher is still catching up, answering now would let older events arrive after it (etcd #15220, fixed
    // in etcd 3.4.24 the same way). Defer it until the stream has caught up.
    this.progressPending = true
    this.maybeSendProgress()
  }

  private progressPending = false

  private maybeSendProgress(): void {
    if (!this.progressPending || this.closed) return
    // The batch's events so far go first (and may find the transport congested).
    this.flushCoalesced()
    if (this.blocked || this.isBehind()) return
    this.progressPending = false
    this.deliver(watchResponse({ header: header(this.hub.history.revision), watch_id: -1 }))
  }

  /**
   * The transport has drained: flush queued events, then let unsynced watchers catch up, until congested again, within
   * the member's replay budget of this turn (watchPumpEventsMax events, WatchHub.replayLeft); the rest follows on a
   * later turn (WatchHub.defer).
   */
  resume(): void {
    if (this.closed) return
    this.blocked = false
    this.holding = false
    this.pump()
  }

  /**
   * The transport is still writing what it was last given (the raw gRPC Watch: the previous turn's write has not
   * been written yet): until `resume()`, the stream is held as if the sink had answered "congested". Each watcher's
   * next revisions are queued, merged into its last queued message (enqueue), and go out together when the transport
   * calls resume() (etcd's victim batches), so a client that reads slower than the member applies gets fewer, larger
   * messages. A stream that is not held (its transport took the last write) still sends each apply batch at once.
   */
  hold(): void {
    if (this.closed || this.blocked) return
    this.blocked = true
    this.holding = true
  }

  /**
   * Blocked by hold() alone (the transport is writing, the sink did not answer "congested"): the progress tick still
   * goes to idle synced watchers, as etcd's does while its send buffer has room.
   */
  private holding = false

  /**
   * Watchers that may be behind: unsynced, or with events queued. A superset (entries leave lazily, see stillBehind),
   * so that the pump, a progress request and a create look at the watchers behind, not at every watcher of the stream.
   */
  private readonly behind = new Set<Watcher>()

  private stillBehind(w: Watcher): boolean {
    if (this.watchers.get(w.id) === w && (!w.synced || w.queue.length > 0)) return true
    this.behind.delete(w)
    return false
  }

  /** Whether a watcher still has events queued or history to catch up. */
  private isBehind(): boolean {
    for (const w of this.behind) if (this.stillBehind(w)) return true
    return false
  }

  /**
   * Replays what the watchers behind need (their queues, then their history), in the order they fell behind, until
   * the stream is congested or the turn's replay budget is spent; then the stream waits for the hub's next replay
   * turn (WatchHub.wait), where streams take turns in the order they began to wait.
   */
  private pump(): void {
    let pacedLeft = false
    for (const w of this.behind) {
      if (this.blocked || this.closed) return
      if (!this.stillBehind(w)) continue
      if (w.paced) {
        // Paced out (paceOut): caught up at the sync ticks only, at most watchSyncWatchersMax per tick, one message
        // (up to watchBatchRevisionsMax revisions) each per tick, as etcd's syncWatchers.
        if (this.tickLeft <= 0) {
          pacedLeft = true
          continue
        }
        const at = w.nextRev
        this.catchUp(w, true)
        if (this.watchers.get(w.id) !== w || w.synced) {
          w.paced = false
          this.tickLeft--
          continue
        }
        if (this.blocked || this.closed) return
        if (w.nextRev === at) {
          // The turn's replay budget ran out.
          this.hub.wait(this)
          return
        }
        this.tickLeft--
        pacedLeft = true
        continue
      }
      this.flush(w)
      if (!w.synced && w.queue.length === 0 && !this.blocked) this.catchUp(w)
      if (!this.stillBehind(w)) continue
      if (this.blocked || this.closed) return
      // Still behind on an open, uncongested stream: the budget ran out (resume() goes on after congestion).
      this.hub.wait(this)
      return
    }
    if (pacedLeft) this.scheduleSyncTick()
    this.maybeSendProgress()
  }

  /** @internal The hub's replay turn: go on where the budget stopped this stream (unless congested or closed). */
  continueReplay(): void {
    if (!this.blocked && !this.closed) this.pump()
  }

  /**
   * @internal An apply batch ended with messages waiting for more than watchPaceWatchersMin of this stream's watchers
   * (etcd's 128-slot send channel overflows: its watchers become victims, then unsynced). They leave the synced set
   * instead of being sent (session 10, issue 17): each drops its message, goes back to its first unsent revision,
   * leaves the hub's notify index (a put then costs it nothing), and is caught up from history at the stream's next
   * sync tick, watchSyncIntervalMs later (etcd's syncWatchersLoop, every 100 ms), with everything it missed in one
   * message per watchBatchRevisionsMax revisions. Watchers of one shape that fell behind together read one shared
   * batch (one encode; the WebSocket writes its bytes by reference). Order, exactly-once and whole revisions are the
   * catch-up's; a compaction meanwhile cancels them with etcd's compact_revision, as any unsynced watcher.
   */
  paceOut(ws: Watcher[]): void {
    const hub = this.hub
    for (const w of ws) {
      const p = w.pend
      if (this.watchers.get(w.id) !== w || p === undefined) continue
      w.pend = undefined
      w.listed = false
      w.nextRev = p.first
      w.synced = false
      w.paced = true
      if (w.indexed) hub.unindex(w)
      this.behind.add(w)
    }
    this.pacedOut += ws.length
    this.scheduleSyncTick()
  }

  /** The next sync tick: watchSyncIntervalMs from now, it lets watchSyncWatchersMax paced watchers catch up. */
  private scheduleSyncTick(): void {
    if (this.syncTick || this.closed) return
    this.syncTick = true
    this.hub.setTimer(() => {
      this.syncTick = false
      this.tickLeft = this.hub.config.watchSyncWatchersMax
      this.continueReplay()
      // Congested: the tick's rest goes on when the transport drains (resume), its watchers still paced.
      if (this.blocked && !this.closed) this.scheduleSyncTick()
    }, this.hub.config.watchSyncIntervalMs)
  }

  /** A sync tick is scheduled (paceOut). */
  private syncTick = false
  /** Paced watchers the current sync tick may still catch up. */
  private tickLeft = 0
  /** @internal Watchers paced out so far (tests, the bench). */
  pacedOut = 0

  /**
   * @internal The apply batch ended: its messages go (or wait for the busy window), unless more than
   * watchPaceWatchersMin watchers have one, which are paced out (paceOut).
   */
  endBatch(): void {
    if (this.coalesced.length > this.hub.config.watchPaceWatchersMin && !this.closed) {
      const ws = this.coalesced
      this.coalesced = []
      this.paceOut(ws)
    }
    this.flushCoalesced(true)
  }

  /** @internal A busy window's watchers with a message held, when more than watchPaceWatchersMin: paced out. */
  paceOutHeld(): boolean {
    if (this.held.length <= this.hub.config.watchPaceWatchersMin || this.closed) return false
    // Watchers with their own window (edgecd_coalesce_ms) keep it.
    const out: Watcher[] = []
    const keep: Watcher[] = []
    for (const w of this.held) (w.windowMs > 0 ? keep : out).push(w)
    if (out.length <= this.hub.config.watchPaceWatchersMin) return false
    this.held = keep
    this.paceOut(out)
    return true
  }

  /**
   * @internal Whether the transport was backed up since the busy window's last send (backedUp(), or a send answered
   * "congested"): a busy window grows only then (session 10).
   */
  backedUpSinceSend = false

  /**
   * The transport found itself backed up (the gRPC Watch call: bytes not yet taken by the network past its lag
   * threshold when a turn's write went out). A busy window (busyMs) doubles at its end only if this happened (or a
   * send answered "congested") during it; otherwise it halves back toward busyMs, so a call whose client keeps up
   * gets its events within busyMs, not up to watchBusyWindowMaxMs (issue 17: 100 watchers and one writer waited
   * ~35 ms at the median with the growth by message count alone).
   */
  backedUp(): void {
    this.backedUpSinceSend = true
  }

  /** The client went away: drops every watcher without messages. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const w of [...this.watchers.values()]) this.remove(w)
    this.hub.forget(this)
  }

  // ---------------------------------------------------------------- hub side

  /** @internal A new revision's events for w (already filtered, non-empty). */
  live(w: Watcher, rev: number, events: Event[]): void {
    if (this.closed) return
    w.nextRev = rev + 1
    if ((this.hub.batching || w.windowMs > 0 || this.busyMs > 0) && !this.blocked && w.queue.length === 0) {
      this.coalesce(w, rev, events)
      return
    }
    if (w.pend !== undefined) {
      // Congested since the batch began: what waited goes first, into the queue.
      this.sendPend(w)
      if (!w.synced) return
    }
    if (!this.blocked && w.queue.length === 0) {
      this.deliver(watchResponse({ header: header(rev), watch_id: w.id, events }))
      return
    }
    this.enqueue(w, rev, rev, [events], events.length, eventBytes(events))
  }

  /** Adds a revision's events to w's message of this batch; one past the caps sends what waited first. */
  private coalesce(w: Watcher, rev: number, events: Event[]): void {
    const bytes = eventBytes(events)
    let p = w.pend
    if (
      p !== undefined &&
      (p.parts.length >= this.hub.config.watchBatchRevisionsMax ||
        p.bytes + bytes > this.hub.config.watchCoalesceBytesMax)
    ) {
      this.sendPend(w)
      p = undefined
      if (!w.synced) return
      if (this.blocked || w.queue.length > 0) {
        this.enqueue(w, rev, rev, [events], events.length, bytes)
        return
      }
    }
    if (p === undefined) {
      w.pend = { first: rev, last: rev, parts: [events], events: events.length, bytes }
      if (w.windowMs === 0 && this.busyMs === 0) this.coalesced.push(w)
      else if (!w.listed) {
        w.listed = true
        this.held.push(w)
      }
      if (w.windowMs > 0) this.hub.windowed(this, w.windowMs)
      else if (this.busyMs > 0) this.hub.busy(this)
      else this.hub.pending.add(this)
      return
    }
    p.last = rev
    p.parts.push(events)
    p.events += events.length
    p.bytes += bytes
    // A busy window counts the batches it holds (WindowGroup.batches): this batch added to a held message.
    if (w.windowMs === 0 && this.busyMs > 0) this.hub.busy(this)
  }

  /** Watchers of this stream with a coalesced message waiting, in the order their first event came. */
  private coalesced: Watcher[] = []
  /**
   * Watchers with a coalescing window and a message held (until their window group is due, WatchHub.windowed). Apart
   * from `coalesced`: another watcher's message does not send them (a window delays this watcher's events, by its
   * client's choice; each watcher's own messages stay in order), a progress answer, a cancel or a compaction does.
   */
  private held: Watcher[] = []

  /** Sends (or queues, when congested) w's coalesced message. */
  private sendPend(w: Watcher): void {
    const p = w.pend
    if (p === undefined) return
    w.pend = undefined
    if (!this.blocked && w.queue.length === 0) {
      const events = p.parts.length === 1 ? p.parts[0]! : this.hub.joined(w.shape, p.parts)
      this.sendEvents(w, p.last, events)
    } else this.enqueue(w, p.first, p.last, p.parts, p.events, p.bytes)
  }

  /**
   * @internal The apply batch ended (`batchOnly`: the windowed watchers' messages wait for their window group) or
   * something must not be coalesced across: sends the waiting messages.
   */
  flushCoalesced(batchOnly = false): void {
    if (this.coalesced.length > 0) {
      const ws = this.coalesced
      this.coalesced = []
      for (const w of ws) if (this.watchers.get(w.id) === w) this.sendPend(w)
    }
    if (!batchOnly) this.flushHeld(0)
  }

  /** @internal Sends the held messages of the watchers with window `ms` (0: all of them; -1: the busy window's). */
  flushHeld(ms: number): void {
    if (this.held.length === 0) return
    const ws = this.held
    this.held = []
    for (const w of ws) {
      const mine = this.watchers.get(w.id) === w && w.pend !== undefined
      if (mine && ms !== 0 && (w.windowMs > 0 ? w.windowMs : -1) !== ms) {
        this.held.push(w)
        continue
      }
      w.listed = false
      if (mine) this.sendPend(w)
    }
  }

  /**
   * Queues w's events of revisions firstRev..lastRev (`parts`: one Event[] per revision) behind a congested
   * transport, merged into w's last queued message while that stays within watchBatchRevisionsMax revisions and
   * watchCoalesceBytesMax bytes (a lagging watcher gets what it missed in one message, as etcd's victims do); past
   * the queue limits the queue is dropped and w catches up from `firstRev` (or its queue's first) later.
   */
  private enqueue(
    w: Watcher,
    firstRev: number,
    lastRev: number,
    parts: Event[][],
    events: number,
    bytes: number,
  ): void {
    const c = this.hub.config
    if (
      w.queuedEvents + events > c.watcherQueueEventsMax ||
      this.queuedBytes + bytes > c.watchStreamQueueBytesMax ||
      this.hub.queuedBytes + bytes > c.watchQueueBytesMax
    ) {
      // Overflow: forget the queue and catch up from history later, starting at its first revision (etcd's victims
      // and unsynced group). What stays in memory is the watcher's position, not its events.
      w.nextRev = w.queue[0]?.rev ?? firstRev
      this.dropQueue(w)
      w.synced = false
      this.behind.add(w)
      return
    }
    this.behind.add(w)
    const tail = w.queue[w.queue.length - 1]
    if (
      tail !== undefined &&
      tail.parts.length + parts.length <= c.watchBatchRevisionsMax &&
      tail.bytes + bytes <= c.watchCoalesceBytesMax
    ) {
      // The queue holds consecutive revisions of this watcher only (live() and sendPend in revision order): the
      // merged message is what one message per revision would have carried, in order, each revision whole.
      tail.last = lastRev
      for (const part of parts) tail.parts.push(part)
      tail.events += events
      tail.bytes += bytes
    } else w.queue.push({ rev: firstRev, last: lastRev, parts, events, bytes }) // parts: a fresh array, or a dropped pend's
    w.queuedEvents += events
    this.queuedBytes += bytes
    this.hub.queuedBytes += bytes
  }

  /** Bytes of events queued on this stream's watchers (bounded by watchStreamQueueBytesMax). */
  queuedBytes = 0

  private dropQueue(w: Watcher): void {
    let bytes = 0
    for (const q of w.queue) bytes += q.bytes
    this.queuedBytes -= bytes
    this.hub.queuedBytes -= bytes
    w.queue.length = 0
    w.queuedEvents = 0
  }

  /** @internal Sends progress to synced watchers that asked for progress_notify and have nothing pending. */
  notifyProgress(rev: number): void {
    for (const w of this.watchers.values()) {
      if ((this.blocked && !this.holding) || this.closed) return
      // A watcher whose window holds events gets them (header: their last revision) soon, not a progress before them.
      if (w.progressNotify && w.synced && w.queue.length === 0 && w.pend === undefined) {
        this.deliver(watchResponse({ header: header(rev), watch_id: w.id }))
      }
    }
  }

  /** @internal After a snapshot restore every watcher re-reads history from where it was. */
  resync(): void {
    this.flushCoalesced()
    for (const w of this.watchers.values()) {
      w.synced = false
      this.behind.add(w)
    }
    if (!this.blocked) this.pump()
  }

  /**
   * Sends w's queued messages, as far as the turn's replay budget goes. A message whose events another watcher of
   * the shape was just sent (the same revisions: WatchHub.queuedJoin) costs a fraction of them, as a shared catch-up
   * batch does: the transport encodes that Event[] once.
   */
  private flush(w: Watcher): void {
    const hub = this.hub
    while (w.queue.length > 0 && !this.blocked && !this.closed) {
      const q = w.queue[0]!
      const join = hub.queuedJoin(w.shape, q.parts)
      const cost = join.taken ? Math.ceil(q.events / sharedBatchCostDivisor) : q.events
      if (!hub.fits(cost)) return
      join.taken = true
      w.queue.shift()
      w.queuedEvents -= q.events
      this.queuedBytes -= q.bytes
      hub.queuedBytes -= q.bytes
      hub.spend(cost)
      this.sendEvents(w, q.last, join.events)
    }
  }

  /**
   * Replays history into w until it is synced, the sink is congested or the turn's replay budget is spent: whole
   * revisions, up to watchBatchRevisionsMax per message, header revision = current revision (as etcd's syncWatchers).
   * Puts applied meanwhile are not sent live to an unsynced watcher (WatchHub.notify skips it): it reads them here,
   * and is synced once it has read the current revision, so none is lost or sent twice across the switch.
   */
  private catchUp(w: Watcher, once = false): void {
    const hub = this.hub
    const history = hub.history
    while (!w.synced && !this.blocked && !this.closed && this.watchers.get(w.id) === w) {
      const compactRev = history.compactRevision
      if (w.nextRev < compactRev || w.nextRev < 0) {
        // etcd: the history this watcher needs is gone; cancel with compact_revision, header without revision.
        this.remove(w)
        this.compactedIds.add(w.id)
        const compacted = etcdCompactRevision(history)
        this.deliver(
          watchResponse({
            header: header(0),
            watch_id: w.id,
            // etcd's sendLoop: canceled = compact_revision != 0, so after a compaction at revision 0 a negative
            // start_revision gets a bare message (no revision, not canceled) and nothing more (diff seed 9514).
            canceled: compacted !== 0,
            compact_revision: compacted,
          }),
        )
        return
      }
      const current = history.revision
      if (w.nextRev > current) {
        w.synced = true
        if (!w.indexed) hub.index(w)
        return
      }
      const batch = hub.catchUpBatch(w, hub.replayLeft)
      if (batch === undefined) return
      w.nextRev = batch.nextRev
      hub.spend(batch.cost)
      const events = batch.events
      if (events.length > 0) this.sendEvents(w, current, events)
      if (once && (events.length > 0 || w.nextRev > current)) {
        // One message per sync tick; synced if it read the current revision.
        if (w.nextRev > current && this.watchers.get(w.id) === w) {
          w.synced = true
          if (!w.indexed) hub.index(w)
        }
        return
      }
    }
  }

  /**
   * Sends w's events of earlier revisions (a held, queued or caught-up message; live events go at once and are never
   * at or below the compact revision). etcd fills prev_kv when it sends (v3rpc/watch.go sendLoop, a range at
   * mod_revision - 1): one compare here, and only a message that waited across a compaction is rewritten.
   */
  private sendEvents(w: Watcher, rev: number, events: Event[]): void {
    if (w.prevKv && events.length > 0 && events[0]!.kv.mod_revision <= this.hub.history.compactRevision) {
      events = withoutCompactedPrevKv(events, this.hub.history.compactRevision)
    }
    this.deliver(watchResponse({ header: header(rev), watch_id: w.id, events }))
  }

  private remove(w: Watcher): void {
    if (this.watchers.get(w.id) !== w) return
    w.pend = undefined
    this.dropQueue(w)
    this.behind.delete(w)
    this.watchers.delete(w.id)
    this.hub.delete(w)
  }

  private deliver(resp: WatchResponse): void {
    if (this.closed) return
    // Anything else said on the stream (created, canceled, progress, catch-up) comes after the batch's events so far:
    // a message is never coalesced across it.
    if (this.coalesced.length > 0) {
      this.flushCoalesced(true)
      if (this.closed) return
    }
    let ok: boolean
    try {
      ok = this.sink.send(resp)
    } catch {
      // A broken sink must not break the apply loop that notified it.
      this.close()
      return
    }
    if (!ok) {
      this.blocked = true
      this.holding = false
      this.backedUpSinceSend = true
    }
  }
}

/** The watchers with one coalescing window (WatchHub.windowed): the streams holding their messages. */
interface WindowGroup {
  ms: number
  /** When the group's messages were last sent (WatchHub.now). */
  lastSent: number
  timer: boolean
  streams: Set<WatchStream>
  /** A stream's busy window (WatchStream.busyGroup): its held messages are those of watchers without a window. */
  busy?: boolean
  /** A busy window: messages its stream sent since lastSent (held past watchBusyMessagesMax). */
  sent?: number
  /** A busy window: its stream. */
  stream?: WatchStream
  /**
   * A busy window: its current length in ms, from `ms` (the stream's base window) doubling each time a window ends
   * holding the events of two or more apply batches (a stream busy window after window), up to watchBusyWindowMaxMs;
   * halved (not under `ms`) when a window ends holding one batch's; back to `ms` when the stream is found idle (its
   * window over at a batch's end).
   */
  cur?: number
  /** A busy window: the apply batches (or lone writes) whose events it holds since its last send. */
  batches?: number
  /** A busy window: a message was held since the last batch end (WatchHub.busy). */
  fresh?: boolean
}

/** A create's edgecd_coalesce_ms as a window: 0 when absent or not positive, at most watchCoalesceMsMax. */
function coalesceWindowMs(ms: number | undefined): number {
  if (ms === undefined || !(ms > 0)) return 0
  return Math.min(watchCoalesceMsMax, Math.ceil(ms))
}

/**
 * The watchers of one range (a single key or a range). A range belongs to exactly one group, so the watchers of a
 * group with the same filters are one shape (Watcher.shape), and a watcher is reached through its group only.
 */
interface WatchGroup {
  readonly range: KeyRange
  readonly watchers: Set<Watcher>
  /** The WatchHub.notify call that last hit this group (a txn's changes may hit a group more than once). */
  mark: number
}

/**
 * Every watcher of the member, indexed for notification: single keys in a map, ranges (prefixes, from-key, arbitrary
 * [start, end)) grouped by range in an interval index (RangeIndex: O(log n + matches) per changed key, n distinct
 * ranges). Prefixes were looked up in a map once per distinct prefix length present: as cheap as the index with one
 * length, dearer from two or three on (bench/watch-put-micro.ts `--shapes prefixes,lengths:4`), and a member whose
 * clients watch prefixes of many depths (Kubernetes' /registry/<resource>/ ...) paid one lookup per depth per put.
 */
export class WatchHub {
  private readonly byKey = new Map<string, WatchGroup>()
  /** The range groups, by range. */
  private readonly ranged = new Map<string, WatchGroup>()
  /** The groups of `ranged` by interval, for the lookup in notify. */
  private readonly rangedIndex = new RangeIndex<WatchGroup>()
  /** Numbers the notify calls (WatchGroup.mark). */
  private notifyMark = 0
  /** The groups the current notify hit, in order (filled by the index lookups through hitGroup). */
  private hits: WatchGroup[] = []
  /** Adds a group to `hits` once per notify call; one function for every lookup (no closure per call). */
  private readonly hitGroup = (g: WatchGroup): void => {
    if (g.mark === this.notifyMark) return
    g.mark = this.notifyMark
    this.hits.push(g)
  }
  private readonly streams = new Set<WatchStream>()
  private count = 0
  /** Bytes of events queued on congested streams, all together (bounded by watchQueueBytesMax). */
  queuedBytes = 0
  /**
   * Runs the next replay turn (replayTurn) later. A macrotask, so that requests, writes and other streams go between;
   * the member sets it to its clock's setTimeout (virtual time in test/sim/member/), tests may replace it.
   */
  defer: (fn: () => void) => void = (fn) => {
    setTimeout(fn, 0)
  }

  constructor(
    readonly config: KvConfig,
    readonly history: WatchHistory,
  ) {
    this.replayLeft = config.watchPumpEventsMax
  }

  // ---------------------------------------------------------------- replay turns (catch-up and queue flushes)

  /**
   * What the streams may still replay (queued events sent, history caught up) before the next replay turn: events,
   * or revisions read while catching up when that is more (a watcher on one key reads every revision to find its
   * events). Every replay (a create with a start_revision in the past, a stream that drained, a snapshot restore)
   * spends from it; it is refilled to watchPumpEventsMax by the next replay turn, a later macrotask, so however many
   * watchers are created or resumed between two turns, the member replays at most that much before requests, writes
   * and timers get their go (etcd: syncWatchers every 100 ms, at most 512 watchers of 1,000 revisions each).
   */
  replayLeft: number
  private replayTurnScheduled = false
  /** Streams whose replay the budget stopped, in the order they began to wait. */
  private readonly replayWaiting = new Set<WatchStream>()

  /**
   * @internal Whether a replay of n events may go now: it fits in what is left, or the budget is whole (a message or
   * revision larger than all of it goes alone; a revision is never split).
   */
  fits(n: number): boolean {
    return n <= this.replayLeft || this.replayLeft >= this.config.watchPumpEventsMax
  }

  /** @internal Spends from the replay budget; the next replay turn refills it. */
  spend(n: number): void {
    this.replayLeft -= n
    this.scheduleReplayTurn()
  }

  /** @internal s is still behind and the budget is spent: it goes on in a later replay turn. */
  wait(s: WatchStream): void {
    this.replayWaiting.add(s)
    this.scheduleReplayTurn()
  }

  private scheduleReplayTurn(): void {
    if (this.replayTurnScheduled) return
    this.replayTurnScheduled = true
    this.defer(() => this.replayTurn())
  }

  /** Refills the budget and lets the waiting streams go on, in turn; those it does not reach wait first next time. */
  private replayTurn(): void {
    this.replayTurnScheduled = false
    this.replayLeft = this.config.watchPumpEventsMax
    if (this.queuedJoins.size > 0) this.queuedJoins = new Map()
    if (this.replayWaiting.size === 0) return
    const streams = [...this.replayWaiting]
    this.replayWaiting.clear()
    let i = 0
    for (; i < streams.length && this.replayLeft > 0; i++) streams[i]!.continueReplay()
    if (i === streams.length) return
    // Round robin: the streams not reached go before those that ran out again in this turn.
    const again = [...this.replayWaiting]
    this.replayWaiting.clear()
    for (; i < streams.length; i++) this.replayWaiting.add(streams[i]!)
    for (const s of again) this.replayWaiting.add(s)
    this.scheduleReplayTurn()
  }

  /** @internal Nodes the range index has looked at, all lookups together: a put's matching cost, for tests. */
  get rangeIndexVisits(): number {
    return this.rangedIndex.visits
  }

  /**
   * @internal What the hub holds for its watchers and streams: all 0 once every stream is closed (a member that served
   * watch rows must not carry them into later ones, issue 17).
   */
  get held(): { keys: number; ranges: number; rangeIndex: number; streams: number; pending: number; waiting: number } {
    return {
      keys: this.byKey.size,
      ranges: this.ranged.size,
      rangeIndex: this.rangedIndex.size,
      streams: this.streams.size,
      pending: this.pending.size,
      waiting: this.replayWaiting.size,
    }
  }

  /** Open watchers across all streams. */
  get watcherCount(): number {
    return this.count
  }

  // ---------------------------------------------------------------- apply batches (delivery side)

  /** Nesting depth of beginBatch; > 0 while the member applies one Ready's committed entries. */
  private batchDepth = 0
  /** @internal Streams with a coalesced message waiting for the end of the batch. */
  readonly pending = new Set<WatchStream>()
  /** Concatenations of one batch by shape, so that watchers of a shape share one Event[] (encoded once). */
  private joins = new Map<string, { parts: Event[][]; events: Event[] }[]>()

  /** @internal Whether a synced watcher's events wait for the end of the batch (see beginBatch). */
  get batching(): boolean {
    return this.batchDepth > 0
  }

  /**
   * The member applies several revisions at once (one Ready's committed entries): until endBatch, a synced watcher's
   * events are held and then sent as ONE WatchResponse with every revision it got (header.revision = the last), at
   * most watchBatchRevisionsMax revisions and watchCoalesceBytesMax bytes of events per message. Nothing is coalesced
   * across another message on the stream (created, canceled, progress, catch-up), a compaction or a snapshot restore
   * (flush). Outside a batch (a lone write, tests) every revision is its own message, as before.
   */
  beginBatch(): void {
    this.batchDepth++
  }

  /**
   * Ends a batch: every coalesced message is sent (or queued behind a congested transport), but those of watchers
   * with a coalescing window, which wait for their window group (see windowed).
   */
  endBatch(): void {
    if (this.batchDepth > 0) this.batchDepth--
    if (this.batchDepth === 0) this.flushBatch()
  }

  private flushBatch(): void {
    if (this.pending.size > 0) {
      const streams = [...this.pending]
      this.pending.clear()
      for (const s of streams) s.endBatch()
    }
    for (const g of this.windows.values()) if (g.streams.size > 0) this.windowDue(g)
    this.busyDue()
    if (this.joins.size > 0 && this.batchDepth === 0) this.joins = new Map()
  }

  /** Sends every coalesced message now, windowed ones too (before a compaction and a snapshot restore). */
  flush(): void {
    if (this.pending.size > 0) {
      const streams = [...this.pending]
      this.pending.clear()
      for (const s of streams) s.flushCoalesced()
    }
    for (const g of this.windows.values()) if (g.streams.size > 0) this.flushWindow(g)
    for (const g of [...this.busyHeld]) this.flushWindow(g)
    if (this.joins.size > 0) this.joins = new Map()
  }

  // ---------------------------------------------------------------- coalescing windows (edgecd_coalesce_ms)

  /**
   * Monotonic ms and a one-shot timer for the coalescing windows; the member sets them to its clock (virtual time in
   * test/sim/member/), tests may replace them.
   */
  now: () => number = () => performance.now()
  setTimer: (fn: () => void, ms: number) => void = (fn, ms) => {
    setTimeout(fn, ms)
  }

  /**
   * Watchers that asked for a coalescing window of W ms form one group per W: the group's held messages all go out
   * together, at most once per W (throttled: at the end of the first batch after W ms of quiet at once, else when
   * the window since the last send ends). All of a group's watchers of one shape thus got the same revisions and
   * share one Event[] (joined), and their transports one encoded text and frame (issue 13: 1,000 replicas of one
   * range cost one encode per window, and one frame per replica per window instead of per apply batch).
   */
  private readonly windows = new Map<number, WindowGroup>()

  /** @internal s holds a message of a watcher with window `ms`. */
  windowed(s: WatchStream, ms: number): void {
    let g = this.windows.get(ms)
    if (g === undefined) {
      g = { ms, lastSent: Number.NEGATIVE_INFINITY, timer: false, streams: new Set() }
      this.windows.set(ms, g)
    }
    g.streams.add(s)
    // A lone write outside an apply batch (tests, a member that does not batch): decided when its notify ends, as
    // at a batch's end, so that every watcher of the group got the revision first.
    if (this.batchDepth === 0) this.windowCheck = true
  }

  /** A lone write held windowed messages: notify decides when they go (windowDue) once every watcher has them. */
  private windowCheck = false

  /** The busy windows (WatchStream.busyGroup) holding messages: their streams' own groups. */
  private readonly busyHeld = new Set<WindowGroup>()

  /** @internal s holds a message of a watcher in its busy window (WatchStream.busyMs). */
  busy(s: WatchStream): void {
    const g = s.busyGroup!
    g.streams.add(s)
    g.fresh = true
    this.busyHeld.add(g)
    if (this.batchDepth === 0) this.windowCheck = true
  }

  /**
   * At a batch's end: each busy window's held messages go now if its stream is idle (its window since the last send
   * is over) or sent at most watchBusyMessagesMax messages in it so far, these included (etcd's send channel has
   * room); else they wait for the window's end (etcd's victims).
   */
  private busyDue(): void {
    if (this.busyHeld.size === 0) return
    for (const g of [...this.busyHeld]) {
      if (g.fresh) {
        g.fresh = false
        g.batches!++
      }
      // More watchers with a message held than etcd's send channel holds: they are paced out (WatchStream.paceOut).
      if (g.stream!.paceOutHeld()) {
        g.streams.clear()
        this.busyHeld.delete(g)
        continue
      }
      if (g.timer) continue
      const now = this.now()
      if (now - g.lastSent >= g.cur!) {
        // Idle for its window: at once, and its next window is the base one again.
        g.cur = g.ms
        this.flushWindow(g)
        continue
      }
      const n = g.stream!.heldCount
      if (g.sent! + n > this.config.watchBusyMessagesMax) {
        this.windowDue(g)
        continue
      }
      g.sent! += n
      g.streams.clear()
      this.busyHeld.delete(g)
      g.stream!.flushHeld(-1)
    }
  }

  /**
   * Sends g's held messages if its window since the last send is over, else makes sure its timer runs. A busy window
   * that ends with messages held doubles (WindowGroup.cur, up to watchBusyWindowMaxMs).
   */
  private windowDue(g: WindowGroup): void {
    const wait = g.lastSent + (g.cur ?? g.ms) - this.now()
    if (wait <= 0) {
      if (g.busy) {
        const max = Math.max(g.ms, this.config.watchBusyWindowMaxMs)
        // Longer only while the transport is backed up (session 10): a call that keeps up stays near W.
        g.cur =
          g.batches! >= 2 && g.stream!.backedUpSinceSend
            ? Math.min(max, g.cur! * 2)
            : Math.max(g.ms, Math.floor(g.cur! / 2))
      }
      this.flushWindow(g)
      return
    }
    if (g.timer) return
    g.timer = true
    this.setTimer(() => {
      g.timer = false
      if (g.streams.size > 0) this.windowDue(g)
    }, Math.ceil(wait))
  }

  private flushWindow(g: WindowGroup): void {
    g.lastSent = this.now()
    const streams = [...g.streams]
    g.streams.clear()
    if (g.busy) {
      this.busyHeld.delete(g)
      g.stream!.backedUpSinceSend = false
      g.sent = g.stream!.heldCount
      g.batches = 0
      g.fresh = false
    }
    for (const s of streams) s.flushHeld(g.busy ? -1 : g.ms)
    // The joins of this send are not the batch's (a batch in progress keeps its own, shared with what follows).
    if (this.batchDepth === 0 && this.joins.size > 0) this.joins = new Map()
  }

  /** Catch-up batches by position and shape, valid while the store stays at one revision and compaction. */
  private catchUps = new Map<string, CatchUpBatch>()
  private catchUpsAt = -1
  private catchUpsCompacted = -1
  private catchUpsEvents = 0

  /**
   * @internal The next catch-up batch of w (up to watchBatchRevisionsMax revisions from w.nextRev) if it fits in
   * `budget` (what is left of the turn's replay budget); undefined when it must wait for the next turn. Watchers of
   * one shape at one position read the same history, on any stream: the batch is computed once and its Event[]
   * shared, so a transport encodes it once (1,000 replicas that fell behind together cost one encode per batch).
   */
  catchUpBatch(w: Watcher, budget: number): { events: Event[]; nextRev: number; cost: number } | undefined {
    if (budget <= 0) return undefined
    const h = this.history
    // A full batch (watchBatchRevisionsMax revisions) is what a read from its position gives at any later revision:
    // kept across new revisions (session 10: with puts between replay turns, watchers far behind re-read and
    // re-encoded their batch every turn), until a compaction, a restore, or the cache's bounds (entries, events held).
    // A shorter one read at an older revision is read again.
    if (
      h.compactRevision !== this.catchUpsCompacted ||
      h.revision < this.catchUpsAt ||
      this.catchUps.size > 4096 ||
      this.catchUpsEvents > this.config.watchPumpEventsMax * 32
    ) {
      this.catchUps = new Map()
      this.catchUpsEvents = 0
      this.catchUpsCompacted = h.compactRevision
    }
    this.catchUpsAt = h.revision
    const key = `${w.nextRev} ${w.shape}`
    let b = this.catchUps.get(key)
    if (b !== undefined && b.at !== h.revision && b.revs.length < this.config.watchBatchRevisionsMax) b = undefined
    // A batch another watcher already got: its Event[] is encoded once, whoever gets it, so it costs a fraction.
    const share = b?.taken === true ? sharedBatchCostDivisor : 1
    if (b === undefined) {
      const batch = h.changesFrom(w.nextRev, this.config.watchBatchRevisionsMax)
      const events: Event[] = []
      const revs: number[] = []
      const ends: number[] = []
      for (const { rev, changes } of batch) {
        for (const e of w.events(changes)) events.push(e)
        revs.push(rev)
        ends.push(events.length)
      }
      b = {
        events,
        revs,
        ends,
        nextRev: revs.length > 0 ? revs[revs.length - 1]! + 1 : h.revision + 1,
        taken: false,
        at: h.revision,
      }
      this.catchUps.set(key, b)
      this.catchUpsEvents += events.length + revs.length
      // Kept to be shared by the watchers of its shape at its position (on any stream, over later turns).
      if (events.length > 0) sharedEvents.add(events)
    }
    const n = b.revs.length
    if (n === 0) return { events: b.events, nextRev: b.nextRev, cost: 1 }
    // The first k revisions cost their events, or k when that is more (reading history is work too).
    const cost = (k: number) => Math.max(b.ends[k - 1]!, k)
    const whole = Math.ceil(cost(n) / share)
    if (whole <= budget) {
      b.taken = true
      return { events: b.events, nextRev: b.nextRev, cost: whole }
    }
    // A batch that does not fit waits for the next turn, whole, so that watchers of its shape at its position still
    // share it (one encode); only one larger than a whole budget is cut, at the last revision that fits.
    if (budget < this.config.watchPumpEventsMax) return undefined
    let lo = 0
    let hi = n
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1
      if (cost(mid) <= budget) lo = mid
      else hi = mid
    }
    // A first revision larger than the whole budget goes alone (a revision is never split).
    if (lo === 0) lo = 1
    return { events: b.events.slice(0, b.ends[lo - 1]), nextRev: b.revs[lo - 1]! + 1, cost: cost(lo) }
  }

  /** @internal One Event[] for the parts of a coalesced message, shared by the watchers of a shape that got the same. */
  joined(shape: string, parts: Event[][]): Event[] {
    let list = this.joins.get(shape)
    if (list === undefined) {
      list = []
      this.joins.set(shape, list)
    }
    outer: for (const j of list) {
      if (j.parts.length !== parts.length) continue
      for (let i = 0; i < parts.length; i++) if (j.parts[i] !== parts[i]) continue outer
      // A second watcher of the shape: its message may be encoded after others (the first one's was not kept).
      sharedEvents.add(j.events)
      return j.events
    }
    const events = parts.flat()
    // Watchers of one shape got the same revisions but a few exceptions (a start inside the batch): a short list.
    if (list.length < 16) list.push({ parts, events })
    return events
  }

  /**
   * Joins of queued messages sent since the last replay turn, by shape: watchers of a shape that fell behind together
   * have the same revisions queued (the same per-revision Event[]s), and get one Event[] for them, encoded once.
   * Emptied by the next replay turn (which every flush schedules), so it holds nothing for long.
   */
  private queuedJoins = new Map<string, QueuedJoin[]>()

  /** @internal One Event[] for a queued message's parts, shared by the watchers of a shape that queued the same. */
  queuedJoin(shape: string, parts: Event[][]): QueuedJoin {
    let list = this.queuedJoins.get(shape)
    if (list === undefined) {
      list = []
      this.queuedJoins.set(shape, list)
    }
    outer: for (const j of list) {
      const jp = j.parts
      if (jp.length !== parts.length || jp[0] !== parts[0] || jp[jp.length - 1] !== parts[parts.length - 1]) continue
      for (let i = 1; i < parts.length - 1; i++) if (jp[i] !== parts[i]) continue outer
      // A second watcher of the shape: its text is kept for the others (isSharedEvents).
      if (j.events.length > 0) sharedEvents.add(j.events)
      return j
    }
    // A copy: the queued message may still grow (merged into) if it is not sent now.
    const j: QueuedJoin = { parts: parts.slice(), events: parts.length === 1 ? parts[0]! : parts.flat(), taken: false }
    // Watchers of a shape fell behind at a few points (before or after the message that found the transport full).
    if (list.length < 16) list.push(j)
    return j
  }

  /**
   * A new stream whose messages go to sink. `busyMs`: its busy window (WatchStream.busyMs; 0, the default: each apply
   * batch's events go out at its end, as before).
   */
  openStream(sink: WatchSink, busyMs = 0): WatchStream {
    const s = new WatchStream(this, sink, Math.max(0, Math.min(watchCoalesceMsMax, Math.ceil(busyMs))))
    this.streams.add(s)
    return s
  }

  /** etcd's progress_notify tick (every 10 minutes in etcd): the current revision to every idle synced watcher asking. */
  progressNotify(): void {
    const rev = this.history.revision
    for (const s of this.streams) s.notifyProgress(rev)
  }

  /**
   * @internal Called by the store after each revision is applied, with all its changes (one txn = one message).
   * Cost per change: one map lookup for single-key watchers and one interval-index lookup for range watchers
   * (prefixes, from-key, arbitrary: O(log n) in the number of distinct ranges), then O(matches). The events of one
   * watch shape (range and filters) are computed once and the same array is shared by every watcher of that shape,
   * which lets a sink encode them once (issue 17: one encode per shape, not per watcher). Per call it allocates only
   * the events and, when something matched, the list of matches: no closure, map or set per call.
   */
  notify(rev: number, changes: readonly Change[]): void {
    if (this.count === 0) return
    // Matching fills `hits` and empties it before any watcher is told (live), so a sink may call back in.
    const hits = this.hits
    this.notifyMark++
    const mark = this.notifyMark
    if (this.rangedIndex.size > 0) {
      for (let i = 0; i < changes.length; i++) this.rangedIndex.stab(changes[i]!.key, this.hitGroup)
    }
    for (let i = 0; i < changes.length; i++) {
      const g = this.byKey.get(changes[i]!.key)
      if (g !== undefined && g.mark !== mark) {
        g.mark = mark
        hits.push(g)
      }
    }
    // A watcher no change touches keeps its nextRev, as single-key watchers always did: it only matters once the
    // watcher is unsynced, and live() sets it then.
    if (hits.length === 0) {
      this.checkWindows()
      return
    }
    // `hits` was filled and is read below; the next call (maybe from a sink, through live) starts a new one.
    this.hits = []
    let matched: Watcher[] | undefined
    let evsOf: Event[][] | undefined
    for (let i = 0; i < hits.length; i++) {
      // The watchers of a group differ only in their filters: one Event[] per filter combination (shape).
      let bits0 = -1
      let evs0: Event[] | undefined
      let shared0 = false
      let more: (Event[] | undefined)[] | undefined
      for (const w of hits[i]!.watchers) {
        // A watcher created with a future start_revision skips the revisions before it.
        if (!w.synced || rev < w.nextRev) continue
        let evs: Event[] | undefined
        if (w.filterBits === bits0) {
          evs = evs0
          if (!shared0 && evs!.length > 0) {
            shared0 = true
            sharedEvents.add(evs!)
          }
        } else if (bits0 === -1) {
          bits0 = w.filterBits
          evs = evs0 = w.events(changes)
        } else {
          more ??= []
          evs = more[w.filterBits]
          if (evs === undefined) more[w.filterBits] = evs = w.events(changes)
          else if (evs.length > 0) sharedEvents.add(evs)
        }
        if (evs!.length > 0) {
          if (matched === undefined) {
            matched = []
            evsOf = []
          }
          matched.push(w)
          evsOf!.push(evs!)
        } else w.nextRev = rev + 1
      }
    }
    if (matched !== undefined) {
      for (let i = 0; i < matched.length; i++) matched[i]!.stream.live(matched[i]!, rev, evsOf![i]!)
    }
    this.checkWindows()
  }

  /** A lone write held windowed messages (see windowed): decided once every watcher of the revision has them. */
  private checkWindows(): void {
    if (!this.windowCheck) return
    this.windowCheck = false
    if (this.batchDepth === 0) {
      for (const g of this.windows.values()) if (g.streams.size > 0) this.windowDue(g)
      this.busyDue()
    }
  }

  /** @internal After the store was replaced by a snapshot. */
  resync(): void {
    // The store was replaced: batches cached for its old history go.
    this.catchUps = new Map()
    this.catchUpsEvents = 0
    this.catchUpsAt = -1
    for (const s of this.streams) s.resync()
  }

  /** @internal */
  forget(s: WatchStream): void {
    this.streams.delete(s)
    this.pending.delete(s)
    for (const g of this.windows.values()) g.streams.delete(s)
    if (s.busyGroup !== undefined) {
      s.busyGroup.streams.clear()
      this.busyHeld.delete(s.busyGroup)
    }
    this.replayWaiting.delete(s)
  }

  /** @internal */
  add(w: Watcher): void {
    this.count++
    this.index(w)
  }

  /** @internal Takes a paced-out watcher out of the notify index (WatchStream.paceOut); index() puts it back. */
  unindex(w: Watcher): void {
    w.indexed = false
    const r = w.range
    const k = r.single ? r.start : rangeKey(r)
    const index = r.single ? this.byKey : this.ranged
    const g = index.get(k)
    if (g === undefined || !g.watchers.delete(w) || g.watchers.size > 0) return
    index.delete(k)
    if (!r.single) this.rangedIndex.delete(r.start, r.end)
  }

  /** @internal Puts w in the notify index. */
  index(w: Watcher): void {
    w.indexed = true
    const r = w.range
    const k = r.single ? r.start : rangeKey(r)
    const index = r.single ? this.byKey : this.ranged
    let g = index.get(k)
    if (g === undefined) {
      g = { range: r, watchers: new Set(), mark: 0 }
      index.set(k, g)
      if (!r.single) this.rangedIndex.add(r.start, r.end, g)
    }
    g.watchers.add(w)
  }

  /** @internal */
  delete(w: Watcher): void {
    this.count--
    if (w.indexed) this.unindex(w)
  }
}
