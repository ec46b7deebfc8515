/**
 * Go 1.19's sort.Sort (pattern-defeating quicksort, src/sort/zsortinterface.go), step for step, so that a range
 * sorted by a target with ties (VERSION, CREATE, MOD, VALUE) comes back in exactly the order etcd 3.4 gives it:
 * etcd sorts its range result with sort.Sort, which is not stable, and Debian's etcd 3.4.23 is built with Go 1.19.
 * Up to 12 elements it is an insertion sort (stable); past that ties come out in the order pdqsort's partitions leave
 * them, which no stable sort reproduces (test/diff/random-grpc.test.ts, test/kv/go-sort.test.ts).
 *
 * `less(a, b)` is the sort.Interface's Less on the elements; swaps are on the array itself.
 */

type Less<T> = (a: T, b: T) => boolean

const unknownHint = 0
const increasingHint = 1
const decreasingHint = 2

/** bits.Len: the number of bits needed to represent n (0 for 0). */
function bitsLen(n: number): number {
  return n === 0 ? 0 : 32 - Math.clz32(n)
}

/** Sorts `data` in place as Go's sort.Sort with this Less would. */
export function goSort<T>(data: T[], less: Less<T>): void {
  const n = data.length
  if (n <= 1) return
  new Sorter(data, less).pdqsort(0, n, bitsLen(n))
}

class Sorter<T> {
  constructor(
    private readonly d: T[],
    private readonly lessFn: Less<T>,
  ) {}

  private less(i: number, j: number): boolean {
    return this.lessFn(this.d[i]!, this.d[j]!)
  }

  private swap(i: number, j: number): void {
    const d = this.d
    const t = d[i]!
    d[i] = d[j]!
    d[j] = t
  }

  private insertionSort(a: number, b: number): void {
    for (let i = a + 1; i < b; i++) for (let j = i; j > a && this.less(j, j - 1); j--) this.swap(j, j - 1)
  }

  private siftDown(lo: number, hi: number, first: number): void {
    let root = lo
    for (;;) {
      let child = 2 * root + 1
      if (child >= hi) break
      if (child + 1 < hi && this.less(first + child, first + child + 1)) child++
      if (!this.less(first + root, first + child)) return
      this.swap(first + root, first + child)
      root = child
    }
  }

  private heapSort(a: number, b: number): void {
    const first = a
    const lo = 0
    const hi = b - a
    for (let i = Math.trunc((hi - 1) / 2); i >= 0; i--) this.siftDown(i, hi, first)
    for (let i = hi - 1; i >= 0; i--) {
      this.swap(first, first + i)
      this.siftDown(lo, i, first)
    }
  }

  pdqsort(a: number, b: number, limit: number): void {
    const maxInsertion = 12
    let wasBalanced = true
    let wasPartitioned = true
    for (;;) {
      const length = b - a
      if (length <= maxInsertion) {
        this.insertionSort(a, b)
        return
      }
      if (limit === 0) {
        this.heapSort(a, b)
        return
      }
      if (!wasBalanced) {
        this.breakPatterns(a, b)
        limit--
      }
      let [pivot, hint] = this.choosePivot(a, b)
      if (hint === decreasingHint) {
        this.reverseRange(a, b)
        pivot = b - 1 - (pivot - a)
        hint = increasingHint
      }
      if (wasBalanced && wasPartitioned && hint === increasingHint) {
        if (this.partialInsertionSort(a, b)) return
      }
      if (a > 0 && !this.less(a - 1, pivot)) {
        a = this.partitionEqual(a, b, pivot)
        continue
      }
      const [mid, alreadyPartitioned] = this.partition(a, b, pivot)
      wasPartitioned = alreadyPartitioned
      const leftLen = mid - a
      const rightLen = b - mid
      const balanceThreshold = Math.trunc(length / 8)
      if (leftLen < rightLen) {
        wasBalanced = leftLen >= balanceThreshold
        this.pdqsort(a, mid, limit)
        a = mid + 1
      } else {
        wasBalanced = rightLen >= balanceThreshold
        this.pdqsort(mid + 1, b, limit)
        b = mid
      }
    }
  }

