/**
 * The part of Deno's runtime API the member entry uses (serving, TLS clients, files, signals), declared here so that
 * these files also type-check under tsc, whose tsconfig has no Deno types; under Deno it is the real global.
 * Signatures follow `deno types` of Deno 2.9.
 */

/** Deno.HttpClient: TLS settings for fetch and WebSocket (`client` option). */
export interface DenoHttpClient {
  close(): void
}

export interface DenoNetAddr {
  hostname: string
  port: number
}

export interface DenoHttpServer {
  readonly addr: DenoNetAddr
  readonly finished: Promise<void>
  shutdown(): Promise<void>
}

export interface DenoServeOptions {
  hostname: string
  port: number
  cert?: string
  key?: string
  signal?: AbortSignal
  onListen?: (addr: DenoNetAddr) => void
  onError?: (error: unknown) => Response | Promise<Response>
}

export interface DenoFile {
  write(p: Uint8Array): Promise<number>
  syncData(): Promise<void>
  close(): void
}

export interface DenoApi {
  serve(
    options: DenoServeOptions,
    handler: (req: Request, info: unknown) => Response | Promise<Response>,
  ): DenoHttpServer
  createHttpClient(options: { caCerts?: string[]; cert?: string; key?: string }): DenoHttpClient
  readTextFileSync(path: string): string
  readTextFile(path: string): Promise<string>
  open(path: string, options: { write?: boolean; create?: boolean; truncate?: boolean }): Promise<DenoFile>
  rename(from: string, to: string): Promise<void>
  addSignalListener(signal: 'SIGTERM' | 'SIGINT', handler: () => void): void
  removeSignalListener(signal: 'SIGTERM' | 'SIGINT', handler: () => void): void
  readonly stderr: { writeSync(p: Uint8Array): number }
  readonly stdout: { writeSync(p: Uint8Array): number }
  readonly env: { toObject(): Record<string, string> }
  readonly args: string[]
  readonly pid: number
  exit(code?: number): never
  memoryUsage(): { rss: number; heapUsed: number }
}

/** The Deno global (undefined outside Deno: only call this from Deno code paths). */
export const deno = (globalThis as unknown as { Deno: DenoApi }).Deno

/** `fetch` and `new WebSocket` as Deno takes them: with a non-standard `client` (Deno.HttpClient) option. */
export type DenoFetchInit = RequestInit & { client?: DenoHttpClient }
export type DenoWebSocketOptions = { headers?: Record<string, string>; protocols?: string[]; client?: DenoHttpClient }

/** Writes all of `text` to a Deno stream (writeSync may write less than asked). */
export function writeAllSync(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text)
  let off = 0
  while (off < bytes.byteLength) off += stream.writeSync(bytes.subarray(off))
}
