import type { FieldDesc, MessageDesc } from '../../../protocol/descriptors.js'
import { encodeBase64 } from './base64.js'

/**
 * Encoding of responses as etcd's gateway does it (grpc-gateway v1: OrigName, EmitDefaults false): keys in proto
 * field order, proto3 zero values omitted, int64/uint64 as strings, bytes as padded base64, enums by name. A message
 * that is present but empty is written `{}` (as the nested txn header). Writes the JSON text directly: this is the
 * hot path of every response.
 */
export function encodeMessage<T>(desc: MessageDesc<T>, obj: NoInfer<Partial<T>>): string {
  const o = obj as Record<string, unknown>
  let out = '{'
  let first = true
  for (const f of desc.fields) {
    const v = o[f.name]
    if (v === undefined || v === null) continue
    let s: string | undefined
    if (f.repeated) {
      const arr = v as unknown[]
      if (arr.length === 0) continue
      s = '['
      for (let i = 0; i < arr.length; i++) {
        if (i > 0) s += ','
        s += encodeValue(f, arr[i]) ?? zeroText(f)
      }
      s += ']'
    } else {
      s = encodeValue(f, v)
      if (s === undefined) continue
    }
    out += (first ? '"' : ',"') + f.name + '":' + s
    first = false
  }
  return out + '}'
}

/** The JSON of one value, or undefined when it is proto3's zero value (omitted). */
function encodeValue(f: FieldDesc, v: unknown): string | undefined {
  switch (f.kind) {
    case 'bytes': {
      const b = v as Uint8Array
      return b.length === 0 ? undefined : '"' + encodeBase64(b) + '"'
    }
    case 'string':
      return v === '' ? undefined : JSON.stringify(v)
    case 'bool':
      return v === true ? 'true' : undefined
    case 'int64':
      return v === 0 ? undefined : '"' + String(v) + '"'
    case 'int64big':
      return v === 0n ? undefined : '"' + String(v) + '"'
    case 'int64id':
      return v === 0 ? undefined : '"' + String(v) + '"'
    case 'uint64str':
      return v === '0' || v === '' ? undefined : '"' + String(v) + '"'
    case 'int32':
      return v === 0 ? undefined : String(v)
    case 'enum': {
      if (v === 0) return undefined
      const name = f.enumNames![v as number]
      return name === undefined ? String(v) : '"' + name + '"'
    }
    case 'message':
      return encodeMessage(f.message!(), v as Record<string, unknown>)
  }
}

/** Inside repeated fields zeros are written, not omitted (an empty key in `keys`, enum 0 in `filters`). */
function zeroText(f: FieldDesc): string {
  switch (f.kind) {
    case 'bytes':
    case 'string':
      return '""'
    case 'enum':
      return '"' + f.enumNames![0] + '"'
    case 'int64':
    case 'int64big':
    case 'int64id':
    case 'uint64str':
      return '"0"'
    case 'bool':
      return 'false'
    default:
      return '0'
  }
}
