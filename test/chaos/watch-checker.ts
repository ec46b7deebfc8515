/**
 * Checks etcd's watch guarantees (https://etcd.io/docs/v3.5/learning/api_guarantees/#watch-apis) on what the
 * watchers of a chaos run received, against the store's own history of the prefix read back after healing:
 *
 * - ordered: events arrive in revision order, within and across responses.
 * - unique: no event (key, revision) arrives twice, including across a resume.
 * - atomic: all events of one revision (a txn) arrive in one response.
 * - reliable: every event of a revision the watcher covered arrived, with the value the store holds; no event the
 *   store does not have. A session covers [start_revision, the highest event or progress revision it received].
 * - resumable: a watcher that lost its stream resumes from covered+1 on another member, with no loss or
 *   duplicate: the reliable and unique checks apply to every session and to their union.
 * - bookmarkable: progress notifications are monotonic and no event at or below one arrives after it.
 * - liveness after healing: every watcher covers the final revision.
 *
 * It also checks the store against the clients' history: every acknowledged write is in the store at its revision,
 * and every value in the store was written by some client.
 */
import type { Op, WatchEvent, Watcher } from './history.js'
import { sessionCovered } from './workload.js'

export type WatchViolationKind =
  | 'ordered'
  | 'unique'
  | 'atomic'
  | 'reliable'
  | 'bookmarkable'
  | 'liveness'
  | 'canceled'
  | 'durability'

export interface WatchViolation {
  kind: WatchViolationKind
  detail: string
}

const ek = (key: string, rev: number) => `${rev}/${key}`

