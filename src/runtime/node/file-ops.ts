import { constants, fdatasync, fdatasyncSync, write, writeSync } from 'node:fs'
import { type FileHandle, link, mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { acquireDirLock, type LockFiles, type LockHolder } from '../../storage/dir-lock.js'
import { StorageError } from '../../storage/errors.js'
import type { FileOps, WriteFile } from '../../storage/file-ops.js'

/** errno codes that mean "this file system will not let us write here". */
const readOnlyCodes = new Set(['EROFS', 'EACCES', 'EPERM'])

/** Turns a Node fs error into a StorageError that names the operation and the path. */
export function storageErrorFromNode(err: unknown, op: string, path: string): StorageError {
  const code = (err as NodeJS.ErrnoException)?.code ?? ''
  const msg = `${op} ${path}: ${(err as Error)?.message ?? String(err)}`
  return new StorageError(readOnlyCodes.has(code) ? 'ErrReadOnly' : 'ErrIO', msg, { cause: err })
}

async function wrap<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw storageErrorFromNode(err, op, path)
  }
}

/** FileOps on a directory through node:fs/promises; writes are O_DSYNC (or write + fdatasync), directory sync is fsync. */
export class NodeFileOps implements FileOps {
  readonly dir: string

  constructor(dir: string) {
    this.dir = resolve(dir)
  }

  path(name: string): string {
    return name === '' ? this.dir : join(this.dir, name)
  }

  mkdir(): Promise<void> {
    return wrap('mkdir', this.dir, async () => {
      await mkdir(this.dir, { recursive: true })
    })
  }

  async list(): Promise<string[] | undefined> {
    try {
      return await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw storageErrorFromNode(err, 'list', this.dir)
    }
  }

  read(name: string): Promise<Uint8Array> {
    const p = this.path(name)
    return wrap('read', p, async () => {
      const b = await readFile(p)
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
    })
  }

  async openWrite(name: string): Promise<WriteFile> {
    const p = this.path(name)
    const fh = await wrap('open', p, () => open(p, writeFlags))
    try {
      const { size } = await wrap('stat', p, () => fh.stat())
      return new NodeWriteFile(fh, p, size)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  truncate(name: string, size: number): Promise<void> {
    const p = this.path(name)
    return wrap('truncate', p, async () => {
      const fh = await open(p, 'r+')
      try {
        await fh.truncate(size)
        await fh.datasync()
      } finally {
        await fh.close()
      }
    })
  }

  rename(from: string, to: string): Promise<void> {
    return wrap('rename', this.path(to), () => rename(this.path(from), this.path(to)))
  }

  async unlink(name: string): Promise<void> {
    const p = this.path(name)
    try {
      await unlink(p)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw storageErrorFromNode(err, 'unlink', p)
    }
  }

  syncDir(): Promise<void> {
    return wrap('fsync', this.dir, async () => {
      const fh = await open(this.dir, 'r')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    })
  }

  /** The lock file protocol of dir-lock.ts, with the holder checked by pid, process start time and boot id. */
  lock(): Promise<() => Promise<void>> {
    return acquireDirLock(nodeLockFiles(this))
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code
}

function nodeLockFiles(ops: NodeFileOps): LockFiles {
  return {
    path: (n) => ops.path(n),
    list: () => ops.list(),
    readText: async (n) => {
      try {
        return await readFile(ops.path(n), 'utf8')
      } catch (err) {
        if (errno(err) === 'ENOENT') return undefined
        throw storageErrorFromNode(err, 'read', ops.path(n))
      }
    },
    writeText: (n, text) => wrap('write', ops.path(n), () => writeFile(ops.path(n), text)),
    link: async (from, to) => {
      try {
        await link(ops.path(from), ops.path(to))
        return true
      } catch (err) {
        if (errno(err) === 'EEXIST') return false
        throw storageErrorFromNode(err, 'link', ops.path(to))
      }
    },
    rename: async (from, to) => {
      try {
        await rename(ops.path(from), ops.path(to))
        return true
      } catch (err) {
        if (errno(err) === 'ENOENT') return false
        throw storageErrorFromNode(err, 'rename', ops.path(from))
      }
    },
    unlink: (n) => ops.unlink(n),
    self: async () => {
      const start = (await procStat(process.pid))?.start
      const boot = await bootId()
      return { pid: process.pid, host: hostname(), ...(start ? { start } : {}), ...(boot ? { boot } : {}) }
    },
    alive: async (h) => processAlive(h),
  }
}

/**
 * Linux: fields 3 (state) and 22 (start time in clock ticks after boot) of /proc/<pid>/stat; undefined elsewhere or
 * when there is no such process.
 */
async function procStat(pid: number): Promise<{ state: string; start: string } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Field 2 (the command name) is in parentheses and may hold spaces: count fields after its closing one.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: f[0]!, start: f[19]! }
  } catch {
    return undefined
  }
}

/** Linux: a random id of this boot; undefined elsewhere. */
async function bootId(): Promise<string | undefined> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
  } catch {
    return undefined
  }
}

async function processAlive(h: Pick<LockHolder, 'pid'> & Partial<LockHolder>): Promise<boolean> {
  const boot = await bootId()
  if (h.boot && boot && h.boot !== boot) return false
  try {
    // Signal 0 checks that the process exists without signalling it; EPERM means it exists as another user's.
    process.kill(h.pid, 0)
  } catch (err) {
    if (errno(err) !== 'EPERM') return false
  }
  const stat = await procStat(h.pid)
  // A zombie (killed, not yet reaped by its parent) holds nothing any more.
  if (stat && (stat.state === 'Z' || stat.state === 'X')) return false
  if (h.start && stat && stat.start !== h.start) return false
  return true
}

