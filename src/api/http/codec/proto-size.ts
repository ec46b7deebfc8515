import { checkDeleteRequest, checkPutRequest, checkTxnRequest, isTxnReadOnly } from '../../../kv/txn.js'
import type { FieldDesc, MessageDesc } from '../../../protocol/descriptors.js'
import { EtcdError } from '../../../protocol/errors.js'
import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../../../protocol/types.js'

/**
 * The length of a decoded request as protobuf encodes it, and of the InternalRaftRequest etcd would propose for it:
 * etcd's limits are on those sizes (gRPC's receive limit on the request message, --max-request-bytes on the raft
 * request), not on the JSON body, so the HTTP front door measures them to refuse exactly what etcd refuses
 * (docs/api.md, "Request size"). Tags are one byte (field numbers below 16) except the few listed below.
 */

/** Fields numbered 16 or more (two-byte tags), by message. */
const wideTags: Record<string, ReadonlySet<string>> = {
  'etcdserverpb.Compare': new Set(['range_end']), // field 64
}

function varintSize(v: bigint): number {
  if (v < 0n) return 10 // negative int64/int32: ten bytes, sign-extended
  let n = 1
  while (v >= 0x80n) {
    v >>= 7n
    n++
  }
  return n
}

function uintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5
}

const utf8 = new TextEncoder()

/** The encoded length of one value without its tag, or undefined when proto3 omits it (a zero scalar). */
function valueSize(f: FieldDesc, v: unknown, inRepeated: boolean): number | undefined {
  switch (f.kind) {
    case 'bytes': {
      const n = (v as Uint8Array).length
      return n === 0 && !inRepeated ? undefined : uintSize(n) + n
    }
    case 'string': {
      const n = utf8.encode(v as string).length
      return n === 0 && !inRepeated ? undefined : uintSize(n) + n
    }
    case 'bool':
      return v === true || inRepeated ? 1 : undefined
    case 'int64':
    case 'int32':
    case 'enum': {
      const x = BigInt(Math.trunc(v as number))
      return x === 0n && !inRepeated ? undefined : varintSize(x)
    }
    case 'int64id': {
      const x = typeof v === 'bigint' ? v : BigInt(Math.trunc(v as number))
      return x === 0n && !inRepeated ? undefined : varintSize(x)
    }
    case 'int64big': {
      const x = v as bigint
      return x === 0n && !inRepeated ? undefined : varintSize(x)
    }
    case 'uint64str': {
      const x = BigInt((v as string) || '0')
      return x === 0n && !inRepeated ? undefined : varintSize(x)
    }
    case 'message': {
      const n = protoSize(f.message!(), v as Record<string, unknown>)
      return uintSize(n) + n
    }
  }
}

/** The protobuf length of a message decoded by decodeMessage. */
export function protoSize(desc: MessageDesc, obj: Record<string, unknown>): number {
  const wide = wideTags[desc.goType]
  let size = 0
  for (const f of desc.fields) {
    const v = obj[f.name]
    if (v === undefined || v === null) continue
    const tag = wide?.has(f.name) ? 2 : 1
    if (f.repeated) {
      const arr = v as unknown[]
      if (arr.length === 0) continue
      if (f.kind === 'bytes' || f.kind === 'string' || f.kind === 'message') {
        for (const x of arr) size += tag + valueSize(f, x, true)!
      } else {
        // Repeated scalars are packed: one tag and length, then the values.
        let n = 0
        for (const x of arr) n += valueSize(f, x, true)!
        size += tag + uintSize(n) + n
      }
    } else {
      const n = valueSize(f, v, false)
      if (n !== undefined) size += tag + n
    }
  }
  return size
}

/**
 * The length of the InternalRaftRequest etcd 3.4 proposes for a write of `requestSize` bytes: a RequestHeader (field
 * 100: a nine-byte request ID, and the user and auth revision when auth is on) and the request in its field (a
 * one-byte tag for put, delete_range, txn, compaction, lease grant/revoke, alarm; two bytes for the auth requests).
 */
export function raftRequestSize(requestSize: number, wideTag: boolean, user?: { name: string; rev: number }): number {
  let header = 1 + 9
  if (user) {
    const n = utf8.encode(user.name).length
    if (n > 0) header += 1 + uintSize(n) + n
    if (user.rev > 0) header += 1 + varintSize(BigInt(user.rev))
  }
  return 2 + uintSize(header) + header + (wideTag ? 2 : 1) + uintSize(requestSize) + requestSize
}

/** Writes etcd proposes through Raft, by the width of their InternalRaftRequest tag; others are not measured. */
const proposedNarrow = new Set(['Put', 'DeleteRange', 'Txn', 'Compact', 'LeaseGrant', 'LeaseRevoke', 'Alarm'])

/** The width of the InternalRaftRequest tag etcd proposes `method` under, or undefined when it proposes nothing. */
export function proposedTag(method: string, r: unknown): 'narrow' | 'wide' | undefined {
  // A txn of ranges only (nested too) is served without Raft.
  if (method === 'Txn') return isTxnReadOnly(r as TxnRequest) ? undefined : 'narrow'
  if (proposedNarrow.has(method)) return 'narrow'
  if (method.startsWith('Auth') || method.startsWith('User') || method.startsWith('Role'))
    return method === 'AuthStatus' ? undefined : 'wide'
  return undefined
}

/**
 * etcd's --max-request-bytes check, for both front doors: a request of `size` protobuf bytes that etcd would propose
 * in an InternalRaftRequest longer than `maxRequestBytes` is refused with ErrRequestTooLarge. As etcd, only after the
 * request's own checks (v3rpc's checkPutRequest, checkDeleteRequest, checkTxnRequest run before the proposal is
 * marshalled and measured): a too large put with an empty key is answered "key is not provided".
 */
export function checkRequestSize(
  method: string,
  r: unknown,
  size: number,
  limits: { maxRequestBytes: number; maxTxnOps: number },
  user?: { name: string; rev: number },
): void {
  // The raft request adds a few dozen bytes and the user name: well below the limit, nothing to measure.
  if (size + 64 + (user ? user.name.length * 3 : 0) <= limits.maxRequestBytes) return
  const tag = proposedTag(method, r)
  if (tag === undefined || raftRequestSize(size, tag === 'wide', user) <= limits.maxRequestBytes) return
  if (method === 'Put') checkPutRequest(r as PutRequest)
  else if (method === 'DeleteRange') checkDeleteRequest(r as DeleteRangeRequest)
  else if (method === 'Txn') checkTxnRequest(r as TxnRequest, limits.maxTxnOps)
  throw new EtcdError('ErrRequestTooLarge')
}