/** Reads the prefix's history back: each key's chain of versions, walked down through range at a revision. */
export async function readReference(
  url: string,
  keys: string[],
  finalRevision: number,
  timeoutMs = 5000,
  versionsMax = 1_000_000,
): Promise<WatchEvent[]> {
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  const events: WatchEvent[] = []
  await Promise.all(
    keys.map(async (key) => {
      let rev = finalRevision
      for (let n = 0; n < versionsMax && rev > 0; n++) {
        // Serializable is enough: the member answered finalRevision itself, so it has applied everything below it.
        const r = await fetch(`${url}/v3/kv/range`, {
          method: 'POST',
          body: JSON.stringify({ key: b64(key), revision: String(rev), serializable: true }),
          signal: AbortSignal.timeout(timeoutMs),
        })
        const j = (await r.json()) as any
        if (r.status !== 200) throw new Error(`reference read of ${key}@${rev}: HTTP ${r.status} ${JSON.stringify(j)}`)
        const kv = j.kvs?.[0]
        if (!kv) break
        const modRevision = Number(kv.mod_revision)
        events.push({ key, value: Buffer.from(kv.value ?? '', 'base64').toString(), type: 'PUT', modRevision })
        if (Number(kv.version) <= 1) break
        rev = modRevision - 1
      }
    }),
  )
  events.sort((a, b) => a.modRevision - b.modRevision || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return events
}

/** Checks every watcher against the reference history (events up to finalRevision). */
export function checkWatches(watchers: Watcher[], reference: WatchEvent[], finalRevision: number): WatchViolation[] {
  const out: WatchViolation[] = []
  const ref = new Map(reference.map((e) => [ek(e.key, e.modRevision), e]))
  const refByRev = new Map<number, WatchEvent[]>()
  for (const e of reference) {
    const l = refByRev.get(e.modRevision)
    if (l) l.push(e)
    else refByRev.set(e.modRevision, [e])
  }
  for (const w of watchers) {
    const seen = new Map<string, string>() // event -> where it was seen, across sessions
    let covered = 0
    w.sessions.forEach((s, si) => {
      const where = (ri: number) =>
        `watcher ${w.id} session ${si} (member ${s.member}, from ${s.startRevision}) response ${ri}`
      const cov = Math.min(sessionCovered(s), finalRevision)
      covered = Math.max(covered, sessionCovered(s))
      let lastRev = 0
      let lastProgress = 0
      const responseOfRev = new Map<number, number>()
      const responseOfEvent = new Map<string, number>()
      s.responses.forEach((r, ri) => {
        if (r.canceled) out.push({ kind: 'canceled', detail: `${where(ri)}: the server canceled the watch` })
        if (r.events.length > 0 && !s.responses.slice(0, ri).some((x) => x.created))
          out.push({ kind: 'ordered', detail: `${where(ri)}: events before the created response` })
        if (r.progress) {
          if (r.headerRevision < lastProgress)
            out.push({
              kind: 'bookmarkable',
              detail: `${where(ri)}: progress revision ${r.headerRevision} after ${lastProgress}`,
            })
          if (r.headerRevision < lastRev)
            out.push({
              kind: 'bookmarkable',
              detail: `${where(ri)}: progress revision ${r.headerRevision} below an event already delivered at ${lastRev}`,
            })
          lastProgress = Math.max(lastProgress, r.headerRevision)
        }
        for (const e of r.events) {
          const id = ek(e.key, e.modRevision)
          if (e.modRevision <= lastProgress)
            out.push({
              kind: 'bookmarkable',
              detail: `${where(ri)}: event ${id} after a progress notification at ${lastProgress}`,
            })
          if (e.modRevision < lastRev)
            out.push({ kind: 'ordered', detail: `${where(ri)}: event ${id} after an event at ${lastRev}` })
          const prevResp = responseOfRev.get(e.modRevision)
          if (prevResp !== undefined && prevResp !== ri)
            out.push({
              kind: 'atomic',
              detail: `${where(ri)}: revision ${e.modRevision} split across responses ${prevResp} and ${ri}`,
            })
          responseOfRev.set(e.modRevision, ri)
          responseOfEvent.set(id, ri)
          lastRev = Math.max(lastRev, e.modRevision)
          if (e.modRevision < s.startRevision)
            out.push({
              kind: 'unique',
              detail: `${where(ri)}: event ${id} below the start revision ${s.startRevision} (duplicate on resume)`,
            })
          const before = seen.get(id)
          if (before) out.push({ kind: 'unique', detail: `${where(ri)}: event ${id} again (first in ${before})` })
          seen.set(id, where(ri))
          if (e.modRevision > finalRevision) continue
          const want = ref.get(id)
          if (!want)
            out.push({
              kind: 'reliable',
              detail: `${where(ri)}: event ${id} value ${JSON.stringify(e.value)} is not in the store's history`,
            })
          else if (want.value !== e.value || want.type !== e.type)
            out.push({
              kind: 'reliable',
              detail: `${where(ri)}: event ${id} has ${e.type} ${JSON.stringify(e.value)}, the store ${want.type} ${JSON.stringify(want.value)}`,
            })
        }
      })
      // Every event of a covered revision arrived, and all of one revision's events in one response.
      for (let rev = s.startRevision; rev <= cov; rev++) {
        const want = refByRev.get(rev)
        if (!want) continue
        let resp: number | undefined
        for (const e of want) {
          const ri = responseOfEvent.get(ek(e.key, rev))
          if (ri === undefined) {
            out.push({
              kind: 'reliable',
              detail: `watcher ${w.id} session ${si} (member ${s.member}, covered ${s.startRevision}..${cov}): missing event ${ek(e.key, rev)}`,
            })
            continue
          }
          if (resp !== undefined && resp !== ri)
            out.push({
              kind: 'atomic',
              detail: `watcher ${w.id} session ${si}: revision ${rev} split across responses ${resp} and ${ri}`,
            })
          resp = ri
        }
      }
    })
    if (covered < finalRevision)
      out.push({
        kind: 'liveness',
        detail: `watcher ${w.id} covered only up to ${covered} of ${finalRevision} after healing (${w.sessions.length} sessions, last ended: ${w.sessions.at(-1)?.end ?? 'open'})`,
      })
  }
  return out
}

/** Every acknowledged write is in the store at its revision; every value in the store was written by a client. */
export function checkDurability(ops: Op[], reference: WatchEvent[], finalRevision: number): WatchViolation[] {
  const out: WatchViolation[] = []
  const ref = new Map(reference.map((e) => [ek(e.key, e.modRevision), e]))
  const written = new Set<string>()
  for (const op of ops) {
    if (op.status === 'fail' || op.value === undefined) continue
    written.add(op.value)
    for (const [, v] of op.more ?? []) written.add(v)
    if (op.status !== 'ok' || op.rev === undefined || op.rev > finalRevision) continue
    if (op.f === 'cas' && !op.succeeded) continue
    const pairs: [string, string][] = [[op.key, op.value], ...(op.more ?? [])]
    for (const [k, v] of pairs) {
      const e = ref.get(ek(k, op.rev))
      if (!e || e.value !== v)
        out.push({
          kind: 'durability',
          detail: `acknowledged op ${op.id} (${op.f} ${k}=${JSON.stringify(v)} at ${op.rev}) is not in the store: ${e ? JSON.stringify(e.value) : 'nothing'} there`,
        })
    }
  }
  for (const e of reference)
    if (!written.has(e.value))
      out.push({
        kind: 'durability',
        detail: `the store holds ${e.key}=${JSON.stringify(e.value)} at ${e.modRevision}, which no client wrote`,
      })
  return out
}
