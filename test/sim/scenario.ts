/**
 * One simulated run, VOPR style: the seed picks the cluster (3 or 5 voters, timings, limits) and how hostile the
 * world is (loss, duplication, delay, reordering, partitions, crashes, membership churn, leader transfers); a
 * safety phase runs the workload under those faults for `steps` ticks with the checkers watching every event; then
 * a liveness phase heals everything, restarts every crashed node, and requires that a leader is elected and that a
 * fresh proposal is applied by every voter within a bounded number of ticks.
 */
import { ConfChangeType, type NodeId } from '../../src/raft/types.js'
import { proposalData } from './app.js'
import type { Violation } from './checkers.js'
import { Cluster, type ClusterStats } from './cluster.js'
import { type NetworkFaults, noFaults } from './network.js'
import type { InjectedBug, NodeOptions, SimNode } from './node.js'
import { SimRand } from './rng.js'
import { Trace } from './trace.js'

export interface SimOptions {
  seed: number
  /** Ticks of the safety phase. */
  steps: number
  verbose?: boolean
  bug?: InjectedBug
}

export interface SimResult {
  seed: number
  /** Ticks run in both phases. */
  steps: number
  violations: Violation[]
  /** Fingerprint of every event: the same seed must give the same hash. */
  traceHash: string
  trace: string[]
  /** Ticks the liveness phase took to commit its fresh proposal everywhere (-1 when it did not run or failed). */
  livenessTicks: number
  /** What the seed chose, for the report. */
  setup: string
  stats: ClusterStats & { applied: number; leaderTerms: number; reads: number; proposals: number }
}

/** Default ticks of the safety phase. */
export const stepsDefault = 300

/** Highest node id ever used: the founding 3 or 5 plus those added mid-run. */
export const nodeIdMax = 9

/** Ticks the healed cluster gets to elect a leader and commit a fresh proposal everywhere: ten election
 * timeouts, plus slack for a node that restarts far behind and needs a snapshot and several rounds of MsgApp. */
export function livenessTicksMax(electionTicks: number): number {
  return 10 * electionTicks + 50
}

interface World {
  faults: NetworkFaults
  /** Per-tick chances, in percent. */
  crashPct: number
  restartPct: number
  partitionPct: number
  isolatePct: number
  healPct: number
  proposePct: number
  readPct: number
  confChangePct: number
  transferPct: number
  /** Chance per tick that one directed link goes down. */
  cutPct: number
  /** Chance per tick that the application forces an election on a random node (RawNode.campaign). */
  campaignPct: number
}

