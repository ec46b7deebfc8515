/**
 * Request validation as etcd's API layer does it before proposing (etcdserver/api/v3rpc/key.go), plus the txn
 * helpers of etcdserver/apply.go: compare evaluation, read-only detection and the duplicate-key interval check.
 * The server may call `checkRequest` before proposing to answer bad requests without a Raft round; `KvStore.apply`
 * runs the same checks again, deterministically, so a request that slipped through fails the same way on every member.
 */
import { compareBytes, inRange, isFromKey, type KeyRange, keyString, resolveRange } from './bytes.js'

const emptyKey = new Uint8Array(0)

import { EtcdError } from '../protocol/errors.js'
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
} from '../protocol/types.js'
import type { InternalRequest } from './requests.js'

/**
 * etcd's checkRangeRequest, and a range that would sort by an unknown target refused with etcd 3.5's "invalid sort
 * option": etcd 3.4 has no check and its member dies on one (sort.Sort of a nil sorter). An unknown order sorts
 * nothing in etcd 3.4, so it is taken as 3.4 does (3.5 refuses it too).
 */
export function checkRangeRequest(r: RangeRequest): void {
  if (r.key.length === 0) throw new EtcdError('ErrEmptyKey')
  if (r.sort_target < SortTarget.KEY || r.sort_target > SortTarget.VALUE) {
    // A target other than KEY with order NONE sorts ASCEND.
    const order = r.sort_order === SortOrder.NONE ? SortOrder.ASCEND : r.sort_order
    if (order === SortOrder.ASCEND || order === SortOrder.DESCEND) throw new EtcdError('ErrInvalidSortOption')
  }
}

/** etcd's checkPutRequest. */
export function checkPutRequest(r: PutRequest): void {
  if (r.key.length === 0) throw new EtcdError('ErrEmptyKey')
  if (r.ignore_value && r.value.length !== 0) throw new EtcdError('ErrValueProvided')
  if (r.ignore_lease && r.lease !== 0n) throw new EtcdError('ErrLeaseProvided')
}

/** etcd's checkDeleteRequest. */
export function checkDeleteRequest(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw new EtcdError('ErrEmptyKey')
}

/**
 * etcd's checkTxnRequest: the op count (max of compares, success ops and failure ops, each level checked against
 * what its parent left), empty compare keys, each op, then the duplicate-key check on both branches.
 */
export function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  checkTxnOps(r, maxTxnOps)
  checkIntervals(r.success)
  checkIntervals(r.failure)
}

function checkTxnOps(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length)
  if (opc > maxTxnOps) throw new EtcdError('ErrTooManyOps')
  for (const c of r.compare) if (c.key.length === 0) throw new EtcdError('ErrEmptyKey')
  for (const op of r.success) checkRequestOp(op, maxTxnOps - opc)
  for (const op of r.failure) checkRequestOp(op, maxTxnOps - opc)
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if (op.request_range) checkRangeRequest(op.request_range)
  else if (op.request_put) checkPutRequest(op.request_put)
  else if (op.request_delete_range) checkDeleteRequest(op.request_delete_range)
  else if (op.request_txn) checkTxnOps(op.request_txn, maxTxnOps)
  // etcd answers an op with no request set as "key not found" (checkRequestOp's default case).
  else throw new EtcdError('ErrKeyNotFound')
}

