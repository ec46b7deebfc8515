/**
 * The pre-encoded gRPC Put calls of the put benches' raw HTTP/2 clients (bench/lib/put-driver.ts,
 * bench/lib/grpc-door.ts): 256-byte values over 1,000 keys, as bench/grpc.ts's rows.
 */
import type { ClientHttp2Session } from 'node:http2'

const enc = new TextEncoder()

/** An enveloped PutRequest{key, value} (key under 128 bytes, value under 16 KiB). */
export function putFrame(key: Uint8Array, value: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + 2 + key.length + 3 + value.length)
  let p = 5
  b[p++] = 0x0a
  b[p++] = key.length
  b.set(key, p)
  p += key.length
  b[p++] = 0x12
  b[p++] = (value.length & 0x7f) | 0x80
  b[p++] = value.length >> 7
  b.set(value, p)
  p += value.length
  b.writeUInt32BE(p - 5, 1)
  return b.subarray(0, p)
}

const value = new Uint8Array(256).fill(0x61)
/** 1,000 Put frames: keys bench/000000 .. bench/000999, 256-byte values. */
export const putFrames: readonly Buffer[] = Array.from({ length: 1000 }, (_, i) =>
  putFrame(enc.encode(`bench/${String(i).padStart(6, '0')}`), value),
)

const putHeaders = {
  ':method': 'POST',
  ':path': '/etcdserverpb.KV/Put',
  'content-type': 'application/grpc',
  te: 'trailers',
}

/** One unary Put of frame `i % 1000` on `s`; rejects unless the call ends with grpc-status 0. */
export function putCall(s: ClientHttp2Session, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = s.request(putHeaders)
    let status: unknown
    const take = (h: Record<string, unknown>) => {
      if (h['grpc-status'] !== undefined) status = h['grpc-status']
    }
    r.on('response', take)
    r.on('trailers', take)
    r.on('data', () => undefined)
    r.on('error', reject)
    r.on('end', () => (status === '0' ? resolve() : reject(new Error(`grpc-status ${status}`))))
    r.end(putFrames[i % 1000])
  })
}
