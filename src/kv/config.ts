/**
 * The KV store's limits, each named with its unit, with etcd's defaults, checked in one place (STYLE.md §6).
 */

/** Every limit of the MVCC store, lessor and watch hub. */
export interface KvConfig {
  /** Most ops in one txn: max(len(compare), len(success), len(failure)) above this is ErrTooManyOps (etcd --max-txn-ops). */
  maxTxnOps: number
  /** Most watchers open at once across all streams; past it a create is answered with ErrTooManyWatchers. */
  maxWatchers: number
  /** Most watchers open at once on one stream (one WebSocket, one POST /v3/watch, one gRPC Watch call); past it a create is answered with ErrTooManyWatchersPerStream. */
  maxWatchersPerStream: number
  /**
   * Events a watcher may have waiting while its stream is congested. When a write would pass it, the queue is dropped
   * and the watcher becomes unsynced: it catches up from history once the stream drains (etcd's unsynced group), so
   * memory stays bounded and writes never wait for a slow client.
   */
  watcherQueueEventsMax: number
  /**
   * Bytes of events (keys, values, prev values, plus 64 each) the watchers of one congested stream may have waiting.
   * Past it (or past watchQueueBytesMax for the member) a watcher that gets a new event drops its queue and becomes
   * unsynced, as with watcherQueueEventsMax: a stream whose client does not read costs its watchers' positions, not
   * the events.
   */
  watchStreamQueueBytesMax: number
  /** Bytes of events waiting on congested streams, all streams of the member together. */
  watchQueueBytesMax: number
  /** Most revisions replayed in one watch message while catching up (etcd's watchBatchMaxRevs), and coalesced into one. */
  watchBatchRevisionsMax: number
  /**
   * Most bytes of events (counted as for the queues) in one watch message that coalesces the revisions of one apply
   * batch (WatchHub.beginBatch); a revision past it starts the next message. 1 MiB: under gRPC's default 4 MiB
   * receive limit of a generic client.
   */
  watchCoalesceBytesMax: number
  /**
   * A stream with a busy window (WatchStream.busyMs) sends at once while it has sent at most this many messages in its
   * window so far (etcd's 128-slot send channel, chanBufLen: a stream that overflows it has its watchers become
   * victims, retried every 10 ms); past it, its next events are held until the window ends.
   */
  watchBusyMessagesMax: number
  /**
   * A stream whose busy window ended with events held (busy window after window) doubles its next window, up to this
   * many ms (etcd syncs its unsynced watchers every 100 ms, syncWatchersLoop); a stream whose window passes with
   * nothing held is back at its base window (--watch-batch-interval). An idle stream is never held.
   */
  watchBusyWindowMaxMs: number
  /**
   * Most events a stream replays (its watchers' queues and their catch-up from history) in one turn of the event loop
   * when its transport drains; the rest follows on a later turn, so a client that reads fast while thousands of its
   * watchers catch up does not hold every write back (etcd syncs at most 512 unsynced watchers per 100 ms round).
   */
  watchPumpEventsMax: number
  /**
   * How long a stream's watchers paced out by a busy apply batch (more than watchBusyMessagesMax of them with a
   * message at its end) wait before they are caught up from history (etcd's syncWatchersLoop, every 100 ms; session
   * 10, WatchStream.paceOut).
   */
  watchSyncIntervalMs: number
  /**
   * An apply batch that ends with messages waiting for more than this many of one stream's watchers paces them out
   * (WatchStream.paceOut): etcd's 128-slot send channel, overflowed by one batch whatever the client's speed.
   */
  watchPaceWatchersMin: number
  /** Paced-out watchers of a stream caught up per sync tick, one message each (etcd's maxWatchersPerSync, 512). */
  watchSyncWatchersMax: number
  /** The storage quota: a write that would take the estimated size past it raises the NOSPACE alarm (etcd --quota-backend-bytes). */
  quotaBackendBytes: number
  /** Shortest lease TTL granted; shorter requests get this (etcd: ceil(1.5 x election timeout) = 2 s). */
  minLeaseTtlSeconds: number
  /** Longest lease TTL accepted; longer is ErrLeaseTTLTooLarge (etcd's MaxLeaseTTL, 9e9 s). */
  maxLeaseTtlSeconds: number
  /** How often the leader checkpoints a lease's remaining TTL through Raft (etcd's default checkpoint interval, 5 min). */
  leaseCheckpointIntervalMs: number
  /** After the leader hands out an expired lease for revoking, it hands it out again only after this (etcd's expiredLeaseRetryInterval). */
  leaseRevokeRetryMs: number
}

/** etcd's defaults. */
export const defaultKvConfig: Readonly<KvConfig> = Object.freeze({
  maxTxnOps: 128,
  maxWatchers: 100_000,
  maxWatchersPerStream: 100_000,
  watcherQueueEventsMax: 1024,
  watchStreamQueueBytesMax: 4 * 1024 * 1024,
  watchQueueBytesMax: 64 * 1024 * 1024,
  watchBatchRevisionsMax: 1000,
  watchCoalesceBytesMax: 1024 * 1024,
  watchBusyMessagesMax: 128,
  watchBusyWindowMaxMs: 100,
  watchPumpEventsMax: 2048,
  watchSyncIntervalMs: 100,
  watchPaceWatchersMin: 128,
  watchSyncWatchersMax: 512,
  quotaBackendBytes: 2 * 1024 * 1024 * 1024,
  minLeaseTtlSeconds: 2,
  maxLeaseTtlSeconds: 9_000_000_000,
  leaseCheckpointIntervalMs: 5 * 60 * 1000,
  leaseRevokeRetryMs: 3000,
})

/** A KV configuration that cannot work; `field` names the offending option. */
export class KvConfigError extends Error {
  readonly code = 'ErrKvConfigInvalid'
  constructor(
    readonly field: keyof KvConfig,
    message: string,
  ) {
    super(`invalid kv config: ${message}`)
    this.name = 'KvConfigError'
  }
}

/** Fills in defaults and checks every limit; throws KvConfigError naming the first bad field. */
export function validateKvConfig(input: Partial<KvConfig> = {}): KvConfig {
  const c: KvConfig = { ...defaultKvConfig }
  for (const [k, v] of Object.entries(input)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v
  for (const field of Object.keys(defaultKvConfig) as (keyof KvConfig)[]) {
    const v = c[field] as unknown
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new KvConfigError(field, `${field} must be a positive integer, got ${String(v)}`)
    }
  }
  if (c.minLeaseTtlSeconds > c.maxLeaseTtlSeconds) {
    throw new KvConfigError('minLeaseTtlSeconds', 'minLeaseTtlSeconds must not exceed maxLeaseTtlSeconds')
  }
  return c
}