export function runSeed(opts: SimOptions): SimResult {
  const rng = new SimRand(opts.seed)
  const trace = new Trace(opts.verbose ?? false)
  const voters = rng.chance(50) ? 3 : 5
  // Swarm testing: a quarter of the seeds run a storm of crashes, partitions, elections and membership changes,
  // where rare interleavings (the Raft paper's Figure 8: a new leader committing an old term's entry by counting)
  // become likely; the rest run a steadier world where long histories build up.
  const chaos = rng.chance(25)
  const per = (steady: number[], storm: number[]): number => rng.pick(chaos ? storm : steady)
  const nodeOptions: NodeOptions = {
    electionTicks: 10,
    heartbeatTicks: rng.pick([1, 1, 2, 3]),
    // 1 byte means one entry per MsgApp: every batch is split, so followers see prefixes of what the leader has.
    maxMsgBytes: rng.pick([1, 64, 256, 4096, 1 << 20]),
    maxInflightMsgs: rng.pick([1, 4, 256]),
    snapshotEntriesMin: rng.range(3, 30),
    snapshotPct: rng.pick([0, 10, 50]),
    compactKeepEntries: rng.range(0, 10),
    // etcd's defaults are on; some seeds turn them off to run the plain elections of the Raft paper.
    checkQuorum: rng.chance(75),
    preVote: rng.chance(75),
    bug: opts.bug,
  }
  const world: World = {
    faults: {
      dropPct: rng.pick([0, 1, 5, 10, 20]),
      duplicatePct: rng.pick([0, 1, 5]),
      delayPct: rng.pick([0, 5, 20]),
      // Mostly short delays; some seeds hold messages for up to two election timeouts, so that stale votes and
      // appends of long-gone terms arrive.
      delayTicksMax: rng.chance(75) ? rng.range(1, 5) : rng.range(6, 20),
      reorder: rng.chance(50),
    },
    crashPct: per([0, 0.5, 1, 2], [3, 5, 8]),
    restartPct: per([5, 10, 20], [10, 20, 40]),
    partitionPct: per([0, 0.5, 1, 2], [3, 5]),
    isolatePct: per([0, 0.5, 1, 2], [3, 5]),
    healPct: per([2, 5, 10], [10, 20]),
    proposePct: rng.pick([20, 50, 80]),
    readPct: rng.pick([0, 10, 30]),
    confChangePct: per([0, 1, 2, 4], [4, 8]),
    transferPct: per([0, 0.5, 1, 2], [2, 5]),
    cutPct: per([0, 0, 0.5, 2], [1, 3]),
    campaignPct: per([0, 0, 0.5, 2], [2, 5]),
  }
  const c = new Cluster(rng, trace, nodeOptions)
  c.crashInReadyPct = per([0, 0.1, 0.5], [1, 2])
  // Usually a minority may be down at once; some seeds crash any number, up to all of them (a power cut).
  c.downMax = rng.chance(chaos ? 50 : 25) ? nodeIdMax : (voters - 1) >> 1
  c.tickSkipPct = rng.pick([0, 2, 10])
  c.network.faults = { ...world.faults }
  const f = world.faults
  const setup =
    `${chaos ? 'storm' : 'steady'} voters=${voters} heartbeat=${nodeOptions.heartbeatTicks} checkQuorum=${nodeOptions.checkQuorum} ` +
    `preVote=${nodeOptions.preVote} maxMsgBytes=${nodeOptions.maxMsgBytes} ` +
    `inflight=${nodeOptions.maxInflightMsgs} snap=${nodeOptions.snapshotEntriesMin}/${nodeOptions.snapshotPct}% ` +
    `keep=${nodeOptions.compactKeepEntries} drop=${f.dropPct}% dup=${f.duplicatePct}% delay=${f.delayPct}%x${f.delayTicksMax} ` +
    `reorder=${f.reorder} crash=${world.crashPct}%+${c.crashInReadyPct}%ready partition=${world.partitionPct}% ` +
    `isolate=${world.isolatePct}% cut=${world.cutPct}% down<=${c.downMax} confchange=${world.confChangePct}% ` +
    `transfer=${world.transferPct}% campaign=${world.campaignPct}%`
  trace.note(`seed ${opts.seed}: ${setup}`)

  const ids: NodeId[] = []
  for (let i = 1; i <= voters; i++) ids.push(String(i))
  c.bootstrap(ids)

  const w = new Workload(c, rng, opts.seed)
  let tick = 0
  let livenessTicks = -1
  // Safety phase.
  for (let s = 0; s < opts.steps && c.checker.ok(); s++) {
    c.setTick(++tick)
    injectFaults(c, rng, world)
    w.step(world)
    c.tickNodes()
    c.deliverAll()
  }

  // Liveness phase.
  if (c.checker.ok()) {
    trace.event('heal')
    c.network.heal()
    // The 'never-heal' bug keeps losing every message, to prove the liveness check fires.
    c.network.faults = opts.bug === 'never-heal' ? { ...noFaults, dropPct: 100 } : { ...noFaults }
    c.crashInReadyPct = 0
    c.tickSkipPct = 0
    c.setTick(++tick)
    for (const n of c.downNodes()) c.restart(n)
    const value = `live-${opts.seed}`
    const appliedBefore = c.checker.maxApplied
    const limit = livenessTicksMax(nodeOptions.electionTicks)
    let proposedAt = -Infinity
    let done = false
    const healedAt = tick
    for (let s = 0; s < limit && c.checker.ok() && !done; s++) {
      c.setTick(++tick)
      c.tickNodes()
      c.deliverAll()
      const lead = c.leader()
      if (!lead) continue
      if (tick - proposedAt >= nodeOptions.electionTicks) {
        proposedAt = tick
        c.guard(lead, () => lead.raw!.propose(proposalData('live', value)))
        c.process(lead)
      }
      done = appliedEverywhere(c, lead, value)
    }
    if (c.checker.ok() && !done)
      c.checker.report(
        'liveness',
        '',
        `no fresh proposal committed on every voter within ${limit} ticks after healing: ${describe(c)}`,
      )
    if (c.checker.ok() && done) {
      livenessTicks = tick - healedAt
      // Nothing applied before the healing may have been lost: every voter holds all of it, identically.
      const lead = c.leader()!
      for (const id of lead.raw!.confState().voters) {
        const n = c.nodes.get(id)!
        // A removed member can come back into the configuration through a duplicated or late proposal (a MsgProp
        // the network delivered twice): etcd's server refuses such a change at apply (ErrIDRemoved), but here conf
        // changes apply inside advance() with no veto; the member itself has stopped for good.
        if (n.removed) continue
        const rec = c.checker.committedAt(n.app.applied)
        if (n.app.applied < appliedBefore || !rec || rec.chain !== n.app.chain)
          c.checker.report(
            'state-machine-safety',
            id,
            `after healing, applied ${n.app.applied} does not extend the committed history (applied anywhere: ${appliedBefore})`,
          )
      }
    }
  }

  return {
    seed: opts.seed,
    steps: tick,
    violations: c.checker.violations,
    traceHash: trace.hash(),
    trace: trace.lines,
    livenessTicks,
    setup,
    stats: {
      ...c.stats,
      applied: c.checker.maxApplied,
      leaderTerms: c.checker.leaderTerms,
      reads: w.reads,
      proposals: w.proposals,
    },
  }
}

