/**
 * The record of one run: a rolling hash of every event (the determinism fingerprint: the same seed must give the
 * same hash) and, with --verbose, the events as text lines. Events are fed as a kind plus numbers and strings so
 * that the non-verbose path never builds strings.
 */
import { finish, hex32, mix, mixNum, mixString } from './hash.js'

/** Keep at most this many trace lines in memory; older ones are dropped (the hash still covers them). */
export const traceLinesMax = 200_000

export class Trace {
  private h = 0x2545f491
  private count = 0
  readonly lines: string[] = []
  tick = 0
  readonly verbose: boolean

  constructor(verbose: boolean) {
    this.verbose = verbose
  }

  /** Records one event. `fields` are node ids, indexes, terms, message types. */
  event(kind: string, ...fields: (string | number | boolean)[]): void {
    this.count++
    let h = mixString(mix(this.h, this.tick), kind)
    for (const f of fields) {
      if (typeof f === 'number') h = mixNum(h, f)
      else if (typeof f === 'boolean') h = mix(h, f ? 1 : 2)
      else h = mixString(h, f)
    }
    this.h = h
    if (this.verbose) {
      if (this.lines.length >= traceLinesMax) this.lines.shift()
      this.lines.push(`t=${this.tick} ${kind} ${fields.join(' ')}`)
    }
  }

  /** A note for the verbose trace that does not enter the hash. */
  note(text: string): void {
    if (this.verbose) this.lines.push(`t=${this.tick} # ${text}`)
  }

  events(): number {
    return this.count
  }

  hash(): string {
    return hex32(finish(mix(this.h, this.count)))
  }
}
