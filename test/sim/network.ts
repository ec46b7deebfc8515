/**
 * The simulated network between nodes, in the style of etcd-io/raft's in-memory `network` (drop, cut, isolate) and
 * TigerBeetle's VOPR packet simulator: every message may be dropped, duplicated, delayed by whole ticks and
 * reordered, all decided by the run's seed; partitions split the nodes into groups that cannot talk to each other.
 *
 * Delay and duplication are decided when a message is sent; loss and partitions when it would be delivered, so that
 * the sender's transport can report the failure (etcd's rafthttp calls ReportUnreachable / ReportSnapshot).
 */
import type { Message, NodeId } from '../../src/raft/types.js'
import type { SimRand } from './rng.js'

export interface NetworkFaults {
  /** Chance that a message is lost on the way, in percent. */
  dropPct: number
  /** Chance that a message is delivered twice, in percent. */
  duplicatePct: number
  /** Chance that a message is held back for 1..delayTicksMax ticks, in percent. */
  delayPct: number
  delayTicksMax: number
  /** When true, the messages deliverable in one round arrive in a random order instead of send order. */
  reorder: boolean
}

export const noFaults: Readonly<NetworkFaults> = Object.freeze({
  dropPct: 0,
  duplicatePct: 0,
  delayPct: 0,
  delayTicksMax: 0,
  reorder: false,
})

export interface InFlight {
  msg: Message
  /** The tick at or after which the message may be delivered. */
  deliverAtTick: number
  /** Send order, for FIFO delivery and a stable trace. */
  seq: number
}

/** Upper bound of messages in flight; past it the network is clearly broken (a message storm) and the run stops. */
export const inFlightMax = 100_000

export class Network {
  faults: NetworkFaults = { ...noFaults }
  private queue: InFlight[] = []
  private seq = 0
  private readonly group = new Map<NodeId, number>()
  /** Directed links that are down ("from>to"): asymmetric faults, where a node hears but is not heard. */
  private readonly cuts = new Set<string>()
  private readonly rng: SimRand

  constructor(rng: SimRand) {
    this.rng = rng
  }

  /** Puts a copy of m on the wire (twice when duplicated). Copies stand for the bytes on the wire: the sender's
   * objects are never shared with the receiver. */
  send(m: Message, nowTick: number): void {
    const copies = this.rng.chance(this.faults.duplicatePct) ? 2 : 1
    for (let c = 0; c < copies; c++) {
      const delay = this.rng.chance(this.faults.delayPct)
        ? this.rng.range(1, Math.max(1, this.faults.delayTicksMax))
        : 0
      this.queue.push({ msg: copyMessage(m), deliverAtTick: nowTick + delay, seq: this.seq++ })
    }
    if (this.queue.length > inFlightMax) throw new Error(`sim: more than ${inFlightMax} messages in flight`)
  }

  /** Removes and returns the messages deliverable at nowTick, in delivery order. */
  take(nowTick: number): InFlight[] {
    const ready: InFlight[] = []
    const rest: InFlight[] = []
    for (const f of this.queue) (f.deliverAtTick <= nowTick ? ready : rest).push(f)
    this.queue = rest
    if (this.faults.reorder) this.rng.shuffle(ready)
    return ready
  }

  /** Whether a message that reached the wire is lost anyway (random loss, decided at delivery). */
  lost(): boolean {
    return this.rng.chance(this.faults.dropPct)
  }

  /** Whether a message from a can reach b now. */
  connected(a: NodeId, b: NodeId): boolean {
    if (this.cuts.size > 0 && this.cuts.has(`${a}>${b}`)) return false
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0)
  }

  /** Cuts the link from a to b only (b still reaches a). */
  cutOneWay(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}>${b}`)
  }

  /** Splits the nodes into groups; nodes not named stay in group 0 with the first group. */
  partition(groups: NodeId[][]): void {
    this.group.clear()
    groups.forEach((g, i) => {
      for (const id of g) this.group.set(id, i)
    })
  }

  isolate(id: NodeId): void {
    this.group.clear()
    this.group.set(id, 1)
  }

  heal(): void {
    this.group.clear()
    this.cuts.clear()
  }

  partitioned(): boolean {
    return this.group.size > 0 || this.cuts.size > 0
  }

  inFlight(): number {
    return this.queue.length
  }
}

function copyMessage(m: Message): Message {
  const c: Message = { ...m, entries: m.entries.slice() }
  if (m.snapshot) c.snapshot = { data: m.snapshot.data, metadata: { ...m.snapshot.metadata } }
  return c
}
