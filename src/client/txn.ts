/**
 * Transactions: `client.txn().if(Compare.value('k', '=', 'v')).then(Op.put('k', 'w')).else(Op.get('k')).commit()`,
 * the shape of etcd's clientv3 `Txn(ctx).If(...).Then(...).Else(...).Commit()`.
 */
import { type Bytes, toBase64 } from './bytes.js'
import {
  type DeleteOptions,
  deleteRequest,
  type PutOptions,
  putRequest,
  type RangeOptions,
  rangeEndOf,
  rangeRequest,
} from './requests.js'
import { idString, type LeaseIdLike, type TxnResponse } from './types.js'

/** Comparison operators (etcd's CompareResult: EQUAL, GREATER, LESS, NOT_EQUAL). */
export type CompareOp = '=' | '!=' | '>' | '<'

/** A compare of a txn, in the gateway's JSON shape. */
export interface Compare {
  readonly raw: Record<string, unknown>
}

const results: Record<CompareOp, string> = { '=': 'EQUAL', '>': 'GREATER', '<': 'LESS', '!=': 'NOT_EQUAL' }

function cmp(
  key: Bytes,
  target: string,
  op: CompareOp,
  field: string,
  value: unknown,
  range?: { prefix?: boolean; rangeEnd?: Bytes },
): Compare {
  if (!(op in results)) throw new TypeError(`edgecd client: unknown compare operator ${JSON.stringify(op)}`)
  const raw: Record<string, unknown> = { key: toBase64(key), target, result: results[op], [field]: value }
  const end = range ? rangeEndOf(key, range) : undefined
  if (end !== undefined) raw.range_end = toBase64(end)
  return { raw }
}

/** Builders for txn compares (on one key, or with `{prefix}` / `{rangeEnd}` on every key of a range). */
export const Compare = {
  value: (key: Bytes, op: CompareOp, value: Bytes, range?: { prefix?: boolean; rangeEnd?: Bytes }) =>
    cmp(key, 'VALUE', op, 'value', toBase64(value), range),
  version: (key: Bytes, op: CompareOp, version: number, range?: { prefix?: boolean; rangeEnd?: Bytes }) =>
    cmp(key, 'VERSION', op, 'version', String(version), range),
  createRevision: (key: Bytes, op: CompareOp, revision: number, range?: { prefix?: boolean; rangeEnd?: Bytes }) =>
    cmp(key, 'CREATE', op, 'create_revision', String(revision), range),
  modRevision: (key: Bytes, op: CompareOp, revision: number, range?: { prefix?: boolean; rangeEnd?: Bytes }) =>
    cmp(key, 'MOD', op, 'mod_revision', String(revision), range),
  lease: (key: Bytes, op: CompareOp, lease: LeaseIdLike, range?: { prefix?: boolean; rangeEnd?: Bytes }) =>
    cmp(key, 'LEASE', op, 'lease', idString(lease), range),
}

/** An operation of a txn, in the gateway's JSON shape. */
export interface Op {
  readonly raw: Record<string, unknown>
}

/** Builders for txn operations. */
export const Op = {
  get: (key: Bytes, opts?: RangeOptions): Op => ({ raw: { request_range: rangeRequest(key, opts) } }),
  put: (key: Bytes, value: Bytes, opts?: PutOptions): Op => ({ raw: { request_put: putRequest(key, value, opts) } }),
  delete: (key: Bytes, opts?: DeleteOptions): Op => ({ raw: { request_delete_range: deleteRequest(key, opts) } }),
  txn: (compare: Compare[], success: Op[], failure: Op[] = []): Op => ({
    raw: { request_txn: txnRequest(compare, success, failure) },
  }),
}

export function txnRequest(compare: Compare[], success: Op[], failure: Op[]): Record<string, unknown> {
  const r: Record<string, unknown> = {}
  if (compare.length) r.compare = compare.map((c) => c.raw)
  if (success.length) r.success = success.map((o) => o.raw)
  if (failure.length) r.failure = failure.map((o) => o.raw)
  return r
}

/** A txn being built; `commit()` sends it once. */
export class TxnBuilder {
  private readonly compares: Compare[] = []
  private readonly success: Op[] = []
  private readonly failure: Op[] = []

  constructor(private readonly send: (body: Record<string, unknown>) => Promise<TxnResponse>) {}

  /** Adds compares (all must hold for the `then` branch). */
  if(...c: Compare[]): this {
    this.compares.push(...c)
    return this
  }

  /** Operations run when every compare holds. */
  // biome-ignore lint/suspicious/noThenProperty: etcd's clientv3 names it Then; awaiting the builder is refused below
  then(...ops: Op[]): this {
    // A builder named like a promise: `await builder` would call then(resolve, reject); say what to do instead.
    if (ops.some((o) => typeof o === 'function'))
      throw new TypeError('edgecd client: a txn builder is not a promise; call .commit()')
    this.success.push(...ops)
    return this
  }

  /** Operations run otherwise. */
  else(...ops: Op[]): this {
    this.failure.push(...ops)
    return this
  }

  /** The request body (for inspection or logging). */
  request(): Record<string, unknown> {
    return txnRequest(this.compares, this.success, this.failure)
  }

  /** Sends the txn. A txn with writes is never retried once it may have reached a server. */
  commit(): Promise<TxnResponse> {
    return this.send(this.request())
  }
}
