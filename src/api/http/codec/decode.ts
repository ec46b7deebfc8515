import { isLosslessNumber, isSafeNumber, LosslessNumber, parse as parseLossless } from 'lossless-json'
import { z } from 'zod'
import type { FieldDesc, MessageDesc } from '../../../protocol/descriptors.js'
import { etcdError, GrpcCode } from '../../../protocol/errors.js'
import { watchIdOf } from '../../../protocol/types.js'
import { Base64Error, decodeBase64 } from './base64.js'

/**
 * Decoding of request bodies as etcd's gateway does it (golang/protobuf jsonpb over encoding/json): proto names and
 * lowerCamel names both accepted (case-sensitive), unknown fields ignored, null means unset, bytes as padded
 * standard base64, int64 as a JSON number or a decimal string, bools only true/false, enums by name or number.
 * int64 and uint64 given as JSON numbers are exact at any size, as Go reads them: a body whose numbers do not all fit
 * a double is parsed again with lossless-json, which keeps their text (the common body pays nothing for it).
 * The shapes are zod schemas generated from the message descriptors; errors carry Go's messages, since clients
 * see them verbatim (etcd-api.md §2).
 */

const int64Max = (1n << 63n) - 1n
const int64Min = -(1n << 63n)
const uint64Max = (1n << 64n) - 1n

function jsonKind(v: unknown): string {
  if (v === null) return 'null'
  if (isLosslessNumber(v)) return 'number'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'object') return 'object'
  return typeof v === 'boolean' ? 'bool' : typeof v
}

function cannotUnmarshal(v: unknown, goType: string): string {
  // Go names only the JSON kind for a type mismatch ("number", "string"); a number that does not parse as the
  // integer type is reported with its literal (see parseInteger).
  return `json: cannot unmarshal ${jsonKind(v)} into Go value of type ${goType}`
}

/** Parses an int64/uint64 given as a JSON number or a decimal string, with Go's errors. */
function parseInteger(v: unknown, goType: 'int64' | 'uint64'): bigint | string {
  if (isLosslessNumber(v)) {
    // A number too long for a double, as written: Go reads integer text exactly and names anything else by its text.
    const s = (v as LosslessNumber).value
    if (!/^-?\d+$/.test(s)) return `json: cannot unmarshal number ${s} into Go value of type ${goType}`
    v = BigInt(s)
  } else if (typeof v === 'number') {
    if (!Number.isInteger(v)) return `json: cannot unmarshal number ${v} into Go value of type ${goType}`
    v = BigInt(v)
  } else if (typeof v === 'string') {
    // jsonpb drops the quotes and has encoding/json read what is inside as the integer.
    const r = goUnmarshalText(v, goType)
    if (typeof r === 'string') return r
    if (r === undefined) return 0n
    v = r
  } else {
    return cannotUnmarshal(v, goType)
  }
  const b = v as bigint
  if (goType === 'int64' ? b > int64Max || b < int64Min : b < 0n || b > uint64Max)
    return `json: cannot unmarshal number ${b} into Go value of type ${goType}`
  return b
}

