/**
 * What the Raft apply loop hands the KV store: etcd's InternalRaftRequest, with exactly one field set, named as in
 * etcd's raft_internal.proto. The server encodes one of these into each proposed entry; every member decodes it and
 * calls `KvStore.apply`, which is deterministic, so all members reach the same state.
 *
 * Also etcd's internal lease checkpoint messages (the client-facing messages are in src/protocol/types.ts).
 */
import type {
  AlarmRequest,
  AlarmResponse,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  PutRequest,
  PutResponse,
  ResponseHeader,
  TxnRequest,
  TxnResponse,
} from '../protocol/types.js'

/** etcd's LeaseCheckpoint: the lease's remaining TTL in seconds as the leader saw it (0 clears a checkpoint). */
export interface LeaseCheckpoint {
  ID: bigint
  remaining_TTL: number
}

export interface LeaseCheckpointRequest {
  checkpoints: LeaseCheckpoint[]
}

export interface LeaseCheckpointResponse {
  header?: ResponseHeader
}

/** One replicated KV operation. Exactly one field; TypeScript narrows with `'put' in req`. */
export type InternalRequest =
  | { put: PutRequest }
  | { delete_range: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: CompactionRequest }
  | { lease_grant: LeaseGrantRequest }
  | { lease_revoke: LeaseRevokeRequest }
  | { lease_checkpoint: LeaseCheckpointRequest }
  | { alarm: AlarmRequest }

/** The response `KvStore.apply` returns for each request kind. */
export type ResponseOf<R extends InternalRequest> = R extends { put: PutRequest }
  ? PutResponse
  : R extends { delete_range: DeleteRangeRequest }
    ? DeleteRangeResponse
    : R extends { txn: TxnRequest }
      ? TxnResponse
      : R extends { compaction: CompactionRequest }
        ? CompactionResponse
        : R extends { lease_grant: LeaseGrantRequest }
          ? LeaseGrantResponse
          : R extends { lease_revoke: LeaseRevokeRequest }
            ? LeaseRevokeResponse
            : R extends { lease_checkpoint: LeaseCheckpointRequest }
              ? LeaseCheckpointResponse
              : R extends { alarm: AlarmRequest }
                ? AlarmResponse
                : never

/** Any response of `apply`. */
export type InternalResponse = ResponseOf<InternalRequest>

/**
 * A header with only `revision` set: the store knows the revision, the server fills cluster_id, member_id and
 * raft_term of top-level responses. Inside a txn's `responses` this is the whole header etcd sends ({"revision":"N"}),
 * and a nested txn's header is `header(0)`, which the gateway encodes as {}.
 */
export function header(revision: number): ResponseHeader {
  return { cluster_id: '', member_id: '', revision, raft_term: 0 }
}
