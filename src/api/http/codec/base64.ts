/**
 * Base64 exactly as etcd's gateway reads and writes it (Go's encoding/base64 StdEncoding): the standard alphabet
 * with padding; unpadded or URL-safe input is refused with Go's message ("illegal base64 data at input byte N"), and
 * '\r' / '\n' inside the input are skipped. Hand-written because no library reproduces Go's error offsets, which
 * clients see in the error message.
 */
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const decodeMap = new Int16Array(256).fill(-1)
for (let i = 0; i < alphabet.length; i++) decodeMap[alphabet.charCodeAt(i)] = i

export class Base64Error extends Error {
  constructor(readonly offset: number) {
    super(`illegal base64 data at input byte ${offset}`)
    this.name = 'Base64Error'
  }
}

/** The alphabet's char codes, and one reused output buffer (the encoder runs synchronously). */
const alphabetCodes = Uint8Array.from(alphabet, (c) => c.charCodeAt(0))
let scratch = new Uint8Array(4096)
const ascii = new TextDecoder()

/**
 * Encodes bytes as padded standard base64. The chars are written into a byte buffer and turned into one string at
 * the end: appending them to a string one by one made a rope of hundreds of pieces per value (a 1,000-key range
 * answer of 256 B values left ~10 MB of garbage behind).
 */
export function encodeBase64(bytes: Uint8Array): string {
  const n = bytes.length
  if (n === 0) return ''
  const size = Math.ceil(n / 3) * 4
  // Values up to 48 KiB share one growing buffer; larger ones get their own (not kept: a 1 MB value would pin it).
  if (scratch.length < size && size <= 65_536) scratch = new Uint8Array(Math.max(size, scratch.length * 2))
  const out = scratch.length >= size ? scratch : new Uint8Array(size)
  let o = 0
  let i = 0
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out[o++] = alphabetCodes[v >> 18]!
    out[o++] = alphabetCodes[(v >> 12) & 63]!
    out[o++] = alphabetCodes[(v >> 6) & 63]!
    out[o++] = alphabetCodes[v & 63]!
  }
  if (i < n) {
    const b0 = bytes[i]!
    const b1 = i + 1 < n ? bytes[i + 1]! : 0
    const v = (b0 << 16) | (b1 << 8)
    out[o++] = alphabetCodes[v >> 18]!
    out[o++] = alphabetCodes[(v >> 12) & 63]!
    out[o++] = i + 1 < n ? alphabetCodes[(v >> 6) & 63]! : 61
    out[o++] = 61
  }
  // Short outputs: fromCharCode over the codes; long ones: the (ASCII) UTF-8 decoder, which is native and fast.
  if (o <= 64) return String.fromCharCode.apply(null, out.subarray(0, o) as unknown as number[])
  return ascii.decode(out.subarray(0, o))
}

/** Decodes padded standard base64 as Go's StdEncoding.DecodeString does, with the same error offsets. */
export function decodeBase64(s: string): Uint8Array {
  const out = new Uint8Array(Math.floor((s.length * 3) / 4) + 3)
  let o = 0
  let si = 0
  const n = s.length
  const quantum = [0, 0, 0, 0]
  while (si < n) {
    let j = 0
    let dlen = 4
    for (; j < 4; ) {
      if (si === n) {
        // Input ended inside a quantum: only legal at a quantum boundary.
        if (j === 0) return out.subarray(0, o)
        throw new Base64Error(si - j)
      }
      const c = s.charCodeAt(si)
      si++
      if (c === 10 || c === 13) continue
      const v = c < 256 ? decodeMap[c]! : -1
      if (v !== -1) {
        quantum[j++] = v
        continue
      }
      if (c !== 61 /* '=' */) throw new Base64Error(si - 1)
      // Padding: valid only as the 3rd/4th character of a quantum.
      switch (j) {
        case 0:
        case 1:
          throw new Base64Error(si - 1)
        case 2: {
          // Expect a second '=' (skipping newlines).
          while (si < n && (s.charCodeAt(si) === 10 || s.charCodeAt(si) === 13)) si++
          if (si === n) throw new Base64Error(n)
          if (s.charCodeAt(si) !== 61) throw new Base64Error(si - 1)
          si++
          break
        }
      }
      // Skip trailing newlines; anything else after padding is an error.
      while (si < n && (s.charCodeAt(si) === 10 || s.charCodeAt(si) === 13)) si++
      if (si < n) throw new Base64Error(si)
      dlen = j
      break
    }
    const v = (quantum[0]! << 18) | (quantum[1]! << 12) | (quantum[2]! << 6) | quantum[3]!
    if (dlen === 4) {
      out[o++] = v >> 16
      out[o++] = (v >> 8) & 255
      out[o++] = v & 255
    } else if (dlen === 3) {
      out[o++] = v >> 16
      out[o++] = (v >> 8) & 255
    } else {
      out[o++] = v >> 16
    }
    quantum[0] = quantum[1] = quantum[2] = quantum[3] = 0
    if (dlen < 4) break
  }
  return out.subarray(0, o)
}
