/**
 * Which permissions a KV request needs (etcd's apply_auth.go and v3_server.go): range → READ on its range; put and
 * delete_range → WRITE; a txn → READ on every compare's range (a compare reads), and each op of both branches
 * (etcd checks both, whatever the compares say, so the outcome cannot reveal a forbidden key), nested txns included.
 */
import { EtcdError } from '../protocol/errors.js'
import type { TxnRequest } from '../protocol/types.js'
import { PermType } from './permissions.js'
import type { AuthInfo, AuthStore } from './store.js'

/**
 * Throws ErrPermissionDenied (or ErrUserEmpty / ErrAuthOldRevision) unless `info` may run the whole txn. With
 * `leaseKeys`, a put with a lease also needs WRITE on every key the lease already holds (etcd's checkLeasePuts).
 */
export function checkTxn(
  store: AuthStore,
  info: AuthInfo | undefined,
  txn: TxnRequest,
  leaseKeys?: (id: bigint) => Iterable<Uint8Array> | undefined,
  depth = 0,
): void {
  if (!store.enabled) return
  // etcd checks each compare and op (isOpPermitted: no user, an old auth revision, ...): a txn with none checks no
  // user, only doSerialize's revision of a token (found by the session 9 soak, random-admin seed 9202: `{}` with no
  // token is answered).
  if (depth === 0 && !txnHasChecks(txn)) {
    if (info && info.rev !== 0 && info.rev !== store.revision) throw new EtcdError('ErrAuthOldRevision')
    return
  }
  store.checkUser(info)
  if (store.isRoot(info)) return
  // The member checked the op count (each nested txn counts) before this; a deeper txn is refused as etcd does.
  if (depth > 10_000) throw new EtcdError('ErrTooManyOps')
  for (const c of txn.compare) store.checkRange(info, PermType.READ, c.key, c.range_end)
  for (const op of [...txn.success, ...txn.failure]) {
    if (op.request_range) store.checkRange(info, PermType.READ, op.request_range.key, op.request_range.range_end)
    else if (op.request_put) {
      store.checkRange(info, PermType.WRITE, op.request_put.key, new Uint8Array(0))
      // etcd: a put with prev_kv also reads the key.
      if (op.request_put.prev_kv) store.checkRange(info, PermType.READ, op.request_put.key, new Uint8Array(0))
      if (leaseKeys && op.request_put.lease)
        checkLeaseKeys(store, info, leaseKeys(op.request_put.lease), PermType.WRITE)
    } else if (op.request_delete_range) {
      const d = op.request_delete_range
      store.checkRange(info, PermType.WRITE, d.key, d.range_end)
      if (d.prev_kv) store.checkRange(info, PermType.READ, d.key, d.range_end)
    } else if (op.request_txn) checkTxn(store, info, op.request_txn, leaseKeys, depth + 1)
  }
}

/** Whether a txn has a compare or an op etcd's checkTxnReqsPermission checks (nested txns looked into). */
export function txnHasChecks(t: TxnRequest): boolean {
  if (t.compare.length > 0) return true
  return [...t.success, ...t.failure].some(
    (op) =>
      !!op.request_range ||
      !!op.request_put ||
      !!op.request_delete_range ||
      (!!op.request_txn && txnHasChecks(op.request_txn)),
  )
}

/**
 * etcd's lease checks (checkLeasePuts, checkLeaseTimeToLive, checkLeaseRenew): a user needs `perm` on every key the
 * lease holds; root needs nothing more; a lease that does not exist needs nothing.
 */
export function checkLeaseKeys(
  store: AuthStore,
  info: AuthInfo | undefined,
  keys: Iterable<Uint8Array> | undefined,
  perm: PermType.READ | PermType.WRITE,
): void {
  if (!store.enabled) return
  store.checkUser(info)
  if (!keys || store.isRoot(info)) return
  const none = new Uint8Array(0)
  for (const k of keys) store.checkRange(info, perm, k, none)
}
