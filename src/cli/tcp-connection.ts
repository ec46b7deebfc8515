/**
 * One TCP connection for the CLI's plain-http calls (src/cli/http-fetch.ts), with the fewest Node modules loaded.
 *
 * node:net is a socket with everything a server or a long-lived client needs: a Duplex stream (17 stream modules
 * loaded and their lazily compiled functions), dns (node:net loads it for names it never resolves here), diagnostics
 * channels, timeouts. A one-shot `edgecd get` writes one request and reads one answer: on this machine node:net cost
 * that call about 12 ms of CPU, a third of what the CLI adds above `node -e 0` (docs/cli.md#start-up). So where Node
 * lets it, the connection is libuv's TCP handle itself, the one node:net wraps (`process.binding('tcp_wrap')`, with
 * `stream_wrap` for writes and reads: both on Node's list of bindings `process.binding` still serves, without a
 * warning), driven as node:net drives it (lib/net.js, lib/internal/stream_base_commons.js). Errors are node:net's:
 * `connect ECONNREFUSED 127.0.0.1:2379` with `code`, `errno`, `syscall`, `address` and `port`, so the client classifies
 * and reports them unchanged.
 *
 * node:net is used instead when the host is a name (node:net resolves it through dns), when the bindings are not there
 * or not shaped as expected (another Node, a permission model that denies them), under `--pending-deprecation`
 * (where `process.binding` prints a deprecation warning), and when EDGECD_CLI_NODE_NET is set (a way out, should a
 * Node ever break the bindings' contract; the tests run both).
 */
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

/** What a connection reports; after `error` or `close`, nothing more. */
export interface ConnectionEvents {
  /** Bytes from the peer (the buffer is the connection's to give away). */
  data(chunk: Buffer): void
  /** The peer closed its side (EOF). */
  end(): void
  /** A connect, read or write error (node:net's error object); `close` follows. */
  error(err: Error): void
  /** The connection is closed (after `destroy()`, an error or the peer's close). */
  close(): void
}

/** An open (or opening) connection: writes made before it is connected are sent once it is. */
export interface Connection {
  write(data: string): void
  destroy(): void
}

/** Which implementation a call used (for tests and measurements). */
export type ConnectionKind = 'tcp_wrap' | 'node:net'

interface TcpHandle {
  connect(req: unknown, address: string, port: number): number
  connect6(req: unknown, address: string, port: number): number
  setNoDelay(on: boolean): number
  readStart(): number
  readStop(): number
  writeUtf8String(req: unknown, s: string): number
  close(cb: () => void): void
  onread: (ab: ArrayBuffer) => void
}

interface RawBindings {
  TCP: new (type: number) => TcpHandle
  TCPConnectWrap: new () => { oncomplete: (status: number) => void }
  socketType: number
  WriteWrap: new () => { handle: TcpHandle; oncomplete: (status: number) => void; async: boolean }
  streamBaseState: Int32Array
  kReadBytesOrError: number
  kArrayBufferOffset: number
  errName(errno: number): string
}

let raw: RawBindings | null | undefined

