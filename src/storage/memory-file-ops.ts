import { StorageError } from './errors.js'
import type { FileOps, WriteFile } from './file-ops.js'

interface MemFile {
  /** The content is data[0, size). Every write is durable when it returns (WriteFile.writeDurable). */
  data: Uint8Array
  size: number
}

/** A durable write that has started and not yet returned: what `crash()` may tear. */
const sectorBytes = 512

interface WriteInFlight {
  file: MemFile
  position: number
  length: number
  /** The file's size before the write, and the bytes it overwrote (those below that size). */
  sizeBefore: number
  overwritten: Uint8Array
}

/**
 * An in-memory file system with a crash model, for tests and the member-level simulator (test/sim/member/): file
 * content is durable once a write returns (every write is a durable write), but creates, renames and unlinks survive
 * `crash()` only once the directory was synced (POSIX promises no more). The directory lock is released by `crash()`,
 * as by the death of a process. It makes FileStorage the memory-backed durable reference: the same formats and
 * recovery, no disk.
 *
 * With `durableWriteDelay` set (the simulator sets a virtual fsync latency), a write takes time: its bytes are
 * visible at once (the page cache) but durable only when it returns, and `crash()` tears every write still in flight
 * (keeps a prefix of its bytes chosen by the caller, possibly none or all), as a power cut does.
 */
export class MemoryFileOps implements FileOps {
  private files = new Map<string, MemFile>()
  /** The directory as the last syncDir() left it: name -> file. */
  private durableDir = new Map<string, MemFile>()
  private exists = false
  private locked = false
  /** When set, every write fails like a read-only mount. */
  readOnly = false
  /** How long a durable write takes (a virtual fsync); undefined: no time at all. */
  durableWriteDelay: (() => Promise<void>) | undefined
  /**
   * Test hook, a deliberately broken disk: a write returns before it is durable (a skipped fsync); it stays tearable
   * by crash() until `durableWriteDelay` has passed in the background.
   */
  ackBeforeDurable = false
  private readonly writesInFlight = new Set<WriteInFlight>()

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

  async openWrite(name: string): Promise<WriteFile> {
    this.checkWritable(name)
    let f = this.files.get(name)
    if (!f) {
      if (!this.exists) throw new StorageError('ErrIO', `${this.path(name)}: no such directory`)
      f = { data: new Uint8Array(1024), size: 0 }
      this.files.set(name, f)
    }
    const file = f
    let open = true
    return {
      size: file.size,
      writeDurable: async (data, position) => {
        if (!open || this.files.get(name) !== file) throw new StorageError('ErrIO', `${this.path(name)}: closed`)
        this.checkWritable(name)
        const end = position + data.byteLength
        if (end > file.data.byteLength) {
          const next = new Uint8Array(Math.max(file.data.byteLength * 2, end))
          next.set(file.data.subarray(0, file.size))
          file.data = next
        }
        const delay = this.durableWriteDelay
        const w: WriteInFlight | undefined = delay && {
          file,
          position,
          length: data.byteLength,
          sizeBefore: file.size,
          overwritten: file.data.slice(position, Math.min(end, file.size)),
        }
        // A write past the end leaves a hole of zeros, as on a POSIX file system.
        if (position > file.size) file.data.fill(0, file.size, position)
        file.data.set(data, position)
        file.size = Math.max(file.size, end)
        if (!delay || !w) return
        this.writesInFlight.add(w)
        const durable = delay().then(() => {
          this.writesInFlight.delete(w)
        })
        if (!this.ackBeforeDurable) await durable
      },
      close: async () => {
        open = false
      },
    }
  }

  async truncate(name: string, size: number): Promise<void> {
    this.checkWritable(name)
    const f = this.get(name)
    if (size > f.size) f.data = growTo(f, size)
    f.size = size
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

  /**
   * Loses every directory change not synced, as a power cut would; releases the lock. Open files must not be used
   * afterwards. A write still in flight keeps only `tear(length)` of its bytes (default: none), rounded down to a
   * 512-byte sector boundary of the file (a sector is written whole or not at all), newest write first.
   */
  crash(tear?: (length: number) => number): void {
    for (const w of [...this.writesInFlight].reverse()) {
      let keep = Math.max(0, Math.min(w.length, tear ? tear(w.length) : 0))
      // A disk writes whole sectors atomically: a torn write keeps whole 512-byte sectors (storage/format.ts).
      if (keep < w.length) keep = Math.max(0, Math.floor((w.position + keep) / sectorBytes) * sectorBytes - w.position)
      const f = w.file
      const from = w.position + keep
      const end = w.position + w.length
      // Bytes past the kept prefix are back to what they were: the old content below the old size, zeros beyond.
      for (let i = from; i < end; i++) {
        const o = i - w.position
        f.data[i] = i < w.sizeBefore ? w.overwritten[o]! : 0
      }
      f.size = Math.max(w.sizeBefore, from)
    }
    this.writesInFlight.clear()
    this.files = new Map()
    for (const [name, f] of this.durableDir) this.files.set(name, { data: f.data.slice(0, f.size), size: f.size })
    this.durableDir = new Map(this.files)
    this.locked = false
  }

  /** Test hook: the file's bytes, to damage them with setFile. */
  getFile(name: string): Uint8Array {
    return this.get(name).data.slice(0, this.get(name).size)
  }

  /** Test hook: replaces a file's content, durably, as damage on disk would. */
  setFile(name: string, data: Uint8Array): void {
    this.exists = true
    const f: MemFile = { data: data.slice(), size: data.byteLength }
    this.files.set(name, f)
    this.durableDir.set(name, f)
  }

  async lock(): Promise<() => Promise<void>> {
    if (this.locked) {
      throw new StorageError('ErrLocked', `${this.dir} is in use by another open storage in this process`)
    }
    this.locked = true
    let held = true
    return async () => {
      if (held) this.locked = false
      held = false
    }
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

/** A copy of f's buffer, at least `size` bytes, zeros past f.size (ftruncate to a bigger size leaves a hole). */
function growTo(f: MemFile, size: number): Uint8Array {
  const next = new Uint8Array(Math.max(size, f.data.byteLength))
  next.set(f.data.subarray(0, f.size))
  return next
}
