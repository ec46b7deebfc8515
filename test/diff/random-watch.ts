/**
 * The seeded random differential run of the Watch stream (test/diff/random-watch.test.ts): one Watch stream per
 * server (gRPC's bidirectional Watch, or the JSON gateway's WebSocket `GET /v3/watch`, where etcd answers through
 * grpc-websocket-proxy), fed the same generated creates (client-chosen and server-chosen ids, an id in use, past,
 * future, compacted and negative start revisions, every range_end form, prev_kv, NOPUT/NODELETE, progress_notify,
 * fragment), cancels (known and unknown ids) and progress requests, interleaved with the writes of random-ops.ts's
 * generator (puts, deletes, txns, compactions, lease grants and revokes: their own answers compared as there).
 *
 * Compared: per watch id, the sequence of its responses (created, canceled, cancel_reason, compact_revision and
 * header revision as they are; member ids and terms normalised) with its events flattened into one list (each event
 * with its kv and prev_kv, compared as they are). Not compared: how events are cut into messages and those messages'
 * header revision (etcd sends a caught-up watcher one message per revision and a catching-up one many revisions per
 * message, depending on its 100 ms sync loop; edgecd may also merge the writes of one apply batch: docs/api.md,
 * "Watch messages"), nor `fragment` flags (the parts are joined). The order between watch ids (one stream,
 * different watchers) is not compared either.
 *
 * When: after every create, progress request and cancel of a known id the run waits for its answer on both servers
 * (so that the next write lands after the create, as a client that awaits `created` sees). A checkpoint puts a
 * sentinel key that watch 1000000 watches and waits for that event on both streams (etcd queues every caught-up
 * watcher's events of earlier revisions on the stream before it), then until both sides' records are equal (a
 * catching-up watcher's history comes on etcd's 100 ms sync loop): a run checkpoints before each cancel, every 25
 * steps and at the end. A compaction or cancel waits until 500 ms have passed since the last create from the past
 * and then (bounded) until both records agree (etcd's sync loop must have caught that watcher up first, or it would
 * be compacted/cancelled mid-way on etcd and not on edgecd; a loaded machine slows that loop).
 *
 * A create with a negative start_revision waits until no watcher is catching up, and the run then waits 300 ms: etcd
 * 3.4 syncs it at the revision current at its next 100 ms sync loop, skipping the writes before and the history of
 * the other watchers that loop catches up (docs/kv.md).
 *
 * A compaction after a wide txn or a big put (messages of 64 KiB or more) waits for a checkpoint first: etcd's
 * sendLoop reads prev_kv as it sends, one message at a time, so which watchers' large messages it sends after the
 * compaction (without prev_kv) is a race of Go's map order and the client's reading (seed 9108, session 11).
 *
 * Not generated: an unknown filter number (etcd 3.4's FiltersFromRequest panics), fragment-sized events through the
 * WebSocket (grpc-websocket-proxy's line buffer).
 */
import { fromJson, type JsonObject, toJson } from '@bufbuild/protobuf'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import WebSocket from 'ws'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { rng } from '../kv/helpers.js'
import { normalizeServerIds } from '../support/diff.js'
import { baseKeys, Door, Generator, type Mismatch, prefixEnd, runStep, type Step } from './random-ops.js'

export type WatchDoor = 'grpc' | 'ws'

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
const enc = new TextEncoder()
const sentinelKey = enc.encode('~sentinel')
const sentinelId = '1000000'

/** A watch request in the gateway's JSON (proto names, int64 as strings, bytes as base64). */
type WatchRequestJson = JsonObject

/** What one server's stream answered, by watch id: control responses as text, events flattened. */
class Record_ {
  readonly perWatch = new Map<string, string[]>()
  created = 0
  canceled = 0
  progress = 0
  lastCreated: Record<string, unknown> | undefined
  /** Ids with a live watch. */
  readonly live = new Set<string>()
  /**
   * Ids whose watch was canceled as compacted: etcd keeps such an id until a cancel of it, which is answered (session
   * 9), so a cancel of it is waited for like one of a live id (seed 11369, session 11: the next write raced its answer).
   */
  readonly compacted = new Set<string>()
  /** mod_revisions of the sentinel's events. */
  readonly sentinel = new Set<number>()
  readonly errors: string[] = []
  closed: string | undefined

