/**
 * Descriptors of etcd's protobuf messages, as much as the JSON gateway needs: each field's proto name, its kind and
 * its place (fields are listed in proto field-number order, which is the key order of the gateway's JSON). One table
 * drives both decoding (src/api/http/codec/decode.ts) and encoding (encode.ts). Each descriptor is typed with its
 * message's TypeScript type from ./types.ts.
 */
import type * as T from './types.js'

export type Kind =
  | 'bytes'
  | 'string'
  | 'bool'
  /** int64 as a JS number (revisions, counts, TTLs): JSON string on output. */
  | 'int64'
  /** int64 as bigint (lease ids): JSON string on output. */
  | 'int64big'
  /** int64 as a number when safe, else a bigint (watch ids: types.ts WatchId): JSON string on output. */
  | 'int64id'
  /** uint64 carried as a decimal string (member and cluster ids): JSON string on output. */
  | 'uint64str'
  /** uint32/int32 as a JS number: JSON number on output. */
  | 'int32'
  | 'enum'
  | 'message'

export interface FieldDesc {
  /** The proto name, e.g. `range_end`; also the key of the decoded object and of the JSON output. */
  name: string
  /** The lowerCamel JSON name jsonpb also accepts on input, e.g. `rangeEnd`. */
  json: string
  kind: Kind
  repeated: boolean
  /** For enums: value names by number, and the Go type named in errors. */
  enumNames?: readonly string[]
  enumGoType?: string
  /** For messages: the descriptor (a thunk, for recursive messages such as TxnRequest). */
  message?: () => MessageDesc
  /** A member of a oneof: jsonpb decodes these after the other fields (the order its errors come in). */
  oneof?: boolean
}

/** A message's descriptor; `T` is the TypeScript type (src/protocol/types.ts) that decoding yields and encoding takes. */
export interface MessageDesc<T = unknown> {
  /** The Go type, e.g. `etcdserverpb.RangeRequest`, named in decoding errors. */
  goType: string
  fields: FieldDesc[]
  byName: Map<string, FieldDesc>
  /**
   * Every field is a member of one oneof (RequestOp): a decoded request keeps only the first one set, in field order
   * (jsonpb keeps one at random when a JSON object sets several; the member sees one, as over gRPC).
   */
  single?: boolean
  /** Type only, never set: carries `T` so that `decodeMessage(desc, ...)` and `encodeMessage(desc, ...)` are typed. */
  readonly messageType?: T
}

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

type FieldSpec = [
  name: string,
  kind: Kind,
  opts?: {
    repeated?: boolean
    message?: () => MessageDesc
    enumNames?: readonly string[]
    enumGoType?: string
    oneof?: boolean
  },
]

function msg<T>(goType: string, specs: FieldSpec[]): MessageDesc<T> {
  const fields = specs.map(([name, kind, o]) => ({
    name,
    json: lowerCamel(name),
    kind,
    repeated: o?.repeated ?? false,
    ...o,
  }))
  const byName = new Map<string, FieldDesc>()
  for (const f of fields) {
    byName.set(f.name, f)
    byName.set(f.json, f)
  }
  return { goType, fields, byName }
}

/** A message whose fields are the members of one oneof. */
function oneofOnly<T>(goType: string, specs: FieldSpec[]): MessageDesc<T> {
  return { ...msg<T>(goType, specs), single: true }
}

const enumOf = (names: readonly string[], goType: string) => ({ enumNames: names, enumGoType: goType })

export const ResponseHeader: MessageDesc<T.ResponseHeader> = msg('etcdserverpb.ResponseHeader', [
  ['cluster_id', 'uint64str'],
  ['member_id', 'uint64str'],
  ['revision', 'int64'],
  ['raft_term', 'int64'],
])
const header: FieldSpec = ['header', 'message', { message: () => ResponseHeader }]

export const KeyValue: MessageDesc<T.KeyValue> = msg('mvccpb.KeyValue', [
  ['key', 'bytes'],
  ['create_revision', 'int64'],
  ['mod_revision', 'int64'],
  ['version', 'int64'],
  ['value', 'bytes'],
  ['lease', 'int64big'],
])

