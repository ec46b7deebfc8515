/**
 * A/B of the replica's CPU per live change, for a noisy machine: loads the replica (engine, client watch stream,
 * ClientSource, memory storage, api subscriber) from one or more source trees into ONE process and alternates them in
 * rounds, so both see the same load. No member and no network: a fake WebSocket opens at once, answers creates, and is
 * handed synthetic frames (one PUT of a 256 B value, every tenth a DELETE), as `npm run bench -- replica --parts
 * apply` does through a real member's sockets. Prints per tree the median CPU per change over the rounds after the
 * first three (JIT warm-up), and every round.
 *
 *   git archive <old-commit> | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/node_modules
 *   node --import tsx bench/replica-apply-ab.ts /tmp/old $PWD      # REPLICAS=50 PER=400 ROUNDS=15
 *
 * EVENTS=k: k changes per frame (k consecutive revisions of different keys, as a coalescing window delivers them,
 * issue 13); PER counts changes either way.
 */
const roots = process.argv.slice(2)
if (roots.length === 0) {
  console.error('usage: node --import tsx bench/replica-apply-ab.ts <source tree> [<source tree> ...]')
  process.exit(2)
}
const b64 = (s: string) => Buffer.from(s).toString('base64')
const value = b64('v'.repeat(256))

interface Socket {
  ws: { onmessage: ((ev: { data: string }) => void) | null }
  id: string
}

async function setup(root: string, replicas: number) {
  const { ReplicaEngine } = await import(`${root}/src/replica/replica.ts`)
  const { MemoryReplicaStorage } = await import(`${root}/src/replica/storage.ts`)
  const { WatchStream } = await import(`${root}/src/client/watch-stream.ts`)
  const { ClientSource } = await import(`${root}/src/replica/source.ts`)
  const { Replica } = await import(`${root}/src/replica/api.ts`)
  const { followedSpan } = await import(`${root}/src/replica/keys.ts`)
  const sockets: Socket[] = []
  class FakeWebSocket {
    readyState = 1
    onopen: ((ev: unknown) => void) | null = null
    onmessage: ((ev: { data: string }) => void) | null = null
    onclose: ((ev: unknown) => void) | null = null
    onerror: ((ev: unknown) => void) | null = null
    private readonly rec: Socket = { ws: this, id: '' }
    constructor() {
      sockets.push(this.rec)
      setTimeout(() => this.onopen?.({}), 0)
    }
    send(d: string) {
      const m = JSON.parse(d)
      if (!m.create_request) return
      this.rec.id = String(m.create_request.watch_id)
      const created = { result: { header: { revision: '1000000' }, watch_id: this.rec.id, created: true } }
      setTimeout(() => this.onmessage?.({ data: JSON.stringify(created) }), 0)
    }
    close() {}
  }
  const first = { key: b64('bench/key/00000'), value: b64('x'), create_revision: '2', mod_revision: '2', version: '1' }
  const transport = {
    current: () => 'http://127.0.0.1:1',
    authToken: async () => undefined,
    dialTimeoutMs: 5000,
    hasCredentials: false,
    rotate() {},
    backoffMs: () => 100,
    invalidateToken() {},
    call: async () => ({ header: { revision: '1000000' }, kvs: [first], count: '1' }),
  }
  const span = followedSpan({ prefix: 'bench/key/000' })
  let seen = 0
  for (let i = 0; i < replicas; i++) {
    const stream = new WatchStream(transport, FakeWebSocket)
    const client = { transport, sharedWatchStream: () => stream }
    const source = new ClientSource(client)
    const engine = new ReplicaEngine({ storage: new MemoryReplicaStorage(), ranges: [span], source })
    await engine.start()
    await engine.ready(5000)
    new Replica(engine, { consistency: 'local' }).watch(
      { prefix: 'bench/key/000' },
      (c: { events: unknown[] }) => (seen += c.events.length),
    )
  }
  return { sockets, seen: () => seen }
}

const header = (rev: number, id: string) =>
  `{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"${rev}","raft_term":"2"},"watch_id":"${id}",`
const event = (rev: number, key: string, version: number, del: boolean) =>
  del
    ? `{"type":"DELETE","kv":{"key":"${key}","mod_revision":"${rev}"}}`
    : `{"kv":{"key":"${key}","create_revision":"2","mod_revision":"${rev}","version":"${version}","value":"${value}"}}`
const EVENTS = Number(process.env.EVENTS ?? 1)

const replicas = Number(process.env.REPLICAS ?? 50)
const per = Number(process.env.PER ?? 400)
const sets = []
for (const r of roots) sets.push(await setup(r, replicas))
const revs = roots.map(() => 1_000_000)
const perChange = roots.map(() => [] as number[])
for (let round = 0; round < Number(process.env.ROUNDS ?? 15); round++) {
  for (let v = 0; v < roots.length; v++) {
    const s = sets[v]!
    const before = s.seen()
    const c0 = process.cpuUsage()
    for (let n = 0; n < per; n += EVENTS) {
      const evs: string[] = []
      for (let j = n; j < n + EVENTS; j++) {
        const key = b64(`bench/key/000${String(j % 100).padStart(2, '0')}`)
        evs.push(event(++revs[v]!, key, j + 2, j % 10 === 9))
      }
      const events = evs.join(',')
      const rev = revs[v]!
      for (const so of s.sockets) so.ws.onmessage?.({ data: `${header(rev, so.id)}"events":[${events}]}}` })
      await new Promise((r) => setImmediate(r))
    }
    const c = process.cpuUsage(c0)
    const n = per * s.sockets.length
    perChange[v]!.push((c.user + c.system) / n)
    if (s.seen() - before < n * 0.9) throw new Error(`${roots[v]}: subscribers saw ${s.seen() - before} of ${n}`)
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!
for (const [v, r] of roots.entries())
  console.log(
    `${r}: ${median(perChange[v]!.slice(3)).toFixed(2)} µs per change (median after 3 warm-up rounds; ${replicas} replicas; rounds: ${perChange[v]!.map((x) => x.toFixed(1)).join(' ')})`,
  )
process.exit(0)
