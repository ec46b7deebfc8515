import { StorageError } from '../../storage/errors.js'
import type { AppendFile, FileOps } from '../../storage/file-ops.js'

/**
 * The part of Deno's file API this adapter uses, declared here so that the file also type-checks under tsc, whose
 * tsconfig has no Deno types; under Deno it is the real global.
 */
interface DenoFsFile {
  write(p: Uint8Array): Promise<number>
  syncData(): Promise<void>
  sync(): Promise<void>
  truncate(len?: number): Promise<void>
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

/** FileOps on a directory through Deno's file API; sync is FsFile.syncData, directory sync is sync() on the dir. */
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

  async openAppend(name: string): Promise<AppendFile> {
    const p = this.path(name)
    const f = await wrap('open', p, () => deno.open(p, { append: true, create: true }))
    return {
      append: (data) =>
        wrap('write', p, async () => {
          // FsFile.write may write less than asked; loop until all of it is in.
          let off = 0
          while (off < data.byteLength) off += await f.write(data.subarray(off))
        }),
      sync: () => wrap('fdatasync', p, () => f.syncData()),
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
}
