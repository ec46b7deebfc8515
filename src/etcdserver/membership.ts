import { decode, encode } from 'cbor-x'
import type { MemberInfo } from '../protocol/types.js'
import { type ConfChange, ConfChangeType, type NodeId } from '../raft/index.js'

/** What a conf change entry's context carries: who proposed it (to answer the caller) and the member's peer URLs. */
export interface ConfChangeContext {
  reqId: string
  name: string
  peerURLs: string[]
}

export function encodeConfChangeContext(c: ConfChangeContext): Uint8Array {
  return encode([c.reqId, c.name, c.peerURLs]) as Uint8Array
}

export function decodeConfChangeContext(data: Uint8Array): ConfChangeContext {
  if (data.length === 0) return { reqId: '', name: '', peerURLs: [] }
  try {
    const v = decode(data) as unknown
    if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'string' && Array.isArray(v[2]))
      return { reqId: v[0], name: v[1], peerURLs: v[2].filter((u: unknown) => typeof u === 'string') }
  } catch {}
  return { reqId: '', name: '', peerURLs: [] }
}

/** A member publishing its name and client URLs through the log (etcd's publish / attributes). */
export interface MemberAttributes {
  ID: NodeId
  name: string
  clientURLs: string[]
}

/**
 * The cluster's membership as replicated state (etcd's RaftCluster): members with their URLs and learner flag, and
 * the ids removed for good, which may never come back (etcd's ErrIDRemoved). Changed only by applying entries, so
 * every member holds the same; carried in snapshots.
 */
export class ClusterState {
  readonly members = new Map<NodeId, MemberInfo>()
  readonly removed = new Set<NodeId>()

  constructor(initial: MemberInfo[] = []) {
    for (const m of initial) this.members.set(m.ID, { ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] })
  }

  /** Whether a conf change may apply (Raft's acceptConfChange): a removed id never returns. */
  accepts(cc: ConfChange): boolean {
    return cc.type === ConfChangeType.ConfChangeRemoveNode || !this.removed.has(cc.nodeId)
  }

  /** Applies a committed conf change; returns false when it was refused (a removed id). */
  applyConfChange(cc: ConfChange): boolean {
    if (!this.accepts(cc)) return false
    const ctx = decodeConfChangeContext(cc.context)
    const m = this.members.get(cc.nodeId)
    switch (cc.type) {
      case ConfChangeType.ConfChangeAddNode:
        if (m) m.isLearner = false
        else
          this.members.set(cc.nodeId, {
            ID: cc.nodeId,
            name: ctx.name,
            peerURLs: ctx.peerURLs,
            clientURLs: [],
            isLearner: false,
          })
        break
      case ConfChangeType.ConfChangeAddLearnerNode:
        if (!m)
          this.members.set(cc.nodeId, {
            ID: cc.nodeId,
            name: ctx.name,
            peerURLs: ctx.peerURLs,
            clientURLs: [],
            isLearner: true,
          })
        break
      case ConfChangeType.ConfChangeRemoveNode:
        this.members.delete(cc.nodeId)
        this.removed.add(cc.nodeId)
        break
      case ConfChangeType.ConfChangeUpdateNode:
        if (m && ctx.peerURLs.length > 0) m.peerURLs = ctx.peerURLs
        break
    }
    return true
  }

  applyAttributes(a: MemberAttributes): void {
    const m = this.members.get(a.ID)
    if (!m) return
    m.name = a.name
    m.clientURLs = [...a.clientURLs]
  }

  /** Members sorted by id, as etcd lists them. */
  list(): MemberInfo[] {
    return [...this.members.values()].sort((a, b) => (BigInt(a.ID) < BigInt(b.ID) ? -1 : 1)).map((m) => ({ ...m }))
  }

  peerURLsInUse(urls: string[], except?: NodeId): boolean {
    for (const m of this.members.values()) if (m.ID !== except && m.peerURLs.some((u) => urls.includes(u))) return true
    return false
  }

  toSnapshot(): unknown {
    return [this.list().map((m) => [m.ID, m.name, m.peerURLs, m.clientURLs, m.isLearner]), [...this.removed]]
  }

  static fromSnapshot(v: unknown): ClusterState {
    const s = new ClusterState()
    const [members, removed] = v as [[string, string, string[], string[], boolean][], string[]]
    for (const [ID, name, peerURLs, clientURLs, isLearner] of members)
      s.members.set(ID, { ID, name, peerURLs, clientURLs, isLearner })
    for (const id of removed) s.removed.add(id)
    return s
  }
}
