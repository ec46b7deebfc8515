import CRC32C from 'crc-32/crc32c.js'

/**
 * CRC-32C (Castagnoli), the checksum of iSCSI, ext4 metadata and etcd's WAL, computed by SheetJS's pure-JS `crc-32`
 * package so that the same code runs on Node, Deno, Workers and in browsers. Checked against the standard test
 * vectors in test/storage/format.test.ts ("123456789" gives 0xE3069283).
 *
 * `seed` continues a previous checksum, so crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, seed?: number): number {
  return CRC32C.buf(data, seed) >>> 0
}
