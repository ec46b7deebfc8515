/** hpack.js ships no types: the part src/runtime/node/h2c-authority.ts uses. */
declare module 'hpack.js' {
  interface HpackStream {
    write(data: unknown): boolean
    read(): unknown
  }
  interface Decompressor extends HpackStream {
    execute(): void
  }
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): Decompressor }
    compressor: { create(options: { table: { size: number } }): HpackStream }
  }
  export default hpack
}