export const RangeRequest: MessageDesc<T.RangeRequest> = msg('etcdserverpb.RangeRequest', [
  ['key', 'bytes'],
  ['range_end', 'bytes'],
  ['limit', 'int64'],
  ['revision', 'int64'],
  ['sort_order', 'enum', enumOf(['NONE', 'ASCEND', 'DESCEND'], 'etcdserverpb.RangeRequest_SortOrder')],
  ['sort_target', 'enum', enumOf(['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'], 'etcdserverpb.RangeRequest_SortTarget')],
  ['serializable', 'bool'],
  ['keys_only', 'bool'],
  ['count_only', 'bool'],
  ['min_mod_revision', 'int64'],
  ['max_mod_revision', 'int64'],
  ['min_create_revision', 'int64'],
  ['max_create_revision', 'int64'],
])
export const RangeResponse: MessageDesc<T.RangeResponse> = msg('etcdserverpb.RangeResponse', [
  header,
  ['kvs', 'message', { repeated: true, message: () => KeyValue }],
  ['more', 'bool'],
  ['count', 'int64'],
])

export const PutRequest: MessageDesc<T.PutRequest> = msg('etcdserverpb.PutRequest', [
  ['key', 'bytes'],
  ['value', 'bytes'],
  ['lease', 'int64big'],
  ['prev_kv', 'bool'],
  ['ignore_value', 'bool'],
  ['ignore_lease', 'bool'],
])
export const PutResponse: MessageDesc<T.PutResponse> = msg('etcdserverpb.PutResponse', [
  header,
  ['prev_kv', 'message', { message: () => KeyValue }],
])

export const DeleteRangeRequest: MessageDesc<T.DeleteRangeRequest> = msg('etcdserverpb.DeleteRangeRequest', [
  ['key', 'bytes'],
  ['range_end', 'bytes'],
  ['prev_kv', 'bool'],
])
export const DeleteRangeResponse: MessageDesc<T.DeleteRangeResponse> = msg('etcdserverpb.DeleteRangeResponse', [
  header,
  ['deleted', 'int64'],
  ['prev_kvs', 'message', { repeated: true, message: () => KeyValue }],
])

export const Compare: MessageDesc<T.Compare> = msg('etcdserverpb.Compare', [
  ['result', 'enum', enumOf(['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'], 'etcdserverpb.Compare_CompareResult')],
  ['target', 'enum', enumOf(['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'], 'etcdserverpb.Compare_CompareTarget')],
  ['key', 'bytes'],
  ['version', 'int64', { oneof: true }],
  ['create_revision', 'int64', { oneof: true }],
  ['mod_revision', 'int64', { oneof: true }],
  ['value', 'bytes', { oneof: true }],
  ['lease', 'int64big', { oneof: true }],
  ['range_end', 'bytes'],
])
export const RequestOp: MessageDesc<T.RequestOp> = oneofOnly('etcdserverpb.RequestOp', [
  ['request_range', 'message', { message: () => RangeRequest }],
  ['request_put', 'message', { message: () => PutRequest }],
  ['request_delete_range', 'message', { message: () => DeleteRangeRequest }],
  ['request_txn', 'message', { message: () => TxnRequest }],
])
export const TxnRequest: MessageDesc<T.TxnRequest> = msg('etcdserverpb.TxnRequest', [
  ['compare', 'message', { repeated: true, message: () => Compare }],
  ['success', 'message', { repeated: true, message: () => RequestOp }],
  ['failure', 'message', { repeated: true, message: () => RequestOp }],
])
export const ResponseOp: MessageDesc<T.ResponseOp> = msg('etcdserverpb.ResponseOp', [
  ['response_range', 'message', { message: () => RangeResponse }],
  ['response_put', 'message', { message: () => PutResponse }],
  ['response_delete_range', 'message', { message: () => DeleteRangeResponse }],
  ['response_txn', 'message', { message: () => TxnResponse }],
])
export const TxnResponse: MessageDesc<T.TxnResponse> = msg('etcdserverpb.TxnResponse', [
  header,
  ['succeeded', 'bool'],
  ['responses', 'message', { repeated: true, message: () => ResponseOp }],
])

export const CompactionRequest: MessageDesc<T.CompactionRequest> = msg('etcdserverpb.CompactionRequest', [
  ['revision', 'int64'],
  ['physical', 'bool'],
])
export const HeaderOnlyResponse: MessageDesc<T.HeaderResponse> = msg('etcdserverpb.Response', [header])

