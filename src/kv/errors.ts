/**
 * etcd's server errors, with etcd's exact messages and gRPC codes (etcd's api/v3rpc/rpctypes). One registry for the
 * whole member: the KV store, leases, auth and the server throw `EtcdError`s; the HTTP layer maps the gRPC code to
 * the gateway's HTTP status in one place (src/api/http/errors.ts).
 */
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
  ErrValueTooLarge: [GrpcCode.InvalidArgument, 'etcdserver: value is too large'],
  ErrCompacted: [GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision has been compacted'],
  ErrFutureRev: [GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision is a future revision'],
  ErrNoSpace: [GrpcCode.ResourceExhausted, 'etcdserver: mvcc: database space exceeded'],
  ErrLeaseNotFound: [GrpcCode.NotFound, 'etcdserver: requested lease not found'],
  ErrLeaseExist: [GrpcCode.FailedPrecondition, 'etcdserver: lease already exists'],
  ErrLeaseTTLTooLarge: [GrpcCode.OutOfRange, 'etcdserver: too large lease TTL'],
  ErrWatchDuplicateID: [GrpcCode.InvalidArgument, 'mvcc: duplicate watch ID provided on the WatchStream'],
  ErrTooManyWatchers: [GrpcCode.ResourceExhausted, 'etcdserver: too many watchers'],
  ErrMemberExist: [GrpcCode.FailedPrecondition, 'etcdserver: member ID already exist'],
  ErrPeerURLExist: [GrpcCode.FailedPrecondition, 'etcdserver: Peer URLs already exists'],
  ErrMemberNotEnoughStarted: [
    GrpcCode.FailedPrecondition,
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
} as const satisfies Record<string, readonly [GrpcCode, string]>

export type EtcdErrorCode = keyof typeof registry

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
