/**
 * The chaos workload: a bounded number of sequential clients doing put, linearizable get, compare-and-set (txn
 * compare on VALUE or MOD revision, then put) and two-key put txns on a small key set, and watchers over the whole
 * prefix, everything recorded in a History.
 *
 * Outcomes (see history.ts): an answer is `ok`; a refused connection is a certain `fail` (the request never reached
 * a member) and the same operation is tried on the next member; a timeout, a broken connection or a server error is
 * `unknown` for a write (it may still commit) and the client moves on to another member without retrying it.
 */
import WebSocket from 'ws'
import { SimRand } from '../sim/rng.js'
import type { History, Op, WatchEvent, Watcher, WatchResponse, WatchSession } from './history.js'

export interface WorkloadOptions {
  urls: string[]
  prefix: string
  keys: number
  clients: number
  watchers: number
  seed: number
  /** Per-request deadline: past it the outcome is unknown. */
  requestTimeoutMs: number
  /** Pause between a client's operations, drawn in [0, thinkMsMax]. */
  thinkMsMax: number
  /** Watchers ask for progress this often and reconnect elsewhere when no answer comes within watchStallMs. */
  progressEveryMs: number
  watchStallMs: number
  /** A watcher also drops its stream on purpose after a random time up to this, to exercise resuming (0: never). */
  watchSessionMsMax: number
  /**
   * Reads served by any member from its own state, without ReadIndex: not linearizable by design. Only for checking
   * that the checker notices (CHAOS_SERIALIZABLE_READS=1 should fail under partitions).
   */
  serializableReads?: boolean
  /** The shared clock (ms). */
  now: () => number
}

const b64 = (s: string) => Buffer.from(s).toString('base64')
const unb64 = (s: string | undefined) => (s === undefined ? '' : Buffer.from(s, 'base64').toString())

/** The end of a prefix range: the prefix with its last byte incremented (etcd's clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)
}

type Outcome = { kind: 'ok'; json: any } | { kind: 'fail'; error: string } | { kind: 'unknown'; error: string }

/** One request with a deadline, its outcome classified for the history. */
async function call(url: string, path: string, body: unknown, timeoutMs: number): Promise<Outcome> {
  let r: Response
  try {
    r = await fetch(url + path, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    // A refused connection never carried the request; anything else (timeout, reset) may have.
    if (e.cause?.code === 'ECONNREFUSED') return { kind: 'fail', error: 'ECONNREFUSED' }
    return {
      kind: 'unknown',
      error: e.name === 'TimeoutError' ? 'timeout' : `${e.message} ${e.cause?.code ?? ''}`.trim(),
    }
  }
  let text: string
  try {
    text = await r.text()
  } catch (err) {
    return { kind: 'unknown', error: `body: ${(err as Error).message}` }
  }
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    return { kind: 'unknown', error: `HTTP ${r.status}: ${text.slice(0, 80)}` }
  }
  if (r.status === 200) return { kind: 'ok', json }
  // Server errors (no leader, request timed out, leader changed) may come after the proposal was made: unknown.
  return { kind: 'unknown', error: `HTTP ${r.status}: ${json?.message ?? text.slice(0, 80)}` }
}

export class Workload {
  readonly history: History['ops'] = []
  readonly watchers: Watcher[] = []
  private stopping = false
  private nextId = 0
  private readonly running: Promise<void>[] = []
  private readonly clients: Promise<void>[] = []
  private readonly sockets = new Set<WebSocket>()
  readonly keys: string[]

  constructor(private readonly o: WorkloadOptions) {
    this.keys = Array.from({ length: o.keys }, (_, i) => `${o.prefix}k${i}`)
  }

  start(): void {
    for (let w = 0; w < this.o.watchers; w++) this.running.push(this.watcher(w))
    for (let c = 0; c < this.o.clients; c++) this.clients.push(this.client(c))
  }

  /** Stops the clients (each finishes its current operation) but keeps the watchers running. */
  async stopClients(): Promise<void> {
    this.stopping = true
    await Promise.all(this.clients)
  }

