/**
 * The replica's copy in a directory, over the runtime's FileOps (src/storage/file-ops.ts: Node and Deno files, or
 * memory with a crash model in tests). Two files:
 *
 *   replica.snap        the whole state (metas and every stored generation) and the number n of the log that follows
 *                       it, replaced atomically (temp file, durable write, rename, directory sync)
 *   replica-<n>.log     one record per commit: [length u32 BE][crc32c u32 BE][JSON of the ops], appended with one
 *                       durable write
 *
 * Loading reads the snapshot, replays its log up to the first short or corrupt record (a torn write of the last
 * commit: that commit did not happen) and cuts the log there. When the log outgrows the snapshot (and 1 MiB) the next
 * commit writes a new snapshot that names log n+1, then starts that log and removes the old one; a crash in between
 * leaves the old snapshot naming the old log, or the new one naming an empty log: never a replayed op.
 */
import { crc32c } from '../storage/crc32c.js'
import { type FileOps, type WriteFile, writeFileAtomic } from '../storage/file-ops.js'
import { binOfBytes, bytesOfBin } from './keys.js'
import type { StoredKv } from './local-index.js'
import {
  applyOps,
  type LoadedRange,
  type RangeMeta,
  ReplicaError,
  type ReplicaStorage,
  type StorageOp,
} from './storage.js'

const snapName = 'replica.snap'
const logName = (n: number) => `replica-${n}.log`
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** JSON with Uint8Array values as {"$b": base64}. */
function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? { $b: btoa(binOfBytes(x)) } : x))
}
function fromJson<T>(s: string): T {
  return JSON.parse(s, (_k, x) =>
    x !== null && typeof x === 'object' && typeof x.$b === 'string' && Object.keys(x).length === 1
      ? bytesOfBin(atob(x.$b))
      : x,
  ) as T
}

interface Snap {
  log: number
  metas: RangeMeta[]
  /** [range, gen, kvs] */
  data: [string, number, StoredKv[]][]
}

export class FileReplicaStorage implements ReplicaStorage {
  readonly name: string
  private readonly metas = new Map<string, RangeMeta>()
  private readonly data = new Map<string, Map<number, Map<string, StoredKv>>>()
  private log: WriteFile | undefined
  private logNo = 0
  private logSize = 0
  private snapSize = 0
  private unlock: (() => Promise<void>) | undefined

  constructor(
    private readonly ops: FileOps,
    /** The log is folded into a new snapshot once it is larger than this and than twice the snapshot. */
    private readonly logBytesMin = 1 << 20,
  ) {
    this.name = `replica files in ${ops.path('')}`
  }

  private wrap(err: unknown, what: string): ReplicaError {
    const msg = String((err as Error)?.message ?? err)
    const full = /ENOSPC|no space/i.test(msg)
    return new ReplicaError(full ? 'ERR_QUOTA' : 'ERR_STORAGE', `${this.name}: ${what}: ${msg}`, { cause: err })
  }

  async load(): Promise<LoadedRange[]> {
    try {
      await this.ops.mkdir()
      if (!this.unlock && this.ops.lock) this.unlock = await this.ops.lock()
      const names = (await this.ops.list()) ?? []
      this.metas.clear()
      this.data.clear()
      this.logNo = 0
      this.snapSize = 0
      if (names.includes(snapName)) {
        const bytes = await this.ops.read(snapName)
        this.snapSize = bytes.length
        const snap = fromJson<Snap>(decoder.decode(bytes))
        this.logNo = snap.log
        for (const m of snap.metas) this.metas.set(m.id, m)
        for (const [range, gen, kvs] of snap.data) {
          let gens = this.data.get(range)
          if (!gens) {
            gens = new Map()
            this.data.set(range, gens)
          }
          gens.set(gen, new Map(kvs.map((kv) => [kv.key, kv])))
        }
      }
      const name = logName(this.logNo)
      let good = 0
      if (names.includes(name)) {
        const b = await this.ops.read(name)
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
        while (good + 8 <= b.length) {
          const len = view.getUint32(good)
          const crc = view.getUint32(good + 4)
          if (good + 8 + len > b.length) break
          const body = b.subarray(good + 8, good + 8 + len)
          if (crc32c(body) >>> 0 !== crc) break
          applyOps(this.metas, this.data, fromJson<StorageOp[]>(decoder.decode(body)))
          good += 8 + len
        }
        if (good < b.length) await this.ops.truncate(name, good)
      }
      await this.log?.close()
      this.log = await this.ops.openWrite(name)
      this.logSize = good
      // Stale logs of an earlier generation (a crash after the snapshot rename).
      for (const n of names) if (/^replica-\d+\.log$/.test(n) && n !== name) await this.ops.unlink(n)
    } catch (err) {
      if (err instanceof ReplicaError) throw err
      throw this.wrap(err, 'load')
    }
    return [...this.metas.values()].map((meta) => ({
      meta: structuredClone(meta),
      kvs: [...(this.data.get(meta.id)?.get(meta.gen)?.values() ?? [])],
      staged: meta.copy ? [...(this.data.get(meta.id)?.get(meta.copy.gen)?.values() ?? [])] : [],
    }))
  }

  async commit(all: StorageOp[]): Promise<void> {
    if (!this.log) throw new ReplicaError('ERR_STORAGE', `${this.name}: commit before load`)
    // A fold changes nothing here: the log is folded into snapshots by size (below).
    const ops = all.filter((op) => op.kind !== 'fold')
    if (ops.length === 0) return
    const body = encoder.encode(toJson(ops))
    const rec = new Uint8Array(8 + body.length)
    const view = new DataView(rec.buffer)
    view.setUint32(0, body.length)
    view.setUint32(4, crc32c(body) >>> 0)
    rec.set(body, 8)
    try {
      await this.log.writeDurable(rec, this.logSize)
    } catch (err) {
      throw this.wrap(err, 'append')
    }
    this.logSize += rec.length
    applyOps(this.metas, this.data, ops)
    if (this.logSize > Math.max(this.logBytesMin, 2 * this.snapSize)) await this.snapshot()
  }

  /** Writes the whole state as a new snapshot followed by a new, empty log. */
  private async snapshot(): Promise<void> {
    const next = this.logNo + 1
    const snap: Snap = { log: next, metas: [...this.metas.values()], data: [] }
    for (const [range, gens] of this.data) for (const [gen, m] of gens) snap.data.push([range, gen, [...m.values()]])
    const bytes = encoder.encode(toJson(snap))
    try {
      await this.ops.unlink(logName(next))
      await writeFileAtomic(this.ops, snapName, bytes)
      await this.log?.close()
      this.log = await this.ops.openWrite(logName(next))
      await this.ops.unlink(logName(this.logNo))
      await this.ops.syncDir()
    } catch (err) {
      throw this.wrap(err, 'snapshot')
    }
    this.logNo = next
    this.logSize = 0
    this.snapSize = bytes.length
  }

  async close(): Promise<void> {
    await this.log?.close()
    this.log = undefined
    await this.unlock?.()
    this.unlock = undefined
  }
}
