/**
 * Errors of the storage layer, typed with stable string codes so that `switch (err.code)` narrows (the jose style).
 *
 * The read side answers Raft with the Raft core's own errors (`RaftError` with `ErrCompacted`, `ErrUnavailable`,
 * `ErrSnapOutOfDate`), because the core tests for exactly those. Everything that is about the disk is a
 * `StorageError`: each message names the file (and the byte offset when there is one) so an operator can find it.
 */
export type StorageErrorCode =
  /** A record or file failed its checksum, or the log does not hang together. Refuse to start; never guess. */
  | 'ErrCorrupt'
  /** A file was written by another on-disk format version than this build reads. */
  | 'ErrVersion'
  /** The directory holds files that edgecd did not write; we will not touch them. */
  | 'ErrNotEdgecdDir'
  /** The directory (or the database) cannot be written: read-only mount, permissions, or opened `readOnly`. */
  | 'ErrReadOnly'
  /** Any other I/O failure. After a failed write or sync the storage refuses every later write (see FileStorage). */
  | 'ErrIO'
  /** The storage was closed. */
  | 'ErrClosed'
  /** Another process (or another open in this one) holds the data directory's lock. */
  | 'ErrLocked'

const messages: Record<StorageErrorCode, string> = {
  ErrCorrupt: 'storage: data is corrupt',
  ErrVersion: 'storage: unsupported on-disk format version',
  ErrNotEdgecdDir: 'storage: not an edgecd data directory',
  ErrReadOnly: 'storage: data directory is read-only',
  ErrIO: 'storage: I/O error',
  ErrClosed: 'storage: closed',
  ErrLocked: 'storage: data directory is in use',
}

/** A storage failure with a stable `code`; `message` says what, where (file, offset) and what to do. */
export class StorageError extends Error {
  readonly code: StorageErrorCode
  constructor(code: StorageErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${messages[code]}: ${detail}` : messages[code], options)
    this.name = 'StorageError'
    this.code = code
  }
}

/** True when err is a StorageError (with the given code, if one is given). */
export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  return err instanceof StorageError && (code === undefined || err.code === code)
}
