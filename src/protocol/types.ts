/**
 * Layer: src/protocol, etcd's wire protocol shared by the server and the client: message types (types.ts), the
 * JSON gateway's message descriptors (descriptors.ts) and etcd's error registry with the gRPC codes and HTTP statuses
 * (errors.ts). A leaf: imports nothing from this project. Web-standard APIs only.
 */
/**
 * etcd's v3 messages (etcdserverpb / mvccpb / authpb) as the server handles them, defined once for every layer: KV,
 * lease, watch, maintenance, cluster and auth, with etcd's proto field names word for word, so that the JSON gateway
 * codec (src/protocol/descriptors.ts drives it) maps them mechanically and a reader who knows etcd recognises every
 * field. The client's readable camelCase shapes (src/client/types.ts) are decoded from the same wire messages.
 *
 * Representation: keys and values are bytes (Uint8Array); revisions, versions, counts and TTLs are JS numbers (exact
 * up to 2^53, far beyond any revision); lease ids are bigint, because etcd's int64 lease ids (random, or chosen by the
 * client) do not fit a JS number. Every optional field defaults to proto3's zero value.
 */

export interface KeyValue {
  key: Uint8Array
  create_revision: number
  mod_revision: number
  version: number
  value: Uint8Array
  /** 0n when the key has no lease. */
  lease: bigint
}

export enum EventType {
  PUT = 0,
  DELETE = 1,
}

export interface Event {
  type: EventType
  /** For DELETE: the key and mod_revision (the deletion's revision) only, as etcd sends. */
  kv: KeyValue
  prev_kv?: KeyValue
}

export interface ResponseHeader {
  cluster_id: string
  member_id: string
  revision: number
  raft_term: number
}

export enum SortOrder {
  NONE = 0,
  ASCEND = 1,
  DESCEND = 2,
}

export enum SortTarget {
  KEY = 0,
  VERSION = 1,
  CREATE = 2,
  MOD = 3,
  VALUE = 4,
}

export interface RangeRequest {
  key: Uint8Array
  range_end: Uint8Array
  limit: number
  revision: number
  sort_order: SortOrder
  sort_target: SortTarget
  serializable: boolean
  keys_only: boolean
  count_only: boolean
  min_mod_revision: number
  max_mod_revision: number
  min_create_revision: number
  max_create_revision: number
}

export interface RangeResponse {
  header?: ResponseHeader
  kvs: KeyValue[]
  more: boolean
  count: number
}

export interface PutRequest {
  key: Uint8Array
  value: Uint8Array
  lease: bigint
  prev_kv: boolean
  ignore_value: boolean
  ignore_lease: boolean
}

export interface PutResponse {
  header?: ResponseHeader
  prev_kv?: KeyValue
}

export interface DeleteRangeRequest {
  key: Uint8Array
  range_end: Uint8Array
  prev_kv: boolean
}

export interface DeleteRangeResponse {
  header?: ResponseHeader
  deleted: number
  prev_kvs: KeyValue[]
}

export enum CompareResult {
  EQUAL = 0,
  GREATER = 1,
  LESS = 2,
  NOT_EQUAL = 3,
}

export enum CompareTarget {
  VERSION = 0,
  CREATE = 1,
  MOD = 2,
  VALUE = 3,
  LEASE = 4,
}

/** One txn compare. Exactly one of the target_union fields is meaningful, chosen by `target`. */
export interface Compare {
  result: CompareResult
  target: CompareTarget
  key: Uint8Array
  version?: number
  create_revision?: number
  mod_revision?: number
  value?: Uint8Array
  lease?: bigint
  range_end: Uint8Array
}

/** One txn op: exactly one field is set. */
export interface RequestOp {
  request_range?: RangeRequest
  request_put?: PutRequest
  request_delete_range?: DeleteRangeRequest
  request_txn?: TxnRequest
}

export interface ResponseOp {
  response_range?: RangeResponse
  response_put?: PutResponse
  response_delete_range?: DeleteRangeResponse
  response_txn?: TxnResponse
}

export interface TxnRequest {
  compare: Compare[]
  success: RequestOp[]
  failure: RequestOp[]
}

export interface TxnResponse {
  header?: ResponseHeader
  succeeded: boolean
  responses: ResponseOp[]
}

