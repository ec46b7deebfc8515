/**
 * A TCP proxy in front of one member's Raft endpoint, for fault injection on real processes. Each member advertises
 * its proxy's URL as its peer URL, so every peer connection into the member (peers dial the advertised URL and open a
 * WebSocket at /raft) crosses this proxy, while clients talk to the member's real port directly.
 *
 * Raft messages from peer S to member M travel on the connection S dialed to M's proxy, in the `in` direction
 * (toward M); the `out` direction carries M's handshake answers and pongs back to S. The proxy names the source of a
 * connection from the `x-edgecd-from` header of its upgrade request (the member id), so rules can target one link.
 *
 * Faults, per source and per direction:
 * - `blackhole`: bytes are read and discarded (the connection stays up, as under a silent network partition). A
 *   connection that lost bytes is destroyed when the rule is lifted: its WebSocket framing is broken, and a real
 *   partition that long would have timed the connection out too.
 * - `refuse`: existing connections are destroyed and new ones are closed as soon as they name their source.
 * - `delayMs`: every chunk is held for that long, order preserved.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'

export type Direction = 'in' | 'out'
export type LinkMode = 'pass' | 'blackhole' | 'refuse'

export interface LinkRule {
  mode: LinkMode
  delayMs: number
}

/** Rules apply to connections from this source name, or '*' for every source without its own rule. */
export type Source = string

/** Bytes of a connection's request head read while looking for its source; past this the source is unknown. */
const headBytesMax = 16 * 1024
/** Bytes held in one direction's delay queue before the connection is dropped (a bound, not a tuning knob). */
const delayedBytesMax = 64 * 1024 * 1024

const pass: LinkRule = { mode: 'pass', delayMs: 0 }

interface Pipe {
  queue: { dueMs: number; chunk: Buffer }[]
  queuedBytes: number
  timer?: ReturnType<typeof setTimeout>
}

interface Conn {
  client: Socket
  upstream: Socket
  source: Source | undefined
  lostBytes: number
  pipes: Record<Direction, Pipe>
}

