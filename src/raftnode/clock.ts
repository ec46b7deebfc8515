/**
 * The time a member lives in: a monotonic clock, the wall clock, and timers. Production members use `realClock`
 * (performance.now, Date.now, the runtime's timers); the deterministic simulator (test/sim/member/) gives each
 * simulated process a virtual one, so that a whole member runs on virtual time and a run is a pure function of
 * its seed. Every timer of the Ready loop and of the member goes through here; nothing else may read the clock.
 */

/** An opaque timer handle. */
export type TimerHandle = unknown

export interface Clock {
  /** Monotonic milliseconds (performance.now). */
  now(): number
  /** Wall-clock milliseconds since the epoch (Date.now): token expiry, member ids. */
  wallMs(): number
  setTimeout(f: () => void, ms: number): TimerHandle
  clearTimeout(h: TimerHandle | undefined): void
  setInterval(f: () => void, ms: number): TimerHandle
  clearInterval(h: TimerHandle | undefined): void
}

/** The runtime's clock and timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  setTimeout: (f, ms) => setTimeout(f, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  setInterval: (f, ms) => setInterval(f, ms),
  clearInterval: (h) => clearInterval(h as ReturnType<typeof setInterval>),
}

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((r) => clock.setTimeout(r, ms))
}

/**
 * A broken invariant (TigerBeetle's assert): the member must stop rather than go on with a state it cannot trust.
 * Thrown inside the Ready loop, it stops the member (RaftNode's die → onFatal); it is never answered to a client.
 */
export class AssertionFailed extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`)
    this.name = 'AssertionFailed'
  }
}

export function assert(cond: boolean, message: string | (() => string)): asserts cond {
  if (!cond) throw new AssertionFailed(typeof message === 'string' ? message : message())
}