export const LeaseGrantRequest: MessageDesc<T.LeaseGrantRequest> = msg('etcdserverpb.LeaseGrantRequest', [
  ['TTL', 'int64'],
  ['ID', 'int64big'],
])
export const LeaseGrantResponse: MessageDesc<T.LeaseGrantResponse> = msg('etcdserverpb.LeaseGrantResponse', [
  header,
  ['ID', 'int64big'],
  ['TTL', 'int64'],
  ['error', 'string'],
])
export const LeaseRevokeRequest: MessageDesc<T.LeaseRevokeRequest> = msg('etcdserverpb.LeaseRevokeRequest', [
  ['ID', 'int64big'],
])
export const LeaseKeepAliveRequest: MessageDesc<T.LeaseKeepAliveRequest> = msg('etcdserverpb.LeaseKeepAliveRequest', [
  ['ID', 'int64big'],
])
export const LeaseKeepAliveResponse: MessageDesc<T.LeaseKeepAliveResponse> = msg(
  'etcdserverpb.LeaseKeepAliveResponse',
  [header, ['ID', 'int64big'], ['TTL', 'int64']],
)
export const LeaseTimeToLiveRequest: MessageDesc<T.LeaseTimeToLiveRequest> = msg(
  'etcdserverpb.LeaseTimeToLiveRequest',
  [
    ['ID', 'int64big'],
    ['keys', 'bool'],
  ],
)
export const LeaseTimeToLiveResponse: MessageDesc<T.LeaseTimeToLiveResponse> = msg(
  'etcdserverpb.LeaseTimeToLiveResponse',
  [header, ['ID', 'int64big'], ['TTL', 'int64'], ['grantedTTL', 'int64'], ['keys', 'bytes', { repeated: true }]],
)
export const LeaseStatus: MessageDesc<T.LeaseStatus> = msg('etcdserverpb.LeaseStatus', [['ID', 'int64big']])
export const LeaseLeasesRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.LeaseLeasesRequest', [])
export const LeaseLeasesResponse: MessageDesc<T.LeaseLeasesResponse> = msg('etcdserverpb.LeaseLeasesResponse', [
  header,
  ['leases', 'message', { repeated: true, message: () => LeaseStatus }],
])

export const WatchCreateRequest: MessageDesc<T.WatchCreateRequest> = msg('etcdserverpb.WatchCreateRequest', [
  ['key', 'bytes'],
  ['range_end', 'bytes'],
  ['start_revision', 'int64'],
  ['progress_notify', 'bool'],
  [
    'filters',
    'enum',
    { repeated: true, ...enumOf(['NOPUT', 'NODELETE'], 'etcdserverpb.WatchCreateRequest_FilterType') },
  ],
  ['prev_kv', 'bool'],
  ['watch_id', 'int64id'],
  ['fragment', 'bool'],
  // edgecd's extension (JSON only; not in etcd's proto): the watcher's coalescing window in ms (src/kv/watch.ts).
  ['edgecd_coalesce_ms', 'int64'],
])
export const WatchCancelRequest: MessageDesc<T.WatchCancelRequest> = msg('etcdserverpb.WatchCancelRequest', [
  ['watch_id', 'int64id'],
])
export const WatchProgressRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.WatchProgressRequest', [])
export const WatchRequest: MessageDesc<T.WatchRequest> = msg('etcdserverpb.WatchRequest', [
  ['create_request', 'message', { message: () => WatchCreateRequest }],
  ['cancel_request', 'message', { message: () => WatchCancelRequest }],
  ['progress_request', 'message', { message: () => WatchProgressRequest }],
])
export const Event: MessageDesc<T.Event> = msg('mvccpb.Event', [
  ['type', 'enum', enumOf(['PUT', 'DELETE'], 'mvccpb.Event_EventType')],
  ['kv', 'message', { message: () => KeyValue }],
  ['prev_kv', 'message', { message: () => KeyValue }],
])
export const WatchResponse: MessageDesc<T.WatchResponse> = msg('etcdserverpb.WatchResponse', [
  header,
  ['watch_id', 'int64id'],
  ['created', 'bool'],
  ['canceled', 'bool'],
  ['compact_revision', 'int64'],
  ['cancel_reason', 'string'],
  ['fragment', 'bool'],
  ['events', 'message', { repeated: true, message: () => Event }],
])

