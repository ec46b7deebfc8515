import { type FileHandle, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { StorageError } from '../../storage/errors.js'
import type { AppendFile, FileOps } from '../../storage/file-ops.js'

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

/** FileOps on a directory through node:fs/promises; sync is fdatasync, directory sync is fsync on the directory. */
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

  async openAppend(name: string): Promise<AppendFile> {
    const p = this.path(name)
    const fh = await wrap('open', p, () => open(p, 'a'))
    return new NodeAppendFile(fh, p)
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
}

class NodeAppendFile implements AppendFile {
  constructor(
    private readonly fh: FileHandle,
    private readonly p: string,
  ) {}

  append(data: Uint8Array): Promise<void> {
    // FileHandle.write loops over short writes itself only for writeFile; loop here so a partial write is finished.
    return wrap('write', this.p, async () => {
      let off = 0
      while (off < data.byteLength) {
        const { bytesWritten } = await this.fh.write(data, off, data.byteLength - off)
        off += bytesWritten
      }
    })
  }

  sync(): Promise<void> {
    return wrap('fdatasync', this.p, () => this.fh.datasync())
  }

  close(): Promise<void> {
    return wrap('close', this.p, () => this.fh.close())
  }
}
