/**
 * etcd's v3lock and v3election services on the member. etcd implements them server-side with its own client and
 * the clientv3/concurrency recipes (Mutex, Election) over a session orphaned at once (no keep-alive: the caller's
 * lease lives as long as the caller keeps it alive). This is the same algorithm over member calls: the same keys
 * (`<name>/<lease in hex>`), the same txns, the same waits for the deletion of every earlier key, the same errors.
 */

import type { AuthInfo } from '../../auth/store.js'
import type { MemberApi } from '../../etcdserver/api.js'
import { etcdError, GrpcCode } from '../../protocol/errors.js'
import {
  defaultPutRequest,
  defaultRangeRequest,
  EventType,
  type KeyValue,
  type RangeRequest,
  type ResponseHeader,
  SortOrder,
  SortTarget,
  type TxnResponse,
  type WatchResponse,
} from '../../protocol/types.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

/** etcd's clientv3 prefix end: the key with its last byte below 0xff incremented, or "\0" (everything). */
function prefixEnd(key: Uint8Array): Uint8Array {
  const end = key.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++
      return end.subarray(0, i + 1)
    }
  }
  return new Uint8Array([0])
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** etcd's plain Go errors of the recipes, which gRPC answers with code Unknown. */
const errNotLeader = () => etcdError(GrpcCode.Unknown, 'election: not leader')
const errNoLeader = () => etcdError(GrpcCode.Unknown, 'election: no leader')
const errMissingLeaderKey = () => etcdError(GrpcCode.Unknown, '"leader" field must be provided')

export interface LeaderKey {
  name: Uint8Array
  key: Uint8Array
  rev: number
  lease: bigint
}

export interface ConcurrencyApi {
  lock(
    req: { name: Uint8Array; lease: bigint },
    info: AuthInfo | undefined,
    signal: AbortSignal,
  ): Promise<{ header: ResponseHeader; key: Uint8Array }>
  unlock(req: { key: Uint8Array }, info: AuthInfo | undefined): Promise<{ header?: ResponseHeader }>
  campaign(
    req: { name: Uint8Array; lease: bigint; value: Uint8Array },
    info: AuthInfo | undefined,
    signal: AbortSignal,
  ): Promise<{ header?: ResponseHeader; leader: LeaderKey }>
  proclaim(
    req: { leader?: LeaderKey; value: Uint8Array },
    info: AuthInfo | undefined,
  ): Promise<{ header?: ResponseHeader }>
  leader(req: { name: Uint8Array }): Promise<{ header?: ResponseHeader; kv: KeyValue }>
  resign(req: { leader?: LeaderKey }, info: AuthInfo | undefined): Promise<{ header?: ResponseHeader }>
  observe(req: { name: Uint8Array }, signal: AbortSignal): AsyncGenerator<{ header?: ResponseHeader; kv: KeyValue }>
}

