/**
 * The record of a chaos run: every client operation with its invocation and completion times and its outcome, and
 * every watch response as it arrived. The linearizability checker (linearizability.ts) and the watch checker
 * (watch-checker.ts) read only this, so a history written to disk can be checked again offline.
 *
 * Outcomes follow Jepsen's vocabulary: `ok` (the operation took effect, with the result recorded), `fail` (it
 * certainly did not take effect: the request never reached a member, or the member refused it before proposing),
 * and `unknown` (a timeout or a broken connection: it may or may not have taken effect, at any time after its
 * invocation). An unknown write is never retried, because a retry could apply it twice.
 */

/** A put, a linearizable get, a compare-and-set txn on one key, or a txn that puts several keys at once. */
export type OpKind = 'put' | 'get' | 'cas' | 'mput'

export interface Op {
  /** Unique within a history. */
  id: number
  /** The client (one sequential process) that ran it; a client has at most one operation open at a time. */
  client: number
  f: OpKind
  key: string
  /** put/cas: the value written. Every value written in a run is unique, so a value names its write. */
  value?: string
  /** mput: further keys written by the same txn, with their values (`key`/`value` is the first pair). */
  more?: [string, string][]
  /** cas: compare the VALUE (the key must exist and hold expectValue) or the MOD revision (0 = key absent). */
  cmp?: 'value' | 'mod'
  expectValue?: string
  expectRev?: number
  /** Invocation time, ms on a monotonic clock shared by all clients. */
  call: number
  /** Completion time; absent when the outcome is unknown (the operation may take effect any time after `call`). */
  ret?: number
  status: 'ok' | 'fail' | 'unknown'
  /** ok put/mput/cas that wrote: the header revision, which is the new mod_revision of every key it wrote. */
  rev?: number
  /** ok cas: whether the compare held (the txn's `succeeded`). */
  succeeded?: boolean
  /** ok get: the value read (null: the key does not exist) and its mod_revision (0 when absent). */
  readValue?: string | null
  readRev?: number
  /** Index of the member the request went to. */
  member?: number
  error?: string
}

/** One event as a watcher saw it. */
export interface WatchEvent {
  key: string
  value: string
  type: 'PUT' | 'DELETE'
  modRevision: number
}

/** One response line/frame of a watch stream, reduced to what the checks need. */
export interface WatchResponse {
  /** Arrival time, same clock as Op.call. */
  at: number
  headerRevision: number
  created?: boolean
  canceled?: boolean
  /** A progress notification: no events, and the watcher has seen every event up to headerRevision. */
  progress?: boolean
  events: WatchEvent[]
}

/** One connection of a watcher: the revision it asked to start from and everything it received, in order. */
export interface WatchSession {
  member: number
  /** start_revision asked for (0: from the current revision + 1). */
  startRevision: number
  responses: WatchResponse[]
  /** Why the session ended (client-side timeout, socket closed, end of run). */
  end?: string
}

/** A watcher over the whole key prefix; it resumes on another member after a disconnect. */
export interface Watcher {
  id: number
  sessions: WatchSession[]
}

export interface History {
  seed: string
  prefix: string
  ops: Op[]
  watchers: Watcher[]
  /** The store's history of the prefix after healing, read back with range at each revision: key -> [rev, value]. */
  reference?: { finalRevision: number; events: WatchEvent[] }
  faults: { at: number; what: string }[]
}