export class ChaosProxy {
  private readonly conns = new Set<Conn>()
  private readonly rules = new Map<string, LinkRule>()
  /** Counters for the run summary. */
  readonly stats = { connections: 0, refused: 0, droppedBytes: 0, delayedChunks: 0 }

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
    /** Member id (from x-edgecd-from) to source name. */
    private readonly names: Map<string, string>,
  ) {}

  /** Listens on a free loopback port and forwards to 127.0.0.1:targetPort. */
  static async start(targetPort: number, names: Map<string, string>, port = 0): Promise<ChaosProxy> {
    const server = createServer()
    const listening = await new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        const a = server.address()
        resolve(typeof a === 'object' && a ? a.port : 0)
      })
    })
    const p = new ChaosProxy(server, listening, targetPort, names)
    server.on('connection', (s) => p.accept(s))
    return p
  }

  private rule(source: Source | undefined, dir: Direction): LinkRule {
    return (source !== undefined ? this.rules.get(`${source}/${dir}`) : undefined) ?? this.rules.get(`*/${dir}`) ?? pass
  }

  /** Sets the rule for one source ('*': the default) in one or both directions. */
  set(source: Source, dirs: Direction | 'both', rule: Partial<LinkRule>): void {
    for (const dir of dirs === 'both' ? (['in', 'out'] as const) : [dirs]) {
      const cur = this.rules.get(`${source}/${dir}`) ?? pass
      this.rules.set(`${source}/${dir}`, { ...cur, ...rule })
    }
    for (const c of [...this.conns]) {
      if (this.rule(c.source, 'in').mode === 'refuse' || this.rule(c.source, 'out').mode === 'refuse') this.destroy(c)
    }
  }

  /** Destroys every connection (from `source`, or all) and refuses new ones until healed. */
  cut(source: Source = '*'): void {
    this.set(source, 'both', { mode: 'refuse' })
  }

  /** Lifts every rule; connections that lost bytes to a blackhole are destroyed (their stream is corrupt). */
  heal(): void {
    this.rules.clear()
    for (const c of [...this.conns]) if (c.lostBytes > 0) this.destroy(c)
  }

  /** The current rules, for the fault log. */
  describe(): string {
    return [...this.rules].map(([k, r]) => `${k}:${r.mode}${r.delayMs ? `+${r.delayMs}ms` : ''}`).join(' ') || 'pass'
  }

  private accept(client: Socket): void {
    this.stats.connections++
    client.setNoDelay(true)
    const upstream = connect(this.targetPort, '127.0.0.1')
    upstream.setNoDelay(true)
    const c: Conn = {
      client,
      upstream,
      source: undefined,
      lostBytes: 0,
      pipes: { in: { queue: [], queuedBytes: 0 }, out: { queue: [], queuedBytes: 0 } },
    }
    this.conns.add(c)
    let head: Buffer | undefined = Buffer.alloc(0)
    const onClose = () => this.destroy(c)
    client.on('error', onClose)
    upstream.on('error', onClose)
    client.on('close', onClose)
    upstream.on('close', onClose)
    client.on('data', (chunk: Buffer) => {
      if (head === undefined) return this.forward(c, 'in', chunk)
      // Hold the request head until its headers are complete, to learn the source before any byte goes through.
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0 && head.length < headBytesMax) return
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1')
      const m = /\r\nx-edgecd-from:\s*(\d+)/i.exec(text)
      c.source = m ? (this.names.get(m[1]!) ?? `id:${m[1]}`) : undefined
      const held = head
      head = undefined
      if (this.rule(c.source, 'in').mode === 'refuse' || this.rule(c.source, 'out').mode === 'refuse') {
        this.stats.refused++
        this.destroy(c)
        return
      }
      this.forward(c, 'in', held)
    })
    upstream.on('data', (chunk: Buffer) => this.forward(c, 'out', chunk))
  }

  private forward(c: Conn, dir: Direction, chunk: Buffer): void {
    const r = this.rule(c.source, dir)
    if (r.mode !== 'pass') {
      c.lostBytes += chunk.length
      this.stats.droppedBytes += chunk.length
      if (r.mode === 'refuse') this.destroy(c)
      return
    }
    const to = dir === 'in' ? c.upstream : c.client
    const pipe = c.pipes[dir]
    if (r.delayMs <= 0 && pipe.queue.length === 0) {
      to.write(chunk)
      return
    }
    if (pipe.queuedBytes + chunk.length > delayedBytesMax) {
      this.destroy(c)
      return
    }
    this.stats.delayedChunks++
    const last = pipe.queue.at(-1)?.dueMs ?? 0
    pipe.queue.push({ dueMs: Math.max(performance.now() + r.delayMs, last), chunk })
    pipe.queuedBytes += chunk.length
    this.pump(c, dir)
  }

  /** Writes the delayed chunks that are due, in order, and waits for the next one. */
  private pump(c: Conn, dir: Direction): void {
    const pipe = c.pipes[dir]
    if (pipe.timer) return
    const to = dir === 'in' ? c.upstream : c.client
    const now = performance.now()
    while (pipe.queue.length > 0 && pipe.queue[0]!.dueMs <= now) {
      const { chunk } = pipe.queue.shift()!
      pipe.queuedBytes -= chunk.length
      if (!to.destroyed) to.write(chunk)
    }
    if (pipe.queue.length === 0) return
    pipe.timer = setTimeout(
      () => {
        pipe.timer = undefined
        this.pump(c, dir)
      },
      Math.max(1, pipe.queue[0]!.dueMs - now),
    )
  }

  private destroy(c: Conn): void {
    if (!this.conns.delete(c)) return
    for (const p of Object.values(c.pipes)) if (p.timer) clearTimeout(p.timer)
    c.client.destroy()
    c.upstream.destroy()
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) this.destroy(c)
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
