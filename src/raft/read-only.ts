import type { Message, NodeId } from './types.js'

export interface ReadIndexStatus {
  req: Message
  index: number
  acks: Set<NodeId>
}

/** Request contexts are small byte strings; a latin1 string of them is a cheap, exact map key. */
export function ctxKey(ctx: Uint8Array): string {
  let s = ''
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!)
  return s
}

/**
 * Pending ReadIndex requests on the leader (Raft thesis §6.4). Each request records the commit index when it
 * arrived; it is answered once a quorum acknowledged a heartbeat sent after it. One heartbeat round carries only the
 * newest request's context, and its acknowledgement releases every older request with it: reads are batched.
 */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>()
  private queue: string[] = []

  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.entries[0]!.data)
    if (this.pending.has(key)) return
    this.pending.set(key, { req: m, index, acks: new Set() })
    this.queue.push(key)
  }

  /** Records a heartbeat acknowledgement carrying ctx; returns who has acknowledged that request so far. */
  recvAck(id: NodeId, ctx: Uint8Array): Set<NodeId> {
    const rs = this.pending.get(ctxKey(ctx))
    if (!rs) return new Set()
    rs.acks.add(id)
    return rs.acks
  }

  /** Releases the request with ctx and every request queued before it. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx)
    const i = this.queue.indexOf(key)
    if (i < 0) return []
    const released = this.queue.slice(0, i + 1)
    this.queue = this.queue.slice(i + 1)
    const out: ReadIndexStatus[] = []
    for (const k of released) {
      const rs = this.pending.get(k)
      if (rs) out.push(rs)
      this.pending.delete(k)
    }
    return out
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined
    return this.pending.get(this.queue[this.queue.length - 1]!)!.req.entries[0]!.data
  }

  get size(): number {
    return this.queue.length
  }
}
