/**
 * etcd's HashKV (mvcc/kvstore.go HashByRev): CRC-32C over the bucket name "key" followed by every retained revision
 * row up to a revision, as the bytes etcd stores: the revision key (revision.ts) and the protobuf-encoded
 * mvccpb.KeyValue. Computing it over the same bytes makes the value comparable with a real etcd holding the same
 * history, and equal on every member holding the same state.
 */
import CRC32C from 'crc-32/crc32c.js'
import type { KeyValue } from '../protocol/types.js'
import type { Change } from './key-index.js'
import { revisionBytes } from './revision.js'

const keyBucketName = new TextEncoder().encode('key')

/** CRC-32C over the rows, in revision order, that HashByRev would visit. */
export function hashRows(rows: readonly Change[]): number {
  let crc = CRC32C.buf(keyBucketName)
  for (const c of rows) {
    crc = CRC32C.buf(revisionBytes({ main: c.main, sub: c.sub }, c.tombstone), crc)
    crc = CRC32C.buf(marshalKeyValue(c.kv, c.tombstone), crc)
  }
  return crc >>> 0
}

/**
 * mvccpb.KeyValue in protobuf wire format, fields in number order, zero values omitted (gogoproto's Marshal).
 * A tombstone row stores only the key, as etcd's delete does.
 */
export function marshalKeyValue(kv: KeyValue, tombstone: boolean): Uint8Array {
  const out: number[] = []
  const bytesField = (tag: number, b: Uint8Array) => {
    if (b.length === 0) return
    out.push(tag)
    varint(out, BigInt(b.length))
    for (let i = 0; i < b.length; i++) out.push(b[i]!)
  }
  const intField = (tag: number, v: bigint) => {
    if (v === 0n) return
    out.push(tag)
    varint(out, v)
  }
  bytesField(0x0a, kv.key)
  if (!tombstone) {
    intField(0x10, BigInt(kv.create_revision))
    intField(0x18, BigInt(kv.mod_revision))
    intField(0x20, BigInt(kv.version))
    bytesField(0x2a, kv.value)
    intField(0x30, kv.lease)
  }
  return Uint8Array.from(out)
}

/** A protobuf varint of an int64 (negative values as their 64-bit two's complement, 10 bytes). */
function varint(out: number[], v: bigint): void {
  let u = BigInt.asUintN(64, v)
  while (u >= 0x80n) {
    out.push(Number(u & 0x7fn) | 0x80)
    u >>= 7n
  }
  out.push(Number(u))
}
