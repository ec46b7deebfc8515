/**
 * The client proposals a RaftNode waits on, by request sequence number, oldest first: what a `Map<seq, waiter>` did,
 * without a waiter object per proposal and without the Map's table being rebuilt every few puts (set once and
 * deleted once per put, a Map of one entry shrinks and regrows its hash table: docs/benchmarks.md gRPC "Session 11").
 *
 * Sequence numbers are added in increasing order (with gaps: other requests take numbers too) and deadlines in
 * the same order (each is the clock's now plus the same timeout). The live ones lie in [head, end), a window kept
 * narrower than the ring (the ring doubles when an add would not fit), so a slot is `seq & mask` and never aliases.
 * The window is as wide as the span between the oldest waiting proposal and the newest, which the request timeout
 * bounds: every proposal is settled or expired by its deadline.
 */
export class ProposalWaiters {
  private resolves: (((v: unknown) => void) | undefined)[] = new Array(ringSlotsMin).fill(undefined)
  private rejects: (((e: unknown) => void) | undefined)[] = new Array(ringSlotsMin).fill(undefined)
  private deadlines: number[] = new Array(ringSlotsMin).fill(0)
  private mask = ringSlotsMin - 1
  /** Every sequence number below head is settled; head itself is waiting whenever size > 0. */
  private head = 0
  /** One past the last sequence number added. */
  private end = 0
  /** Proposals waiting. */
  size = 0

  /** Adds proposal `seq` (greater than every one added before) with its deadline (not before any earlier one's). */
  add(seq: number, resolve: (v: unknown) => void, reject: (e: unknown) => void, deadline: number): void {
    if (seq < this.end) throw new Error(`proposal ${seq} added after ${this.end - 1}`)
    if (this.size === 0) {
      if (this.mask + 1 > ringSlotsKeepMax) this.reset()
      this.head = seq
    }
    while (seq - this.head > this.mask) this.grow()
    const i = seq & this.mask
    this.resolves[i] = resolve
    this.rejects[i] = reject
    this.deadlines[i] = deadline
    this.end = seq + 1
    this.size++
  }

  has(seq: number): boolean {
    return seq >= this.head && seq < this.end && this.resolves[seq & this.mask] !== undefined
  }

  /** The oldest waiting proposal's deadline, or undefined when none waits. */
  oldestDeadline(): number | undefined {
    return this.size === 0 ? undefined : this.deadlines[this.head & this.mask]
  }

  /** Answers proposal `seq` with `error`, or else with `result`; false if it is not waiting. */
  settle(seq: number, result: unknown, error: unknown): boolean {
    if (!this.has(seq)) return false
    const i = seq & this.mask
    const resolve = this.resolves[i]!
    const reject = this.rejects[i]!
    this.remove(i)
    if (error !== undefined) reject(error)
    else resolve(result)
    return true
  }

  /** Fails, oldest first, every proposal whose deadline is at or before `now` with `err()`; returns how many. */
  expire(now: number, err: () => unknown): number {
    let n = 0
    while (this.size > 0) {
      const i = this.head & this.mask
      if (this.deadlines[i]! > now) break
      const reject = this.rejects[i]!
      this.remove(i)
      n++
      reject(err())
    }
    return n
  }

  /** Fails every waiting proposal with `e`, oldest first; none waits afterwards. */
  rejectAll(e: unknown): void {
    const rejects: ((e: unknown) => void)[] = []
    for (let s = this.head; s < this.end; s++) {
      const reject = this.rejects[s & this.mask]
      if (reject !== undefined) rejects.push(reject)
    }
    this.reset()
    for (const reject of rejects) reject(e)
  }

  private remove(i: number): void {
    this.resolves[i] = undefined
    this.rejects[i] = undefined
    this.size--
    // Past the settled ones (and the numbers that were never proposals) to the oldest that still waits.
    while (this.head < this.end && this.resolves[this.head & this.mask] === undefined) this.head++
  }

  private grow(): void {
    const n = (this.mask + 1) * 2
    const resolves = new Array(n).fill(undefined)
    const rejects = new Array(n).fill(undefined)
    const deadlines = new Array(n).fill(0)
    const mask = n - 1
    for (let s = this.head; s < this.end; s++) {
      const i = s & this.mask
      resolves[s & mask] = this.resolves[i]
      rejects[s & mask] = this.rejects[i]
      deadlines[s & mask] = this.deadlines[i]
    }
    this.resolves = resolves
    this.rejects = rejects
    this.deadlines = deadlines
    this.mask = mask
  }

  /** Back to an empty ring of the smallest size (a burst's large ring is not kept). */
  private reset(): void {
    this.resolves = new Array(ringSlotsMin).fill(undefined)
    this.rejects = new Array(ringSlotsMin).fill(undefined)
    this.deadlines = new Array(ringSlotsMin).fill(0)
    this.mask = ringSlotsMin - 1
    this.head = this.end
    this.size = 0
  }
}

/** The ring's size when empty, and the largest it keeps once empty again (a power of two each). */
const ringSlotsMin = 64
const ringSlotsKeepMax = 4096
