import { decode, encode } from 'cbor-x'
import { type ConfChange, ConfChangeType, emptyBytes } from './types.js'

/** The bytes of a conf change entry: CBOR `[type, nodeId, context]`. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encode([cc.type, cc.nodeId, cc.context])
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const v = decode(data) as unknown
  if (!Array.isArray(v) || typeof v[0] !== 'number' || typeof v[1] !== 'string' || !(v[0] in ConfChangeType))
    throw new Error('raft: malformed conf change entry')
  return { type: v[0], nodeId: v[1], context: v[2] instanceof Uint8Array ? v[2] : emptyBytes }
}