/** Go's quoteChar, as its JSON scanner names a character (its first byte) in a syntax error. */
function goChar(c: string): string {
  if (c === "'") return "'\\''"
  if (c === '"') return "'\"'"
  if (c === '\\') return "'\\\\'"
  // Go turns the byte into the rune of the same number (Latin-1) and quotes it.
  const b = new TextEncoder().encode(c)[0]!
  if (b < 0x20 || b === 0x7f) return `'\\x${b.toString(16).padStart(2, '0')}'`
  if (b >= 0x80 && b < 0xa0) return `'\\u00${b.toString(16)}'`
  return `'${String.fromCharCode(b)}'`
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9'
const isGoSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r'

/**
 * What Go's encoding/json makes of `text` read into an int64 or uint64, as jsonpb has it for an integer field given
 * as a JSON string: the string's contents (quotes dropped, escapes not undone) are a JSON document of their own.
 * Returns the integer, undefined for `null` (Go leaves the field unset), or Go's error text: a syntax error from its
 * scanner, or an UnmarshalTypeError. Characters that must have come escaped in the body (quote, backslash, control
 * characters) are reported as the backslash Go saw.
 */
function goUnmarshalText(text: string, goType: 'int64' | 'uint64'): bigint | undefined | string {
  // At the end of the text Go's scanner is fed a space: a token cut short is reported on that space.
  const s = Array.from(text, (c) => (c === '"' || c === '\\' || c < ' ' ? '\\' : c))
  let i = 0
  const at = () => s[i] ?? ' '
  const after = () => {
    while (isGoSpace(s[i])) i++
    return i < s.length ? `invalid character ${goChar(s[i]!)} after top-level value` : undefined
  }
  while (isGoSpace(s[i])) i++
  const c = s[i]
  if (c === undefined) return 'unexpected end of JSON input'
  if (c === '-' || isDigit(c)) {
    const start = i
    if (c === '-') {
      i++
      if (!isDigit(at())) return `invalid character ${goChar(at())} in numeric literal`
    }
    if (s[i] === '0') i++
    else while (isDigit(s[i])) i++
    if (s[i] === '.') {
      i++
      if (!isDigit(at())) return `invalid character ${goChar(at())} after decimal point in numeric literal`
      while (isDigit(s[i])) i++
    }
    if (s[i] === 'e' || s[i] === 'E') {
      i++
      if (s[i] === '+' || s[i] === '-') i++
      if (!isDigit(at())) return `invalid character ${goChar(at())} in exponent of numeric literal`
      while (isDigit(s[i])) i++
    }
    const lit = s.slice(start, i).join('')
    const bad = after()
    if (bad) return bad
    if (!/^-?\d+$/.test(lit)) return `json: cannot unmarshal number ${lit} into Go value of type ${goType}`
    return BigInt(lit)
  }
  for (const word of ['true', 'false', 'null']) {
    if (c !== word[0]) continue
    for (let k = 1; k < word.length; k++) {
      const x = s[i + k] ?? ' '
      if (x !== word[k]) return `invalid character ${goChar(x)} in literal ${word} (expecting ${goChar(word[k]!)})`
    }
    i += word.length
    const bad = after()
    if (bad) return bad
    return word === 'null' ? undefined : `json: cannot unmarshal bool into Go value of type ${goType}`
  }
  if (c === '[' || c === '{') {
    try {
      const v = JSON.parse(s.join(''))
      return cannotUnmarshal(v, goType)
    } catch {
      return 'unexpected end of JSON input'
    }
  }
  return `invalid character ${goChar(c)} looking for beginning of value`
}

/** An enum given as a JSON number: Go reads it into the enum's int32 type, from the number's text. */
function enumNumber(v: number | LosslessNumber, goType: string): number | string {
  const lit = typeof v === 'number' ? String(v) : v.value
  if (/^-?\d+$/.test(lit)) {
    const n = Number(lit)
    if (n >= -2147483648 && n <= 2147483647) return n
  }
  return `json: cannot unmarshal number ${lit} into Go value of type ${goType}`
}

/**
 * A bytes field given as a JSON array (encoding/json reads an array into []byte element by element): the bytes, or
 * Go's error for the first element that is not an integer 0..255 (null reads as 0).
 */
function bytesFromArray(arr: unknown[]): Uint8Array | string {
  const out = new Uint8Array(arr.length)
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i]
    if (x === null) continue
    if (typeof x === 'number' || isLosslessNumber(x)) {
      const lit = typeof x === 'number' ? String(x) : (x as LosslessNumber).value
      if (/^\d+$/.test(lit) && Number(lit) <= 255) out[i] = Number(lit)
      else return `json: cannot unmarshal number ${lit} into Go value of type uint8`
    } else return cannotUnmarshal(x, 'uint8')
  }
  return out
}

