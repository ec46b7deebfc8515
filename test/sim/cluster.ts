/**
 * The mechanics of a simulated cluster: nodes, the network between them and simulated time. It moves messages and
 * ticks and reports every failure of the Raft core (an exception where none is allowed) as a violation; what
 * happens when (faults, workload) is decided by the scenario.
 *
 * Time is whole ticks. In one tick every running node ticks once, then messages are delivered in rounds: what a
 * delivery sends with no delay is deliverable in the next round of the same tick, so a request and its answer may
 * both happen within one tick, as on a network much faster than the tick (etcd: 100 ms tick, sub-millisecond LAN).
 */
import { isRaftError } from '../../src/raft/errors.js'
import { type ConfChange, ConfChangeType, type Message, MessageType, type NodeId } from '../../src/raft/types.js'
import { Checker } from './checkers.js'
import { type InFlight, Network } from './network.js'
import { type CrashPoint, crashPoints, type NodeEnv, type NodeOptions, SimNode } from './node.js'
import type { SimRand } from './rng.js'
import type { Trace } from './trace.js'

/** Delivery rounds per tick; messages still deliverable after that wait for the next tick. */
export const deliveryRoundsMax = 16

export interface ClusterStats {
  delivered: number
  lost: number
  unreachable: number
  snapshotsSent: number
  crashes: number
  restarts: number
  confChangesApplied: number
}

export class Cluster implements NodeEnv {
  readonly nodes = new Map<NodeId, SimNode>()
  readonly network: Network
  readonly checker = new Checker()
  readonly trace: Trace
  readonly rng: SimRand
  readonly options: NodeOptions
  readonly stats: ClusterStats = {
    delivered: 0,
    lost: 0,
    unreachable: 0,
    snapshotsSent: 0,
    crashes: 0,
    restarts: 0,
    confChangesApplied: 0,
  }
  tick = 0
  /** Chance that a Ready is cut short by a crash, in percent. */
  crashInReadyPct = 0
  /** Most nodes down at once (crashes beyond it are not injected). */
  downMax = 1
  /** Chance that a running node misses a tick (its clock runs slow), in percent. */
  tickSkipPct = 0

  constructor(rng: SimRand, trace: Trace, options: NodeOptions) {
    this.rng = rng
    this.trace = trace
    this.options = options
    this.network = new Network(rng)
  }

  /** Creates the founding members and starts them (each bootstraps its empty disk). */
  bootstrap(ids: NodeId[]): void {
    for (const id of ids) this.nodes.set(id, new SimNode(id, ids, this))
    for (const id of ids) this.nodes.get(id)!.start()
  }

  /** Creates a node that is about to be added: empty disk, no bootstrap. */
  spawn(id: NodeId): SimNode {
    const n = new SimNode(id, undefined, this)
    this.nodes.set(id, n)
    n.start()
    return n
  }

  setTick(t: number): void {
    this.tick = t
    this.trace.tick = t
    this.checker.tick = t
  }

  // --- NodeEnv ---

  send(m: Message): void {
    this.network.send(m, this.tick)
  }

  crashPointFor(node: SimNode): CrashPoint | undefined {
    if (!this.rng.chance(this.crashInReadyPct) || !this.mayCrash(node)) return undefined
    this.stats.crashes++
    return this.rng.pick(crashPoints)
  }

  onConfChangeApplied(node: SimNode, cc: ConfChange): void {
    this.trace.event('confchange', node.id, cc.type, cc.nodeId)
    this.stats.confChangesApplied++
    if (cc.type !== ConfChangeType.ConfChangeRemoveNode) return
    const target = this.nodes.get(cc.nodeId)
    if (!target) return
    target.removed = true
    if (target === node) node.stopAtTick = Math.min(node.stopAtTick, this.tick + this.options.electionTicks)
  }

  // --- mechanics ---

  mayCrash(node: SimNode): boolean {
    return node.up && !node.removed && this.downNodes().length < this.downMax
  }

  crash(node: SimNode, why: string): void {
    this.stats.crashes++
    node.crash(why)
  }

  restart(node: SimNode): void {
    if (node.up || node.removed) return
    this.stats.restarts++
    this.guard(node, () => node.start())
    this.process(node)
  }

