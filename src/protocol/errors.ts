/**
 * etcd's errors, defined once for the server and the client: the gRPC status codes, and etcd's error registry (its
 * api/v3rpc/rpctypes): for each error its stable code string, its gRPC code, etcd's exact message and the HTTP status
 * etcd's JSON gateway answers it with. The KV store, leases, auth and the member throw `EtcdError`s; the HTTP layer
 * writes them (src/api/http/errors.ts); the client compares server answers against the same messages.
 */

/** gRPC status codes, as etcd's gateway reports them in the `code` field of an error body. */
export enum GrpcCode {
  OK = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

const registry = {
  ErrEmptyKey: [GrpcCode.InvalidArgument, 'etcdserver: key is not provided'],
  ErrKeyNotFound: [GrpcCode.InvalidArgument, 'etcdserver: key not found'],
  ErrValueProvided: [GrpcCode.InvalidArgument, 'etcdserver: value is provided'],
  ErrLeaseProvided: [GrpcCode.InvalidArgument, 'etcdserver: lease is provided'],
  ErrTooManyOps: [GrpcCode.InvalidArgument, 'etcdserver: too many operations in txn request'],
  ErrDuplicateKey: [GrpcCode.InvalidArgument, 'etcdserver: duplicate key given in txn request'],
  ErrRequestTooLarge: [GrpcCode.InvalidArgument, 'etcdserver: request is too large'],
  ErrKeyTooLarge: [GrpcCode.InvalidArgument, 'etcdserver: key is too large'],
  /** etcd 3.5's: a range that would sort by an unknown target (etcd 3.4's member dies on it). */
  ErrInvalidSortOption: [GrpcCode.InvalidArgument, 'etcdserver: invalid sort option'],
  ErrValueTooLarge: [GrpcCode.InvalidArgument, 'etcdserver: value is too large'],
  ErrCompacted: [GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision has been compacted'],
  ErrFutureRev: [GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision is a future revision'],
  ErrNoSpace: [GrpcCode.ResourceExhausted, 'etcdserver: mvcc: database space exceeded'],
  ErrLeaseNotFound: [GrpcCode.NotFound, 'etcdserver: requested lease not found'],
  ErrLeaseExist: [GrpcCode.FailedPrecondition, 'etcdserver: lease already exists'],
  ErrLeaseTTLTooLarge: [GrpcCode.OutOfRange, 'etcdserver: too large lease TTL'],
  ErrWatchDuplicateID: [GrpcCode.InvalidArgument, 'mvcc: duplicate watch ID provided on the WatchStream'],
  ErrTooManyWatchers: [GrpcCode.ResourceExhausted, 'etcdserver: too many watchers'],
  /** edgecd's own: the bound on watchers of one stream (--max-watchers-per-stream) is reached. */
  /** edgecd's own: a POST /v3/lease/keepalive body names more leases than leaseKeepAlivesPerRequestMax. */
  ErrTooManyLeaseKeepAlives: [GrpcCode.ResourceExhausted, 'etcdserver: too many lease keepalives in one request'],
  ErrTooManyWatchersPerStream: [GrpcCode.ResourceExhausted, 'etcdserver: too many watchers on this stream'],
  ErrMemberExist: [GrpcCode.FailedPrecondition, 'etcdserver: member ID already exist'],
  ErrPeerURLExist: [GrpcCode.FailedPrecondition, 'etcdserver: Peer URLs already exists'],
  ErrMemberNotEnoughStarted: [
    GrpcCode.FailedPrecondition,
    'etcdserver: re-configuration failed due to not enough started members',
  ],
  // etcd 3.4's strict reconfiguration check: its gRPC layer does not map this error, so it goes out as Unknown.
  ErrNotEnoughStartedMembers: [
    GrpcCode.Unknown,
    'etcdserver: re-configuration failed due to not enough started members',
  ],
  ErrMemberBadURLs: [GrpcCode.InvalidArgument, 'etcdserver: given member URLs are invalid'],
  ErrMemberNotFound: [GrpcCode.NotFound, 'etcdserver: member not found'],
  ErrMemberNotLearner: [GrpcCode.FailedPrecondition, 'etcdserver: can only promote a learner member'],
  ErrLearnerNotReady: [
    GrpcCode.FailedPrecondition,
    'etcdserver: can only promote a learner member which is in sync with leader',
  ],
  ErrTooManyLearners: [GrpcCode.FailedPrecondition, 'etcdserver: too many learner members in cluster'],
  ErrRootUserNotExist: [GrpcCode.FailedPrecondition, 'etcdserver: root user does not exist'],
  ErrRootRoleNotExist: [GrpcCode.FailedPrecondition, 'etcdserver: root user does not have root role'],
  ErrUserAlreadyExist: [GrpcCode.FailedPrecondition, 'etcdserver: user name already exists'],
  ErrUserEmpty: [GrpcCode.InvalidArgument, 'etcdserver: user name is empty'],
  ErrUserNotFound: [GrpcCode.FailedPrecondition, 'etcdserver: user name not found'],
  ErrRoleAlreadyExist: [GrpcCode.FailedPrecondition, 'etcdserver: role name already exists'],
  ErrRoleNotFound: [GrpcCode.FailedPrecondition, 'etcdserver: role name not found'],
  ErrRoleEmpty: [GrpcCode.InvalidArgument, 'etcdserver: role name is empty'],
  ErrAuthFailed: [GrpcCode.InvalidArgument, 'etcdserver: authentication failed, invalid user ID or password'],
  ErrPermissionDenied: [GrpcCode.PermissionDenied, 'etcdserver: permission denied'],
  ErrRoleNotGranted: [GrpcCode.FailedPrecondition, 'etcdserver: role is not granted to the user'],
  ErrPermissionNotGranted: [GrpcCode.FailedPrecondition, 'etcdserver: permission is not granted to the role'],
  ErrAuthNotEnabled: [GrpcCode.FailedPrecondition, 'etcdserver: authentication is not enabled'],
  ErrInvalidAuthToken: [GrpcCode.Unauthenticated, 'etcdserver: invalid auth token'],
  ErrInvalidAuthMgmt: [GrpcCode.InvalidArgument, 'etcdserver: invalid auth management'],
  ErrAuthOldRevision: [GrpcCode.InvalidArgument, 'etcdserver: revision of auth store is old'],
  ErrNoLeader: [GrpcCode.Unavailable, 'etcdserver: no leader'],
  ErrNotLeader: [GrpcCode.FailedPrecondition, 'etcdserver: not leader'],
  ErrLeaderChanged: [GrpcCode.Unavailable, 'etcdserver: leader changed'],
  ErrNotCapable: [GrpcCode.Unavailable, 'etcdserver: not capable'],
  ErrStopped: [GrpcCode.Unavailable, 'etcdserver: server stopped'],
  ErrTooManyRequests: [GrpcCode.ResourceExhausted, 'etcdserver: too many requests'],
  ErrTimeout: [GrpcCode.Unavailable, 'etcdserver: request timed out'],
  ErrTimeoutDueToLeaderFail: [
    GrpcCode.Unavailable,
    'etcdserver: request timed out, possibly due to previous leader failure',
  ],
  ErrTimeoutDueToConnectionLost: [
    GrpcCode.Unavailable,
    'etcdserver: request timed out, possibly due to connection lost',
  ],
  ErrUnhealthy: [GrpcCode.Unavailable, 'etcdserver: unhealthy cluster'],
  ErrCorrupt: [GrpcCode.DataLoss, 'etcdserver: corrupt cluster'],
  ErrBadLeaderTransferee: [GrpcCode.FailedPrecondition, 'etcdserver: bad leader transferee'],
  ErrClusterIdMismatch: [GrpcCode.FailedPrecondition, 'etcdserver: cluster ID mismatch'],
  ErrRemoved: [GrpcCode.FailedPrecondition, 'etcdserver: the member has been permanently removed from the cluster'],
  /** edgecd's own: the member's bound on concurrent watch streams (--max-watch-streams) is reached. */
  ErrTooManyWatchStreams: [GrpcCode.ResourceExhausted, 'etcdserver: too many watch streams'],
  /** An unexpected failure, answered without leaking internals. */
  ErrInternal: [GrpcCode.Internal, 'etcdserver: internal error'],
} as const satisfies Record<string, readonly [GrpcCode, string]>

export type EtcdErrorCode = keyof typeof registry

/** etcd's exact message for an error code (e.g. `etcdErrorMessage('ErrCompacted')`). */
export function etcdErrorMessage(code: EtcdErrorCode): string {
  return registry[code][1]
}

/**
 * The text of etcd's error as a gRPC status (`rpc error: code = InvalidArgument desc = etcdserver: ...`): what etcd's
 * rpctypes.ErrGRPC*.Error() returns, and what its watch server sends as the cancel_reason of a refused create.
 */
export function grpcStatusText(code: EtcdErrorCode): string {
  return `rpc error: code = ${GrpcCode[registry[code][0]]} desc = ${registry[code][1]}`
}

/** etcd's gRPC code for an error code. */
export function etcdErrorGrpcCode(code: EtcdErrorCode): GrpcCode {
  return registry[code][0]
}

/** grpc-gateway v1's mapping from gRPC code to HTTP status, the one place it lives (etcd-api.md §4). */
const httpStatusOf: Record<number, number> = {
  [GrpcCode.OK]: 200,
  [GrpcCode.Canceled]: 408,
  [GrpcCode.Unknown]: 500,
  [GrpcCode.InvalidArgument]: 400,
  [GrpcCode.DeadlineExceeded]: 504,
  [GrpcCode.NotFound]: 404,
  [GrpcCode.AlreadyExists]: 409,
  [GrpcCode.PermissionDenied]: 403,
  [GrpcCode.ResourceExhausted]: 429,
  [GrpcCode.FailedPrecondition]: 412,
  [GrpcCode.Aborted]: 409,
  [GrpcCode.OutOfRange]: 400,
  [GrpcCode.Unimplemented]: 501,
  [GrpcCode.Internal]: 500,
  [GrpcCode.Unavailable]: 503,
  [GrpcCode.DataLoss]: 500,
  [GrpcCode.Unauthenticated]: 401,
}

/** The HTTP status etcd's JSON gateway answers a gRPC code with. */
export function httpStatus(code: GrpcCode): number {
  return httpStatusOf[code] ?? 500
}

/**
 * An error answered to a client with etcd's message and gRPC code. `code` is the stable string name
 * (`switch (err.code)` narrows); `grpcCode` is the number the gateway puts in the body.
 */
export class EtcdError extends Error {
  readonly code: EtcdErrorCode | 'ErrGeneric'
  readonly grpcCode: GrpcCode

  constructor(code: EtcdErrorCode)
  constructor(code: 'ErrGeneric', grpcCode: GrpcCode, message: string)
  constructor(code: EtcdErrorCode | 'ErrGeneric', grpcCode?: GrpcCode, message?: string) {
    const [g, m] = code === 'ErrGeneric' ? [grpcCode!, message!] : registry[code]
    super(m)
    this.name = 'EtcdError'
    this.code = code
    this.grpcCode = g
  }
}

/** An error with an arbitrary message and gRPC code (JSON decoding errors, base64 errors, ...). */
export function etcdError(grpcCode: GrpcCode, message: string): EtcdError {
  return new EtcdError('ErrGeneric', grpcCode, message)
}

export function isEtcdError(err: unknown, code?: EtcdErrorCode): err is EtcdError {
  return err instanceof EtcdError && (code === undefined || err.code === code)
}