const schemaCache = new Map<MessageDesc, z.ZodType>()

function leafSchema(f: FieldDesc): z.ZodType {
  switch (f.kind) {
    case 'bytes':
      return z.any().transform((v, ctx) => {
        if (Array.isArray(v)) {
          const b = bytesFromArray(v)
          if (typeof b !== 'string') return b
          ctx.addIssue({ code: 'custom', message: b })
          return z.NEVER
        }
        if (typeof v !== 'string') {
          ctx.addIssue({ code: 'custom', message: cannotUnmarshal(v, '[]uint8') })
          return z.NEVER
        }
        try {
          return decodeBase64(v)
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: err instanceof Base64Error ? err.message : String(err) })
          return z.NEVER
        }
      })
    case 'string':
      return z.string({ error: (iss) => cannotUnmarshal(iss.input, 'string') })
    case 'bool':
      return z.boolean({ error: (iss) => cannotUnmarshal(iss.input, 'bool') })
    case 'int64':
    case 'int64big':
    case 'int64id':
    case 'uint64str':
    case 'int32':
      return z.any().transform((v, ctx) => {
        const r = parseInteger(v, f.kind === 'uint64str' ? 'uint64' : 'int64')
        if (typeof r === 'string') {
          ctx.addIssue({ code: 'custom', message: r })
          return z.NEVER
        }
        if (f.kind === 'int64big') return r
        if (f.kind === 'int64id') return watchIdOf(r)
        if (f.kind === 'uint64str') return r.toString()
        return Number(r)
      })
    case 'enum':
      return z.any().transform((v, ctx) => {
        // null (an element of a list: a field's null never gets here) reads as 0, Go's no-op.
        if (v === null) return 0
        if (typeof v === 'number' || isLosslessNumber(v)) {
          const n = enumNumber(v as number | LosslessNumber, f.enumGoType!)
          if (typeof n === 'number') return n
          ctx.addIssue({ code: 'custom', message: n })
          return z.NEVER
        }
        if (typeof v === 'string') {
          const i = f.enumNames!.indexOf(v)
          if (i >= 0) return i
          ctx.addIssue({ code: 'custom', message: `unknown value ${JSON.stringify(v)} for enum ${f.enumGoType}` })
          return z.NEVER
        }
        ctx.addIssue({ code: 'custom', message: cannotUnmarshal(v, f.enumGoType!) })
        return z.NEVER
      })
    case 'message':
      return z.lazy(() => messageSchema(f.message!()))
  }
}

function fieldSchema(f: FieldDesc): z.ZodType {
  const leaf = leafSchema(f)
  if (!f.repeated) return leaf
  // jsonpb reads a repeated field as a []json.RawMessage first, then each element.
  return z.array(leaf, { error: (iss) => cannotUnmarshal(iss.input, '[]json.RawMessage') })
}

function zeroOf(f: FieldDesc): unknown {
  if (f.repeated) return []
  switch (f.kind) {
    case 'bytes':
      return new Uint8Array(0)
    case 'string':
      return ''
    case 'bool':
      return false
    case 'int64':
    case 'int32':
    case 'enum':
      return 0
    case 'int64big':
      return 0n
    case 'int64id':
      return 0
    case 'uint64str':
      return '0'
    case 'message':
      return undefined
  }
}

/**
 * A JSON object's fields by proto name, as jsonpb's consumeField picks them: the lowerCamel name when the object has
 * it (whatever the order, even when it is null), else the proto name; a null value leaves the field unset; unknown
 * keys are ignored.
 */
function foldNames(desc: MessageDesc, input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(input)) {
    const f = desc.byName.get(k)
    if (f === undefined || (k !== f.json && f.json in input)) continue
    if (input[k] !== null) out[f.name] = input[k]
  }
  return out
}

