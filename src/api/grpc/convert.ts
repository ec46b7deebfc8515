/**
 * Between protobuf-es messages (the generated code in ./gen: lowerCamel names, every 64-bit integer a bigint, oneofs
 * as `{ case, value }`) and the member's messages (src/kv/types.ts: etcd's proto field names, revisions and counts
 * as numbers, lease ids as bigints, member and cluster ids as decimal strings, oneof members as plain optional
 * fields). One mechanical mapping driven by the descriptors, so that no RPC hand-copies fields.
 *
 * The member's representation of a 64-bit field: uint64 is a decimal string (member, cluster and leader ids); int64
 * named `lease` or `ID` is a bigint (lease ids, which are random and need all 64 bits); `watch_id` is a WatchId (a
 * number, or a bigint past 2^53: a client-chosen id is echoed exactly); any other int64 is a number (revisions,
 * versions, counts, TTLs, sizes: exact up to 2^53).
 */

import { create, type DescField, type DescMessage, type MessageShape, ScalarType } from '@bufbuild/protobuf'
import { watchIdOf } from '../../protocol/types.js'

type Rep = 'plain' | 'number' | 'bigint' | 'decimal' | 'watchId'

interface Plan {
  /** etcd's proto name: the member's key. */
  name: string
  /** protobuf-es' property (the oneof's, for a oneof member). */
  local: string
  /** The oneof case this field is, when it belongs to a oneof. */
  oneofCase?: string
  list: boolean
  rep: Rep
  message?: DescMessage
}

const plans = new WeakMap<DescMessage, Plan[]>()

function repOf(name: string, scalar: ScalarType | undefined): Rep {
  switch (scalar) {
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 'decimal'
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      if (name === 'watch_id') return 'watchId'
      return name === 'lease' || name === 'ID' ? 'bigint' : 'number'
    default:
      return 'plain'
  }
}

function planOf(desc: DescMessage): Plan[] {
  let p = plans.get(desc)
  if (p) return p
  p = desc.fields.map((f: DescField): Plan => {
    const list = f.fieldKind === 'list'
    const message = f.fieldKind === 'message' ? f.message : f.fieldKind === 'list' ? f.message : undefined
    const scalar =
      f.fieldKind === 'scalar' || (f.fieldKind === 'list' && f.listKind === 'scalar') ? f.scalar : undefined
    return {
      name: f.name,
      local: f.oneof ? f.oneof.localName : f.localName,
      ...(f.oneof ? { oneofCase: f.localName } : {}),
      list,
      rep: repOf(f.name, scalar),
      ...(message ? { message } : {}),
    }
  })
  plans.set(desc, p)
  return p
}

function scalarIn(rep: Rep, v: unknown): unknown {
  switch (rep) {
    case 'number':
      return Number(v as bigint)
    case 'decimal':
      return (v as bigint).toString()
    case 'watchId':
      return watchIdOf(v as bigint)
    default:
      return v
  }
}

function scalarOut(rep: Rep, v: unknown): unknown {
  switch (rep) {
    case 'number':
      return BigInt(Math.trunc(Number(v ?? 0)))
    case 'bigint':
      return typeof v === 'bigint' ? v : BigInt((v as number | string | undefined) ?? 0)
    case 'watchId':
      return typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v ?? 0)))
    case 'decimal':
      return v === undefined || v === '' ? 0n : BigInt(v as string | number | bigint)
    default:
      return v
  }
}

/** A protobuf-es message as the member's request object (every field present; unset oneof members absent). */
export function fromProto<T = unknown>(desc: DescMessage, msg: object): T {
  const m = msg as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const p of planOf(desc)) {
    let v = m[p.local]
    if (p.oneofCase !== undefined) {
      const o = v as { case?: string; value?: unknown } | undefined
      if (o?.case !== p.oneofCase) continue
      v = o.value
    }
    if (p.message) {
      if (p.list) out[p.name] = (v as object[]).map((x) => fromProto(p.message!, x))
      else if (v !== undefined) out[p.name] = fromProto(p.message, v as object)
    } else if (p.list) {
      out[p.name] = p.rep === 'plain' ? v : (v as unknown[]).map((x) => scalarIn(p.rep, x))
    } else {
      out[p.name] = scalarIn(p.rep, v)
    }
  }
  return out as T
}

/** The init object protobuf-es' `create` takes, from a member's response object (absent fields: proto3 zero). */
function initOf(desc: DescMessage, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const p of planOf(desc)) {
    const v = obj[p.name]
    if (v === undefined || v === null) continue
    let x: unknown
    if (p.message) {
      const m = p.message
      x = p.list ? (v as Record<string, unknown>[]).map((e) => initOf(m, e)) : initOf(m, v as Record<string, unknown>)
    } else if (p.list) {
      x = p.rep === 'plain' ? v : (v as unknown[]).map((e) => scalarOut(p.rep, e))
    } else {
      x = scalarOut(p.rep, v)
    }
    if (p.oneofCase !== undefined) out[p.local] = { case: p.oneofCase, value: x }
    else out[p.local] = x
  }
  return out
}

/** A member's response object as a protobuf-es message of `desc`. */
export function toProto<Desc extends DescMessage>(desc: Desc, obj: object): MessageShape<Desc> {
  return create(desc, initOf(desc, obj as Record<string, unknown>) as never)
}