function appliedEverywhere(c: Cluster, lead: SimNode, value: string): boolean {
  for (const id of lead.raw!.confState().voters) {
    const n = c.nodes.get(id)
    if (!n || n.removed) continue
    if (!n.up || n.app.kv.get('live') !== value) return false
  }
  return true
}

/** The state of every node, for a liveness report. */
function describe(c: Cluster): string {
  const parts: string[] = []
  for (const n of c.nodes.values()) {
    const hs = n.storage.hardStateNow()
    const role = !n.up
      ? n.removed
        ? 'removed'
        : 'down'
      : ['follower', 'candidate', 'leader', 'precandidate'][n.soft.raftState]
    const cs = n.raw ? n.raw.confState() : undefined
    parts.push(
      `${n.id}:${role} term=${hs.term} vote=${hs.vote || '-'} commit=${hs.commit} applied=${n.app.applied} ` +
        `last=${n.storage.lastIndex()} lead=${n.soft.lead || '-'}` +
        (cs ? ` voters=[${cs.voters.join(',')}] learners=[${cs.learners.join(',')}]` : ''),
    )
  }
  return parts.join('; ')
}

function injectFaults(c: Cluster, rng: SimRand, world: World): void {
  const t = c.trace
  if (rng.chance(world.crashPct)) {
    const candidates = c.upNodes().filter((n) => c.mayCrash(n))
    if (candidates.length > 0) c.crash(rng.pick(candidates), 'tick')
  }
  for (const n of c.downNodes()) if (rng.chance(world.restartPct)) c.restart(n)
  if (rng.chance(world.partitionPct)) {
    const ids = rng.shuffle([...c.nodes.keys()])
    const cut = rng.range(1, ids.length - 1)
    c.network.partition([ids.slice(0, cut), ids.slice(cut)])
    t.event('partition', ids.slice(0, cut).join(','), ids.slice(cut).join(','))
  } else if (rng.chance(world.isolatePct)) {
    const id = rng.pick([...c.nodes.keys()])
    c.network.isolate(id)
    t.event('isolate', id)
  } else if (rng.chance(world.cutPct)) {
    const ids = [...c.nodes.keys()]
    const from = rng.pick(ids)
    const to = rng.pick(ids)
    if (from !== to) {
      c.network.cutOneWay(from, to)
      t.event('cut', from, to)
    }
  } else if (c.network.partitioned() && rng.chance(world.healPct)) {
    c.network.heal()
    t.event('heal')
  }
}

/** The clients and the operator: proposals, reads, membership changes, leader transfers. */
class Workload {
  proposals = 0
  reads = 0
  private readonly c: Cluster
  private readonly rng: SimRand
  private readonly seed: number

