/**
 * Failed-authentication limits: per user name and per client address, each a bounded map of failure counters with
 * a fixed window. Once a key has `failuresMax` failures within `windowMs`, further attempts for it are refused
 * without checking the password (so a brute force cannot succeed even with the right guess) until the window ends.
 */

/** Named limits for authenticate; the defaults allow a few typos, not a dictionary. */
export interface FailureLimits {
  /** Failures allowed per key within one window. */
  failuresMax: number
  /** The window, in ms, counted from the first failure. */
  windowMs: number
  /** Keys tracked at most; past it the oldest entry is dropped (the other map still limits the caller). */
  entriesMax: number
}

export const authFailureLimitsDefault: FailureLimits = { failuresMax: 5, windowMs: 60_000, entriesMax: 10_000 }

interface Entry {
  failures: number
  sinceMs: number
}

/** One bounded map of failure counters. `now` is injected (ms, monotonic). */
export class FailureLimiter {
  private readonly entries = new Map<string, Entry>()
  constructor(
    readonly limits: FailureLimits,
    private readonly now: () => number,
  ) {}

  /** Whether attempts for `key` are refused right now. */
  blocked(key: string): boolean {
    const e = this.entries.get(key)
    if (!e) return false
    if (this.now() - e.sinceMs >= this.limits.windowMs) {
      this.entries.delete(key)
      return false
    }
    return e.failures >= this.limits.failuresMax
  }

  /** Records a failure for `key`. */
  fail(key: string): void {
    const now = this.now()
    let e = this.entries.get(key)
    if (e && now - e.sinceMs >= this.limits.windowMs) {
      this.entries.delete(key)
      e = undefined
    }
    if (!e) {
      if (this.entries.size >= this.limits.entriesMax) this.evict(now)
      e = { failures: 0, sinceMs: now }
      this.entries.set(key, e)
    }
    e.failures++
  }

  /** A success clears the key's failures. */
  succeed(key: string): void {
    this.entries.delete(key)
  }

  get size(): number {
    return this.entries.size
  }

  private evict(now: number): void {
    for (const [k, e] of this.entries) if (now - e.sinceMs >= this.limits.windowMs) this.entries.delete(k)
    // Still full: drop the oldest (Map iteration is insertion order).
    while (this.entries.size >= this.limits.entriesMax) {
      const first = this.entries.keys().next()
      if (first.done) break
      this.entries.delete(first.value)
    }
  }
}