  private watchersDone = false

  /** Stops everything and waits for every loop to end. */
  async stop(): Promise<void> {
    this.stopping = true
    this.watchersDone = true
    for (const s of this.sockets) s.terminate()
    await Promise.all([...this.clients, ...this.running])
  }

  /** The highest revision every watcher has covered (seen events or a progress notification up to). */
  coveredRevision(w: Watcher): number {
    let covered = 0
    for (const s of w.sessions) covered = Math.max(covered, sessionCovered(s))
    return covered
  }

  private async client(c: number): Promise<void> {
    const rng = new SimRand(this.o.seed * 1000 + c + 1)
    let member = rng.intn(this.o.urls.length)
    let seq = 0
    /** What this client last learned of each key: its value (null: absent) and mod_revision. */
    const known = new Map<string, { value: string | null; rev: number }>()
    while (!this.stopping) {
      const key = rng.pick(this.keys)
      const value = `c${c}-${seq++}`
      const roll = rng.intn(100)
      const op: Op = { id: this.nextId++, client: c, f: 'get', key, call: this.o.now(), status: 'unknown' }
      let body: unknown
      let path: string
      if (roll < 35) {
        path = '/v3/kv/range'
        body = this.o.serializableReads ? { key: b64(key), serializable: true } : { key: b64(key) }
      } else if (roll < 65) {
        op.f = 'put'
        op.value = value
        path = '/v3/kv/put'
        body = { key: b64(key), value: b64(value) }
      } else if (roll < 90) {
        op.f = 'cas'
        op.value = value
        path = '/v3/kv/txn'
        const k = known.get(key) ?? { value: null, rev: 0 }
        const byValue = k.value !== null && rng.chance(50)
        const compare = byValue
          ? { key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(k.value!) }
          : { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(k.rev) }
        op.cmp = byValue ? 'value' : 'mod'
        if (byValue) op.expectValue = k.value!
        else op.expectRev = k.rev
        body = { compare: [compare], success: [{ request_put: { key: b64(key), value: b64(value) } }] }
      } else {
        op.f = 'mput'
        op.value = value
        let other = rng.pick(this.keys)
        if (other === key) other = this.keys[(this.keys.indexOf(key) + 1) % this.keys.length]!
        op.more = [[other, `${value}b`]]
        path = '/v3/kv/txn'
        body = {
          success: [
            { request_put: { key: b64(key), value: b64(value) } },
            { request_put: { key: b64(other), value: b64(`${value}b`) } },
          ],
        }
      }
      // A refused connection is a certain failure: try the next member, at most once per member.
      let out: Outcome = { kind: 'fail', error: 'no member' }
      for (let attempt = 0; attempt < this.o.urls.length; attempt++) {
        op.member = member
        out = await call(this.o.urls[member]!, path, body, this.o.requestTimeoutMs)
        if (out.kind !== 'fail') break
        member = (member + 1) % this.o.urls.length
      }
      if (out.kind === 'ok') {
        op.ret = this.o.now()
        op.status = 'ok'
        const j = out.json
        const rev = Number(j.header?.revision ?? 0)
        if (op.f === 'get') {
          const kv = j.kvs?.[0]
          op.readValue = kv ? unb64(kv.value) : null
          op.readRev = kv ? Number(kv.mod_revision) : 0
          known.set(key, { value: op.readValue, rev: op.readRev })
        } else if (op.f === 'cas') {
          op.succeeded = j.succeeded === true
          if (op.succeeded) {
            op.rev = rev
            known.set(key, { value, rev })
          }
        } else {
          op.rev = rev
          known.set(key, { value, rev })
          if (op.more) known.set(op.more[0]![0], { value: op.more[0]![1], rev })
        }
      } else {
        op.status = out.kind
        op.error = out.error
        if (out.kind === 'fail') op.ret = this.o.now()
        // Whatever happened, this member looks unhealthy from here: go elsewhere next time.
        member = (member + 1 + rng.intn(this.o.urls.length - 1)) % this.o.urls.length
        await sleep(20)
      }
      this.history.push(op)
      if (this.o.thinkMsMax > 0) await sleep(rng.intn(this.o.thinkMsMax + 1))
    }
  }

