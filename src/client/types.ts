/**
 * Readable shapes of etcd's responses: revisions as numbers, lease and member ids as decimal strings (they exceed
 * JavaScript's safe integers), keys and values both as UTF-8 text and as bytes. `decode*` turn the gateway's JSON
 * (base64 bytes, int64 strings, defaults omitted) into them.
 */
import { bytesToString, fromBase64 } from './bytes.js'

/** A lease id: decimal string as returned; bigint, number and hex-free strings are accepted as input. */
export type LeaseId = string
/** Lease ids as callers may pass them. */
export type LeaseIdLike = string | bigint | number

/** Normalises a lease or member id to etcd's decimal string. */
export function idString(id: LeaseIdLike): string {
  return typeof id === 'string' ? BigInt(id).toString() : BigInt(id).toString()
}

/** The header of every answer. */
export interface ResponseHeader {
  clusterId: string
  memberId: string
  /** Store revision when the answer was made (0 where etcd omits it, e.g. member list). */
  revision: number
  raftTerm: number
}

/** A bare answer: just the header (and the raw JSON). */
export interface Answer {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable). */
  readonly raw?: Raw
}

/** A key with its value and MVCC metadata. */
export interface KeyValue {
  /** The key as UTF-8 text. */
  key: string
  /** The value as UTF-8 text. */
  value: string
  keyBytes: Uint8Array
  valueBytes: Uint8Array
  createRevision: number
  modRevision: number
  version: number
  /** Lease id ("0" when none). */
  lease: LeaseId
}

/** Answer of a range read. */
export interface RangeResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  kvs: KeyValue[]
  more: boolean
  count: number
}

export interface PutResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  prevKv: KeyValue | undefined
}

export interface DeleteResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  deleted: number
  prevKvs: KeyValue[]
}

/** One answer inside a txn, tagged by the kind of operation. */
export type OpResponse =
  | ({ type: 'range' } & RangeResponse)
  | ({ type: 'put' } & PutResponse)
  | ({ type: 'delete' } & DeleteResponse)
  | ({ type: 'txn' } & TxnResponse)

export interface TxnResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  succeeded: boolean
  responses: OpResponse[]
}

export interface LeaseGrantResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  id: LeaseId
  /** Granted TTL in seconds. */
  ttl: number
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  id: LeaseId
  /** Remaining seconds; -1 when the lease does not exist. */
  ttl: number
  grantedTtl: number
  keys: string[]
  keysBytes: Uint8Array[]
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  id: LeaseId
  ttl: number
}

export interface Member {
  id: string
  name: string
  peerUrls: string[]
  clientUrls: string[]
  isLearner: boolean
}

export interface MemberListResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  members: Member[]
}

export interface MemberAddResponse extends MemberListResponse {
  member: Member
}

export interface StatusResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  version: string
  dbSize: number
  leader: string
  raftIndex: number
  raftTerm: number
  raftAppliedIndex: number
  errors: string[]
  dbSizeInUse: number
  isLearner: boolean
}

/** A watch event. */
export interface WatchEvent {
  type: 'PUT' | 'DELETE'
  kv: KeyValue
  prevKv: KeyValue | undefined
}

/** One message of a watch: the events of one or more revisions. */
export interface WatchResponse {
  header: ResponseHeader
  /** The gateway's JSON answer as received (non-enumerable; the CLI's `-w json` prints it). */
  readonly raw?: Raw
  events: WatchEvent[]
}

// ---- decoding the gateway's JSON ----

/** The gateway's raw JSON (snake_case proto names, int64 as strings). */
export type Raw = Record<string, any>

const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v))
const str = (v: unknown): string => (v === undefined || v === null ? '0' : String(v))

/** Attaches the raw gateway answer as a non-enumerable `raw` property (the CLI's `-w json` prints it). */
export function withRaw<T extends object>(value: T, raw: Raw): T & { readonly raw?: Raw } {
  Object.defineProperty(value, 'raw', { value: raw, enumerable: false })
  return value
}

export function decodeHeader(h: Raw | undefined): ResponseHeader {
  return {
    clusterId: str(h?.cluster_id),
    memberId: str(h?.member_id),
    revision: num(h?.revision),
    raftTerm: num(h?.raft_term),
  }
}

export function decodeKv(k: Raw): KeyValue {
  const keyBytes = fromBase64(k.key)
  const valueBytes = fromBase64(k.value)
  return {
    key: bytesToString(keyBytes),
    value: bytesToString(valueBytes),
    keyBytes,
    valueBytes,
    createRevision: num(k.create_revision),
    modRevision: num(k.mod_revision),
    version: num(k.version),
    lease: str(k.lease),
  }
}

export function decodeRange(r: Raw): RangeResponse {
  return withRaw(
    { header: decodeHeader(r.header), kvs: (r.kvs ?? []).map(decodeKv), more: r.more === true, count: num(r.count) },
    r,
  )
}

export function decodePut(r: Raw): PutResponse {
  return withRaw({ header: decodeHeader(r.header), prevKv: r.prev_kv ? decodeKv(r.prev_kv) : undefined }, r)
}

export function decodeDelete(r: Raw): DeleteResponse {
  return withRaw(
    { header: decodeHeader(r.header), deleted: num(r.deleted), prevKvs: (r.prev_kvs ?? []).map(decodeKv) },
    r,
  )
}

export function decodeTxn(r: Raw): TxnResponse {
  const responses: OpResponse[] = (r.responses ?? []).map((o: Raw): OpResponse => {
    if (o.response_range) return { type: 'range', ...decodeRange(o.response_range) }
    if (o.response_put) return { type: 'put', ...decodePut(o.response_put) }
    if (o.response_delete_range) return { type: 'delete', ...decodeDelete(o.response_delete_range) }
    return { type: 'txn', ...decodeTxn(o.response_txn ?? {}) }
  })
  return withRaw({ header: decodeHeader(r.header), succeeded: r.succeeded === true, responses }, r)
}

export function decodeMember(m: Raw): Member {
  return {
    id: str(m.ID),
    name: m.name ?? '',
    peerUrls: m.peerURLs ?? [],
    clientUrls: m.clientURLs ?? [],
    isLearner: m.isLearner === true,
  }
}

export function decodeStatus(r: Raw): StatusResponse {
  return withRaw(
    {
      header: decodeHeader(r.header),
      version: r.version ?? '',
      dbSize: num(r.dbSize),
      leader: str(r.leader),
      raftIndex: num(r.raftIndex),
      raftTerm: num(r.raftTerm),
      raftAppliedIndex: num(r.raftAppliedIndex),
      errors: r.errors ?? [],
      dbSizeInUse: num(r.dbSizeInUse),
      isLearner: r.isLearner === true,
    },
    r,
  )
}

export function decodeEvent(e: Raw): WatchEvent {
  return {
    type: e.type === 'DELETE' || e.type === 1 ? 'DELETE' : 'PUT',
    kv: decodeKv(e.kv ?? {}),
    prevKv: e.prev_kv ? decodeKv(e.prev_kv) : undefined,
  }
}