/** A oneof's members (MessageDesc.single): all but the first one set, in field order, dropped (after decoding them). */
function keepFirst(desc: MessageDesc, obj: Record<string, unknown>): void {
  let kept = false
  for (const f of desc.fields) {
    if (obj[f.name] === undefined) continue
    if (kept) delete obj[f.name]
    kept = true
  }
}

/** The zod schema of a message: aliases folded to proto names, nulls dropped, unknown fields ignored, zeros filled. */
export function messageSchema(desc: MessageDesc): z.ZodType {
  let s = schemaCache.get(desc)
  if (s) return s
  // jsonpb reads the fields in struct order with a oneof's members last: the first bad one in that order is reported.
  const shape: Record<string, z.ZodType> = {}
  for (const f of desc.fields) if (!f.oneof) shape[f.name] = fieldSchema(f).optional()
  for (const f of desc.fields) if (f.oneof) shape[f.name] = fieldSchema(f).optional()
  const reordered = desc.fields.some((f) => f.oneof)
  s = z
    .preprocess(
      (v) => {
        if (v === null || v === undefined) return {}
        if (isLosslessNumber(v)) return Number((v as LosslessNumber).value)
        if (typeof v !== 'object' || Array.isArray(v)) return v
        return foldNames(desc, v as Record<string, unknown>)
      },
      // jsonpb reads a message as a map[string]json.RawMessage first.
      z.object(shape, { error: (iss) => cannotUnmarshal(iss.input, 'map[string]json.RawMessage') }),
    )
    .transform((o) => {
      let obj = o as Record<string, unknown>
      // Present fields in descriptor order, as the fast path gives them (the shape lists a oneof's members last).
      if (reordered) {
        const inOrder: Record<string, unknown> = {}
        for (const f of desc.fields) if (obj[f.name] !== undefined) inOrder[f.name] = obj[f.name]
        obj = inOrder
      }
      if (desc.single) keepFirst(desc, obj)
      for (const f of desc.fields) {
        if (obj[f.name] === undefined) {
          const z0 = zeroOf(f)
          if (z0 !== undefined) obj[f.name] = z0
        }
      }
      return obj
    })
  schemaCache.set(desc, s)
  return s
}

/**
 * Parses the first JSON value of a body, as Go's json.Decoder does for unary calls (anything after it is ignored),
 * with Go's messages for malformed input. Numbers are doubles: decodeMessage re-reads a body with longer ones.
 */
export function parseFirstJson(text: string): unknown {
  return parseFirst(text).value
}

function parseFirst(text: string): { value: unknown; text: string } {
  if (text.trim() === '') return { value: {}, text: '{}' }
  try {
    return { value: JSON.parse(text), text }
  } catch (err) {
    const msg = (err as Error).message
    const after = /non-whitespace character after JSON at position (\d+)/.exec(msg)
    if (after) return parseFirst(text.slice(0, Number(after[1])))
    throw etcdError(GrpcCode.InvalidArgument, goJsonError(text, msg))
  }
}

/** A JSON string or a number, as tokens of a valid JSON text (the strings only to skip over them). */
const stringOrNumber = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d[\d.eE+-]*/g

/** Whether valid JSON `text` writes a number with a fraction or an exponent (`1.0`, `1e2`): Go refuses it as an integer. */
function hasFractionLiteral(text: string): boolean {
  stringOrNumber.lastIndex = 0
  for (let m = stringOrNumber.exec(text); m !== null; m = stringOrNumber.exec(text)) {
    const t = m[0]
    if (t.charCodeAt(0) !== 34 && /[.eE]/.test(t)) return true
  }
  return false
}

/**
 * Whether a parsed value holds a number that its JSON text may not have said exactly: an integer past 2^53, or any
 * number at all when `text` writes one with a fraction or an exponent (`1e2` parses as the integer 100, which Go
 * refuses as written).
 */
