/** Small builders for the KV tests: string keys in, string keys out, etcd's request defaults filled in. */

import type { KvConfig } from '../../src/kv/config.js'
import { KvStore } from '../../src/kv/store.js'
import type { WatchSink } from '../../src/kv/watch.js'
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  defaultDeleteRangeRequest,
  defaultPutRequest,
  defaultRangeRequest,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
  type WatchCreateRequest,
  type WatchResponse,
} from '../../src/protocol/types.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

export const b = (s: string): Uint8Array => enc.encode(s)
export const str = (u: Uint8Array): string => dec.decode(u)

export function newStore(config: Partial<KvConfig> = {}): KvStore {
  return new KvStore(config)
}

export function putReq(key: string, value = '', fields: Partial<PutRequest> = {}): PutRequest {
  return defaultPutRequest({ key: b(key), value: b(value), ...fields })
}

export function put(s: KvStore, key: string, value = '', fields: Partial<PutRequest> = {}) {
  return s.apply({ put: putReq(key, value, fields) })
}

export function delReq(key: string, rangeEnd = '', fields: Partial<DeleteRangeRequest> = {}): DeleteRangeRequest {
  return defaultDeleteRangeRequest({ key: b(key), range_end: b(rangeEnd), ...fields })
}

export function del(s: KvStore, key: string, rangeEnd = '', fields: Partial<DeleteRangeRequest> = {}) {
  return s.apply({ delete_range: delReq(key, rangeEnd, fields) })
}

export function rangeReq(key: string, rangeEnd = '', fields: Partial<RangeRequest> = {}): RangeRequest {
  return defaultRangeRequest({ key: b(key), range_end: b(rangeEnd), ...fields })
}

export function get(s: KvStore, key: string, rangeEnd = '', fields: Partial<RangeRequest> = {}) {
  return s.range(rangeReq(key, rangeEnd, fields))
}

/** The keys of a range answer, as strings. */
export function keysOf(kvs: KeyValue[]): string[] {
  return kvs.map((kv) => str(kv.key))
}

/** A KeyValue summarised as [key, value, create, mod, version]. */
export function kvTuple(kv: KeyValue | undefined): [string, string, number, number, number] | undefined {
  return kv === undefined ? undefined : [str(kv.key), str(kv.value), kv.create_revision, kv.mod_revision, kv.version]
}

export function cmp(
  key: string,
  target: CompareTarget,
  result: CompareResult,
  value: number | string | bigint,
  rangeEnd = '',
): Compare {
  const c: Compare = { key: b(key), target, result, range_end: b(rangeEnd) }
  if (target === CompareTarget.VALUE) c.value = b(String(value))
  else if (target === CompareTarget.VERSION) c.version = Number(value)
  else if (target === CompareTarget.CREATE) c.create_revision = Number(value)
  else if (target === CompareTarget.MOD) c.mod_revision = Number(value)
  else c.lease = BigInt(value)
  return c
}

export const opPut = (key: string, value = '', fields: Partial<PutRequest> = {}): RequestOp => ({
  request_put: putReq(key, value, fields),
})
export const opDel = (key: string, rangeEnd = '', fields: Partial<DeleteRangeRequest> = {}): RequestOp => ({
  request_delete_range: delReq(key, rangeEnd, fields),
})
export const opGet = (key: string, rangeEnd = '', fields: Partial<RangeRequest> = {}): RequestOp => ({
  request_range: rangeReq(key, rangeEnd, fields),
})
export const opTxn = (t: Partial<TxnRequest>): RequestOp => ({ request_txn: txnReq(t) })

export function txnReq(t: Partial<TxnRequest>): TxnRequest {
  return { compare: [], success: [], failure: [], ...t }
}

export function txn(s: KvStore, t: Partial<TxnRequest>) {
  return s.apply({ txn: txnReq(t) })
}

export { CompareResult, CompareTarget }

export function watchReq(key: string, rangeEnd = '', fields: Partial<WatchCreateRequest> = {}): WatchCreateRequest {
  return {
    key: b(key),
    range_end: b(rangeEnd),
    start_revision: 0,
    progress_notify: false,
    filters: [],
    prev_kv: false,
    watch_id: 0,
    fragment: false,
    ...fields,
  }
}

/** A sink that records every message and reports congestion when `congested` is set. */
export class RecordingSink implements WatchSink {
  readonly messages: WatchResponse[] = []
  congested = false
  send(resp: WatchResponse): boolean {
    this.messages.push(resp)
    return !this.congested
  }
  /** Every event delivered, as "PUT key=value@rev" / "DELETE key@rev". */
  events(): string[] {
    return this.messages.flatMap((m) =>
      m.events.map((e) =>
        e.type === 0
          ? `PUT ${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.mod_revision}`
          : `DELETE ${str(e.kv.key)}@${e.kv.mod_revision}`,
      ),
    )
  }
  clear(): void {
    this.messages.length = 0
  }
}

/** Asserts fn throws an EtcdError with this code. */
export function etcdCode(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  }
  return 'no error'
}

/** A seeded xorshift32 generator of numbers in [0, 1): the seeded scripts of the watch tests (print the seed on failure). */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
}

/** A seeded xorshift32 generator of integers in [0, n): the seeded brute-force checks (print the seed on failure). */
export function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1
  return (n: number) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

/** A virtual clock for a store's watch hub: `advance` runs the timers that came due, in order. */
export function virtualClock(s: KvStore) {
  let now = 0
  const timers: { at: number; fn: () => void }[] = []
  s.watchHub.now = () => now
  s.watchHub.setTimer = (fn, ms) => {
    timers.push({ at: now + ms, fn })
  }
  return {
    get now() {
      return now
    },
    /** Timers waiting. */
    get pending() {
      return timers.length
    },
    advance(ms: number) {
      const end = now + ms
      for (;;) {
        timers.sort((x, y) => x.at - y.at)
        const t = timers[0]
        if (t === undefined || t.at > end) break
        timers.shift()
        now = Math.max(now, t.at)
        t.fn()
      }
      now = end
    },
  }
}

export const revsOf = (m: WatchResponse) => m.events.map((e) => e.kv.mod_revision)
export const eventMessages = (k: RecordingSink, id = 0) =>
  k.messages.filter((m) => m.watch_id === id && m.events.length > 0)