export const StatusRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.StatusRequest', [])
export const StatusResponse: MessageDesc<T.StatusResponse> = msg('etcdserverpb.StatusResponse', [
  header,
  ['version', 'string'],
  ['dbSize', 'int64'],
  ['leader', 'uint64str'],
  ['raftIndex', 'int64'],
  ['raftTerm', 'int64'],
  ['raftAppliedIndex', 'int64'],
  ['errors', 'string', { repeated: true }],
  ['dbSizeInUse', 'int64'],
  ['isLearner', 'bool'],
])
const alarmTypes = enumOf(['NONE', 'NOSPACE', 'CORRUPT'], 'etcdserverpb.AlarmType')
export const AlarmRequest: MessageDesc<T.AlarmRequest> = msg('etcdserverpb.AlarmRequest', [
  ['action', 'enum', enumOf(['GET', 'ACTIVATE', 'DEACTIVATE'], 'etcdserverpb.AlarmRequest_AlarmAction')],
  ['memberID', 'uint64str'],
  ['alarm', 'enum', alarmTypes],
])
export const AlarmMember: MessageDesc<T.AlarmMember> = msg('etcdserverpb.AlarmMember', [
  ['memberID', 'uint64str'],
  ['alarm', 'enum', alarmTypes],
])
export const AlarmResponse: MessageDesc<T.AlarmResponse> = msg('etcdserverpb.AlarmResponse', [
  header,
  ['alarms', 'message', { repeated: true, message: () => AlarmMember }],
])
export const HashRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.HashRequest', [])
export const HashResponse: MessageDesc<T.HashResponse> = msg('etcdserverpb.HashResponse', [header, ['hash', 'int32']])
export const HashKVRequest: MessageDesc<T.HashKVRequest> = msg('etcdserverpb.HashKVRequest', [['revision', 'int64']])
export const HashKVResponse: MessageDesc<T.HashKVResponse> = msg('etcdserverpb.HashKVResponse', [
  header,
  ['hash', 'int32'],
  ['compact_revision', 'int64'],
])
export const SnapshotRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.SnapshotRequest', [])
export const SnapshotResponse: MessageDesc<T.SnapshotResponse> = msg('etcdserverpb.SnapshotResponse', [
  header,
  ['remaining_bytes', 'int64'],
  ['blob', 'bytes'],
])

export const Member: MessageDesc<T.MemberInfo> = msg('etcdserverpb.Member', [
  ['ID', 'uint64str'],
  ['name', 'string'],
  ['peerURLs', 'string', { repeated: true }],
  ['clientURLs', 'string', { repeated: true }],
  ['isLearner', 'bool'],
])
export const MemberListRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.MemberListRequest', [])
export const MemberListResponse: MessageDesc<T.MemberListResponse> = msg('etcdserverpb.MemberListResponse', [
  header,
  ['members', 'message', { repeated: true, message: () => Member }],
])

export const MemberAddRequest: MessageDesc<T.MemberAddRequest> = msg('etcdserverpb.MemberAddRequest', [
  ['peerURLs', 'string', { repeated: true }],
  ['isLearner', 'bool'],
])
export const MemberAddResponse: MessageDesc<T.MemberAddResponse> = msg('etcdserverpb.MemberAddResponse', [
  header,
  ['member', 'message', { message: () => Member }],
  ['members', 'message', { repeated: true, message: () => Member }],
])
export const MemberRemoveRequest: MessageDesc<T.MemberIdRequest> = msg('etcdserverpb.MemberRemoveRequest', [
  ['ID', 'uint64str'],
])
export const MemberUpdateRequest: MessageDesc<T.MemberUpdateRequest> = msg('etcdserverpb.MemberUpdateRequest', [
  ['ID', 'uint64str'],
  ['peerURLs', 'string', { repeated: true }],
])
export const MemberPromoteRequest: MessageDesc<T.MemberIdRequest> = msg('etcdserverpb.MemberPromoteRequest', [
  ['ID', 'uint64str'],
])
export const MembersResponse: MessageDesc<T.MembersResponse> = msg('etcdserverpb.MemberRemoveResponse', [
  header,
  ['members', 'message', { repeated: true, message: () => Member }],
])
export const MoveLeaderRequest: MessageDesc<T.MoveLeaderRequest> = msg('etcdserverpb.MoveLeaderRequest', [
  ['targetID', 'uint64str'],
])

// ---- auth (etcd 3.4's rpc.proto and authpb) ----

