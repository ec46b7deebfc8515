import { assert } from './errors.js'

/**
 * A bounded ring of the MsgApps in flight to one follower (their last index and their bytes): the pipelining
 * window. When it is full the leader waits for acknowledgements before sending more.
 */
export class Inflights {
  private start = 0
  private count = 0
  private bytes = 0
  private readonly indexes: number[]
  private readonly sizes: number[]

  constructor(
    private readonly maxMsgs: number,
    private readonly maxBytes: number,
  ) {
    this.indexes = new Array(maxMsgs).fill(0)
    this.sizes = new Array(maxMsgs).fill(0)
  }

  add(index: number, bytes: number): void {
    assert(!this.full(), 'cannot add into a full inflights')
    const next = (this.start + this.count) % this.maxMsgs
    this.indexes[next] = index
    this.sizes[next] = bytes
    this.count++
    this.bytes += bytes
  }

  /** Frees every message whose last index is <= to. */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.indexes[this.start]!) return
    let idx = this.start
    let i = 0
    for (; i < this.count; i++) {
      if (to < this.indexes[idx]!) break
      this.bytes -= this.sizes[idx]!
      idx = (idx + 1) % this.maxMsgs
    }
    this.count -= i
    this.start = this.count === 0 ? 0 : idx
    if (this.count === 0) this.bytes = 0
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!)
  }

  full(): boolean {
    return this.count === this.maxMsgs || (this.maxBytes > 0 && this.bytes >= this.maxBytes)
  }

  get length(): number {
    return this.count
  }

  reset(): void {
    this.start = 0
    this.count = 0
    this.bytes = 0
  }
}

export enum ProgressState {
  /** The leader does not know where the follower's log matches: one MsgApp at a time, probing backwards. */
  StateProbe = 0,
  /** The follower's log matches: MsgApps are pipelined up to the inflight window. */
  StateReplicate = 1,
  /** The follower needs a snapshot; nothing else is sent until it is applied or reported failed. */
  StateSnapshot = 2,
}

/** The leader's view of one follower (etcd-io/raft's tracker.Progress). */
export class Progress {
  match = 0
  next = 1
  state: ProgressState = ProgressState.StateProbe
  /** In StateSnapshot: the index of the snapshot being sent. */
  pendingSnapshot = 0
  /** Heard from within the current election timeout (check-quorum, and snapshots only go to active peers). */
  recentActive = false
  /** In StateProbe: a MsgApp was sent and we wait for its answer (or a heartbeat response) before the next. */
  probeSent = false
  /** Leader ticks spent in StateSnapshot, to give up on a snapshot whose message was lost. */
  snapshotTicks = 0
  readonly inflights: Inflights
  isLearner: boolean

  constructor(next: number, maxInflightMsgs: number, maxInflightBytes: number, isLearner: boolean) {
    this.next = next
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes)
    this.isLearner = isLearner
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false
    this.pendingSnapshot = 0
    this.snapshotTicks = 0
    this.state = state
    this.inflights.reset()
  }

  becomeProbe(): void {
    // After a snapshot, the follower has at least the snapshot: probe from there.
    if (this.state === ProgressState.StateSnapshot) {
      const ps = this.pendingSnapshot
      this.resetState(ProgressState.StateProbe)
      this.next = Math.max(this.match + 1, ps + 1)
    } else {
      this.resetState(ProgressState.StateProbe)
      this.next = this.match + 1
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.StateReplicate)
    this.next = this.match + 1
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.StateSnapshot)
    this.pendingSnapshot = snapshotIndex
  }

  /** A MsgAppResp acknowledged up to n. Returns whether match moved (a stale answer does not). */
  maybeUpdate(n: number): boolean {
    let updated = false
    if (this.match < n) {
      this.match = n
      updated = true
      this.probeSent = false
    }
    this.next = Math.max(this.next, n + 1)
    return updated
  }

  /**
   * A MsgApp at `rejected` was refused; `matchHint` is where the follower's log may match. Returns false when the
   * rejection is stale (an answer to an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.StateReplicate) {
      if (rejected <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1)
    this.probeSent = false
    return true
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.StateProbe:
        return this.probeSent
      case ProgressState.StateReplicate:
        return this.inflights.full()
      case ProgressState.StateSnapshot:
        return true
    }
  }
}