  /** One watcher: a WebSocket watch over the prefix, resumed on another member from covered+1 after any failure. */
  private async watcher(w: number): Promise<void> {
    const watcher: Watcher = { id: w, sessions: [] }
    this.watchers.push(watcher)
    const rng = new SimRand(this.o.seed * 1000 + 500 + w)
    let member = w % this.o.urls.length
    let from = 1
    for (let attempt = 0; !this.watchersDone && attempt < 10_000; attempt++) {
      const session: WatchSession = { member, startRevision: from, responses: [] }
      watcher.sessions.push(session)
      await this.watchSession(session, this.o.watchSessionMsMax > 0 ? 500 + rng.intn(this.o.watchSessionMsMax) : 0)
      const covered = sessionCovered(session)
      if (covered >= from) from = covered + 1
      member = (member + 1) % this.o.urls.length
      if (!this.watchersDone) await sleep(50)
    }
  }

  private watchSession(session: WatchSession, lifetimeMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const url = this.o.urls[session.member]!.replace(/^http/, 'ws') + '/v3/watch'
      const ws = new WebSocket(url, { handshakeTimeout: this.o.watchStallMs })
      this.sockets.add(ws)
      let lastFrame = this.o.now()
      const started = lastFrame
      let created = false
      const end = (why: string) => {
        if (session.end) return
        session.end = why
        clearInterval(ticker)
        this.sockets.delete(ws)
        ws.terminate()
        resolve()
      }
      const ticker = setInterval(() => {
        if (this.watchersDone) return end('stopped')
        if (this.o.now() - lastFrame > this.o.watchStallMs) return end('stalled')
        if (lifetimeMs > 0 && this.o.now() - started > lifetimeMs) return end('rotated')
        if (created && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ progress_request: {} }))
      }, this.o.progressEveryMs)
      ws.on('open', () => {
        lastFrame = this.o.now()
        ws.send(
          JSON.stringify({
            create_request: {
              key: b64(this.o.prefix),
              range_end: b64(prefixEnd(this.o.prefix)),
              start_revision: String(session.startRevision),
            },
          }),
        )
      })
      ws.on('message', (data) => {
        // Frames the socket had already received when the session ended (terminate() does not drop them) belong to
        // no session: the client has moved on and resumes from what it had seen, as a real client would.
        if (session.end) return
        lastFrame = this.o.now()
        let j: any
        try {
          j = JSON.parse(String(data))
        } catch {
          return end(`bad frame: ${String(data).slice(0, 80)}`)
        }
        const r = j.result ?? {}
        const events: WatchEvent[] = (r.events ?? []).map((e: any) => ({
          key: unb64(e.kv?.key),
          value: unb64(e.kv?.value),
          type: e.type === 'DELETE' ? 'DELETE' : 'PUT',
          modRevision: Number(e.kv?.mod_revision ?? 0),
        }))
        const resp: WatchResponse = { at: this.o.now(), headerRevision: Number(r.header?.revision ?? 0), events }
        if (r.created) {
          resp.created = true
          created = true
        }
        if (r.canceled) resp.canceled = true
        if (!r.created && !r.canceled && events.length === 0) resp.progress = true
        session.responses.push(resp)
        if (j.error || r.canceled)
          end(`canceled: ${JSON.stringify(j.error ?? r.cancel_reason ?? r.compact_revision ?? '')}`)
      })
      ws.on('error', () => {})
      ws.on('close', () => end('closed'))
    })
  }
}

/** The highest revision a session proved it delivered everything up to (events and progress notifications). */
export function sessionCovered(s: WatchSession): number {
  let covered = s.startRevision - 1
  for (const r of s.responses) {
    if (r.progress) covered = Math.max(covered, r.headerRevision)
    for (const e of r.events) covered = Math.max(covered, e.modRevision)
  }
  return covered
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
