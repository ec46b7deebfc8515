/**
 * edgecd's TypeScript client: etcd's v3 API over the JSON gateway, for Node, Deno, browsers and Workers.
 * Recipes (locks, elections, queues, service registration) are in `./concurrency/index.js`.
 */

export {
  AuthClient,
  type AuthenticateResponse,
  type AuthStatusResponse,
  type Permission,
  type PermissionRange,
  type PermissionType,
  type RoleGetResponse,
  type RoleListResponse,
  type UserGetResponse,
  type UserListResponse,
} from './auth.js'
export { type Bytes, bytesToString, fromBase64, prefixRangeEnd, toBase64, toBytes } from './bytes.js'
export { Client, type ClientOptions, clientDefaults, MemberClient } from './client.js'
export * from './concurrency/index.js'
export { type ClientErrorCode, compactedMessage, EtcdClientError, GrpcCode, leaseNotFoundMessage } from './errors.js'
export { type KeepAliveOptions, LeaseClient, type LeaseKeepAlive } from './lease.js'
export type { DeleteOptions, PutOptions, RangeOptions, SortOrder, SortTarget } from './requests.js'
export { type TlsOptions, tlsFetch, tlsWebSocket } from './tls.js'
export { Compare, type CompareOp, Op, TxnBuilder } from './txn.js'
export type * from './types.js'
export { idString } from './types.js'
export { Watcher, type WatchOptions, type WatchTarget, type WebSocketConstructor, type WebSocketLike } from './watch.js'
export { setDefaultWebSocket } from './websocket.js'
