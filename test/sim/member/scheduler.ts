/**
 * Virtual time for the member-level simulator. One Scheduler per run holds every timer of every simulated process,
 * the network and the clients, ordered by (virtual time, creation order); `run` fires them one at a time and lets
 * the promise jobs each one started settle before the next (one setImmediate: the microtask queue is empty by then,
 * and nothing under simulation touches a real timer or real I/O). Time jumps straight to the next timer: a run of
 * seconds of virtual time takes milliseconds, and it is a pure function of the seed.
 *
 * Each simulated process gets its own ProcessClock (src/raftnode/clock.ts's Clock): killing the process cancels
 * every timer it set, so a crashed member's promises simply never settle again (the process is gone), while its
 * MemoryFileOps (the disk) lives on.
 */
import type { Clock, TimerHandle } from '../../../src/raftnode/clock.js'

interface Timer {
  at: number
  seq: number
  f: () => void
  cancelled: boolean
}

/** Upper bound of timers pending at once: past it something loops and the run stops. */
export const timersPendingCountMax = 1_000_000

const settle = () => new Promise<void>((r) => setImmediate(r))

export class Scheduler {
  /** Virtual milliseconds since the run began. */
  now = 0
  /** Timers fired so far: the run's step count. */
  fired = 0
  private heap: Timer[] = []
  private seq = 0

  at(ms: number, f: () => void): Timer {
    const t: Timer = { at: Math.max(ms, this.now), seq: this.seq++, f, cancelled: false }
    this.push(t)
    if (this.heap.length > timersPendingCountMax) throw new Error(`sim: more than ${timersPendingCountMax} timers`)
    return t
  }

  after(ms: number, f: () => void): Timer {
    return this.at(this.now + Math.max(0, ms), f)
  }

  cancel(t: Timer | undefined): void {
    if (t) t.cancelled = true
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.after(ms, r))
  }

  /** Fires timers in order until virtual time `until` (or `stop()` says so), settling promise jobs after each. */
  async run(until: number, stop?: () => boolean): Promise<void> {
    await settle()
    for (;;) {
      if (stop?.()) return
      const t = this.heap[0]
      if (!t || t.at > until) break
      this.pop()
      if (t.cancelled) continue
      this.now = t.at
      this.fired++
      t.f()
      await settle()
    }
    if (this.now < until) this.now = until
  }

  private push(t: Timer): void {
    const h = this.heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  private pop(): void {
    const h = this.heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && less(h[l]!, h[m]!)) m = l
      if (r < h.length && less(h[r]!, h[m]!)) m = r
      if (m === i) break
      ;[h[i], h[m]] = [h[m]!, h[i]!]
      i = m
    }
  }
}

function less(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

/** One simulated process's clock: its timers die with it. */
export class ProcessClock implements Clock {
  alive = true
  private readonly timers = new Set<Timer>()

  constructor(
    private readonly sched: Scheduler,
    /** Wall-clock epoch of virtual time 0. */
    private readonly wallBase: number,
    /** An exception thrown by one of this process's timers: the process dies of it (as an uncaught exception). */
    private readonly onError: (err: unknown) => void,
  ) {}

  private fire(f: () => void): void {
    try {
      f()
    } catch (err) {
      this.onError(err)
    }
  }

  now(): number {
    return this.sched.now
  }

  wallMs(): number {
    return this.wallBase + Math.floor(this.sched.now)
  }

  setTimeout(f: () => void, ms: number): TimerHandle {
    if (!this.alive) return undefined
    const t = this.sched.after(ms, () => {
      this.timers.delete(t)
      if (this.alive) this.fire(f)
    })
    this.timers.add(t)
    return t
  }

  clearTimeout(h: TimerHandle | undefined): void {
    if (!h) return
    const t = h as Timer
    t.cancelled = true
    this.timers.delete(t)
  }

  setInterval(f: () => void, ms: number): TimerHandle {
    // One handle for the whole series: re-arming replaces the inner timer, clearing cancels the current one.
    const handle = { current: undefined as Timer | undefined, cancelled: false }
    const arm = () => {
      if (!this.alive || handle.cancelled) return
      const t = this.sched.after(ms, () => {
        this.timers.delete(t)
        if (!this.alive || handle.cancelled) return
        arm()
        this.fire(f)
      })
      handle.current = t
      this.timers.add(t)
    }
    arm()
    return handle
  }

  clearInterval(h: TimerHandle | undefined): void {
    if (!h) return
    const handle = h as { current: Timer | undefined; cancelled: boolean }
    handle.cancelled = true
    if (handle.current) this.clearTimeout(handle.current)
  }

  /** The process dies: none of its timers fires again. */
  kill(): void {
    this.alive = false
    for (const t of this.timers) t.cancelled = true
    this.timers.clear()
  }
}
