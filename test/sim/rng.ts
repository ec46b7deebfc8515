/**
 * The simulator's one source of randomness. Every fault, delay, crash, proposal and election timeout of a run is
 * drawn from a stream seeded by the run's seed (TigerBeetle's VOPR), so `npm run sim -- --seed X` replays a run
 * exactly. Never Math.random, never the clock.
 */
import { type Rand, seededRand } from '../../src/raft/rand.js'

/** Probabilities are given in percent with a resolution of 0.01% (`chance(0.5)` is one in two hundred). */
const percentScale = 100

export class SimRand {
  private readonly r: Rand

  constructor(seed: number) {
    this.r = seededRand(seed)
  }

  /** A uniform integer in [0, n). */
  intn(n: number): number {
    return this.r.intn(n)
  }

  /** A uniform integer in [lo, hi], both inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.r.intn(hi - lo + 1)
  }

  /** True with probability pct/100. */
  chance(pct: number): boolean {
    if (pct <= 0) return false
    if (pct >= 100) return true
    return this.r.intn(100 * percentScale) < pct * percentScale
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('sim: pick from an empty list')
    return xs[this.r.intn(xs.length)]!
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.r.intn(i + 1)
      const t = xs[i]!
      xs[i] = xs[j]!
      xs[j] = t
    }
    return xs
  }

  /** A seed for a child stream (a node's Raft election timer), drawn from this stream. */
  fork(): number {
    return this.r.intn(0x7fffffff) + 1
  }
}
