import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'

/**
 * The only source of randomness the Raft core sees (randomized election timeouts). It is injected so that a run is
 * a pure function of its seed: the simulator replays a failing seed exactly. Members seed it from crypto.
 */
export interface Rand {
  /** A uniform integer in [0, n). */
  intn(n: number): number
}

/** A seeded generator (xoroshiro128+ from pure-rand). */
export function seededRand(seed: number): Rand {
  const g = xoroshiro128plus(seed | 0)
  return { intn: (n: number) => (n <= 1 ? 0 : uniformInt(g, 0, n - 1)) }
}

/** A generator seeded from the platform's cryptographic randomness (Web Crypto), for real members. */
export function cryptoRand(): Rand {
  const buf = new Uint32Array(1)
  crypto.getRandomValues(buf)
  return seededRand(buf[0]! | 0)
}
