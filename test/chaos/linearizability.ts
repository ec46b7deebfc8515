/**
 * A linearizability checker for histories of single-key operations on a key-value store (put, get, compare-and-set),
 * after Wing & Gong (1993) with Lowe's improvements ("Testing for linearizability", 2017), organised as Porcupine
 * (anishathalye/porcupine) and Knossos do it:
 *
 * - P-compositionality: a history of single-key operations is linearizable iff each key's sub-history is
 *   (Herlihy & Wing, locality), so every key is searched alone. A multi-key put txn is checked as one put per key;
 *   that is a necessary condition only (it cannot see a txn torn across keys; the watch checker's atomicity does).
 * - The search walks the history's call/return events in time order, tries to linearize each call whose return has
 *   not yet passed, and backtracks when it reaches a return whose call is still pending.
 * - Memoisation: a (set of linearized operations, model state) pair that was reached before cannot lead anywhere
 *   new, so it is not explored twice (Lowe's cache).
 * - Unknown outcomes (timeouts, broken connections) return at +infinity and accept any output: they may take effect
 *   at any point after their invocation, or never (linearized last, where nothing observes them).
 * - Bounded: past `stepsMax` steps a key's search stops with `unknown` instead of hanging.
 *
 * The model is a register per key whose state is the value (null: absent). Values are unique per write, so each
 * value has one mod_revision, learned from the responses (a put's header revision, a get's mod_revision). That
 * lets the model also check that writes linearize in revision order and evaluate compares on MOD revision.
 */
import type { Op } from './history.js'

export type Verdict = 'ok' | 'violation' | 'unknown'

export interface KeyResult {
  key: string
  verdict: Verdict
  /** Operations searched (fail outcomes and unknown reads are dropped first). */
  ops: number
  steps: number
  /** For a violation: why, in words, with the operations involved. */
  detail?: string
}

export interface CheckResult {
  verdict: Verdict
  keys: KeyResult[]
  ops: number
  steps: number
}

export interface CheckOptions {
  /** Search steps allowed per key before the key's verdict is `unknown`. */
  stepsMax?: number
}

export const checkStepsMaxDefault = 2_000_000

type State = string | null

/** Per-key facts learned from responses: the mod_revision of each value, and the reverse. */
interface Revisions {
  revOf: Map<string, number>
  valueAt: Map<number, string>
}

/** One operation of a key's sub-history, as the search sees it. */
interface KOp {
  op: Op
  f: 'put' | 'get' | 'cas'
  value?: string
  call: number
  ret: number
}

/** Splits ops by key, expanding multi-key puts into one put per key, dropping what cannot constrain the search. */
export function partitionByKey(ops: Op[]): Map<string, KOp[]> {
  const byKey = new Map<string, KOp[]>()
  const add = (key: string, k: KOp) => {
    const l = byKey.get(key)
    if (l) l.push(k)
    else byKey.set(key, [k])
  }
  for (const op of ops) {
    // A failed operation did not happen; a read with an unknown outcome observed nothing.
    if (op.status === 'fail') continue
    if (op.status === 'unknown' && op.f === 'get') continue
    if (op.status === 'unknown' && op.f === 'cas' && op.cmp === 'mod' && op.expectRev === undefined) continue
    const ret = op.status === 'unknown' ? Number.POSITIVE_INFINITY : (op.ret ?? Number.POSITIVE_INFINITY)
    if (op.f === 'mput') {
      add(op.key, { op, f: 'put', value: op.value!, call: op.call, ret })
      for (const [k, v] of op.more ?? []) add(k, { op, f: 'put', value: v, call: op.call, ret })
    } else {
      add(op.key, { op, f: op.f, value: op.value, call: op.call, ret })
    }
  }
  return byKey
}

