/**
 * etcd's v3 KV, lease, watch and maintenance messages (etcdserverpb / mvccpb), with etcd's proto field names word for
 * word, so that the JSON gateway codec maps them mechanically and a reader who knows etcd recognises every field.
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

export interface WatchCreateRequest {
  key: Uint8Array
  range_end: Uint8Array
  start_revision: number
  progress_notify: boolean
  filters: FilterType[]
  prev_kv: boolean
  /** 0 with no id set: the server assigns one (etcd's AutoWatchID is 0 on the wire). */
  watch_id: number
  fragment: boolean
}

export interface WatchCancelRequest {
  watch_id: number
}

export interface WatchRequest {
  create_request?: WatchCreateRequest
  cancel_request?: WatchCancelRequest
  progress_request?: Record<string, never>
}

export interface WatchResponse {
  header?: ResponseHeader
  watch_id: number
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
