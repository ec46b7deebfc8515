/**
 * An interval index over key ranges [start, end) (end undefined: no upper bound, etcd's from-key range), answering
 * "which ranges hold this key" in O(log n + matches · log n) in the worst case, and O(log n + matches) for the common
 * shapes (disjoint or nested-few ranges), where n is the number of ranges held. Add and delete are O(log n).
 *
 * The structure is a treap (a binary search tree balanced by random priorities, here from a seeded xorshift so runs
 * are reproducible) ordered by (start, end), each node augmented with the largest end in its subtree: a subtree whose
 * largest end is <= the key holds no match and is skipped, and a right subtree is skipped once the node's start is
 * past the key (CLRS 14.3, the interval tree). Keys are binary strings (one char per byte, 0x00..0xff), compared with
 * the string order, which is the byte order.
 *
 * Why not a library: sorted-btree (in package.json) keeps keys sorted but cannot carry a subtree aggregate, and a
 * stabbing query needs one (a sorted list of starts alone leaves every range starting before the key to check); the
 * interval-tree packages on npm take numeric endpoints. The structure is about a hundred lines, tested against a brute
 * force in test/security/watch-range-index.test.ts.
 */

/** Above every binary-string key: stands for "no upper bound". */
const unbounded = '\u0100'

interface Node<T> {
  readonly start: string
  /** The exclusive end, `unbounded` for none. */
  readonly end: string
  readonly value: T
  readonly prio: number
  left: Node<T> | undefined
  right: Node<T> | undefined
  /** The largest end in this subtree. */
  max: string
}

function cmp(aStart: string, aEnd: string, b: Node<unknown>): number {
  if (aStart !== b.start) return aStart < b.start ? -1 : 1
  if (aEnd !== b.end) return aEnd < b.end ? -1 : 1
  return 0
}

function fix<T>(n: Node<T>): Node<T> {
  let m = n.end
  if (n.left !== undefined && n.left.max > m) m = n.left.max
  if (n.right !== undefined && n.right.max > m) m = n.right.max
  n.max = m
  return n
}

function rotateRight<T>(n: Node<T>): Node<T> {
  const l = n.left!
  n.left = l.right
  l.right = fix(n)
  return fix(l)
}

function rotateLeft<T>(n: Node<T>): Node<T> {
  const r = n.right!
  n.right = r.left
  r.left = fix(n)
  return fix(r)
}

export class RangeIndex<T> {
  private root: Node<T> | undefined
  private seed = 0x2545f491
  private n = 0
  /** Nodes looked at by stab() since creation: what a lookup costs, for tests and benches (not wall time). */
  visits = 0

  get size(): number {
    return this.n
  }

  /** Adds the range [start, end) (end undefined: unbounded). One value per distinct range: the caller groups. */
  add(start: string, end: string | undefined, value: T): void {
    this.seed ^= this.seed << 13
    this.seed ^= this.seed >>> 17
    this.seed ^= this.seed << 5
    const e = end ?? unbounded
    const node: Node<T> = { start, end: e, value, prio: this.seed >>> 0, left: undefined, right: undefined, max: e }
    this.root = this.insert(this.root, node)
    this.n++
  }

  /** Removes the range [start, end); returns whether it was there. */
  delete(start: string, end: string | undefined): boolean {
    const before = this.n
    this.root = this.remove(this.root, start, end ?? unbounded)
    return this.n < before
  }

  /** Calls f with the value of every range that holds key. */
  stab(key: string, f: (value: T) => void): void {
    this.visit(this.root, key, f)
  }

  private visit(n: Node<T> | undefined, key: string, f: (value: T) => void): void {
    while (n !== undefined && n.max > key) {
      this.visits++
      // Every start in the right subtree is >= n.start: past the key, nothing there (nor n) can hold it.
      if (n.start > key) {
        n = n.left
        continue
      }
      this.visit(n.left, key, f)
      if (n.end > key) f(n.value)
      n = n.right
    }
  }

  private insert(n: Node<T> | undefined, node: Node<T>): Node<T> {
    if (n === undefined) return node
    if (cmp(node.start, node.end, n) < 0) {
      n.left = this.insert(n.left, node)
      if (n.left.prio > n.prio) return rotateRight(n)
    } else {
      n.right = this.insert(n.right, node)
      if (n.right.prio > n.prio) return rotateLeft(n)
    }
    return fix(n)
  }

  private remove(n: Node<T> | undefined, start: string, end: string): Node<T> | undefined {
    if (n === undefined) return undefined
    const c = cmp(start, end, n)
    if (c < 0) n.left = this.remove(n.left, start, end)
    else if (c > 0) n.right = this.remove(n.right, start, end)
    else {
      this.n--
      return this.join(n.left, n.right)
    }
    return fix(n)
  }

  /** Two treaps, every key of a below every key of b, as one. */
  private join(a: Node<T> | undefined, b: Node<T> | undefined): Node<T> | undefined {
    if (a === undefined) return b
    if (b === undefined) return a
    if (a.prio > b.prio) {
      a.right = this.join(a.right, b)
      return fix(a)
    }
    b.left = this.join(a, b.left)
    return fix(b)
  }
}