  constructor(c: Cluster, rng: SimRand, seed: number) {
    this.c = c
    this.rng = rng
    this.seed = seed
  }

  step(world: World): void {
    const { c, rng } = this
    // Any call may crash a node (a crash inside Ready processing), so the running nodes are looked up each time.
    if (rng.chance(world.proposePct) && c.upNodes().length > 0) {
      // Clients talk to any node; followers forward to the leader.
      const n = rng.pick(c.upNodes())
      const count = rng.chance(20) ? rng.range(2, 5) : 1
      const data: Uint8Array[] = []
      for (let i = 0; i < count; i++) data.push(proposalData(`k${rng.intn(8)}`, `${this.seed}.${++this.proposals}`))
      const err = c.guard(n, () => (count === 1 ? n.raw!.propose(data[0]!) : n.raw!.proposeBatch(data)))
      c.trace.event('propose', n.id, count, err ?? 'ok')
      c.process(n)
    }
    if (rng.chance(world.readPct) && c.upNodes().length > 0) {
      const n = rng.pick(c.upNodes())
      const ctx = `r${++this.reads}`
      c.checker.onReadRequest(n.id, ctx)
      const err = c.guard(n, () => n.raw!.readIndex(new TextEncoder().encode(ctx)))
      c.trace.event('read', n.id, ctx, err ?? 'ok')
      c.process(n)
    }
    if (rng.chance(world.confChangePct)) this.changeMembership()
    if (rng.chance(world.campaignPct) && c.upNodes().length > 0) {
      const n = rng.pick(c.upNodes())
      const err = c.guard(n, () => n.raw!.campaign())
      c.trace.event('campaign', n.id, err ?? 'ok')
      c.process(n)
    }
    if (rng.chance(world.transferPct)) {
      const lead = c.leader()
      if (lead) {
        const voters = lead.raw!.confState().voters
        const to = rng.pick(voters)
        // Asked of the leader or of any node (a follower forwards MsgTransferLeader to its leader).
        const n = rng.chance(50) ? lead : rng.pick(c.upNodes())
        const err = c.guard(n, () => n.raw!.transferLeader(to))
        c.trace.event('transfer', n.id, to, err ?? 'ok')
        c.process(n)
      }
    }
  }

  /** One membership change, one node at a time: add a learner, promote it, add a voter, remove a node. */
  private changeMembership(): void {
    const { c, rng } = this
    const lead = c.leader()
    if (!lead) return
    const cs = lead.raw!.confState()
    const members = new Set([...cs.voters, ...cs.learners])
    const ops: (() => { type: ConfChangeType; nodeId: NodeId } | undefined)[] = [
      () => this.newMember(members, ConfChangeType.ConfChangeAddLearnerNode),
      () => this.newMember(members, ConfChangeType.ConfChangeAddNode),
      () =>
        cs.learners.length > 0 ? { type: ConfChangeType.ConfChangeAddNode, nodeId: rng.pick(cs.learners) } : undefined,
      () =>
        cs.voters.length > 3 ? { type: ConfChangeType.ConfChangeRemoveNode, nodeId: rng.pick(cs.voters) } : undefined,
      () =>
        cs.learners.length > 0
          ? { type: ConfChangeType.ConfChangeRemoveNode, nodeId: rng.pick(cs.learners) }
          : undefined,
    ]
    const cc = rng.pick(ops)()
    if (!cc) return
    const n = rng.chance(70) ? lead : rng.pick(c.upNodes())
    const err = c.guard(n, () =>
      n.raw!.proposeConfChange({ type: cc.type, nodeId: cc.nodeId, context: new Uint8Array(0) }),
    )
    c.trace.event('propose-confchange', n.id, cc.type, cc.nodeId, err ?? 'ok')
    c.process(n)
  }

  /** A node to add: one spawned earlier whose addition never committed, or a brand-new one. */
  private newMember(members: Set<NodeId>, type: ConfChangeType): { type: ConfChangeType; nodeId: NodeId } | undefined {
    const { c } = this
    for (const n of c.nodes.values()) if (!n.removed && !members.has(n.id)) return { type, nodeId: n.id }
    if (c.nodes.size >= nodeIdMax) return undefined
    const id = String(c.nodes.size + 1)
    c.spawn(id)
    return { type, nodeId: id }
  }
}