function hasInexactNumber(root: unknown, text?: string): boolean {
  // Iterative: a body may nest thousands deep.
  const todo: unknown[] = [root]
  let any = false
  while (todo.length > 0) {
    const v = todo.pop()
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) return true
      any = true
    } else if (Array.isArray(v)) {
      for (const x of v) todo.push(x)
    } else if (v !== null && typeof v === 'object') {
      for (const k in v as Record<string, unknown>) todo.push((v as Record<string, unknown>)[k])
    }
  }
  return any && text !== undefined && hasFractionLiteral(text)
}

/**
 * The same JSON text (already known to be valid) with every number that a double cannot hold exactly, or that is
 * written with a fraction or an exponent, kept as its text (a LosslessNumber). A key given twice keeps its last
 * value, as in Go.
 */
function reparseLossless(text: string, fallback: unknown): unknown {
  try {
    return parseLossless(text, null, {
      parseNumber: (s) => (isSafeNumber(s) && !/[.eE]/.test(s) ? Number(s) : new LosslessNumber(s)),
      onDuplicateKey: ({ newValue }) => newValue,
    })
  } catch {
    return fallback
  }
}

function goJsonError(text: string, v8msg: string): string {
  if (/end of JSON input|Unterminated string|Expected .* after/.test(v8msg) && !/Unexpected token/.test(v8msg))
    return 'unexpected EOF'
  const pos = /position (\d+)/.exec(v8msg)
  let i = pos ? Number(pos[1]) : 0
  if (!pos) {
    // Find the first character that cannot start a value.
    while (i < text.length && /\s/.test(text[i]!)) i++
  }
  const c = text[i]
  if (c === undefined) return 'unexpected EOF'
  const first = text.trimStart()[0]
  if (i === text.length - text.trimStart().length || (first !== '{' && first !== '['))
    return `invalid character '${c}' looking for beginning of value`
  return `invalid character '${c}' after object key:value pair`
}

/** What the fast path returns when it cannot decide: the zod schema then decodes (and words the error). */
const decline: unique symbol = Symbol('decline')
type Declined = typeof decline

function fastLeaf(f: FieldDesc, v: unknown): unknown {
  switch (f.kind) {
    case 'bytes':
      if (Array.isArray(v)) {
        const b = bytesFromArray(v)
        return typeof b === 'string' ? decline : b
      }
      if (typeof v !== 'string') return decline
      try {
        return decodeBase64(v)
      } catch {
        return decline
      }
    case 'string':
      return typeof v === 'string' ? v : decline
    case 'bool':
      return typeof v === 'boolean' ? v : decline
    case 'int64':
    case 'int32':
      // A safe integer is its own value; anything else takes the general (bigint) route below.
      if (typeof v === 'number') return Number.isSafeInteger(v) ? v + 0 : decline // + 0: -0 reads as 0
      return fastInteger(f, v)
    case 'int64big':
    case 'int64id':
    case 'uint64str':
      // A number past 2^53 may have been rounded by JSON.parse: decodeMessage reads the text again.
      if (typeof v === 'number' && !Number.isSafeInteger(v)) return decline
      return fastInteger(f, v)
    case 'enum':
      if (typeof v === 'number') {
        const n = enumNumber(v, '')
        return typeof n === 'number' ? n : decline
      }
      if (typeof v === 'string') {
        const i = f.enumNames!.indexOf(v)
        return i >= 0 ? i : decline
      }
      return decline
    case 'message':
      return fastMessage(f.message!(), v)
  }
}

function fastInteger(f: FieldDesc, v: unknown): unknown {
  const r = parseInteger(v, f.kind === 'uint64str' ? 'uint64' : 'int64')
  if (typeof r === 'string') return decline
  if (f.kind === 'int64big') return r
  if (f.kind === 'int64id') return watchIdOf(r)
  if (f.kind === 'uint64str') return r.toString()
  return Number(r)
}

/**
 * The schema's result without zod, for input it accepts: the same values, the same key order (fields present in the
 * input in descriptor order, then the zeros of the missing ones). Anything it does not accept, or is unsure about,
 * returns `decline`, so that errors always come from the schema. Most requests are small and well-formed, and zod's
 * generic machinery was a tenth of the CPU of a put or a range.
 */
