/**
 * A scripted etcd for the replica's sync engine: an in-memory multi-version store (every version of every key, so a
 * range can be read at any revision above the compaction), watches that deliver history and then live events, and
 * knobs the tests turn: offline/online, compaction, revoking a range's permission, and (seeded) misbehaviour after
 * reconnects: a resumed watch that starts a little early (repeats), and late answers of a replaced watch.
 * Deliveries go through a queue pumped on macrotasks, so the engine sees them asynchronously, in a seeded order.
 */
import type { StoredKv } from '../../src/replica/local-index.js'
import {
  type ReplicaSource,
  SourceError,
  type SourceEvent,
  type SourcePage,
  type SourceRange,
  type SourceWatch,
  type WatchSink,
} from '../../src/replica/source.js'

/** mulberry32: a small seeded PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const inRange = (k: string, key: string, end: string) => k >= key && (end === '\0' || k < end)

interface SimWatch {
  key: string
  end: string
  /** The revision after the last one delivered (where a resumed watch starts). */
  next: number
  /** The revision after the last one queued for delivery. */
  sent: number
  sink: WatchSink
  created: boolean
  cancelled: boolean
  /** Bumped at each reconnect: deliveries queued for an older generation are "late answers". */
  gen: number
}

export class ScriptedServer implements ReplicaSource {
  revision = 1
  compactRevision = 0
  online = true
  /** Every version of every key: key -> [{rev, kv | null (deleted)}], oldest first. */
  private readonly versions = new Map<string, { rev: number; kv: StoredKv | null }[]>()
  private readonly events = new Map<number, SourceEvent[]>()
  private readonly denied: { key: string; end: string }[] = []
  private readonly watches = new Set<SimWatch>()
  private readonly queue: (() => void)[] = []
  private pumping = false
  /** Probability that a resumed watch starts up to 3 revisions early (repeated events). */
  repeatChance = 0
  /** Probability that a reconnect replays the previous socket's last answer late, after the new create. */
  lateChance = 0
  rangeCalls = 0
  constructor(private readonly rand: () => number = rng(1)) {}

  // ---- the cluster side, driven by the test

  put(key: string, value: string): number {
    const rev = ++this.revision
    const prev = this.current(key)
    const kv: StoredKv = {
      key,
      value: new TextEncoder().encode(value),
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease: '0',
    }
    this.record(key, rev, kv, { type: 'PUT', kv })
    return rev
  }

  delete(key: string): number | undefined {
    if (!this.current(key)) return undefined
    const rev = ++this.revision
    this.record(key, rev, null, {
      type: 'DELETE',
      kv: { key, value: new Uint8Array(0), createRevision: 0, modRevision: rev, version: 0, lease: '0' },
    })
    return rev
  }

  private record(key: string, rev: number, kv: StoredKv | null, e: SourceEvent): void {
    let v = this.versions.get(key)
    if (!v) {
      v = []
      this.versions.set(key, v)
    }
    v.push({ rev, kv })
    this.events.set(rev, [e])
    for (const w of this.watches) if (w.created && inRange(key, w.key, w.end)) this.deliverFrom(w)
  }

  current(key: string): StoredKv | null {
    const v = this.versions.get(key)
    return v ? v[v.length - 1]!.kv : null
  }