/**
 * O_DSYNC makes each write durable before it returns, so a WAL save is one trip through libuv's thread pool instead of
 * two (write, then fdatasync): measured 1.1-1.4x the saves per second on this VM's disk (docs/storage.md). Where the
 * platform has no O_DSYNC (Windows), writes are followed by fdatasync.
 */
const dsync = constants.O_DSYNC ?? 0
const writeFlags = constants.O_RDWR | constants.O_CREAT | dsync

/**
 * A small durable write while the writes are small on average (one client's puts, not a batch of many) is made with a
 * blocking `writeSync` on the event loop instead of through libuv's thread pool: the pool's hop (waking a pool thread,
 * its completion waking the event loop) cost as much CPU as the rest of a lone put and two extra context switches per
 * put, and with nothing else to do the loop would only wait for the disk anyway (docs/benchmarks.md, "The put path,
 * pared"). At most one such write per event-loop turn: the writes that follow in the same turn go through the pool, so
 * that proposals arriving meanwhile are batched into the next Ready (blocking writes one after another would turn
 * every request into its own Ready and sync: measured, 1 put per sync at 64 clients). Large writes (batches,
 * preallocation, snapshots) always go through the pool.
 */
const syncWriteBytesMax = 4096
/** ...and only while the moving average of recent write sizes (each counted up to 16 KiB) is at most this. */
const syncWriteBytesAvgMax = 1024
/**
 * ...and only while writes are single proposals: the average within 1.2x of the smallest recent write (which slowly
 * forgets). A few clients (2-4) whose Readys hold 1-2 entries would otherwise block one write per turn and lose the
 * batching the pool gives them (measured at 4 clients: 1.4 puts per sync instead of 1.8, ~10-40% fewer puts/s).
 */
const syncWriteSpreadMax = 1.2
let writeBytesAvg = 0
let writeBytesMin = Number.POSITIVE_INFINITY
let syncWroteThisTurn = false
const endSyncTurn = (): void => {
  syncWroteThisTurn = false
}

/**
 * A WAL file's durable writes go through callback `fs.write` on the raw descriptor rather than FileHandle's promise
 * `write`: one request object per write instead of FileHandle's per-call promise machinery (a measurable share of a
 * put's main-thread time: docs/benchmarks.md, "One put, taken apart"). Still one trip through libuv's thread pool,
 * so the event loop keeps reading and answering calls while the disk syncs (the Ready loop batches what arrives),
 * except for a lone small write (syncWriteBytesMax above), which is one blocking O_DSYNC write.
 */
class NodeWriteFile implements WriteFile {
  private readonly fd: number
  constructor(
    private readonly fh: FileHandle,
    private readonly p: string,
    readonly size: number,
  ) {
    this.fd = fh.fd
  }

  writeDurable(data: Uint8Array, position: number, background = false): Promise<void> {
    // The zero fill (1 MiB) would otherwise raise the size average and send the next ~24 lone puts through the pool.
    if (background)
      return new Promise<void>((resolve, reject) => new DurableWrite(this.fd, this.p, data, position, resolve, reject))
    try {
      return this.writeDurableNow(data, position) ?? resolved
    } catch (err) {
      return Promise.reject(err)
    }
  }

  writeDurableNow(data: Uint8Array, position: number): Promise<void> | undefined {
    const n = data.byteLength
    writeBytesAvg += (Math.min(n, syncWriteBytesMax * 4) - writeBytesAvg) / 8
    writeBytesMin = Math.min(n, writeBytesMin * 1.02)
    if (
      n <= syncWriteBytesMax &&
      writeBytesAvg <= syncWriteBytesAvgMax &&
      writeBytesAvg <= writeBytesMin * syncWriteSpreadMax &&
      !syncWroteThisTurn
    ) {
      syncWroteThisTurn = true
      setImmediate(endSyncTurn)
      try {
        let off = 0
        while (off < data.byteLength) off += writeSync(this.fd, data, off, data.byteLength - off, position + off)
        if (dsync === 0) fdatasyncSync(this.fd)
      } catch (err) {
        throw storageErrorFromNode(err as NodeJS.ErrnoException, 'write', this.p)
      }
      return undefined
    }
    return new Promise<void>((resolve, reject) => new DurableWrite(this.fd, this.p, data, position, resolve, reject))
  }

  close(): Promise<void> {
    return wrap('close', this.p, () => this.fh.close())
  }
}

const resolved: Promise<void> = Promise.resolve()

/** One writeDurable in flight: fs.write until every byte is written (a write may be short), then fdatasync if needed. */
class DurableWrite {
  private off = 0
  constructor(
    private readonly fd: number,
    private readonly p: string,
    private readonly data: Uint8Array,
    private readonly position: number,
    private readonly resolve: () => void,
    private readonly reject: (err: unknown) => void,
  ) {
    this.next()
  }

  private next(): void {
    const { data, off } = this
    if (off < data.byteLength) write(this.fd, data, off, data.byteLength - off, this.position + off, this.written)
    else if (dsync === 0) fdatasync(this.fd, this.synced)
    else this.resolve()
  }

  private readonly written = (err: NodeJS.ErrnoException | null, n: number): void => {
    if (err) {
      this.reject(storageErrorFromNode(err, 'write', this.p))
      return
    }
    this.off += n
    this.next()
  }

  private readonly synced = (err: NodeJS.ErrnoException | null): void => {
    if (err) this.reject(storageErrorFromNode(err, 'write', this.p))
    else this.resolve()
  }
}