function fastMessage(desc: MessageDesc, v: unknown): Record<string, unknown> | Declined {
  if (v === null || v === undefined) v = {}
  if (typeof v !== 'object' || Array.isArray(v) || isLosslessNumber(v)) return decline
  const input = v as Record<string, unknown>
  // As the schema's preprocess (foldNames): the lowerCamel name before the proto one, nulls dropped, unknown keys ignored.
  let raw: Map<FieldDesc, unknown> | undefined
  for (const k of Object.keys(input)) {
    const f = desc.byName.get(k)
    const val = input[k]
    if (f === undefined || val === null || (k !== f.json && f.json in input)) continue
    raw ??= new Map()
    raw.set(f, val)
  }
  const out: Record<string, unknown> = {}
  if (raw !== undefined) {
    for (const f of desc.fields) {
      if (!raw.has(f)) continue
      const val = raw.get(f)
      if (val === undefined) continue
      if (f.repeated) {
        if (!Array.isArray(val)) return decline
        const arr: unknown[] = new Array(val.length)
        for (let i = 0; i < val.length; i++) {
          const x = fastLeaf(f, val[i])
          if (x === decline) return decline
          arr[i] = x
        }
        out[f.name] = arr
      } else {
        const x = fastLeaf(f, val)
        if (x === decline) return decline
        out[f.name] = x
      }
    }
  }
  if (desc.single) keepFirst(desc, out)
  for (const f of desc.fields) {
    if (out[f.name] !== undefined) continue
    const z0 = zeroOf(f)
    if (z0 !== undefined) out[f.name] = z0
  }
  return out
}

/**
 * Decodes a request body (its JSON text, or a value parsed already) into a message with every field present (zeros
 * for unset ones). Given text, integers are exact at any length.
 */
export function decodeMessage<T>(desc: MessageDesc<T>, body: string | unknown): T {
  try {
    return decodeBody<T>(desc, body)
  } catch (err) {
    // A body nested deeper than the decoder's stack (a txn nested thousands deep): etcd's gateway refuses JSON
    // nested past Go's limit the same way, with code 3 and HTTP 400.
    if (err instanceof RangeError) throw etcdError(GrpcCode.InvalidArgument, "invalid character '[' exceeded max depth")
    throw err
  }
}

function decodeBody<T>(desc: MessageDesc<T>, body: string | unknown): T {
  if (typeof body !== 'string') {
    const fast = fastMessage(desc, body)
    return fast !== decline ? (fast as T) : schemaDecode<T>(desc, body)
  }
  const first = parseFirst(body)
  let value = first.value
  // A number written with a fraction or an exponent is refused by Go where an integer is expected: read as written.
  const fraction = hasInexactNumber(value, first.text)
  if (fraction) value = reparseLossless(first.text, value)
  const fast = fastMessage(desc, value)
  if (fast !== decline) return fast as T
  if (!fraction && hasInexactNumber(value)) {
    value = reparseLossless(first.text, value)
    const again = fastMessage(desc, value)
    if (again !== decline) return again as T
  }
  return schemaDecode<T>(desc, value)
}

/** The reference decoding through the zod schema (exported for the tests that compare it with the fast path). */
export function decodeMessageWithSchema<T>(desc: MessageDesc<T>, body: string | unknown): T {
  if (typeof body !== 'string') return schemaDecode<T>(desc, body)
  const first = parseFirst(body)
  const value = hasInexactNumber(first.value, first.text) ? reparseLossless(first.text, first.value) : first.value
  return schemaDecode<T>(desc, value)
}

function schemaDecode<T>(desc: MessageDesc, value: unknown): T {
  const r = messageSchema(desc).safeParse(value)
  if (!r.success) throw etcdError(GrpcCode.InvalidArgument, r.error.issues[0]?.message ?? 'invalid request')
  return r.data as T
}
