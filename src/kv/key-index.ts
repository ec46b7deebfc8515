import sortedBtree from 'sorted-btree'
import type { KeyValue } from '../protocol/types.js'
import type { KeyRange } from './bytes.js'

// sorted-btree is CommonJS with `exports.default`; under Node's and Deno's ESM interop the default import is the
// module object, so the class is its `default`.
const BTree = sortedBtree.default
type BTree<K, V> = InstanceType<typeof sortedBtree.default<K, V>>

/**
 * One change of one key at one revision: etcd's backend row (revision -> mvccpb.KeyValue) plus its tombstone mark.
 * The same object sits in the key's history and in the store's revision log, so history costs one copy of the bytes.
 * Every object reachable from a Change is immutable once written.
 */
export interface Change {
  /** The key as a binary string (see bytes.ts). */
  readonly key: string
  readonly main: number
  readonly sub: number
  /** The stored KeyValue; for a tombstone only `key` and `mod_revision` (= main) are set, as in etcd's DELETE event. */
  readonly kv: KeyValue
  readonly tombstone: boolean
  /** The key's value just before this change (undefined when the key did not exist): the watch event's prev_kv. */
  prev: KeyValue | undefined
}

/**
 * etcd's keyIndex: every retained change of one key, oldest first. A tombstone ends a generation and the next put
 * starts a new one (version 1, create_revision = its revision), so the generations are implicit in the list.
 */
export class KeyHistory {
  readonly changes: Change[] = []

  constructor(
    readonly key: string,
    readonly keyBytes: Uint8Array,
  ) {}

  /** The newest change, live or tombstone. */
  latest(): Change | undefined {
    return this.changes[this.changes.length - 1]
  }

  /** The live value now (undefined when deleted). */
  live(): Change | undefined {
    const c = this.changes[this.changes.length - 1]
    return c === undefined || c.tombstone ? undefined : c
  }

  /** The newest change with main <= rev, live or tombstone. */
  changeAt(rev: number): Change | undefined {
    const cs = this.changes
    const last = cs[cs.length - 1]
    if (last === undefined) return undefined
    if (last.main <= rev) return last
    // Binary search: the last index whose main <= rev.
    let lo = 0
    let hi = cs.length - 1
    if (cs[0]!.main > rev) return undefined
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (cs[mid]!.main <= rev) lo = mid
      else hi = mid - 1
    }
    return cs[lo]
  }

  /** The live value at revision rev (undefined when the key did not exist then). */
  liveAt(rev: number): Change | undefined {
    const c = this.changeAt(rev)
    return c === undefined || c.tombstone ? undefined : c
  }

  /**
   * etcd's keyIndex.compact: drops every change older than the newest one at or below rev, and that one too when it
   * is a tombstone (a deleted key has nothing left to read at rev). Returns the dropped changes.
   */
  compact(rev: number): Change[] {
    const keepFrom = this.compactIndex(rev)
    return keepFrom <= 0 ? [] : this.changes.splice(0, keepFrom)
  }

  /** Index of the first change that compaction at rev keeps. */
  private compactIndex(rev: number): number {
    const cs = this.changes
    let i = -1
    for (let k = cs.length - 1; k >= 0; k--) {
      if (cs[k]!.main <= rev) {
        i = k
        break
      }
    }
    if (i < 0) return 0
    return cs[i]!.tombstone ? i + 1 : i
  }
}

const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** etcd's treeIndex: every key with retained history, in byte order, for range scans (a B+ tree from sorted-btree). */
export class KeyIndex {
  private tree: BTree<string, KeyHistory> = new BTree<string, KeyHistory>(undefined, compareKeys)

  get size(): number {
    return this.tree.size
  }

  get(key: string): KeyHistory | undefined {
    return this.tree.get(key)
  }

  /** The history of key, created empty when the key has none yet. */
  getOrCreate(key: string, keyBytes: Uint8Array): KeyHistory {
    let h = this.tree.get(key)
    if (h === undefined) {
      h = new KeyHistory(key, keyBytes)
      this.tree.set(key, h)
    }
    return h
  }

  delete(key: string): void {
    this.tree.delete(key)
  }

  /** Every history whose key is in the range, in key order. */
  *scan(r: KeyRange): Generator<KeyHistory> {
    if (r.empty) return
    if (r.single) {
      const h = this.tree.get(r.start)
      if (h !== undefined) yield h
      return
    }
    for (const [k, h] of this.tree.entries(r.start)) {
      if (r.end !== undefined && k >= r.end) return
      yield h
    }
  }

  /** Every history, in key order. */
  *all(): Generator<KeyHistory> {
    for (const [, h] of this.tree.entries()) yield h
  }
}
