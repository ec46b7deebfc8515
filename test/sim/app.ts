/**
 * The application state machine each simulated node runs: a tiny key-value map plus a hash chain over every entry
 * applied so far (index, term, type, data). Two nodes that applied the same entries in the same order have the same
 * chain, so comparing one number per index checks state machine safety, and a snapshot carries its chain so that a
 * node restored from it can be checked too.
 */
import { type Entry, EntryType } from '../../src/raft/types.js'
import { mix, mixBytes, mixNum } from './hash.js'

export interface AppState {
  /** The index of the last entry applied (or of the snapshot restored). */
  applied: number
  /** Hash chain over every entry up to `applied`. */
  chain: number
  /** Normal entries are `key=value` and set the key. */
  kv: Map<string, string>
  /** Members whose removal was applied: the transport refuses to talk to them (etcd's rafthttp drops a removed
   * member's messages; its membership store persists with the state machine). */
  removed: Set<string>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function emptyApp(): AppState {
  return { applied: 0, chain: 0, kv: new Map(), removed: new Set() }
}

/** The identity of an entry: everything state machine safety compares. */
export function entryHash(e: Entry): number {
  return mixBytes(mix(mixNum(mixNum(0x5bd1e995, e.index), e.term), e.type), e.data)
}

export function nextChain(chain: number, e: Entry): number {
  return mix(chain, entryHash(e))
}

/** The payload of a client proposal: sets `key` to `value` (values are unique per run, so duplicates show). */
export function proposalData(key: string, value: string): Uint8Array {
  return encoder.encode(`${key}=${value}`)
}

/** Applies one entry; the caller has checked it is the next one. */
export function applyEntry(app: AppState, e: Entry): void {
  app.applied = e.index
  app.chain = nextChain(app.chain, e)
  if (e.type === EntryType.EntryNormal && e.data.byteLength > 0) {
    const text = decoder.decode(e.data)
    const eq = text.indexOf('=')
    if (eq > 0) app.kv.set(text.slice(0, eq), text.slice(eq + 1))
  }
}

interface EncodedApp {
  applied: number
  chain: number
  kv: [string, string][]
  removed: string[]
}

/** The snapshot payload: the whole app state as JSON (small by construction). */
export function encodeApp(app: AppState): Uint8Array {
  const doc: EncodedApp = { applied: app.applied, chain: app.chain, kv: [...app.kv], removed: [...app.removed] }
  return encoder.encode(JSON.stringify(doc))
}

export function decodeApp(data: Uint8Array): AppState {
  const doc = JSON.parse(decoder.decode(data)) as EncodedApp
  return { applied: doc.applied, chain: doc.chain, kv: new Map(doc.kv), removed: new Set(doc.removed) }
}