/** The lock and election services over a member. */
export function memberConcurrency(member: MemberApi): ConcurrencyApi {
  /** The first (oldest-created) or last key under `pfx`, optionally created at or before `maxCreate`. */
  const ownerQuery = (pfx: Uint8Array, order: SortOrder, maxCreate = 0): RangeRequest =>
    defaultRangeRequest({
      key: pfx,
      range_end: prefixEnd(pfx),
      limit: 1,
      sort_order: order,
      sort_target: SortTarget.CREATE,
      max_create_revision: maxCreate,
    })

  /** Watches `key` (a prefix when `prefix`) from `rev`, yielding each response until the signal aborts. */
  async function* watch(
    key: Uint8Array,
    rev: number,
    prefix: boolean,
    signal: AbortSignal,
  ): AsyncGenerator<WatchResponse> {
    const queue: WatchResponse[] = []
    let wake: (() => void) | undefined
    const stream = member.openWatchStream((r) => {
      queue.push(r)
      wake?.()
      return true
    })
    const onAbort = () => wake?.()
    signal.addEventListener('abort', onAbort)
    try {
      stream.request({
        create_request: {
          key,
          range_end: prefix ? prefixEnd(key) : new Uint8Array(0),
          start_revision: rev,
          progress_notify: false,
          filters: [],
          prev_kv: false,
          watch_id: 0,
          fragment: false,
        },
      })
      for (;;) {
        while (queue.length > 0) {
          const r = queue.shift()!
          if (r.canceled) {
            if (r.compact_revision > 0)
              throw etcdError(GrpcCode.OutOfRange, 'etcdserver: mvcc: required revision has been compacted')
            throw etcdError(GrpcCode.Canceled, r.cancel_reason || 'watch canceled')
          }
          if (!r.created) yield r
        }
        if (signal.aborted) throw etcdError(GrpcCode.Canceled, 'context canceled')
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        wake = undefined
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
      stream.close()
    }
  }

  /** clientv3/concurrency waitDeletes: waits until no key under `pfx` created at or before `maxCreate` is left. */
  async function waitDeletes(pfx: Uint8Array, maxCreate: number, signal: AbortSignal): Promise<ResponseHeader> {
    for (;;) {
      const resp = await member.range(ownerQuery(pfx, SortOrder.DESCEND, maxCreate))
      const last = resp.kvs[0]
      if (!last) return resp.header!
      // waitDelete: the last earlier key's deletion, watched from the revision just read.
      for await (const wr of watch(last.key, resp.header!.revision, false, signal)) {
        if (wr.events.some((e) => e.type === EventType.DELETE)) break
      }
    }
  }

  /** A session as etcd's servers make one: the caller's lease, or a new 60 s lease when none is given. */
  async function sessionLease(lease: bigint): Promise<bigint> {
    if (lease !== 0n) return lease
    const g = await member.leaseGrant({ TTL: 60, ID: 0n })
    return g.ID
  }

  async function deleteKey(key: Uint8Array, info: AuthInfo | undefined) {
    return member.deleteRange({ key, range_end: new Uint8Array(0), prev_kv: false }, info)
  }

  const get = (key: Uint8Array) => ({ request_range: defaultRangeRequest({ key }) })

  return {
    async lock(req, info, signal) {
      const lease = await sessionLease(req.lease)
      const pfx = concat(req.name, enc.encode('/'))
      const myKey = concat(pfx, enc.encode(lease.toString(16)))
      const owner = { request_range: ownerQuery(pfx, SortOrder.ASCEND) }
      const resp: TxnResponse = await member.txn(
        {
          compare: [{ result: 0, target: 1, key: myKey, create_revision: 0, range_end: new Uint8Array(0) }],
          success: [{ request_put: defaultPutRequest({ key: myKey, lease }) }, owner],
          failure: [get(myKey), owner],
        },
        info,
      )
      let myRev = resp.header!.revision
      if (!resp.succeeded) myRev = resp.responses[0]!.response_range!.kvs[0]!.create_revision
      const ownerKvs = resp.responses[1]!.response_range!.kvs
      if (ownerKvs.length === 0 || ownerKvs[0]!.create_revision === myRev) return { header: resp.header!, key: myKey }
      try {
        const header = await waitDeletes(pfx, myRev - 1, signal)
        return { header, key: myKey }
      } catch (err) {
        await deleteKey(myKey, info).catch(() => undefined)
        throw err
      }
    },

    async unlock(req, info) {
      const r = await deleteKey(req.key, info)
      return { header: r.header }
    },

    async campaign(req, info, signal) {
      const lease = await sessionLease(req.lease)
      const pfx = concat(req.name, enc.encode('/'))
      const key = concat(pfx, enc.encode(lease.toString(16)))
      const resp = await member.txn(
        {
          compare: [{ result: 0, target: 1, key, create_revision: 0, range_end: new Uint8Array(0) }],
          success: [{ request_put: defaultPutRequest({ key, value: req.value, lease }) }],
          failure: [get(key)],
        },
        info,
      )
      let rev = resp.header!.revision
      const leader: LeaderKey = { name: req.name, key, rev, lease }
      if (!resp.succeeded) {
        const kv = resp.responses[0]!.response_range!.kvs[0]!
        rev = kv.create_revision
        leader.rev = rev
        if (dec.decode(kv.value) !== dec.decode(req.value)) {
          try {
            await this.proclaim({ leader, value: req.value }, info)
          } catch (err) {
            await this.resign({ leader }, info).catch(() => undefined)
            throw err
          }
        }
      }
      try {
        await waitDeletes(pfx, rev - 1, signal)
      } catch (err) {
        if (signal.aborted) await this.resign({ leader }, info).catch(() => undefined)
        throw err
      }
      return { header: resp.header!, leader }
    },

    async proclaim(req, info) {
      const l = req.leader
      if (!l) throw errMissingLeaderKey()
      const resp = await member.txn(
        {
          compare: [{ result: 0, target: 1, key: l.key, create_revision: l.rev, range_end: new Uint8Array(0) }],
          success: [{ request_put: defaultPutRequest({ key: l.key, value: req.value, ignore_lease: true }) }],
          failure: [],
        },
        info,
      )
      if (!resp.succeeded) throw errNotLeader()
      return { header: resp.header }
    },

    async leader(req) {
      const pfx = concat(req.name, enc.encode('/'))
      const resp = await member.range(ownerQuery(pfx, SortOrder.ASCEND))
      const kv = resp.kvs[0]
      if (!kv) throw errNoLeader()
      return { header: resp.header, kv }
    },

    async resign(req, info) {
      const l = req.leader
      if (!l) throw errMissingLeaderKey()
      const resp = await member.txn(
        {
          compare: [{ result: 0, target: 1, key: l.key, create_revision: l.rev, range_end: new Uint8Array(0) }],
          success: [{ request_delete_range: { key: l.key, range_end: new Uint8Array(0), prev_kv: false } }],
          failure: [],
        },
        info,
      )
      return { header: resp.header }
    },

    async *observe(req, signal) {
      const pfx = concat(req.name, enc.encode('/'))
      while (!signal.aborted) {
        const resp = await member.range(ownerQuery(pfx, SortOrder.ASCEND))
        let header = resp.header!
        let kv = resp.kvs[0]
        if (!kv) {
          // The first key put under the prefix.
          for await (const wr of watch(pfx, header.revision, true, signal)) {
            const put = wr.events.find((e) => e.type === EventType.PUT)
            if (put) {
              header = { ...wr.header!, revision: put.kv.mod_revision }
              kv = put.kv
              break
            }
          }
        }
        if (!kv) return
        yield { header, kv }
        // The leader's updates until its key is deleted; then the next leader.
        outer: for await (const wr of watch(kv.key, header.revision + 1, false, signal)) {
          for (const e of wr.events) {
            if (e.type === EventType.DELETE) break outer
            yield { header: wr.header!, kv: e.kv }
          }
        }
      }
    },
  }
}
