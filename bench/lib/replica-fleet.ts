/**
 * A fleet of Node replicas (memory storage) in a worker thread, for the replica bench's fan-out part: the replicas'
 * work (WebSocket frames, JSON, applying events) stays off the thread that generates the write load.
 *
 * Messages in:  { type: 'open', url, prefix, count, perClient, coalesceMs }  opens `count` replicas (`perClient`
 *                                                                 share one client: one HTTP pool and one WebSocket
 *                                                                 watch stream; `coalesceMs` their watch's window,
 *                                                                 undefined: the replica's default)
 *               { type: 'await', target, timeoutMs }              answers once every replica reflects `target`
 *               { type: 'close' }
 *               { type: 'count' }                                 answers the counts since the last 'count', and resets them
 * Messages out: { type: 'opened', secs } | { type: 'reached', at, behind } | { type: 'closed' } | { type: 'error' }
 *               | { type: 'counted', messages, changes }: watch messages (frames) received and changes they carried
 *               | { type: 'thread', stat }: sent once at start, `stat` is this thread's /proc/<pid>/task/<tid>/stat path,
 *                 which the bench reads to count the replicas' CPU apart from the load generator's
 * Times (`at`) are performance.timeOrigin + performance.now(), comparable across threads.
 */
import { readlinkSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import WsWebSocket from 'ws'
import { Client } from '../../src/client/index.js'
import { openReplica, type Replica } from '../../src/replica/index.js'

const now = () => performance.timeOrigin + performance.now()

interface Tracked {
  r: Replica
  /** The last revisions the replica reached and when (newest last, a few kept). */
  seen: { rev: number; at: number }[]
}

/** Watch messages (WebSocket frames) the fleet received, and the changes they carried, since the last 'count'. */
const counts = { messages: 0, changes: 0 }

const kvTag = Buffer.from('"kv":')

/**
 * The ws package's WebSocket, counting the frames it receives (one per watch message) and the events in them (a
 * native search for `"kv":`, well under a µs: the subscriber's batches merge a key's revisions of one message, so
 * they do not count the changes the member sent).
 */
class WebSocket extends WsWebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols)
    this.on('message', (data: Buffer) => {
      counts.messages++
      if (!Buffer.isBuffer(data)) return
      for (let at = data.indexOf(kvTag); at >= 0; at = data.indexOf(kvTag, at + 5)) counts.changes++
    })
  }
}

const fleet: Tracked[] = []
const clients: Client[] = []

async function open(
  url: string,
  prefix: string,
  count: number,
  perClient: number,
  coalesceMs: number | undefined,
): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
        const n = i + j
        let client: Client | undefined
        if (perClient > 1) {
          if (n % perClient === 0)
            clients.push(new Client({ endpoints: [url], WebSocket, dialTimeoutMs: 10_000, commandTimeoutMs: 60_000 }))
          client = clients[Math.floor(n / perClient)]
        }
        const r = await openReplica({
          endpoint: url,
          prefix,
          WebSocket,
          openTimeoutMs: 300_000,
          ...(coalesceMs !== undefined ? { coalesceMs } : {}),
          ...(client ? { client } : {}),
        })
        const t: Tracked = { r, seen: [{ rev: r.status.revision, at: now() }] }
        r.watch({ prefix }, (c) => {
          t.seen.push({ rev: c.revision, at: now() })
          if (t.seen.length > 16) t.seen.splice(0, 8)
        })
        return t
      }),
    )
    fleet.push(...batch)
  }
  return (performance.now() - t0) / 1000
}

/** When every replica first reflected `target` (waiting up to timeoutMs), and how many never did. */
async function awaitTarget(target: number, timeoutMs: number): Promise<{ at: number; behind: number }> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline && fleet.some((t) => t.r.status.revision < target))
    await new Promise((r) => setTimeout(r, 1))
  let at = 0
  let behind = 0
  for (const t of fleet) {
    if (t.r.status.revision < target) {
      behind++
      continue
    }
    // The first time it was at or above the target (the event of the target itself, or a progress after it).
    const first = t.seen.find((s) => s.rev >= target)
    at = Math.max(at, first?.at ?? now())
  }
  return { at, behind }
}

// The replicas' own CPU (this thread's), apart from the load generator on the main thread: Linux only.
try {
  parentPort!.postMessage({ type: 'thread', stat: `/proc/${readlinkSync('/proc/thread-self')}/stat` })
} catch {}

parentPort!.on('message', (m: { type: string; [k: string]: unknown }) => {
  const reply = (x: unknown) => parentPort!.postMessage(x)
  const fail = (e: unknown) => reply({ type: 'error', message: String((e as Error)?.stack ?? e) })
  if (m.type === 'open')
    open(
      m.url as string,
      m.prefix as string,
      m.count as number,
      (m.perClient as number) || 1,
      m.coalesceMs as number | undefined,
    ).then((secs) => reply({ type: 'opened', secs }), fail)
  else if (m.type === 'await')
    awaitTarget(m.target as number, m.timeoutMs as number).then((x) => reply({ type: 'reached', ...x }), fail)
  else if (m.type === 'count') {
    reply({ type: 'counted', ...counts })
    counts.messages = 0
    counts.changes = 0
  } else if (m.type === 'close')
    (async () => {
      for (const t of fleet.splice(0)) await t.r.close().catch(() => {})
      for (const c of clients.splice(0)) c.close()
      reply({ type: 'closed' })
    })().catch(fail)
})
