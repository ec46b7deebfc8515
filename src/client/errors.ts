/**
 * Typed client errors. A server error keeps etcd's gRPC code and message exactly as the gateway answered them
 * (`{"error","message","code"}`); client-side failures get their own stable string codes so `switch (err.code)`
 * narrows, in the style of jose's error classes.
 */

import { etcdErrorMessage, GrpcCode } from '../protocol/errors.js'

export { GrpcCode }

/**
 * Why a call failed:
 * - `ERR_SERVER`: the server answered with an etcd error (see `grpcCode` and `message`).
 * - `ERR_UNKNOWN_OUTCOME`: a write may or may not have been applied (the connection broke or timed out after the
 *   request may have reached a server); it was deliberately not retried.
 * - `ERR_UNAVAILABLE`: no endpoint could be reached (every attempt certainly failed before the request was sent,
 *   or the cluster had no leader) within the retry budget.
 * - `ERR_TIMEOUT`: an idempotent call did not finish within the command timeout.
 * - `ERR_COMPACTED`: a watch asked for history that was compacted (`compactRevision` says up to where).
 * - `ERR_WATCH_CANCELED`: the server canceled a watch for another reason (`message` is its cancel reason).
 * - `ERR_BAD_RESPONSE`: the server's answer was not what the etcd API promises.
 * - `ERR_CLOSED`: the client, watcher or keep-alive was closed.
 * - `ERR_LOCK_LOST` / `ERR_NOT_LEADER` / `ERR_SESSION_EXPIRED`: concurrency recipes.
 */
export type ClientErrorCode =
  | 'ERR_SERVER'
  | 'ERR_UNKNOWN_OUTCOME'
  | 'ERR_UNAVAILABLE'
  | 'ERR_TIMEOUT'
  | 'ERR_COMPACTED'
  | 'ERR_WATCH_CANCELED'
  | 'ERR_BAD_RESPONSE'
  | 'ERR_CLOSED'
  | 'ERR_SESSION_EXPIRED'
  | 'ERR_NOT_LEADER'

/** Every error the client throws. `grpcCode` is etcd's code for server errors and the closest gRPC code otherwise. */
export class EtcdClientError extends Error {
  override readonly name = 'EtcdClientError'
  /** Stable string code (see ClientErrorCode). */
  readonly code: ClientErrorCode
  /** etcd's gRPC status code (14 Unavailable, 11 OutOfRange, ...). */
  readonly grpcCode: number
  /** HTTP status of the answer, when there was one. */
  readonly httpStatus: number | undefined
  /** The endpoint that answered or failed last. */
  readonly endpoint: string | undefined
  /** For ERR_COMPACTED: the compaction revision the server reported. */
  readonly compactRevision: number | undefined

  constructor(
    code: ClientErrorCode,
    grpcCode: number,
    message: string,
    extra: { httpStatus?: number; endpoint?: string; compactRevision?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.code = code
    this.grpcCode = grpcCode
    this.httpStatus = extra.httpStatus
    this.endpoint = extra.endpoint
    this.compactRevision = extra.compactRevision
  }
}

/** etcd's message for a watch or read below the compaction revision. */
export const compactedMessage = etcdErrorMessage('ErrCompacted')
/** etcd's message when a lease is unknown or expired. */
export const leaseNotFoundMessage = etcdErrorMessage('ErrLeaseNotFound')