  /**
   * Runs one call into a node's Raft. A RaftError is an operating error and is returned (ErrProposalDropped,
   * ErrStepPeerNotFound); anything else is a broken invariant: a violation, and the node stops.
   */
  guard(node: SimNode, fn: () => void): string | undefined {
    try {
      fn()
      return undefined
    } catch (err) {
      if (isRaftError(err)) return err.code
      this.reportException(node, err)
      return 'exception'
    }
  }

  /** Lets a node work through its Ready batches. */
  process(node: SimNode): void {
    try {
      node.processReady()
    } catch (err) {
      this.reportException(node, err)
    }
  }

  private reportException(node: SimNode, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err))
    const where = (e.stack ?? '')
      .split('\n')
      .slice(1, 4)
      .map((l) => l.trim())
      .join(' < ')
    this.checker.report('exception', node.id, `${e.name}: ${e.message} (${where})`)
    node.crash('exception')
  }

  /** One tick for every running node. */
  tickNodes(): void {
    for (const n of this.nodes.values()) {
      if (!n.up) continue
      if (n.stopAtTick <= this.tick) {
        n.halt()
        continue
      }
      if (this.rng.chance(this.tickSkipPct)) continue
      this.guard(n, () => n.raw!.tick())
      this.process(n)
    }
  }

  /** Delivers messages in rounds until none is deliverable this tick (or the round limit). */
  deliverAll(): void {
    for (let r = 0; r < deliveryRoundsMax; r++) {
      const batch = this.network.take(this.tick)
      if (batch.length === 0) return
      for (const f of batch) this.deliver(f)
    }
  }

  private deliver(f: InFlight): void {
    const m = f.msg
    const to = this.nodes.get(m.to)
    const from = this.nodes.get(m.from)
    const refused = to?.app.removed.has(m.from) || from?.app.removed.has(m.to)
    if (!to?.up || refused || !this.network.connected(m.from, m.to)) {
      this.stats.unreachable++
      this.trace.event('unreachable', m.from, m.to, m.type)
      if (to?.up && to.app.removed.has(m.from) && from?.up && this.network.connected(m.from, m.to)) {
        // etcd's rafthttp answers a removed member with 410 Gone, and that member stops itself ("the member has
        // been permanently removed from the cluster"); otherwise it would campaign forever and drag lagging
        // members, which do not know of its removal yet, to ever higher terms.
        from.removed = true
        from.halt()
        return
      }
      this.reportFailure(m, true)
      return
    }
    if (this.network.lost()) {
      this.stats.lost++
      this.trace.event('lost', m.from, m.to, m.type)
      this.reportFailure(m, false)
      return
    }
    this.stats.delivered++
    this.trace.event(
      'deliver',
      m.from,
      m.to,
      m.type,
      m.term,
      m.logTerm,
      m.index,
      m.entries.length,
      m.commit,
      m.reject,
      m.snapshot?.metadata.index ?? 0,
    )
    this.guard(to, () => to.raw!.step(m))
    this.process(to)
    if (m.type === MessageType.MsgSnap) {
      this.stats.snapshotsSent++
      const sender = this.nodes.get(m.from)
      if (sender?.up) {
        this.guard(sender, () => sender.raw!.reportSnapshot(m.to, true))
        this.process(sender)
      }
    }
  }

  /** The sender's transport notices what a broken connection loses (etcd's rafthttp), not what the wire drops. */
  private reportFailure(m: Message, unreachable: boolean): void {
    const sender = this.nodes.get(m.from)
    if (!sender?.up) return
    if (unreachable) this.guard(sender, () => sender.raw!.reportUnreachable(m.to))
    if (m.type === MessageType.MsgSnap) this.guard(sender, () => sender.raw!.reportSnapshot(m.to, false))
    this.process(sender)
  }

  // --- views ---

  upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up)
  }

  downNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.up && !n.removed)
  }

  /** The running leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined
    let bestTerm = -1
    for (const n of this.nodes.values()) {
      if (!n.isLeader() || n.removed) continue
      const term = n.storage.hardStateNow().term
      if (term > bestTerm) {
        best = n
        bestTerm = term
      }
    }
    return best
  }
}