  /** The keys of [key, end) at `rev`, in order. */
  stateAt(rev: number, key: string, end: string): StoredKv[] {
    const out: StoredKv[] = []
    for (const [k, vs] of this.versions) {
      if (!inRange(k, key, end)) continue
      let at: StoredKv | null = null
      for (const v of vs) if (v.rev <= rev) at = v.kv
      if (at) out.push(at)
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : 1))
  }

  compact(rev: number): void {
    this.compactRevision = Math.max(this.compactRevision, Math.min(rev, this.revision))
    for (const w of this.watches)
      if (w.created && w.next <= this.compactRevision) this.cancelWatch(w, new SourceError('compacted', 'compacted'))
  }

  deny(key: string, end: string): void {
    this.denied.push({ key, end })
    for (const w of this.watches)
      if (w.created && this.isDenied(w.key, w.end))
        this.cancelWatch(w, new SourceError('denied', 'etcdserver: permission denied'))
  }

  private isDenied(key: string, end: string): boolean {
    return this.denied.some((d) => d.key <= key && (d.end === '\0' || (end !== '\0' && end <= d.end)))
  }

  goOffline(): void {
    if (!this.online) return
    this.online = false
    for (const w of this.watches) {
      if (w.cancelled) continue
      w.created = false
      const gen = ++w.gen
      this.enqueue(() => {
        if (w.gen === gen && !w.cancelled) w.sink.disconnected()
      })
    }
  }

  goOnline(): void {
    if (this.online) return
    this.online = true
    for (const w of this.watches) if (!w.cancelled) this.createWatch(w)
  }

  // ---- the ReplicaSource side, used by the engine

  async range(r: SourceRange): Promise<SourcePage> {
    this.rangeCalls++
    await new Promise((res) => setImmediate(res))
    if (!this.online) throw new SourceError('unavailable', 'scripted: offline')
    if (this.isDenied(r.key, r.end)) throw new SourceError('denied', 'etcdserver: permission denied')
    const rev = r.revision ?? this.revision
    if (rev < this.compactRevision)
      throw new SourceError('compacted', 'etcdserver: mvcc: required revision has been compacted')
    if (rev > this.revision) throw new SourceError('other', 'etcdserver: mvcc: required revision is a future revision')
    const all = this.stateAt(rev, r.key, r.end)
    if (r.countOnly) return { revision: this.revision, kvs: [], more: false, count: all.length }
    const kvs = r.limit ? all.slice(0, r.limit) : all
    return { revision: this.revision, kvs, more: kvs.length < all.length, count: all.length }
  }

  watch(key: string, end: string, startRevision: number, sink: WatchSink): SourceWatch {
    const w: SimWatch = {
      key,
      end,
      next: startRevision,
      sent: startRevision,
      sink,
      created: false,
      cancelled: false,
      gen: 0,
    }
    this.watches.add(w)
    if (this.online) this.createWatch(w)
    else this.enqueue(() => !w.cancelled && w.sink.disconnected())
    return {
      cancel: () => {
        w.cancelled = true
        this.watches.delete(w)
      },
    }
  }

  async progress(): Promise<number> {
    await new Promise((res) => setImmediate(res))
    if (!this.online) throw new SourceError('unavailable', 'scripted: offline')
    return new Promise((resolve) => {
      // As edgecd's server: the answer waits until every watch has been sent everything up to the revision.
      const attempt = () => {
        const live = [...this.watches].filter((w) => w.created && !w.cancelled)
        if (live.some((w) => w.sent !== w.next)) return this.enqueue(attempt)
        const rev = this.revision
        for (const w of live) {
          w.next = Math.max(w.next, rev + 1)
          w.sent = w.next
          w.sink.progress(rev)
        }
        resolve(rev)
      }
      this.enqueue(attempt)
    })
  }

  close(): void {
    for (const w of this.watches) w.cancelled = true
    this.watches.clear()
  }

  // ---- internals

  private createWatch(w: SimWatch): void {
    const gen = ++w.gen
    // Misbehaviour after a reconnect: the resumed watch starts a little early (the engine must drop repeats).
    if (w.next > 1 && this.rand() < this.repeatChance) w.next = Math.max(1, w.next - 1 - Math.floor(this.rand() * 3))
    w.sent = w.next
    this.enqueue(() => {
      if (w.gen !== gen || w.cancelled || !this.online) return
      if (this.isDenied(w.key, w.end))
        return this.cancelWatch(w, new SourceError('denied', 'etcdserver: permission denied'))
      if (w.next <= this.compactRevision) return this.cancelWatch(w, new SourceError('compacted', 'compacted'))
      w.created = true
      w.sink.created(this.revision)
      this.deliverFrom(w)
    })
    // A late answer from before the reconnect (an older generation of the watch): must be ignored or deduplicated.
    if (gen > 1 && this.rand() < this.lateChance) {
      const from = Math.max(1, w.next - 2)
      const evs: SourceEvent[] = []
      for (let r = from; r < w.next; r++)
        for (const e of this.events.get(r) ?? []) if (inRange(e.kv.key, w.key, w.end)) evs.push(e)
      if (evs.length) this.enqueue(() => !w.cancelled && w.sink.events(evs, this.revision))
    }
  }

  /** Queues every event of w from w.next up to now, in one or more (seeded) batches. */
  private deliverFrom(w: SimWatch): void {
    const gen = w.gen
    while (w.sent <= this.revision) {
      const n = 1 + Math.floor(this.rand() * 4)
      const evs: SourceEvent[] = []
      const stop = Math.min(this.revision, w.sent + n - 1)
      for (let r = w.sent; r <= stop; r++)
        for (const e of this.events.get(r) ?? []) if (inRange(e.kv.key, w.key, w.end)) evs.push(e)
      w.sent = stop + 1
      const header = this.revision
      this.enqueue(() => {
        if (w.gen !== gen || w.cancelled || !w.created) return
        w.next = stop + 1
        if (evs.length) w.sink.events(evs, header)
      })
    }
  }

  private cancelWatch(w: SimWatch, err: SourceError): void {
    w.created = false
    const gen = ++w.gen
    this.watches.delete(w)
    this.enqueue(() => {
      if (w.gen === gen && !w.cancelled) w.sink.failed(err)
    })
  }

  private enqueue(fn: () => void): void {
    this.queue.push(fn)
    if (this.pumping) return
    this.pumping = true
    const pump = () => {
      const f = this.queue.shift()
      if (!f) {
        this.pumping = false
        return
      }
      f()
      setImmediate(pump)
    }
    setImmediate(pump)
  }

  /** Resolves once every queued delivery was made. */
  async drain(): Promise<void> {
    for (let i = 0; i < 100_000 && (this.queue.length > 0 || this.pumping); i++)
      await new Promise((res) => setImmediate(res))
  }
}
