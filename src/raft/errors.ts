/**
 * Errors of the Raft core, typed with stable string codes so that `switch (err.code)` narrows (the jose style).
 * Operating errors (a proposal with no leader, a compacted index) are thrown as RaftError and handled by the caller;
 * broken invariants are `RaftAssertionError`s and mean the member must stop.
 */
export type RaftErrorCode =
  | 'ErrCompacted'
  | 'ErrUnavailable'
  | 'ErrSnapOutOfDate'
  | 'ErrSnapshotTemporarilyUnavailable'
  | 'ErrProposalDropped'
  | 'ErrStepLocalMsg'
  | 'ErrStepPeerNotFound'
  | 'ErrConfigInvalid'

const messages: Record<RaftErrorCode, string> = {
  ErrCompacted: 'requested index is unavailable due to compaction',
  ErrUnavailable: 'requested entry at index is unavailable',
  ErrSnapOutOfDate: 'requested index is older than the existing snapshot',
  ErrSnapshotTemporarilyUnavailable: 'snapshot is temporarily unavailable',
  ErrProposalDropped: 'raft proposal dropped',
  ErrStepLocalMsg: 'raft: cannot step raft local message',
  ErrStepPeerNotFound: 'raft: cannot step as peer not found',
  ErrConfigInvalid: 'raft: invalid configuration',
}

export class RaftError extends Error {
  readonly code: RaftErrorCode
  constructor(code: RaftErrorCode, detail?: string) {
    super(detail ? `${messages[code]}: ${detail}` : messages[code])
    this.name = 'RaftError'
    this.code = code
  }
}

/** A broken invariant: a bug or corrupted state. The member stops rather than risk acting on it. */
export class RaftAssertionError extends Error {
  constructor(message: string) {
    super(`raft: invariant violated: ${message}`)
    this.name = 'RaftAssertionError'
  }
}

export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new RaftAssertionError(message)
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code)
}