/** Learns each value's mod_revision; two revisions for one value, or two values at one revision, are violations. */
function learnRevisions(key: string, ops: KOp[]): Revisions | string {
  const revOf = new Map<string, number>()
  const valueAt = new Map<number, string>()
  const learn = (value: string, rev: number, op: Op): string | undefined => {
    const r = revOf.get(value)
    if (r !== undefined && r !== rev)
      return `value ${JSON.stringify(value)} of ${key} seen at mod_revision ${r} and ${rev} (op ${op.id})`
    const v = valueAt.get(rev)
    if (v !== undefined && v !== value)
      return `${key} holds two values at mod_revision ${rev}: ${JSON.stringify(v)} and ${JSON.stringify(value)} (op ${op.id})`
    revOf.set(value, rev)
    valueAt.set(rev, value)
    return undefined
  }
  for (const k of ops) {
    const op = k.op
    if (op.status !== 'ok') continue
    let err: string | undefined
    if (k.f === 'put' && op.rev !== undefined) err = learn(k.value!, op.rev, op)
    else if (k.f === 'cas' && op.succeeded && op.rev !== undefined) err = learn(k.value!, op.rev, op)
    else if (k.f === 'get' && op.readValue != null && op.readRev !== undefined)
      err = learn(op.readValue, op.readRev, op)
    if (err) return err
  }
  return { revOf, valueAt }
}

/** The register model: the state after `k` is applied to `s`, or undefined when `k`'s outcome is impossible in `s`. */
function step(s: State, k: KOp, revs: Revisions): State | undefined {
  const op = k.op
  const revOfState = s === null ? 0 : revs.revOf.get(s)
  /** A write must land on a later revision than the value it overwrites (when both are known). */
  const write = (v: string): State | undefined => {
    const r = revs.revOf.get(v)
    if (r !== undefined && revOfState !== undefined && r <= revOfState) return undefined
    return v
  }
  switch (k.f) {
    case 'put':
      return write(k.value!)
    case 'get':
      return (op.readValue ?? null) === s ? s : undefined
    case 'cas': {
      // etcd: a VALUE compare on a missing key is false; a MOD compare on a missing key sees mod_revision 0. A value
      // whose revision was never observed cannot hold the (observed) revision the client compares against.
      const holds =
        op.cmp === 'mod' ? revOfState !== undefined && revOfState === op.expectRev : s !== null && s === op.expectValue
      if (op.status === 'unknown') return holds ? write(k.value!) : s
      if (op.succeeded) return holds ? write(k.value!) : undefined
      return holds ? undefined : s
    }
  }
}

const show = (s: State) => (s === null ? '<absent>' : JSON.stringify(s))

/** Describes an operation for a report. */
export function describeOp(op: Op): string {
  const t = `[${op.call.toFixed(1)}, ${op.ret === undefined ? '?' : op.ret.toFixed(1)}] client ${op.client} member ${op.member ?? '?'}`
  const out =
    op.status !== 'ok'
      ? op.status
      : op.f === 'get'
        ? `-> ${show(op.readValue ?? null)}@${op.readRev}`
        : op.f === 'cas'
          ? `-> ${op.succeeded ? 'succeeded' : 'failed'}${op.rev !== undefined ? `@${op.rev}` : ''}`
          : `-> ok@${op.rev}`
  const what =
    op.f === 'get'
      ? `get ${op.key}`
      : op.f === 'cas'
        ? `cas ${op.key} if ${op.cmp === 'mod' ? `mod_revision=${op.expectRev}` : `value=${JSON.stringify(op.expectValue)}`} put ${JSON.stringify(op.value)}`
        : op.f === 'mput'
          ? `mput ${op.key}=${JSON.stringify(op.value)} ${(op.more ?? []).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`
          : `put ${op.key}=${JSON.stringify(op.value)}`
  return `op ${op.id} ${t}: ${what} ${out}`
}

interface Entry {
  call: boolean
  /** Index into the key's op list. */
  i: number
  time: number
  match?: Entry
  prev?: Entry
  next?: Entry
}