export interface CompactionRequest {
  revision: number
  physical: boolean
}

export interface CompactionResponse {
  header?: ResponseHeader
}

export interface LeaseGrantRequest {
  TTL: number
  /** 0n: the server picks an id. */
  ID: bigint
}

export interface LeaseGrantResponse {
  header?: ResponseHeader
  ID: bigint
  TTL: number
  error: string
}

export interface LeaseRevokeRequest {
  ID: bigint
}

export interface LeaseRevokeResponse {
  header?: ResponseHeader
}

export interface LeaseKeepAliveRequest {
  ID: bigint
}

export interface LeaseKeepAliveResponse {
  header?: ResponseHeader
  ID: bigint
  /** 0 when the lease is not found (etcd omits it then). */
  TTL: number
}

export interface LeaseTimeToLiveRequest {
  ID: bigint
  keys: boolean
}

export interface LeaseTimeToLiveResponse {
  header?: ResponseHeader
  ID: bigint
  /** -1 when the lease is not found. */
  TTL: number
  grantedTTL: number
  keys: Uint8Array[]
}

export interface LeaseStatus {
  ID: bigint
}

export interface LeaseLeasesResponse {
  header?: ResponseHeader
  leases: LeaseStatus[]
}

export enum FilterType {
  NOPUT = 0,
  NODELETE = 1,
}

/**
 * A watch id (etcd's int64 watch_id): a number while it is a safe integer (server-assigned ids, and client-chosen
 * ids up to 2^53), a bigint past that, so that a client-chosen id is carried exactly. Always normalized by
 * `watchIdOf`, so that one id has one representation (a Map key, an equality).
 */
export type WatchId = number | bigint

/** The one representation of an int64 watch id: a number when it is a safe integer, else a bigint. */
export function watchIdOf(v: number | bigint): WatchId {
  if (typeof v === 'number') return v
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v
}

export interface WatchCreateRequest {
  key: Uint8Array
  range_end: Uint8Array
  start_revision: number
  progress_notify: boolean
  filters: FilterType[]
  prev_kv: boolean
  /** 0 with no id set: the server assigns one (etcd's AutoWatchID is 0 on the wire). */
  watch_id: WatchId
  fragment: boolean
  /**
   * edgecd extension (etcd has no such field and ignores it): send this watcher's events at most once per this many
   * ms, several revisions in one message (src/kv/watch.ts, WatchHub windows). 0 or absent: etcd's behaviour.
   */
  edgecd_coalesce_ms?: number
}

export interface WatchCancelRequest {
  watch_id: WatchId
}

export interface WatchRequest {
  create_request?: WatchCreateRequest
  cancel_request?: WatchCancelRequest
  progress_request?: Record<string, never>
}

export interface WatchResponse {
  header?: ResponseHeader
  watch_id: WatchId
  created: boolean
  canceled: boolean
  compact_revision: number
  cancel_reason: string
  fragment: boolean
  events: Event[]
}

export enum AlarmType {
  NONE = 0,
  NOSPACE = 1,
  CORRUPT = 2,
}

export enum AlarmAction {
  GET = 0,
  ACTIVATE = 1,
  DEACTIVATE = 2,
}

export interface AlarmMember {
  memberID: string
  alarm: AlarmType
}

/** etcd's AlarmRequest (/v3/maintenance/alarm). `memberID` is a decimal uint64, 0 for "any member" in GET. */
export interface AlarmRequest {
  action: AlarmAction
  memberID: string
  alarm: AlarmType
}

export interface AlarmResponse {
  header?: ResponseHeader
  alarms: AlarmMember[]
}

/** etcd's HashKVResponse: CRC-32C over the key-value history up to a revision. */
export interface HashKVResponse {
  header?: ResponseHeader
  hash: number
  compact_revision: number
}

/** etcd's etcdserverpb.Member. */
export interface MemberInfo {
  ID: string
  name: string
  peerURLs: string[]
  clientURLs: string[]
  isLearner: boolean
}

/** etcd's StatusResponse (/v3/maintenance/status). */
export interface StatusResponse {
  header: ResponseHeader
  version: string
  dbSize: number
  leader: string
  raftIndex: number
  raftTerm: number
  raftAppliedIndex: number
  errors: string[]
  dbSizeInUse: number
  isLearner: boolean
}

