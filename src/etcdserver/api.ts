import type { AuthService } from '../auth/service.js'
import type { AuthInfo } from '../auth/store.js'
import type {
  AlarmMember,
  AlarmRequest,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  HashKVRequest,
  HashKVResponse,
  HashResponse,
  HeaderResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseLeasesResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
  MemberAddRequest,
  MemberAddResponse,
  MemberIdRequest,
  MemberListResponse,
  MembersResponse,
  MemberUpdateRequest,
  MoveLeaderRequest,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchRequest,
  WatchResponse,
} from '../protocol/types.js'
import type { PeerSession, PeerSocket, PeerUpgradeHeaders } from '../rafthttp/transport.js'

/** One client watch stream (an HTTP stream or a WebSocket): requests in, responses out, in order. */
export interface WatchStream {
  /** Handles one request; responses arrive through the `send` callback given to openWatchStream. */
  request(req: WatchRequest): void
  /** The transport drained after `send` returned false: deliver what was held back. */
  resume(): void
  /**
   * Hold events back until `resume()` as if `send` had returned false (they are queued, merged per watcher): the
   * transport has not finished writing what it was given. Optional: a stream without it holds only on false.
   */
  hold?(): void
  /** The transport is backed up (bytes not taken by the network past its threshold): a busy window may grow. */
  backedUp?(): void
  /** The client went away: cancel every watcher of this stream. */
  close(): void
}

/**
 * What the HTTP layer needs from a member. Every method answers with etcd's response (header filled) or throws an
 * EtcdError. Implemented by `Member` (src/etcdserver/member.ts); tests may substitute their own.
 */
export interface MemberApi {
  range(req: RangeRequest): Promise<RangeResponse>
  /** Writes take the caller established by `authorize` (auth on), which apply checks again. */
  put(req: PutRequest, info?: AuthInfo): Promise<PutResponse>
  deleteRange(req: DeleteRangeRequest, info?: AuthInfo): Promise<DeleteRangeResponse>
  txn(req: TxnRequest, info?: AuthInfo): Promise<TxnResponse>
  compact(req: CompactionRequest, info?: AuthInfo): Promise<CompactionResponse>
  leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse>
  leaseRevoke(req: LeaseRevokeRequest, info?: AuthInfo): Promise<LeaseRevokeResponse>
  /** `authorization`: the caller's header, passed on when the call is forwarded to the leader. */
  leaseKeepAlive(req: LeaseKeepAliveRequest, authorization?: string): Promise<LeaseKeepAliveResponse>
  leaseTimeToLive(req: LeaseTimeToLiveRequest, authorization?: string): Promise<LeaseTimeToLiveResponse>
  leaseLeases(): Promise<LeaseLeasesResponse>
  /**
   * `send` returns false when the transport is congested; call `resume()` on the stream once it drains. `opts.busy`:
   * the stream merges its events while busy (--watch-batch-interval; the gRPC Watch call).
   */
  openWatchStream(
    send: (resp: WatchResponse) => boolean | undefined,
    info?: AuthInfo,
    opts?: { busy?: boolean },
  ): WatchStream
  /**
   * Auth check of a call before it runs (method = the metrics name, e.g. 'Range'): the caller, undefined when auth
   * is off or no token was given, or an EtcdError. Synchronous while auth is off. Absent: no auth. `certUser`: the
   * CN of a verified client certificate (--client-cert-auth), the caller when no token is given.
   */
  authorize?(
    method: string,
    req: unknown,
    authorization: string | undefined,
    certUser?: string,
  ): AuthInfo | undefined | Promise<AuthInfo | undefined>
  /** Whether auth is on now: while it is off, `authorize` needs neither a call's token nor its peer. */
  authEnabled?(): boolean
  /** The /v3/auth/* calls and the JWKS (src/auth/service.ts). */
  auth?: AuthService
  status(): Promise<StatusResponse>
  memberList(): Promise<MemberListResponse>
  memberAdd(req: MemberAddRequest): Promise<MemberAddResponse>
  memberRemove(req: MemberIdRequest): Promise<MembersResponse>
  memberUpdate(req: MemberUpdateRequest): Promise<MembersResponse>
  memberPromote(req: MemberIdRequest): Promise<MembersResponse>
  moveLeader(req: MoveLeaderRequest): Promise<HeaderResponse>
  /**
   * Checks an inbound /raft upgrade before it is accepted (the sender must be a current member of this member's
   * configuration): the claimed id, or why it is refused.
   */
  admitPeer?(headers: PeerUpgradeHeaders): { from: string } | { refused: string }
  /** An admitted /raft socket; the transport authenticates it (challenge-response) before taking Raft frames. */
  acceptPeer?(from: string, nonce: string, socket: PeerSocket): PeerSession
  alarm(req: AlarmRequest): Promise<{ header: ResponseHeader; alarms: AlarmMember[] }>
  hash(): Promise<HashResponse>
  hashKV(req: HashKVRequest): Promise<HashKVResponse>
  /** A consistent snapshot of the store, as bytes. */
  snapshot(): Promise<{ header: ResponseHeader; data: Uint8Array }>
  /** Prometheus text exposition of the member's gauges (the HTTP layer adds its request metrics). */
  metrics(): string
  /** Whether the member has a leader and is serving (GET /health). */
  healthy(): boolean
  /** Whether the member knows a leader now (etcd's `s.Leader() != None`: clientv3's WithRequireLeader checks it). */
  hasLeader?(): boolean
  /**
   * Whether the member has published its attributes (etcd's ReadyNotify): until then client requests wait for
   * whenReady, which resolves false after the request timeout.
   */
  isReady?(): boolean
  whenReady?(): Promise<boolean>
}
