import { StorageError } from './errors.js'
import type { AppendFile, FileOps } from './file-ops.js'

interface MemFile {
  /** Everything written, synced or not, in data[0, size). */
  data: Uint8Array
  size: number
  /**
   * The bytes that survive a crash are data[0, syncedSize): files are only appended to and truncated, so what the last
   * sync saw is always a prefix of what is there now, and a sync costs nothing to record.
   */
  syncedSize: number
}

/**
 * An in-memory file system with a crash model, for tests and the simulator: bytes survive `crash()` only once their
 * file was synced, and creates, renames and unlinks only once the directory was synced (POSIX promises no more).
 * It makes FileStorage the memory-backed durable reference: the same formats and recovery, no disk.
 */
export class MemoryFileOps implements FileOps {
  private files = new Map<string, MemFile>()
  /** The directory as the last syncDir() left it: name -> file. */
  private durableDir = new Map<string, MemFile>()
  private exists = false
  /** When set, every write fails like a read-only mount. */
  readOnly = false

  constructor(private readonly dir = 'mem') {}

  path(name: string): string {
    return name === '' ? this.dir : `${this.dir}/${name}`
  }

  async mkdir(): Promise<void> {
    this.checkWritable('')
    this.exists = true
  }

  async list(): Promise<string[] | undefined> {
    return this.exists ? [...this.files.keys()].sort() : undefined
  }

  async read(name: string): Promise<Uint8Array> {
    const f = this.get(name)
    return f.data.slice(0, f.size)
  }

  async openAppend(name: string): Promise<AppendFile> {
    this.checkWritable(name)
    let f = this.files.get(name)
    if (!f) {
      if (!this.exists) throw new StorageError('ErrIO', `${this.path(name)}: no such directory`)
      f = { data: new Uint8Array(1024), size: 0, syncedSize: 0 }
      this.files.set(name, f)
    }
    const file = f
    let open = true
    return {
      append: async (data) => {
        if (!open || this.files.get(name) !== file) throw new StorageError('ErrIO', `${this.path(name)}: closed`)
        this.checkWritable(name)
        if (file.size + data.byteLength > file.data.byteLength) {
          const next = new Uint8Array(Math.max(file.data.byteLength * 2, file.size + data.byteLength))
          next.set(file.data.subarray(0, file.size))
          file.data = next
        }
        file.data.set(data, file.size)
        file.size += data.byteLength
      },
      sync: async () => {
        file.syncedSize = file.size
      },
      close: async () => {
        open = false
      },
    }
  }

  async truncate(name: string, size: number): Promise<void> {
    this.checkWritable(name)
    const f = this.get(name)
    f.size = Math.min(f.size, size)
    f.syncedSize = f.size
  }

  async rename(from: string, to: string): Promise<void> {
    this.checkWritable(to)
    this.files.set(to, this.get(from))
    this.files.delete(from)
  }

  async unlink(name: string): Promise<void> {
    this.checkWritable(name)
    this.files.delete(name)
  }

  async syncDir(): Promise<void> {
    this.durableDir = new Map(this.files)
  }

  /** Loses everything not synced, as a power cut would. Open AppendFiles must not be used afterwards. */
  crash(): void {
    this.files = new Map()
    for (const [name, f] of this.durableDir) {
      this.files.set(name, { data: f.data.slice(0, f.syncedSize), size: f.syncedSize, syncedSize: f.syncedSize })
    }
    this.durableDir = new Map(this.files)
  }

  /** Test hook: the file's bytes, to damage them with setFile. */
  getFile(name: string): Uint8Array {
    return this.get(name).data.slice(0, this.get(name).size)
  }

  /** Test hook: replaces a file's content, durably, as damage on disk would. */
  setFile(name: string, data: Uint8Array): void {
    this.exists = true
    const f: MemFile = { data: data.slice(), size: data.byteLength, syncedSize: data.byteLength }
    this.files.set(name, f)
    this.durableDir.set(name, f)
  }

  private get(name: string): MemFile {
    const f = this.files.get(name)
    if (!f) throw new StorageError('ErrIO', `${this.path(name)}: no such file`)
    return f
  }

  private checkWritable(name: string): void {
    if (this.readOnly) throw new StorageError('ErrReadOnly', `${this.path(name)}: read-only file system`)
  }
}