/** A response that carries only its header (etcd's Compaction-, LeaseRevoke-, MoveLeader-, Auth*Response...). */
export interface HeaderResponse {
  header?: ResponseHeader
}

/** A request without fields (etcd's StatusRequest, MemberListRequest, AuthEnableRequest, ...). */
export type EmptyRequest = Record<string, never>

export interface HashResponse {
  header?: ResponseHeader
  hash: number
}

export interface HashKVRequest {
  revision: number
}

export interface SnapshotResponse {
  header?: ResponseHeader
  remaining_bytes: number
  blob: Uint8Array
}

export interface MemberListResponse {
  header?: ResponseHeader
  members: MemberInfo[]
}

export interface MemberAddRequest {
  peerURLs: string[]
  isLearner: boolean
}

export interface MemberAddResponse {
  header?: ResponseHeader
  member: MemberInfo
  members: MemberInfo[]
}

/** etcd's MemberRemoveRequest and MemberPromoteRequest. */
export interface MemberIdRequest {
  ID: string
}

export interface MemberUpdateRequest {
  ID: string
  peerURLs: string[]
}

/** etcd's MemberRemoveResponse, MemberUpdateResponse and MemberPromoteResponse. */
export interface MembersResponse {
  header?: ResponseHeader
  members: MemberInfo[]
}

export interface MoveLeaderRequest {
  targetID: string
}

// ---- auth (etcd 3.4's rpc.proto and authpb) ----

/** etcd's authpb.Permission_Type. */
export enum PermType {
  READ = 0,
  WRITE = 1,
  READWRITE = 2,
}

/** etcd's authpb.Permission. An empty range_end means the single key. */
export interface Permission {
  permType: PermType
  key: Uint8Array
  range_end: Uint8Array
}

export interface AuthStatusResponse {
  header?: ResponseHeader
  enabled: boolean
  authRevision: number
}

export interface AuthenticateRequest {
  name: string
  password: string
}

export interface AuthenticateResponse {
  header?: ResponseHeader
  token: string
}

export interface UserAddOptions {
  no_password: boolean
}

export interface AuthUserAddRequest {
  name: string
  password: string
  options?: UserAddOptions
}

/** etcd's AuthUserGetRequest and AuthUserDeleteRequest. */
export interface AuthUserNameRequest {
  name: string
}

export interface AuthUserGetResponse {
  header?: ResponseHeader
  roles: string[]
}

export interface AuthUserChangePasswordRequest {
  name: string
  password: string
}

export interface AuthUserGrantRoleRequest {
  user: string
  role: string
}

export interface AuthUserRevokeRoleRequest {
  name: string
  role: string
}

export interface AuthUserListResponse {
  header?: ResponseHeader
  users: string[]
}

export interface AuthRoleAddRequest {
  name: string
}

/** etcd's AuthRoleGetRequest and AuthRoleDeleteRequest. */
export interface AuthRoleNameRequest {
  role: string
}

export interface AuthRoleGetResponse {
  header?: ResponseHeader
  perm: Permission[]
}

export interface AuthRoleListResponse {
  header?: ResponseHeader
  roles: string[]
}

export interface AuthRoleGrantPermissionRequest {
  name: string
  perm?: Permission
}

export interface AuthRoleRevokePermissionRequest {
  role: string
  key: Uint8Array
  range_end: Uint8Array
}

export const emptyKey: Uint8Array = new Uint8Array(0)

export function defaultRangeRequest(fields: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key: emptyKey,
    range_end: emptyKey,
    limit: 0,
    revision: 0,
    sort_order: SortOrder.NONE,
    sort_target: SortTarget.KEY,
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: 0,
    max_mod_revision: 0,
    min_create_revision: 0,
    max_create_revision: 0,
    ...fields,
  }
}

export function defaultPutRequest(fields: Partial<PutRequest> = {}): PutRequest {
  return {
    key: emptyKey,
    value: emptyKey,
    lease: 0n,
    prev_kv: false,
    ignore_value: false,
    ignore_lease: false,
    ...fields,
  }
}

export function defaultDeleteRangeRequest(fields: Partial<DeleteRangeRequest> = {}): DeleteRangeRequest {
  return { key: emptyKey, range_end: emptyKey, prev_kv: false, ...fields }
}
