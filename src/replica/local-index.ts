/**
 * The replica's in-memory copy of one followed range: a B+ tree (sorted-btree, as the server's key index) from key to
 * its latest KeyValue, with keys as binary strings (one char per byte, so string order is etcd's byte order). Reads
 * answer etcd's RangeRequest semantics (range end, limit, keys_only, count_only, sort, min/max revisions) from it.
 * `clone()` is O(1) copy-on-write, so a re-copy builds a new tree beside the live one and swaps it in at once.
 */
import sortedBtree from 'sorted-btree'
import * as bulkLoadModule from 'sorted-btree/extended/bulkLoad.js'

// sorted-btree is CommonJS with `exports.default`; under Node's and Deno's ESM interop the default import is the
// module object, so the class is its `default` (src/kv/key-index.ts does the same). esbuild gives the class itself.
const BTreeClass: typeof sortedBtree.default =
  (sortedBtree as unknown as { default?: typeof sortedBtree.default }).default ??
  (sortedBtree as unknown as typeof sortedBtree.default)
export type KvTree = InstanceType<typeof sortedBtree.default<string, StoredKv>>

/** One key's latest state as the replica stores it. `key` is a binary string (latin1: one char per byte). */
export interface StoredKv {
  key: string
  value: Uint8Array
  createRevision: number
  modRevision: number
  version: number
  /** Lease id as a decimal string ('0': none). */
  lease: string
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

const bulkLoad: typeof bulkLoadModule.bulkLoad =
  bulkLoadModule.bulkLoad ?? (bulkLoadModule as unknown as { default: typeof bulkLoadModule }).default.bulkLoad
/** sorted-btree's default node size. */
const maxNodeSize = 32

/**
 * A tree of `kvs`. An array (a load from storage, a copy) is sorted if needed (usually it is, or nearly: TimSort is
 * linear on sorted runs) and bulk-loaded, several times faster than inserting key by key.
 */
export function newTree(kvs: Iterable<StoredKv> = []): KvTree {
  if (Array.isArray(kvs) && kvs.length > maxNodeSize) {
    let sorted = true
    for (let i = 1; i < kvs.length && sorted; i++) if (!(kvs[i - 1]!.key < kvs[i]!.key)) sorted = false
    const arr = sorted ? kvs : [...kvs].sort((a, b) => cmp(a.key, b.key))
    try {
      return bulkLoad(
        arr.map((kv) => kv.key),
        arr,
        maxNodeSize,
        cmp,
      ) as KvTree
    } catch {
      // A repeated key (bulkLoad wants strictly ascending keys): insert one by one, the last one wins.
    }
  }
  const t = new BTreeClass<string, StoredKv>(undefined, cmp)
  for (const kv of kvs) t.set(kv.key, kv)
  return t
}

/** Sort order and target of a local range (etcd's names). */
export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND'
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE'

/** A local range query, keys as binary strings; `end` '' is a single key, '\0' every key from `key` up. */
export interface LocalQuery {
  key: string
  end: string
  limit?: number
  keysOnly?: boolean
  countOnly?: boolean
  sortOrder?: SortOrder
  sortTarget?: SortTarget
  minModRevision?: number
  maxModRevision?: number
  minCreateRevision?: number
  maxCreateRevision?: number
}

export interface LocalAnswer {
  kvs: StoredKv[]
  count: number
  more: boolean
}

/** Whether [key, end) (end '' = the single key) lies inside the followed range [rKey, rEnd) (rEnd '\0' = no end). */
export function within(key: string, end: string, rKey: string, rEnd: string): boolean {
  if (key < rKey) return false
  const noEnd = rEnd === '\0'
  if (end === '') return noEnd || key < rEnd
  if (end === '\0') return noEnd
  return noEnd || end <= rEnd
}

function compareValues(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/** etcd's range over the tree (mvcc's rangeKeys + the apply layer's sort, filter and limit). */
export function queryTree(tree: KvTree, q: LocalQuery): LocalAnswer {
  // One key without filters (a get): one lookup, one small array.
  if (q.end === '' && !q.minModRevision && !q.maxModRevision && !q.minCreateRevision && !q.maxCreateRevision) {
    const kv = tree.get(q.key)
    if (!kv) return { kvs: [], count: 0, more: false }
    if (q.countOnly) return { kvs: [], count: 1, more: false }
    return { kvs: [q.keysOnly ? { ...kv, value: new Uint8Array(0) } : kv], count: 1, more: false }
  }
  let all: StoredKv[] = []
  if (q.end === '') {
    const kv = tree.get(q.key)
    if (kv) all.push(kv)
  } else if (q.end === '\0') {
    for (const [, kv] of tree.entries(q.key)) all.push(kv)
  } else if (q.key < q.end) {
    tree.forRange(q.key, q.end, false, (_k, kv) => {
      all.push(kv)
    })
  }
  const filtered =
    q.minModRevision || q.maxModRevision || q.minCreateRevision || q.maxCreateRevision
      ? all.filter(
          (kv) =>
            !(q.minModRevision && kv.modRevision < q.minModRevision) &&
            !(q.maxModRevision && kv.modRevision > q.maxModRevision) &&
            !(q.minCreateRevision && kv.createRevision < q.minCreateRevision) &&
            !(q.maxCreateRevision && kv.createRevision > q.maxCreateRevision),
        )
      : all
  // etcd counts what the store range found (before the revision filters); the filters apply to the answer.
  const count = all.length
  if (q.countOnly) return { kvs: [], count, more: false }
  all = filtered
  const target = q.sortTarget ?? 'KEY'
  let order = q.sortOrder ?? 'NONE'
  // As etcd: sorting by anything but the key without an order means ascending; KEY+NONE is key order already.
  if (order === 'NONE' && target !== 'KEY') order = 'ASCEND'
  if (order !== 'NONE' && !(order === 'ASCEND' && target === 'KEY')) {
    const by: (a: StoredKv, b: StoredKv) => number =
      target === 'KEY'
        ? (a, b) => cmp(a.key, b.key)
        : target === 'VERSION'
          ? (a, b) => a.version - b.version
          : target === 'CREATE'
            ? (a, b) => a.createRevision - b.createRevision
            : target === 'MOD'
              ? (a, b) => a.modRevision - b.modRevision
              : (a, b) => compareValues(a.value, b.value)
    all = [...all].sort(order === 'DESCEND' ? (a, b) => by(b, a) : by)
  }
  const limit = q.limit && q.limit > 0 ? q.limit : 0
  const more = limit > 0 && all.length > limit
  let kvs = more ? all.slice(0, limit) : all
  if (q.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }))
  return { kvs, count, more }
}
