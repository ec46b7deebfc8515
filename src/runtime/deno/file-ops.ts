import { lockedError } from '../../storage/dir-lock.js'
import { StorageError } from '../../storage/errors.js'
import { lockFileName } from '../../storage/file-names.js'
import type { FileOps, WriteFile } from '../../storage/file-ops.js'

/**
 * The part of Deno's file API this adapter uses, declared here so that the file also type-checks under tsc, whose
 * tsconfig has no Deno types; under Deno it is the real global.
 */
interface DenoFsFile {
  write(p: Uint8Array): Promise<number>
  syncData(): Promise<void>
  sync(): Promise<void>
  truncate(len?: number): Promise<void>
  seek(offset: number, whence: 0): Promise<number>
  tryLock(exclusive: boolean): Promise<boolean>
  stat(): Promise<{ size: number }>
  close(): void
}
interface DenoFs {
  open(
    path: string,
    options: { read?: boolean; write?: boolean; append?: boolean; create?: boolean },
  ): Promise<DenoFsFile>
  readFile(path: string): Promise<Uint8Array>
  readDir(path: string): AsyncIterable<{ name: string }>
  mkdir(path: string, options: { recursive: boolean }): Promise<void>
  rename(from: string, to: string): Promise<void>
  remove(path: string): Promise<void>
  readTextFile(path: string): Promise<string>
  pid: number
}
const deno = (globalThis as unknown as { Deno: DenoFs }).Deno

/** Error names and errno codes that mean "we may not write here": a read-only mount, permissions, or Deno's sandbox. */
const readOnlyNames = new Set(['PermissionDenied', 'NotCapable'])
const readOnlyCodes = new Set(['EROFS', 'EACCES', 'EPERM'])

function isNotFound(err: unknown): boolean {
  return (err as Error)?.name === 'NotFound' || (err as { code?: string })?.code === 'ENOENT'
}

/** Turns a Deno error into a StorageError that names the operation and the path. */
export function storageErrorFromDeno(err: unknown, op: string, path: string): StorageError {
  const e = err as Error & { code?: string }
  const readOnly = readOnlyNames.has(e?.name) || readOnlyCodes.has(e?.code ?? '')
  return new StorageError(readOnly ? 'ErrReadOnly' : 'ErrIO', `${op} ${path}: ${e?.message ?? String(err)}`, {
    cause: err,
  })
}

async function wrap<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw storageErrorFromDeno(err, op, path)
  }
}

/** FileOps on a directory through Deno's file API; writes are followed by FsFile.syncData, directory sync is sync(). */
export class DenoFileOps implements FileOps {
  constructor(readonly dir: string) {}

  path(name: string): string {
    return name === '' ? this.dir : `${this.dir}/${name}`
  }

  mkdir(): Promise<void> {
    return wrap('mkdir', this.dir, () => deno.mkdir(this.dir, { recursive: true }))
  }

  async list(): Promise<string[] | undefined> {
    try {
      const names: string[] = []
      for await (const e of deno.readDir(this.dir)) names.push(e.name)
      return names
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw storageErrorFromDeno(err, 'list', this.dir)
    }
  }

  read(name: string): Promise<Uint8Array> {
    const p = this.path(name)
    return wrap('read', p, () => deno.readFile(p))
  }

  async openWrite(name: string): Promise<WriteFile> {
    const p = this.path(name)
    const f = await wrap('open', p, () => deno.open(p, { read: true, write: true, create: true }))
    let size: number
    try {
      size = (await wrap('stat', p, () => f.stat())).size
    } catch (err) {
      f.close()
      throw err
    }
    // Deno has no positional write, so a write is seek + write and two writes must not interleave: they run one at a
    // time. Deno has no O_DSYNC open flag either (OpenOptions take no custom flags): each write is followed by syncData.
    let queue: Promise<unknown> = Promise.resolve()
    const write = async (data: Uint8Array, position: number) => {
      await f.seek(position, 0)
      // FsFile.write may write less than asked; loop until all of it is in.
      let off = 0
      while (off < data.byteLength) off += await f.write(data.subarray(off))
      await f.syncData()
    }
    return {
      size,
      writeDurable: (data, position) => {
        const run = () => wrap('write', p, () => write(data, position))
        const done = queue.then(run, run)
        queue = done.catch(() => {})
        return done
      },
      close: () => wrap('close', p, async () => f.close()),
    }
  }

  truncate(name: string, size: number): Promise<void> {
    const p = this.path(name)
    return wrap('truncate', p, async () => {
      const f = await deno.open(p, { write: true })
      try {
        await f.truncate(size)
        await f.syncData()
      } finally {
        f.close()
      }
    })
  }

  rename(from: string, to: string): Promise<void> {
    return wrap('rename', this.path(to), () => deno.rename(this.path(from), this.path(to)))
  }

  async unlink(name: string): Promise<void> {
    const p = this.path(name)
    try {
      await deno.remove(p)
    } catch (err) {
      if (isNotFound(err)) return
      throw storageErrorFromDeno(err, 'unlink', p)
    }
  }

  syncDir(): Promise<void> {
    return wrap('fsync', this.dir, async () => {
      const d = await deno.open(this.dir, { read: true })
      try {
        await d.sync()
      } finally {
        d.close()
      }
    })
  }

  /**
   * An exclusive flock on `edgecd.lock` (FsFile.tryLock, which does not wait), with our pid written in it for the
   * message a second opener gets. The OS drops the lock when the process dies, so kill -9 never leaves a stale one;
   * a second open in this process opens its own file description, whose flock conflicts too. The file stays after
   * release (deleting a lock file races with an opener that already has it open).
   */
  async lock(): Promise<() => Promise<void>> {
    const p = this.path(lockFileName)
    const f = await wrap('open', p, () => deno.open(p, { read: true, write: true, create: true }))
    try {
      if (!(await wrap('flock', p, () => f.tryLock(true)))) {
        const text = await deno.readTextFile(p).catch(() => '')
        const h = /"pid":\s*(\d+)/.exec(text)
        const who = h ? (Number(h[1]) === deno.pid ? `this process (pid ${h[1]})` : `process ${h[1]}`) : 'another open'
        throw lockedError(this.dir, p, who, /"since":\s*"([^"]+)"/.exec(text)?.[1])
      }
      const holder = JSON.stringify({ pid: deno.pid, since: new Date().toISOString() })
      await wrap('write', p, async () => {
        await f.truncate(0)
        const bytes = new TextEncoder().encode(holder)
        let off = 0
        while (off < bytes.byteLength) off += await f.write(bytes.subarray(off))
      })
    } catch (err) {
      f.close()
      throw err
    }
    let held = true
    return async () => {
      if (held) f.close()
      held = false
    }
  }
}