/** libuv's TCP and stream bindings as node:net uses them, or null where they are not there as expected. */
function rawBindings(): RawBindings | null {
  if (raw !== undefined) return raw
  raw = null
  try {
    const env = process.env
    const pending = [...process.execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--pending-deprecation')
    if (pending || env.NODE_PENDING_DEPRECATION === '1') return raw
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding
    if (typeof binding !== 'function') return raw
    const tcp = binding('tcp_wrap')
    const stream = binding('stream_wrap')
    const util = (process.getBuiltinModule?.('node:util') ?? null) as typeof import('node:util') | null
    const constants = tcp.constants as { SOCKET?: unknown } | undefined
    const ok =
      typeof tcp.TCP === 'function' &&
      typeof tcp.TCPConnectWrap === 'function' &&
      typeof constants?.SOCKET === 'number' &&
      typeof stream.WriteWrap === 'function' &&
      stream.streamBaseState instanceof Int32Array &&
      typeof stream.kReadBytesOrError === 'number' &&
      typeof stream.kArrayBufferOffset === 'number' &&
      util !== null &&
      typeof util.getSystemErrorName === 'function' &&
      ['connect', 'connect6', 'setNoDelay', 'readStart', 'readStop', 'writeUtf8String', 'close'].every(
        (m) => typeof (tcp.TCP as { prototype: Record<string, unknown> }).prototype[m] === 'function',
      )
    if (!ok) return raw
    raw = {
      TCP: tcp.TCP as RawBindings['TCP'],
      TCPConnectWrap: tcp.TCPConnectWrap as RawBindings['TCPConnectWrap'],
      socketType: constants.SOCKET as number,
      WriteWrap: stream.WriteWrap as RawBindings['WriteWrap'],
      streamBaseState: stream.streamBaseState as Int32Array,
      kReadBytesOrError: stream.kReadBytesOrError as number,
      kArrayBufferOffset: stream.kArrayBufferOffset as number,
      errName: (errno) => util.getSystemErrorName(errno),
    }
  } catch {
    raw = null
  }
  return raw
}

/** An IP literal libuv takes as it is (4 or 6; 0 for a name). URL has already normalised IPv4 forms. */
function ipFamily(host: string): 4 | 6 | 0 {
  if (/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(host)) return 4
  return host.includes(':') ? 6 : 0
}

/** node:net's error for a failed system call (lib/internal/errors.js: errnoException, exceptionWithHostPort). */
function systemError(b: RawBindings, errno: number, syscall: string, address?: string, port?: number): Error {
  const code = b.errName(errno)
  const where = address === undefined ? '' : port === undefined ? ` ${address}` : ` ${address}:${port}`
  const err = new Error(`${syscall} ${code}${where}`) as NodeJS.ErrnoException & { address?: string; port?: number }
  err.errno = errno
  err.code = code
  err.syscall = syscall
  if (address !== undefined) err.address = address
  if (port !== undefined) err.port = port
  return err
}

/** The implementation connect() will use for this host. */
export function connectionKind(host: string): ConnectionKind {
  if (ipFamily(host) === 0 || process.env.EDGECD_CLI_NODE_NET) return 'node:net'
  return rawBindings() !== null ? 'tcp_wrap' : 'node:net'
}

/** Opens a connection to host:port (an IP literal without brackets, or a name). */
export function connect(host: string, port: number, on: ConnectionEvents): Connection {
  const b = connectionKind(host) === 'tcp_wrap' ? rawBindings() : null
  return b === null ? netConnection(host, port, on) : rawConnection(b, host, port, ipFamily(host) === 6, on)
}

function rawConnection(b: RawBindings, host: string, port: number, v6: boolean, on: ConnectionEvents): Connection {
  const handle = new b.TCP(b.socketType)
  let closed = false
  let queued: string[] | undefined = []
  const close = () => {
    if (closed) return
    closed = true
    // (A function: the handle's setter aborts the process on anything else.)
    handle.onread = () => {}
    handle.close(() => on.close())
  }
  const fail = (err: Error) => {
    if (closed) return
    on.error(err)
    close()
  }
  const send = (data: string) => {
    const req = new b.WriteWrap()
    req.handle = handle
    req.async = false
    req.oncomplete = (status) => {
      if (status < 0) fail(systemError(b, status, 'write'))
    }
    const err = handle.writeUtf8String(req, data)
    if (err !== 0) fail(systemError(b, err, 'write'))
  }
  handle.onread = (ab) => {
    const n = b.streamBaseState[b.kReadBytesOrError]!
    if (closed) return
    if (n > 0) on.data(Buffer.from(ab, b.streamBaseState[b.kArrayBufferOffset]!, n))
    else if (n < 0) {
      if (b.errName(n) === 'EOF') {
        handle.readStop()
        on.end()
        close()
      } else fail(systemError(b, n, 'read'))
    }
  }
  const req = new b.TCPConnectWrap()
  req.oncomplete = (status) => {
    if (closed) return
    if (status < 0) {
      fail(systemError(b, status, 'connect', host, port))
      return
    }
    const err = handle.readStart()
    if (err !== 0) {
      fail(systemError(b, err, 'read'))
      return
    }
    const pending = queued ?? []
    queued = undefined
    for (const d of pending) send(d)
  }
  handle.setNoDelay(true)
  const err = v6 ? handle.connect6(req, host, port) : handle.connect(req, host, port)
  // As node:net: a connect that fails at once (a bad address) is reported on the next tick, after the caller's set-up.
  if (err !== 0) process.nextTick(() => fail(systemError(b, err, 'connect', host, port)))
  return {
    write(data) {
      if (closed) return
      if (queued !== undefined) queued.push(data)
      else send(data)
    },
    destroy: close,
  }
}

function netConnection(host: string, port: number, on: ConnectionEvents): Connection {
  const net = (process.getBuiltinModule?.('node:net') ?? nodeRequire()('node:net')) as typeof import('node:net')
  const socket: Socket = net.connect({ host, port })
  socket.setNoDelay(true)
  socket.on('data', (d: Buffer) => on.data(d))
  socket.on('end', () => on.end())
  socket.on('error', (e) => on.error(e))
  socket.on('close', () => on.close())
  return {
    write: (data) => {
      socket.write(data)
    },
    destroy: () => {
      socket.destroy()
    },
  }
}

let required: NodeJS.Require | undefined
/** A require for Nodes without process.getBuiltinModule (before 20.16): in the CLI bundle, the bundle's own. */
function nodeRequire(): NodeJS.Require {
  required ??= createRequire(import.meta.url)
  return required
}