/**
 * etcd's checkIntervals: no key may be put twice, or put and deleted, by one branch of a txn including its nested
 * txns (the then/else branches of a nested txn exclude each other, so a key put in both is fine). Overlapping deletes
 * are allowed. Returns the keys put and the ranges deleted, for the parent level.
 *
 * Like etcd's interval tree, a delete whose range_end is "\0" (from key) reads as the literal interval [key, "\0"),
 * which holds no key, so it never conflicts: etcd accepts "delete from a, then put b" in one txn, and so does edgecd
 * (b then has a tombstone and a put at the same revision, sub-ordered). See KvStore.runTxn for the one such txn that
 * etcd panics on.
 */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: KeyRange[] } {
  const dels: KeyRange[] = []
  for (const op of ops) {
    const d = op.request_delete_range
    if (d)
      dels.push(
        isFromKey(d.range_end)
          ? { ...resolveRange(d.key, emptyKey), single: false, empty: true }
          : resolveRange(d.key, d.range_end),
      )
  }
  const hitsDel = (k: string) => dels.some((r) => inRange(r, k))
  const puts = new Set<string>()
  for (const op of ops) {
    const t = op.request_txn
    if (!t) continue
    const then = checkIntervals(t.success)
    const els = checkIntervals(t.failure)
    for (const k of then.puts) {
      if (puts.has(k) || hitsDel(k)) throw new EtcdError('ErrDuplicateKey')
      puts.add(k)
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw new EtcdError('ErrDuplicateKey')
      if (hitsDel(k)) throw new EtcdError('ErrDuplicateKey')
      puts.add(k)
    }
    dels.push(...then.dels, ...els.dels)
  }
  for (const op of ops) {
    const p = op.request_put
    if (!p) continue
    const k = keyString(p.key)
    if (puts.has(k) || hitsDel(k)) throw new EtcdError('ErrDuplicateKey')
    puts.add(k)
  }
  return { puts, dels }
}

/** The checks etcd's API layer makes on a request before proposing it. */
export function checkRequest(req: InternalRequest, maxTxnOps: number): void {
  if ('put' in req) checkPutRequest(req.put)
  else if ('delete_range' in req) checkDeleteRequest(req.delete_range)
  else if ('txn' in req) checkTxnRequest(req.txn, maxTxnOps)
}

/** etcd's isTxnReadonly: every op in both branches, nested included, is a range. Such a txn needs no Raft round. */
export function isTxnReadOnly(r: TxnRequest): boolean {
  const ro = (ops: RequestOp[]): boolean =>
    ops.every((op) => op.request_range !== undefined || (op.request_txn !== undefined && isTxnReadOnly(op.request_txn)))
  return ro(r.success) && ro(r.failure)
}

/** Whether any branch of the txn (nested included) puts: such a txn is refused while the NOSPACE alarm is active. */
export function txnHasPut(r: TxnRequest): boolean {
  const has = (ops: RequestOp[]): boolean =>
    ops.some((op) => op.request_put !== undefined || (op.request_txn !== undefined && txnHasPut(op.request_txn)))
  return has(r.success) || has(r.failure)
}

/** The zero KeyValue a compare sees for a missing key (version, create and mod revision 0). */
const missingKv: KeyValue = {
  key: new Uint8Array(0),
  create_revision: 0,
  mod_revision: 0,
  version: 0,
  value: new Uint8Array(0),
  lease: 0n,
}

/**
 * etcd's applyCompare over the KeyValues the compare's key or range holds: every key must satisfy it; with no key,
 * a VALUE compare is false (there is no way to express "missing" as a value) and the others see zeros.
 */
export function applyCompare(c: Compare, kvs: KeyValue[]): boolean {
  if (kvs.length === 0) return c.target === CompareTarget.VALUE ? false : compareKv(c, missingKv)
  return kvs.every((kv) => compareKv(c, kv))
}

/** etcd's compareKV. */
function compareKv(c: Compare, kv: KeyValue): boolean {
  let result: number
  switch (c.target) {
    case CompareTarget.VALUE:
      result = compareBytes(kv.value, c.value ?? new Uint8Array(0))
      break
    case CompareTarget.CREATE:
      result = Math.sign(kv.create_revision - (c.create_revision ?? 0))
      break
    case CompareTarget.MOD:
      result = Math.sign(kv.mod_revision - (c.mod_revision ?? 0))
      break
    case CompareTarget.LEASE: {
      const l = c.lease ?? 0n
      result = kv.lease < l ? -1 : kv.lease > l ? 1 : 0
      break
    }
    case CompareTarget.VERSION:
      result = Math.sign(kv.version - (c.version ?? 0))
      break
    default:
      // etcd's compareKV leaves result 0 for an unknown target.
      result = 0
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0
    case CompareResult.NOT_EQUAL:
      return result !== 0
    case CompareResult.GREATER:
      return result > 0
    case CompareResult.LESS:
      return result < 0
    default:
      // etcd's compareKV returns true for an unknown result enum.
      return true
  }
}