  add(res: Record<string, unknown>): void {
    const id = String(res.watch_id ?? '0')
    const list = this.perWatch.get(id) ?? []
    this.perWatch.set(id, list)
    const events = res.events as Record<string, unknown>[] | undefined
    if (events?.length) {
      for (const e of events) {
        list.push(`E ${JSON.stringify(e)}`)
        const kv = e.kv as Record<string, string> | undefined
        if (id === sentinelId && kv?.key === b64(sentinelKey) && e.type === undefined)
          this.sentinel.add(Number(kv.mod_revision))
      }
      // Anything else a message with events says (it should say nothing else).
      const rest = { ...res }
      delete rest.events
      delete rest.header
      delete rest.watch_id
      delete rest.fragment
      if (Object.keys(rest).length > 0) list.push(`R ${JSON.stringify(rest)}`)
      return
    }
    const c = { ...res }
    delete c.fragment
    list.push(`C ${normalizeServerIds(JSON.stringify(c))}`)
    if (res.canceled) this.live.delete(id)
    if (res.canceled && res.compact_revision !== undefined && !res.created) this.compacted.add(id)
    else if (res.created || res.canceled) this.compacted.delete(id)
    if (res.created) {
      this.created++
      this.lastCreated = res
      if (!res.canceled) this.live.add(id)
    } else if (res.canceled && res.compact_revision === undefined) this.canceled++
    else if (id === '-1') this.progress++
  }

  text(): string {
    return [...this.perWatch.keys()]
      .sort()
      .map((id) => `watch ${id}:\n  ${this.perWatch.get(id)!.join('\n  ')}`)
      .concat(this.errors.map((e) => `error ${e}`))
      .concat(this.closed !== undefined ? [`closed ${this.closed}`] : [])
      .join('\n')
  }
}

/** One server's Watch stream. */
interface WatchConn {
  rec: Record_
  send(r: WatchRequestJson): void
  close(): void
}

function grpcWatch(url: string): WatchConn {
  const rec = new Record_()
  const items: pb.WatchRequest[] = []
  let wake: (() => void) | undefined
  let done = false
  const abort = new AbortController()
  const reqs = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (items.length > 0) yield items.shift()!
        if (done) return
        await new Promise<void>((r) => {
          wake = r
        })
      }
    },
  }
  const client = createClient(pb.Watch, createGrpcTransport({ baseUrl: url }))
  void (async () => {
    try {
      for await (const r of client.watch(reqs, { signal: abort.signal }))
        rec.add(toJson(pb.WatchResponseSchema, r, { useProtoFieldName: true }) as Record<string, unknown>)
      rec.closed = 'end of stream'
    } catch (err) {
      if (!done) rec.closed = String(err)
    }
  })()
  return {
    rec,
    send(r) {
      items.push(fromJson(pb.WatchRequestSchema, r))
      wake?.()
    },
    close() {
      done = true
      wake?.()
      abort.abort()
    },
  }
}