  private partition(a: number, b: number, pivot: number): [number, boolean] {
    this.swap(a, pivot)
    let i = a + 1
    let j = b - 1
    while (i <= j && this.less(i, a)) i++
    while (i <= j && !this.less(j, a)) j--
    if (i > j) {
      this.swap(j, a)
      return [j, true]
    }
    this.swap(i, j)
    i++
    j--
    for (;;) {
      while (i <= j && this.less(i, a)) i++
      while (i <= j && !this.less(j, a)) j--
      if (i > j) break
      this.swap(i, j)
      i++
      j--
    }
    this.swap(j, a)
    return [j, false]
  }

  private partitionEqual(a: number, b: number, pivot: number): number {
    this.swap(a, pivot)
    let i = a + 1
    let j = b - 1
    for (;;) {
      while (i <= j && !this.less(a, i)) i++
      while (i <= j && this.less(a, j)) j--
      if (i > j) break
      this.swap(i, j)
      i++
      j--
    }
    return i
  }

  private partialInsertionSort(a: number, b: number): boolean {
    const maxSteps = 5
    const shortestShifting = 50
    let i = a + 1
    for (let step = 0; step < maxSteps; step++) {
      while (i < b && !this.less(i, i - 1)) i++
      if (i === b) return true
      if (b - a < shortestShifting) return false
      this.swap(i, i - 1)
      if (i - a >= 2) {
        for (let j = i - 1; j >= 1; j--) {
          if (!this.less(j, j - 1)) break
          this.swap(j, j - 1)
        }
      }
      if (b - i >= 2) {
        for (let j = i + 1; j < b; j++) {
          if (!this.less(j, j - 1)) break
          this.swap(j, j - 1)
        }
      }
    }
    return false
  }

  private breakPatterns(a: number, b: number): void {
    const length = b - a
    if (length < 8) return
    // Go's xorshift (sort.go, Go 1.19): a uint64 seeded with the length.
    const mask64 = (1n << 64n) - 1n
    let r = BigInt(length)
    const next = () => {
      r ^= (r << 13n) & mask64
      r ^= r >> 17n
      r ^= (r << 5n) & mask64
      return r
    }
    const modulus = BigInt(2 ** bitsLen(length))
    const half = Math.trunc(length / 4) * 2
    for (let idx = a + half - 1; idx <= a + half + 1; idx++) {
      let other = Number(next() & (modulus - 1n))
      if (other >= length) other -= length
      this.swap(idx, a + other)
    }
  }

  private choosePivot(a: number, b: number): [number, number] {
    const shortestNinther = 50
    const maxSwaps = 4 * 3
    const l = b - a
    const swaps = { n: 0 }
    let i = a + Math.trunc(l / 4) * 1
    let j = a + Math.trunc(l / 4) * 2
    let k = a + Math.trunc(l / 4) * 3
    if (l >= 8) {
      if (l >= shortestNinther) {
        i = this.medianAdjacent(i, swaps)
        j = this.medianAdjacent(j, swaps)
        k = this.medianAdjacent(k, swaps)
      }
      j = this.median(i, j, k, swaps)
    }
    if (swaps.n === 0) return [j, increasingHint]
    if (swaps.n === maxSwaps) return [j, decreasingHint]
    return [j, unknownHint]
  }

  private order2(a: number, b: number, swaps: { n: number }): [number, number] {
    if (this.less(b, a)) {
      swaps.n++
      return [b, a]
    }
    return [a, b]
  }

  private median(a: number, b: number, c: number, swaps: { n: number }): number {
    ;[a, b] = this.order2(a, b, swaps)
    ;[b, c] = this.order2(b, c, swaps)
    ;[a, b] = this.order2(a, b, swaps)
    return b
  }

  private medianAdjacent(a: number, swaps: { n: number }): number {
    return this.median(a - 1, a, a + 1, swaps)
  }

  private reverseRange(a: number, b: number): void {
    let i = a
    let j = b - 1
    while (i < j) {
      this.swap(i, j)
      i++
      j--
    }
  }
}