export const Permission: MessageDesc<T.Permission> = msg('authpb.Permission', [
  ['permType', 'enum', enumOf(['READ', 'WRITE', 'READWRITE'], 'authpb.Permission_Type')],
  ['key', 'bytes'],
  ['range_end', 'bytes'],
])
export const AuthEnableRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.AuthEnableRequest', [])
export const AuthDisableRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.AuthDisableRequest', [])
export const AuthStatusRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.AuthStatusRequest', [])
export const AuthStatusResponse: MessageDesc<T.AuthStatusResponse> = msg('etcdserverpb.AuthStatusResponse', [
  header,
  ['enabled', 'bool'],
  ['authRevision', 'int64'],
])
export const AuthenticateRequest: MessageDesc<T.AuthenticateRequest> = msg('etcdserverpb.AuthenticateRequest', [
  ['name', 'string'],
  ['password', 'string'],
])
export const AuthenticateResponse: MessageDesc<T.AuthenticateResponse> = msg('etcdserverpb.AuthenticateResponse', [
  header,
  ['token', 'string'],
])
export const UserAddOptions: MessageDesc<T.UserAddOptions> = msg('authpb.UserAddOptions', [['no_password', 'bool']])
export const AuthUserAddRequest: MessageDesc<T.AuthUserAddRequest> = msg('etcdserverpb.AuthUserAddRequest', [
  ['name', 'string'],
  ['password', 'string'],
  ['options', 'message', { message: () => UserAddOptions }],
])
export const AuthUserGetRequest: MessageDesc<T.AuthUserNameRequest> = msg('etcdserverpb.AuthUserGetRequest', [
  ['name', 'string'],
])
export const AuthUserGetResponse: MessageDesc<T.AuthUserGetResponse> = msg('etcdserverpb.AuthUserGetResponse', [
  header,
  ['roles', 'string', { repeated: true }],
])
export const AuthUserDeleteRequest: MessageDesc<T.AuthUserNameRequest> = msg('etcdserverpb.AuthUserDeleteRequest', [
  ['name', 'string'],
])
export const AuthUserChangePasswordRequest: MessageDesc<T.AuthUserChangePasswordRequest> = msg(
  'etcdserverpb.AuthUserChangePasswordRequest',
  [
    ['name', 'string'],
    ['password', 'string'],
  ],
)
export const AuthUserGrantRoleRequest: MessageDesc<T.AuthUserGrantRoleRequest> = msg(
  'etcdserverpb.AuthUserGrantRoleRequest',
  [
    ['user', 'string'],
    ['role', 'string'],
  ],
)
export const AuthUserRevokeRoleRequest: MessageDesc<T.AuthUserRevokeRoleRequest> = msg(
  'etcdserverpb.AuthUserRevokeRoleRequest',
  [
    ['name', 'string'],
    ['role', 'string'],
  ],
)
export const AuthUserListRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.AuthUserListRequest', [])
export const AuthUserListResponse: MessageDesc<T.AuthUserListResponse> = msg('etcdserverpb.AuthUserListResponse', [
  header,
  ['users', 'string', { repeated: true }],
])
export const AuthRoleAddRequest: MessageDesc<T.AuthRoleAddRequest> = msg('etcdserverpb.AuthRoleAddRequest', [
  ['name', 'string'],
])
export const AuthRoleGetRequest: MessageDesc<T.AuthRoleNameRequest> = msg('etcdserverpb.AuthRoleGetRequest', [
  ['role', 'string'],
])
export const AuthRoleGetResponse: MessageDesc<T.AuthRoleGetResponse> = msg('etcdserverpb.AuthRoleGetResponse', [
  header,
  ['perm', 'message', { repeated: true, message: () => Permission }],
])
export const AuthRoleListRequest: MessageDesc<T.EmptyRequest> = msg('etcdserverpb.AuthRoleListRequest', [])
export const AuthRoleListResponse: MessageDesc<T.AuthRoleListResponse> = msg('etcdserverpb.AuthRoleListResponse', [
  header,
  ['roles', 'string', { repeated: true }],
])
export const AuthRoleDeleteRequest: MessageDesc<T.AuthRoleNameRequest> = msg('etcdserverpb.AuthRoleDeleteRequest', [
  ['role', 'string'],
])
export const AuthRoleGrantPermissionRequest: MessageDesc<T.AuthRoleGrantPermissionRequest> = msg(
  'etcdserverpb.AuthRoleGrantPermissionRequest',
  [
    ['name', 'string'],
    ['perm', 'message', { message: () => Permission }],
  ],
)
export const AuthRoleRevokePermissionRequest: MessageDesc<T.AuthRoleRevokePermissionRequest> = msg(
  'etcdserverpb.AuthRoleRevokePermissionRequest',
  [
    ['role', 'string'],
    ['key', 'bytes'],
    ['range_end', 'bytes'],
  ],
)