async function wsWatch(url: string): Promise<WatchConn> {
  const rec = new Record_()
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v3/watch`)
  let done = false
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { result?: Record<string, unknown>; error?: unknown }
    if (m.result) rec.add(m.result)
    else rec.errors.push(normalizeServerIds(String(data)))
  })
  ws.on('close', (code) => {
    if (!done) rec.closed = `close ${code}`
  })
  ws.on('error', (err) => {
    if (!done) rec.closed = String(err)
  })
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res())
    ws.once('error', rej)
  })
  return {
    rec,
    send(r) {
      ws.send(JSON.stringify(r))
    },
    close() {
      done = true
      ws.close()
    },
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Waits until `ok()` or `ms` passed; returns whether it held. */
async function until(ok: () => boolean, ms: number, what = ''): Promise<boolean> {
  const start = Date.now()
  while (!ok()) {
    if (Date.now() > start + ms) {
      if (process.env.EDGECD_DIFF_TRACE) console.log(`waited ${ms} ms in vain for ${what}`)
      return false
    }
    await sleep(5)
  }
  if (process.env.EDGECD_DIFF_TRACE && Date.now() - start > 500)
    console.log(`waited ${Date.now() - start} ms for ${what}`)
  return true
}

/** The first watch whose record differs, as a short text (both sides' lists from the first difference). */
function firstDifference(a: Record_, b: Record_): { etcd: string; edgecd: string } | undefined {
  if (a.text() === b.text()) return undefined
  const ids = [...new Set([...a.perWatch.keys(), ...b.perWatch.keys()])].sort()
  for (const id of ids) {
    const x = a.perWatch.get(id) ?? []
    const y = b.perWatch.get(id) ?? []
    let i = 0
    while (i < x.length && i < y.length && x[i] === y[i]) i++
    if (i < x.length || i < y.length)
      return {
        etcd: `watch ${id} [${i}..]: ${x.slice(i, i + 4).join(' | ') || '(nothing)'}`,
        edgecd: `watch ${id} [${i}..]: ${y.slice(i, i + 4).join(' | ') || '(nothing)'}`,
      }
  }
  return { etcd: a.text().slice(-1500), edgecd: b.text().slice(-1500) }
}

/** The watch-side generator: creates, cancels and progress requests over the run's key space. */
class WatchGen {
  private readonly r: (n: number) => number
  /** The edge inputs' own stream (session 11), so the main one, and the runs of earlier seeds, stay as they were. */
  private readonly x: (n: number) => number
  constructor(
    seed: number,
    private readonly gen: Generator,
    /** Ids with a live watch (as etcd answered). */
    private readonly live: Set<string>,
    /** Ids canceled as compacted and not yet canceled by the client (as etcd answered). */
    private readonly compacted: Set<string>,
  ) {
    this.r = rng(seed ^ 0x3a7c)
    this.x = rng(seed ^ 0x0edd)
  }
  private chance(pct: number): boolean {
    return this.r(100) < pct
  }
  private pick<T>(xs: readonly T[]): T {
    return xs[this.r(xs.length)]!
  }

  /** A create, and whether it starts in the past (catching up on etcd's sync loop). */
  create(): { req: WatchRequestJson; past: boolean } {
    const { revision, compacted } = this.gen.state
    const key = this.chance(5) ? new Uint8Array(0) : this.pick(baseKeys)
    const c: JsonObject = { key: b64(key) }
    switch (this.r(7)) {
      case 0:
      case 1:
        break
      case 2:
        c.range_end = b64(prefixEnd(key.length ? key : enc.encode('a')))
        break
      case 3:
        c.range_end = b64(new Uint8Array([0]))
        break
      case 4:
        c.range_end = b64(this.pick(baseKeys))
        break
      case 5:
        c.range_end = b64(new Uint8Array([...key, 0]))
        break
      default:
        c.range_end = b64(key)
    }
    let past = false
    switch (this.r(9)) {
      case 0:
        c.start_revision = String(1 + this.r(revision))
        past = true
        break
      case 1:
        c.start_revision = String(Math.max(1, compacted - this.r(2)))
        past = true
        break
      case 2:
        c.start_revision = String(revision + 1 + this.r(4))
        break
      case 3:
        c.start_revision = String(revision)
        past = true
        break
      case 4:
        if (this.chance(30)) {
          c.start_revision = '-1'
          past = true
        }
        break
      default:
        break
    }
    if (this.chance(40)) c.prev_kv = true
    if (this.chance(25)) c.filters = this.pick([['NOPUT'], ['NODELETE'], ['NOPUT', 'NODELETE'], []])
    if (this.chance(20)) c.progress_notify = true
    if (this.chance(25)) c.fragment = true
    if (this.chance(50)) {
      const live = [...this.live]
      c.watch_id =
        live.length > 0 && this.chance(20)
          ? this.pick(live)
          : this.pick(['1', '2', '3', '7', '100', '1152921504606846976'])
    }
    // Now and then an edge: an id the server's counter never reaches (negative, int64's end; not -1: etcd answers a
    // failed create and a progress request with watch_id -1, so a watcher -1's messages and those cannot be told
    // apart: seed 11216), a start revision at int64's ends (far future: never any event; far past: as -1).
    const x = this.x(100)
    if (x < 5) c.watch_id = ['-2', '-5', '9223372036854775807'][this.x(3)]!
    else if (x < 8) {
      const far = this.x(2) === 0
      c.start_revision = far ? '9223372036854775807' : '-9223372036854775808'
      past = !far
    }
    return { req: { create_request: c }, past }
  }

  cancel(): { req: WatchRequestJson; known: boolean } {
    // Never the sentinel's watch: checkpoints need it.
    const live = [...this.live].filter((id) => id !== sentinelId)
    const id = live.length > 0 && this.chance(75) ? this.pick(live) : this.pick(['0', '5', '99', '-1', '123456789'])
    return { req: { cancel_request: { watch_id: id } }, known: this.live.has(id) || this.compacted.has(id) }
  }
}

export interface WatchRunOptions {
  seed: number
  steps: number
  door: WatchDoor
}

/**
 * Runs `steps` generated steps of watch requests and writes against both servers; returns the first difference (a
 * write's answer, or a watch's record at a checkpoint), or undefined.
 */
export async function runWatchSeed(
  etcdUrl: string,
  edgeUrl: string,
  o: WatchRunOptions,
): Promise<Mismatch | undefined> {
  const { seed, steps, door } = o
  const file = 'random-watch.test.ts'
  const gen = new Generator(seed)
  const r = rng(seed ^ 0x77)
  const style = rng(seed ^ 0x5eed)
  const kvEtcd = new Door(etcdUrl, 'grpc')
  const kvEdge = new Door(edgeUrl, 'grpc')
  const a = door === 'grpc' ? grpcWatch(etcdUrl) : await wsWatch(etcdUrl)
  const b = door === 'grpc' ? grpcWatch(edgeUrl) : await wsWatch(edgeUrl)
  const wg = new WatchGen(seed, gen, a.rec.live, a.rec.compacted)
  let lastPast = 0
  /** When settle() last saw the records agree after a create from the past. */
  let settledAt = 0
  let sentinels = 0
  /** A message of 64 KiB or more may have gone out since the last checkpoint (a wide txn, a big put). */
  let bigSince = false
  const trace: string[] = []
  const mismatch = (step: number, call: string, d: { etcd: string; edgecd: string }): Mismatch => {
    if (process.env.EDGECD_DIFF_TRACE)
      console.log(`${trace.join('\n')}\n--- etcd:\n${a.rec.text()}\n--- edgecd:\n${b.rec.text()}`)
    return {
      seed,
      step,
      door: `watch-${door}`,
      file,
      call: `${call}\n  last steps:\n    ${trace.slice(-12).join('\n    ')}`,
      ...d,
    }
  }
  const settle = async () => {
    const wait = lastPast + 500 - Date.now()
    if (wait > 0) await sleep(wait)
    // On a loaded machine etcd's sync loop may take longer than that to catch the watcher up: wait (bounded) until
    // both records agree, which they do once both servers replayed its history (a real difference is reported by
    // the next checkpoint; the wait only costs time then).
    if (lastPast > settledAt) {
      await until(() => a.rec.text() === b.rec.text(), 30_000, 'equal after a create from the past')
      settledAt = Date.now()
    }
  }
  const send = (req: WatchRequestJson, note: string) => {
    trace.push(`${note} ${JSON.stringify(req)}`.slice(0, 300))
    a.send(req)
    b.send(req)
  }
  const write = async (s: Step, step: number) => {
    trace.push(
      `${s.note} ${JSON.stringify(
        s.calls.map((c) => c.req),
        (_, v) =>
          typeof v === 'bigint'
            ? String(v)
            : v instanceof Uint8Array
              ? v.length > 64
                ? `<${v.length} bytes>`
                : Buffer.from(v).toString()
              : v,
      )}`,
    )
    return runStep(gen, kvEtcd, kvEdge, s, { seed, step, style })
  }
  /** Puts the sentinel, waits for its event on both streams, then for both records to agree. */
  const checkpoint = async (step: number, why: string): Promise<Mismatch | undefined> => {
    const s: Step = {
      note: `checkpoint (${why})`,
      calls: [{ service: 'KV', method: 'put', req: { key: sentinelKey, value: enc.encode(`s${sentinels++}`) } }],
    }
    const m = await write(s, step)
    if (m) return m
    bigSince = false
    const rev = gen.state.revision
    const seen = await until(() => a.rec.sentinel.has(rev) && b.rec.sentinel.has(rev), 30_000, 'sentinel')
    await until(() => a.rec.text() === b.rec.text(), seen ? 30_000 : 0, 'equal')
    const d =
      firstDifference(a.rec, b.rec) ??
      (seen
        ? undefined
        : {
            etcd: `sentinel event at ${rev}: ${a.rec.sentinel.has(rev)}`,
            edgecd: `sentinel event at ${rev}: ${b.rec.sentinel.has(rev)}`,
          })
    return d ? mismatch(step, `checkpoint (${why}) at revision ${rev}`, d) : undefined
  }
  try {
    send({ create_request: { key: b64(sentinelKey), watch_id: sentinelId } }, 'sentinel')
    if (!(await until(() => a.rec.created === 1 && b.rec.created === 1, 30_000)))
      return mismatch(0, 'create of the sentinel watch', { etcd: a.rec.text(), edgecd: b.rec.text() })
    for (let step = 0; step < steps; step++) {
      const k = r(100)
      let m: Mismatch | undefined
      if (k < 22) {
        const { req, past } = wg.create()
        // A negative start_revision etcd does not cancel: etcd's sync loop reads its history from that revision, i.e.
        // nothing (a range from a negative revision), and syncs every watcher it chose at the revision current then,
        // up to 100 ms after the create: the writes in between are skipped, and so is the history of any watcher from
        // the past still unsynced (edgecd syncs it at once, docs/kv.md). So: no other watcher catching up when it is
        // created, and no write until etcd's loop has run (seed 9504, session 10).
        const negative = Number((req.create_request as JsonObject).start_revision ?? 0) < 0
        if (negative) await settle()
        const want = [a.rec.created + 1, b.rec.created + 1]
        send(req, 'create')
        await until(() => a.rec.created >= want[0]! && b.rec.created >= want[1]!, 30_000, 'created')
        if (past) lastPast = Date.now()
        if (negative) await sleep(300)
      } else if (k < 29) {
        m = await checkpoint(step, 'before a cancel')
        if (m) return m
        await settle()
        const { req, known } = wg.cancel()
        const want = [a.rec.canceled + 1, b.rec.canceled + 1]
        send(req, known ? 'cancel' : 'cancel unknown')
        if (known) {
          await until(() => a.rec.canceled >= want[0]! && b.rec.canceled >= want[1]!, 30_000, 'canceled')
        }
      } else if (k < 33) {
        const want = [a.rec.progress + 1, b.rec.progress + 1]
        send({ progress_request: {} }, 'progress')
        await until(() => a.rec.progress >= want[0]! && b.rec.progress >= want[1]!, 30_000, 'progress')
      } else if (k < 35 && door === 'grpc') {
        // Three 400 KB values in one revision: with prev_kv past --max-request-bytes + 512 KiB, fragmented if asked.
        const value = new Uint8Array(400_000).fill(0x61 + r(26))
        const success = baseKeys.slice(0, 3).map((key) => ({ request: { case: 'requestPut', value: { key, value } } }))
        m = await write({ note: 'wide txn', calls: [{ service: 'KV', method: 'txn', req: { success } }] }, step)
        bigSince = true
      } else {
        let s = gen.next()
        // Writes only (reads are random-ops' business), and no 1.5-2 MiB values through the WebSocket.
        for (
          let i = 0;
          i < 20 && (/^(range|timetolive|leases|hashkv)$/.test(s.note) || (door === 'ws' && s.note.startsWith('big')));
          i++
        )
          s = gen.next()
        if (door === 'ws' && s.note.startsWith('big')) continue
        if (s.note === 'compact') {
          // After large messages, the compaction waits until both streams sent everything before it (a checkpoint):
          // etcd's sendLoop sends one message at a time, blocking on each large one until the client has read most
          // of it, and reads each event's prev_kv only then; which watchers' messages of a wide revision go after a
          // compaction that follows it (without prev_kv, when it passed mod_revision - 1) depends on Go's map order
          // and on how fast the client reads (seed 9108 differed on different watchers run to run, session 11).
          if (bigSince) {
            m = await checkpoint(step, 'before a compaction after large events')
            if (m) return m
          }
          await settle()
        }
        m = await write(s, step)
        if (s.note.startsWith('big')) bigSince = true
      }
      if (m) return { ...m, door: `watch-${door}`, file }
      if (step % 25 === 24) {
        m = await checkpoint(step, `step ${step}`)
        if (m) return m
      }
    }
    await settle()
    return await checkpoint(steps, 'end')
  } finally {
    a.close()
    b.close()
  }
}