/** Searches one key's sub-history. */
export function checkKey(key: string, ops: KOp[], opts: CheckOptions = {}): KeyResult {
  const stepsMax = opts.stepsMax ?? checkStepsMaxDefault
  const revs = learnRevisions(key, ops)
  if (typeof revs === 'string') return { key, verdict: 'violation', ops: ops.length, steps: 0, detail: revs }

  // Events in time order; at equal times calls come first, so touching operations count as concurrent (the
  // conservative choice: it can only admit more orders).
  const events: Entry[] = []
  ops.forEach((k, i) => {
    const c: Entry = { call: true, i, time: k.call }
    const r: Entry = { call: false, i, time: k.ret }
    c.match = r
    events.push(c, r)
  })
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? a.i - b.i : a.call ? -1 : 1))
  const head: Entry = { call: false, i: -1, time: Number.NEGATIVE_INFINITY }
  let prev = head
  for (const e of events) {
    prev.next = e
    e.prev = prev
    prev = e
  }
  const lift = (e: Entry) => {
    e.prev!.next = e.next
    if (e.next) e.next.prev = e.prev
    const m = e.match!
    m.prev!.next = m.next
    if (m.next) m.next.prev = m.prev
  }
  const unlift = (e: Entry) => {
    const m = e.match!
    m.prev!.next = m
    if (m.next) m.next.prev = m
    e.prev!.next = e
    if (e.next) e.next.prev = e
  }

  const words = Math.ceil(ops.length / 16) || 1
  const linearized = new Uint16Array(words)
  const seen = new Set<string>()
  const memoKey = (s: State) => String.fromCharCode(...linearized) + (s === null ? '\u0001' : `\u0002${s}`)
  const stack: { e: Entry; s: State }[] = []
  let state: State = null
  let steps = 0
  let deepest = -1
  let blocked: { e: Entry; s: State; done: number } | undefined

  let e = head.next
  while (head.next) {
    if (++steps > stepsMax)
      return { key, verdict: 'unknown', ops: ops.length, steps, detail: `search stopped after ${stepsMax} steps` }
    if (!e) throw new Error('linearizability: ran off the event list') // a return always follows its call
    if (e.call) {
      const next = step(state, ops[e.i]!, revs)
      if (next !== undefined) {
        linearized[e.i >> 4]! |= 1 << (e.i & 15)
        const k = memoKey(next)
        if (!seen.has(k)) {
          seen.add(k)
          stack.push({ e, s: state })
          state = next
          lift(e)
          e = head.next
          continue
        }
        linearized[e.i >> 4]! &= ~(1 << (e.i & 15))
      }
      e = e.next
    } else {
      // A return whose call is not linearized yet: this branch cannot work, undo the last choice.
      if (stack.length > deepest) {
        deepest = stack.length
        blocked = { e, s: state, done: stack.length }
      }
      const top = stack.pop()
      if (!top) break
      state = top.s
      linearized[top.e.i >> 4]! &= ~(1 << (top.e.i & 15))
      unlift(top.e)
      e = top.e.next
    }
  }
  if (!head.next) return { key, verdict: 'ok', ops: ops.length, steps }
  return { key, verdict: 'violation', ops: ops.length, steps, detail: explain(key, ops, blocked) }
}

/** Names the operation that could not be linearized at the deepest point the search reached, with its neighbours. */
function explain(key: string, ops: KOp[], blocked: { e: Entry; s: State; done: number } | undefined): string {
  if (!blocked) return `${key}: no linearization`
  const k = ops[blocked.e.i]!
  const lines = [
    `${key}: no linearization; the deepest attempt placed ${blocked.done} of ${ops.length} operations, the register then held ${show(blocked.s)}, and this operation could not be placed before it returned:`,
    `  ${describeOp(k.op)}`,
    'operations overlapping it or just before it:',
  ]
  const near = ops
    .filter((o) => o !== k && o.call <= k.ret && o.ret >= k.call - 50)
    .sort((a, b) => a.call - b.call)
    .slice(0, 20)
  for (const o of near) lines.push(`  ${describeOp(o.op)}`)
  return lines.join('\n')
}

/** Checks a whole history: each key alone, the worst verdict wins (violation, then unknown). */
export function checkLinearizable(ops: Op[], opts: CheckOptions = {}): CheckResult {
  const keys: KeyResult[] = []
  for (const [key, kops] of partitionByKey(ops)) keys.push(checkKey(key, kops, opts))
  keys.sort((a, b) => (a.key < b.key ? -1 : 1))
  const verdict: Verdict = keys.some((k) => k.verdict === 'violation')
    ? 'violation'
    : keys.some((k) => k.verdict === 'unknown')
      ? 'unknown'
      : 'ok'
  return { verdict, keys, ops: keys.reduce((n, k) => n + k.ops, 0), steps: keys.reduce((n, k) => n + k.steps, 0) }
}
