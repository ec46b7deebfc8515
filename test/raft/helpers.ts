import {
  type ConfigInput,
  type Entry,
  EntryType,
  emptyBytes,
  type HardState,
  MemoryStorage,
  type Message,
  type NodeId,
  Raft,
  seededRand,
} from '../../src/raft/index.js'

/** A raft node on its own MemoryStorage, for single-node tests that drive `step` and read `msgs` directly. */
export function newTestRaft(
  id: NodeId,
  peers: NodeId[],
  opts: Partial<ConfigInput> & { entries?: Entry[]; hardState?: HardState; learners?: NodeId[]; seed?: number } = {},
): Raft {
  const storage = MemoryStorage.fromState({
    confState: { voters: peers, learners: opts.learners ?? [] },
    entries: opts.entries,
    hardState: opts.hardState,
  })
  return new Raft({
    electionTicks: 10,
    heartbeatTicks: 1,
    maxInflightMsgs: 256,
    ...opts,
    id,
    storage,
    rand: seededRand(opts.seed ?? Number(id)),
  })
}

/** Takes the messages a node has queued. */
export function readMessages(r: Raft): Message[] {
  const msgs = r.msgs
  r.msgs = []
  return msgs
}

/** Entries with the given terms at indexes 1..n. */
export function entsWithTerms(...terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: EntryType.EntryNormal, data: emptyBytes }))
}

export function ent(index: number, term: number, data = ''): Entry {
  return { term, index, type: EntryType.EntryNormal, data: data ? new TextEncoder().encode(data) : emptyBytes }
}

/** Persists a node's unstable entries to its storage and marks committed entries applied; returns the latter. */
export function nextEnts(r: Raft): Entry[] {
  const storage = r.raftLog.storage as MemoryStorage
  const unstable = r.raftLog.unstableEntries().slice()
  storage.append(unstable)
  if (unstable.length > 0) r.raftLog.stableTo(unstable[unstable.length - 1]!.index, unstable[unstable.length - 1]!.term)
  const ents = r.raftLog.nextCommittedEnts()
  if (ents.length > 0) r.raftLog.appliedTo(ents[ents.length - 1]!.index)
  return ents
}

/** Ticks a node until it times out (the randomized election timeout is < 2 × electionTicks). */
export function tickUntilElection(r: Raft): void {
  for (let i = 0; i < 2 * r.config.electionTicks; i++) r.tick()
}

export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/**
 * Makes r leader (it must be a follower or candidate), broadcasts its no-op and has every follower accept it, as
 * etcd's paper tests do with commitNoopEntry. Leaves no messages queued.
 */
export function becomeLeaderAndCommitNoop(r: Raft): void {
  if (r.state !== 1) r.becomeCandidate()
  r.becomeLeader()
  r.bcastAppend()
  for (const m of readMessages(r)) {
    if (m.type !== 3) continue
    r.step({ ...m, type: 4, from: m.to, to: m.from, index: m.index + m.entries.length, entries: [] })
  }
  nextEnts(r)
  readMessages(r)
}
