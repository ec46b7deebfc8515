/**
 * Raft core throughput: three nodes in one process on an in-memory network, leader proposing batches of 256-byte
 * entries; every Ready is processed as the contract says (append to MemoryStorage, send, apply, advance). Reports
 * entries committed (applied on every node) per second. Storage is compacted as it goes so memory stays bounded.
 *
 *   node --import tsx bench/raft.ts          or   npm run bench -- raft
 */
import { MemoryStorage, type Message, RawNode, StateType, seededRand } from '../src/raft/index.js'
import type { BenchOptions, BenchResult } from './types.js'

interface BenchNode {
  node: RawNode
  storage: MemoryStorage
  applied: number
}

function cluster(ids: string[]): Map<string, BenchNode> {
  const nodes = new Map<string, BenchNode>()
  for (const id of ids) {
    const storage = new MemoryStorage()
    const node = new RawNode({
      id,
      storage,
      rand: seededRand(Number(id)),
      maxInflightMsgs: 256,
      maxMsgBytes: 1024 * 1024,
    })
    node.bootstrap(ids)
    nodes.set(id, { node, storage, applied: 0 })
  }
  return nodes
}

/** Processes Readies on every node and delivers messages until the cluster is quiet. */
function pump(nodes: Map<string, BenchNode>): void {
  let queue: Message[] = []
  for (;;) {
    for (const bn of nodes.values()) {
      while (bn.node.hasReady()) {
        const rd = bn.node.ready()
        if (rd.snapshot) bn.storage.applySnapshot(rd.snapshot)
        bn.storage.append(rd.entries)
        if (rd.hardState) bn.storage.setHardState(rd.hardState)
        for (const m of rd.messages) queue.push(m)
        const n = rd.committedEntries.length
        if (n > 0) bn.applied = rd.committedEntries[n - 1]!.index
        bn.node.advance(rd)
      }
    }
    if (queue.length === 0) return
    const q = queue
    queue = []
    for (const m of q) nodes.get(m.to)?.node.step(m)
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const ids = ['1', '2', '3']
  const total = opts.quick ? 200_000 : 2_000_000
  const results: BenchResult[] = []
  for (const batch of [100, 1000]) {
    const nodes = cluster(ids)
    const leader = nodes.get('1')!
    pump(nodes) // apply the bootstrap entries first: a node does not campaign with conf changes unapplied
    leader.node.campaign()
    pump(nodes)
    if (leader.node.raft.state !== StateType.StateLeader) throw new Error('bench: node 1 did not become leader')
    const payload = new Uint8Array(256)
    const data: Uint8Array[] = new Array(batch).fill(payload)
    const start = leader.applied
    const t0 = performance.now()
    let proposed = 0
    while (proposed < total) {
      leader.node.proposeBatch(data)
      proposed += batch
      pump(nodes)
      // Keep memory bounded: compact every node's log behind what it applied.
      if (proposed % 100_000 < batch) {
        for (const bn of nodes.values()) {
          const keep = bn.applied - 1000
          if (keep > bn.storage.firstIndex()) bn.storage.compact(keep)
        }
      }
    }
    const secs = (performance.now() - t0) / 1000
    for (const bn of nodes.values())
      if (bn.applied - start < total) throw new Error(`bench: only ${bn.applied - start} of ${total} entries applied`)
    results.push({
      name: `3 nodes in-process, 256 B entries, batches of ${batch}`,
      value: Math.round(total / secs),
      unit: 'entries/s',
      note: `${total.toLocaleString('en-US')} entries committed and applied on all 3 nodes in ${secs.toFixed(2)} s (target >= 500,000)`,
    })
  }
  return results
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run({ quick: process.argv.includes('--quick'), args: [] }))
    console.log(`${r.name}: ${r.value.toLocaleString('en-US')} ${r.unit} (${r.note})`)
}
