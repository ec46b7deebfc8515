import {
  type ConfigInput,
  type Entry,
  EntryType,
  MemoryStorage,
  type Message,
  type MessageType,
  type NodeId,
  RawNode,
  type ReadState,
  type Ready,
  StateType,
  seededRand,
} from '../../src/raft/index.js'

/**
 * A tiny in-memory cluster for multi-node Raft tests (etcd-io/raft's `network`): every node is a RawNode plus its
 * MemoryStorage, Ready batches are processed exactly as the contract says, and messages are delivered synchronously
 * until the cluster is quiet. Links can be dropped, cut, and nodes isolated.
 */
export interface TestNode {
  id: NodeId
  node: RawNode
  storage: MemoryStorage
  applied: Entry[]
  readStates: ReadState[]
}

export class Network {
  readonly nodes = new Map<NodeId, TestNode>()
  private readonly dropped = new Map<string, number>()
  private readonly ignored = new Set<MessageType>()
  /** Messages delivered, by type, for assertions on traffic. */
  readonly delivered: Message[] = []
  /** Messages dropped or ignored (recorded with recordTraffic too). */
  readonly lost: Message[] = []
  recordTraffic = false
  private seed: number
  /** Decides probabilistic drops (drop(from, to, perc < 1)), seeded so that a run replays. */
  private readonly dropRand: ReturnType<typeof seededRand>

  constructor(
    ids: NodeId[],
    private readonly opts: Partial<ConfigInput> = {},
    seed = 1,
  ) {
    this.seed = seed
    this.dropRand = seededRand(seed ^ 0x5eed5eed)
    for (const id of ids) this.add(id, true, ids)
  }

  /** Adds a node with a fresh storage; bootstrapped with `peers` when given. */
  add(id: NodeId, bootstrap = false, peers: NodeId[] = []): TestNode {
    const storage = new MemoryStorage()
    const node = new RawNode({ ...this.opts, id, storage, rand: seededRand(this.seed++) })
    if (bootstrap) node.bootstrap(peers)
    const tn: TestNode = { id, node, storage, applied: [], readStates: [] }
    this.nodes.set(id, tn)
    this.flushNode(tn)
    return tn
  }

  /** Restarts a node from its storage, as after a crash: everything not persisted is gone. */
  restart(id: NodeId, extra: Partial<ConfigInput> = {}): TestNode {
    const old = this.nodes.get(id)!
    const snapIndex = old.storage.snapshot().metadata.index
    const node = new RawNode({
      ...this.opts,
      ...extra,
      id,
      storage: old.storage,
      rand: seededRand(this.seed++),
      applied: snapIndex,
    })
    const tn: TestNode = {
      id,
      node,
      storage: old.storage,
      applied: old.applied.filter((e) => e.index <= snapIndex),
      readStates: [],
    }
    this.nodes.set(id, tn)
    return tn
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id)
    if (!n) throw new Error(`no node ${id}`)
    return n
  }

  /** Drops messages from -> to with probability perc (1 = always). */
  drop(from: NodeId, to: NodeId, perc = 1): void {
    this.dropped.set(`${from}>${to}`, perc)
  }

  cut(a: NodeId, b: NodeId): void {
    this.drop(a, b)
    this.drop(b, a)
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other)
  }

  ignore(t: MessageType): void {
    this.ignored.add(t)
  }

  recover(): void {
    this.dropped.clear()
    this.ignored.clear()
  }

  private outbox: Message[] = []

  /** Processes one node's Ready batches until it has none, collecting its messages into the outbox. */
  flushNode(tn: TestNode): void {
    for (let guard = 0; tn.node.hasReady(); guard++) {
      if (guard > 10_000) throw new Error('ready loop did not settle')
      const rd: Ready = tn.node.ready()
      if (rd.snapshot) tn.storage.applySnapshot(rd.snapshot)
      tn.storage.append(rd.entries)
      if (rd.hardState) tn.storage.setHardState(rd.hardState)
      for (const m of rd.messages) this.outbox.push(m)
      if (rd.snapshot) tn.applied = tn.applied.filter((e) => e.index <= rd.snapshot!.metadata.index)
      for (const e of rd.committedEntries) tn.applied.push(e)
      for (const rs of rd.readStates) tn.readStates.push(rs)
      tn.node.advance(rd)
    }
  }

  /** Delivers msgs and everything they cause until the cluster is quiet (bounded). */
  send(...msgs: Message[]): void {
    for (const m of msgs) this.outbox.push(m)
    for (const tn of this.nodes.values()) this.flushNode(tn)
    let rounds = 0
    while (this.outbox.length > 0) {
      if (++rounds > 100_000) throw new Error('network did not settle')
      const m = this.outbox.shift()!
      if (this.filtered(m)) {
        if (this.recordTraffic) this.lost.push(m)
        continue
      }
      const to = this.nodes.get(m.to)
      if (!to) continue
      if (this.recordTraffic) this.delivered.push(m)
      try {
        to.node.step(m)
      } catch (err) {
        if (!(err instanceof Error && 'code' in err && err.code === 'ErrProposalDropped')) throw err
      }
      this.flushNode(to)
    }
  }

  private filtered(m: Message): boolean {
    if (this.ignored.has(m.type)) return true
    const p = this.dropped.get(`${m.from}>${m.to}`)
    if (p === undefined || p <= 0) return false
    return p >= 1 || this.dropRand.intn(1_000_000) < p * 1_000_000
  }

  /** Ticks every node n times, delivering messages after each tick. */
  tick(n = 1, only?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) if (!only || only.includes(tn.id)) tn.node.tick()
      this.send()
    }
  }

  campaign(id: NodeId): void {
    this.get(id).node.campaign()
    this.send()
  }

  propose(id: NodeId, data: string | Uint8Array): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
    this.get(id).node.propose(bytes)
    this.send()
  }

  leader(): NodeId | undefined {
    for (const tn of this.nodes.values()) if (tn.node.raft.state === StateType.StateLeader) return tn.id
    return undefined
  }

  state(id: NodeId): StateType {
    return this.get(id).node.raft.state
  }

  /** The application data of the normal, non-empty entries a node applied, as strings. */
  appliedData(id: NodeId): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.EntryNormal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data))
  }
}
