/**
 * The seeded random differential run of test/diff/random-grpc.test.ts and random-json.test.ts: a generator of etcd
 * KV, lease and maintenance requests (good and bad) over a small key space, and a runner that sends each request to
 * a real etcd 3.4 and to an edgecd member, over gRPC or over the JSON gateway, and compares the normalised answers.
 *
 * Requests are protobuf-es init shapes of etcd's own messages (src/api/grpc/gen), so one generated sequence goes out
 * through either door: as protobuf over gRPC (ConnectRPC's gRPC transport), or as the gateway's JSON (protobuf-es'
 * JSON with proto or lowerCamel names, enums by name or number, as a gateway client may write them).
 *
 * Compared as they are: revisions (both servers start empty and get the same sequence), bodies and their key order,
 * gRPC codes and exact messages, HTTP statuses. Normalised: what differs by design (cluster/member ids, raft terms:
 * test/support/diff.ts), a remaining lease TTL (the clocks of two servers: it must be within a second of the granted
 * TTL on both), the order of lease lists and of a lease's keys (etcd iterates Go maps: docs/api.md "Differences"),
 * and the ids of leases granted with ID 0 (the server picks them).
 *
 * What the generator does not send, because etcd 3.4 itself breaks on it (so there is no answer to compare; edgecd's
 * answers are fixed-case tests and listed in docs/api.md, "Differences from etcd 3.4"):
 * - a range with an unknown sort_target that sorts (etcd's Range calls sort.Sort(nil) and the process dies; edgecd
 *   answers etcd 3.5's "invalid sort option": test/kv/store.test.ts);
 * - a txn with a from-key delete and an ignore_value/ignore_lease put of a key it deletes (etcd panics in apply;
 *   edgecd answers "key not found": test/kv/txn.test.ts);
 * - a JSON list of messages with a null element (`"compare":[null]`: etcd's gateway drops the connection);
 * - two members of one oneof in one JSON object (etcd's gateway keeps one of them at random).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  create,
  type DescField,
  type DescMessage,
  type JsonValue,
  ScalarType,
  toBinary,
  toJson,
  toJsonString,
} from '@bufbuild/protobuf'
import { type Client, ConnectError, createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { rng } from '../kv/helpers.js'
import { normalizeServerIds, startDiffPair } from '../support/diff.js'
import { requires } from '../support/requirements.js'

export type DoorKind = 'grpc' | 'json'

export type Service = 'KV' | 'Lease' | 'Maintenance' | 'Auth' | 'Cluster'

/** One request: the RPC and its protobuf-es init shape. */
export interface Call {
  service: Service
  method: string
  req: Record<string, unknown>
}

interface MethodInfo {
  input: DescMessage
  output: DescMessage
  /** The gateway's path; absent: etcd 3.4's gateway has no route (HashKV), gRPC only. */
  path?: string
}

const methods: Record<string, MethodInfo> = {
  'KV.range': { input: pb.RangeRequestSchema, output: pb.RangeResponseSchema, path: '/v3/kv/range' },
  'KV.put': { input: pb.PutRequestSchema, output: pb.PutResponseSchema, path: '/v3/kv/put' },
  'KV.deleteRange': {
    input: pb.DeleteRangeRequestSchema,
    output: pb.DeleteRangeResponseSchema,
    path: '/v3/kv/deleterange',
  },
  'KV.txn': { input: pb.TxnRequestSchema, output: pb.TxnResponseSchema, path: '/v3/kv/txn' },
  'KV.compact': { input: pb.CompactionRequestSchema, output: pb.CompactionResponseSchema, path: '/v3/kv/compaction' },
  'Lease.leaseGrant': {
    input: pb.LeaseGrantRequestSchema,
    output: pb.LeaseGrantResponseSchema,
    path: '/v3/lease/grant',
  },
  'Lease.leaseRevoke': {
    input: pb.LeaseRevokeRequestSchema,
    output: pb.LeaseRevokeResponseSchema,
    path: '/v3/lease/revoke',
  },
  'Lease.leaseTimeToLive': {
    input: pb.LeaseTimeToLiveRequestSchema,
    output: pb.LeaseTimeToLiveResponseSchema,
    path: '/v3/lease/timetolive',
  },
  'Lease.leaseLeases': {
    input: pb.LeaseLeasesRequestSchema,
    output: pb.LeaseLeasesResponseSchema,
    path: '/v3/lease/leases',
  },
  'Maintenance.hashKV': { input: pb.HashKVRequestSchema, output: pb.HashKVResponseSchema },
  // The admin run's (random-admin.ts).
  'Maintenance.status': {
    input: pb.StatusRequestSchema,
    output: pb.StatusResponseSchema,
    path: '/v3/maintenance/status',
  },
  'Maintenance.alarm': { input: pb.AlarmRequestSchema, output: pb.AlarmResponseSchema, path: '/v3/maintenance/alarm' },
  'Cluster.memberList': {
    input: pb.MemberListRequestSchema,
    output: pb.MemberListResponseSchema,
    path: '/v3/cluster/member/list',
  },
  ...Object.fromEntries(
    (
      [
        ['authEnable', 'AuthEnable', '/v3/auth/enable'],
        ['authDisable', 'AuthDisable', '/v3/auth/disable'],
        ['authenticate', 'Authenticate', '/v3/auth/authenticate'],
        ['userAdd', 'AuthUserAdd', '/v3/auth/user/add'],
        ['userGet', 'AuthUserGet', '/v3/auth/user/get'],
        ['userList', 'AuthUserList', '/v3/auth/user/list'],
        ['userDelete', 'AuthUserDelete', '/v3/auth/user/delete'],
        ['userChangePassword', 'AuthUserChangePassword', '/v3/auth/user/changepw'],
        ['userGrantRole', 'AuthUserGrantRole', '/v3/auth/user/grant'],
        ['userRevokeRole', 'AuthUserRevokeRole', '/v3/auth/user/revoke'],
        ['roleAdd', 'AuthRoleAdd', '/v3/auth/role/add'],
        ['roleGet', 'AuthRoleGet', '/v3/auth/role/get'],
        ['roleList', 'AuthRoleList', '/v3/auth/role/list'],
        ['roleDelete', 'AuthRoleDelete', '/v3/auth/role/delete'],
        ['roleGrantPermission', 'AuthRoleGrantPermission', '/v3/auth/role/grant'],
        ['roleRevokePermission', 'AuthRoleRevokePermission', '/v3/auth/role/revoke'],
      ] as const
    ).map(([method, msg, path]) => [
      `Auth.${method}`,
      {
        input: (pb as unknown as Record<string, DescMessage>)[`${msg}RequestSchema`]!,
        output: (pb as unknown as Record<string, DescMessage>)[`${msg}ResponseSchema`]!,
        path,
      },
    ]),
  ),
}

/** An answer as comparable text, and what the generator learns from it. */
export interface Answer {
  text: string
  /** header.revision of a success. */
  revision?: number
  /** The lease id of a LeaseGrant success. */
  leaseId?: bigint
  /** The server is gone (connection refused or reset): no answer to compare. */
  down?: boolean
  /** The remaining TTL of a LeaseTimeToLive success (compared within a second: two clocks). */
  ttl?: number
  /** The body sent, when it was mutated (JSON). */
  sent?: string
  /** The token of an Authenticate success. */
  token?: string
}

/** One server behind one door. */
export class Door {
  private readonly clients: Record<
    Service,
    Client<typeof pb.KV | typeof pb.Lease | typeof pb.Maintenance | typeof pb.Auth | typeof pb.Cluster>
  >
  constructor(
    private readonly url: string,
    readonly kind: DoorKind,
  ) {
    const t = createGrpcTransport({ baseUrl: url })
    this.clients = {
      KV: createClient(pb.KV, t),
      Lease: createClient(pb.Lease, t),
      Maintenance: createClient(pb.Maintenance, t),
      Auth: createClient(pb.Auth, t),
      Cluster: createClient(pb.Cluster, t),
    }
  }

  /**
   * Sends `c`; `style` picks the JSON spelling (proto or lowerCamel names, enums by name or number), `mutation` (a
   * random number) makes the JSON body bad in one place (see mutate).
   */
  async send(c: Call, style: number, mutation?: number, token?: string): Promise<Answer> {
    const m = methods[`${c.service}.${c.method}`]!
    const msg = create(m.input, c.req as never)
    if (this.kind === 'grpc' || m.path === undefined) {
      try {
        const fn = (this.clients[c.service] as unknown as Record<string, (r: unknown, o: object) => Promise<object>>)[
          c.method
        ]!
        // etcd's gRPC takes the token as the `token` metadata.
        const res = await fn(msg, token !== undefined ? { headers: { token } } : {})
        const json = toJson(m.output, res as never) as Record<string, JsonValue>
        return answerOf(c, json, JSON.stringify(json))
      } catch (err) {
        const e = ConnectError.from(err)
        if (/ECONNREFUSED|ECONNRESET|socket hang up/.test(e.rawMessage)) return { text: e.rawMessage, down: true }
        return { text: `gRPC ${e.code} ${e.rawMessage}` }
      }
    }
    let body = toJsonString(m.input, msg as never, {
      useProtoFieldName: (style & 1) === 0,
      enumAsInteger: (style & 2) !== 0,
    })
    if (mutation !== undefined) body = mutate(m.input, body, mutation)
    let r: Response
    try {
      // A connection per request: edgecd runs in this process, and a body that blocks its event loop for a while
      // (a 2 MiB put) fires the server's keep-alive timeout and the client's at once, so a reused socket could be
      // closed under a request that was never read.
      r = await fetch(this.url + m.path, {
        method: 'POST',
        body,
        // etcd's gateway takes the token as Authorization (the raw token).
        headers: { connection: 'close', ...(token !== undefined ? { authorization: token } : {}) },
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      return { text: `${err} (${cause?.code ?? ''} ${cause?.message ?? ''})`, down: true }
    }
    const text = await r.text()
    const sent = mutation !== undefined ? body : undefined
    if (r.status !== 200) return { text: `HTTP ${r.status} ${text}`, ...(sent ? { sent } : {}) }
    return { ...answerOf(c, JSON.parse(text) as Record<string, JsonValue>, text), ...(sent ? { sent } : {}) }
  }
}

/** Values a JSON mutation writes in place of a field, by the field's kind; `raw:` ones go into the body as is. */
const badValues: Record<string, string[]> = {
  enum: ['"BOGUS"', '"2"', 'raw:1.5', 'raw:2147483648', 'raw:-1', 'true', 'raw:{}', '"descend"', 'null', 'raw:7'],
  int64: [
    '"1.5"',
    'raw:1.5',
    '"abc"',
    '"9223372036854775808"',
    'raw:9223372036854775807',
    'raw:-9223372036854775809',
    'raw:1e2',
    '" 3"',
    '"+1"',
    '""',
    'true',
    'raw:[]',
    'null',
    'raw:-0',
    '"-1"',
    'raw:18446744073709551615',
  ],
  bool: ['"true"', 'raw:1', 'raw:0', '"false"', 'null', 'raw:[]'],
  bytes: [
    '"YQ"',
    '"_-8="',
    '"Y\\nQ=="',
    'raw:5',
    '"!!!!"',
    '"YQ==="',
    '""',
    'null',
    'raw:{}',
    '"AAAA AAA="',
    '"YWJj\\r\\n"',
  ],
  message: ['raw:[]', '"x"', 'raw:5', 'null', 'raw:{"bogus":1}'],
  // Not [null]: a null element of a list of messages makes etcd 3.4's gateway drop the connection (a nil pointer).
  list: ['raw:{}', '"x"', 'null', 'raw:[1]', 'raw:[[]]', 'raw:["x"]', 'raw:[{}]'],
}

/** The kind a mutation treats a field as. */
function kindOf(f: DescField): string {
  if (f.fieldKind === 'list') return 'list'
  if (f.fieldKind === 'message') return 'message'
  if (f.fieldKind === 'enum') return 'enum'
  if (f.fieldKind !== 'scalar') return 'message'
  switch (f.scalar) {
    case ScalarType.BOOL:
      return 'bool'
    case ScalarType.BYTES:
      return 'bytes'
    default:
      return 'int64'
  }
}

/**
 * The JSON `body` of a `desc` request made bad in one place chosen by `n`: a field given a value of the wrong kind or
 * form (an unknown enum name, a fractional or out-of-range integer, a quoted bool, bad base64, ...), an unknown field,
 * or a duplicated field (Go's decoder keeps the last). Fields are found through the descriptor, at any depth.
 */
export function mutate(desc: DescMessage, body: string, n: number): string {
  const root = JSON.parse(body) as Record<string, unknown>
  const slots: { obj: Record<string, unknown>; name: string; kind: string; sortTarget: boolean }[] = []
  const walk = (d: DescMessage, o: Record<string, unknown>) => {
    for (const f of d.fields) {
      const name = f.name in o ? f.name : f.jsonName in o ? f.jsonName : undefined
      // Absent fields can be mutated too (under the proto name), except a second member of a oneof: etcd's gateway
      // keeps one of them at random (jsonpb walks the oneof members in Go map order).
      const sortTarget = f.name === 'sort_target'
      // Nor the order of a range whose target is unknown: an order that sorts would kill etcd 3.4.
      const target = o.sort_target ?? o.sortTarget
      const unknownTarget = typeof target === 'number' && (target < 0 || target > 4)
      if (f.name === 'sort_order' && unknownTarget) continue
      if (name !== undefined || f.oneof === undefined)
        slots.push({ obj: o, name: name ?? f.name, kind: kindOf(f), sortTarget })
      if (name === undefined) continue
      const v = o[name]
      if (f.fieldKind === 'message' && v && typeof v === 'object') walk(f.message, v as Record<string, unknown>)
      if (f.fieldKind === 'list' && f.listKind === 'message' && Array.isArray(v))
        for (const x of v) walk(f.message, x as Record<string, unknown>)
      if (f.fieldKind === 'list' && Array.isArray(v) && v.length > 0 && f.listKind !== 'message') {
        const kind = f.listKind === 'enum' ? 'enum' : f.scalar === ScalarType.BYTES ? 'bytes' : 'int64'
        for (let i = 0; i < v.length; i++) slots.push({ obj: v as never, name: String(i), kind, sortTarget: false })
      }
    }
  }
  walk(desc, root)
  const raws: string[] = []
  const put = (obj: Record<string, unknown>, name: string, bad: string) => {
    if (bad.startsWith('raw:')) {
      raws.push(bad.slice(4))
      obj[name] = `@@raw${raws.length - 1}@@`
    } else obj[name] = JSON.parse(bad)
  }
  const slot = slots[n % Math.max(1, slots.length)]
  const choice = Math.floor(n / Math.max(1, slots.length))
  if (slot === undefined || choice % 9 === 8) root[`bogus_${choice % 3}`] = choice % 2 ? 1 : { x: [1] }
  else {
    // An unknown sort_target that sorts kills etcd 3.4 (see the file comment): not -1 or 7 there.
    const vals = badValues[slot.kind]!.filter((v) => !slot.sortTarget || (v !== 'raw:-1' && v !== 'raw:7'))
    put(slot.obj, slot.name, vals[choice % vals.length]!)
  }
  let text = JSON.stringify(root)
  // A duplicated key (the last wins in Go): the original value first, sometimes.
  if (choice % 5 === 4 && slot?.obj === root && body.length > 2) text = `${body.slice(0, -1)},${text.slice(1)}`
  return text.replace(/"@@raw(\d+)@@"/g, (_, i) => raws[Number(i)]!)
}

/** A success as comparable text: the raw text, re-serialised only where a field needs normalising. */
function answerOf(c: Call, json: Record<string, JsonValue>, raw: string): Answer {
  const header = json.header as Record<string, string> | undefined
  const a: Answer = { text: raw }
  if (header?.revision !== undefined) a.revision = Number(header.revision)
  if (c.method === 'leaseGrant') {
    a.leaseId = BigInt(json.ID as string)
    // A server-chosen id (ID 0 asked) differs between the servers.
    if (c.req.ID === 0n) a.text = JSON.stringify({ ...json, ID: 'AUTO' })
  } else if (c.method === 'leaseLeases') {
    // etcd lists leases in Go map order. A lease the server chose the id of (a grant whose ID a mutation nulled)
    // has a different id on each.
    const leases = ((json.leases as { ID: string }[] | undefined) ?? [])
      .map((l) => (knownLeaseIds.has(l.ID) ? l.ID : 'AUTO'))
      .sort()
    a.text = JSON.stringify({ ...json, leases })
  } else if (c.method === 'leaseTimeToLive') {
    const ttl = Number(json.TTL ?? 0)
    const granted = Number(json.grantedTTL ?? 0)
    const keys = json.keys as string[] | undefined
    // The remaining TTL reads each server's clock: compared apart, within a second (runSeed). The keys come in Go
    // map order on etcd.
    const live = ttl > 0 && ttl <= granted
    if (live) a.ttl = ttl
    a.text = JSON.stringify({ ...json, ...(live ? { TTL: 'LIVE' } : {}), ...(keys ? { keys: [...keys].sort() } : {}) })
  } else if (c.method === 'authenticate' && typeof json.token === 'string') {
    // etcd's and edgecd's JWTs differ (keys, times): the token is used, not compared.
    a.token = json.token
    a.text = JSON.stringify({ ...json, token: 'TOKEN' })
  } else if (c.method === 'status') {
    // What a client reads: the version text, whether there is a leader, the raft positions' shape; dbSize is
    // edgecd's estimate (docs/api.md), the positions count differently (etcd's log has its own configuration entries).
    const pos = (v: JsonValue | undefined) => (Number(v ?? 0) > 0 ? 'N' : String(v ?? 'absent'))
    a.text = JSON.stringify({
      ...json,
      ...(json.dbSize !== undefined ? { dbSize: 'SIZE' } : {}),
      ...(json.dbSizeInUse !== undefined ? { dbSizeInUse: 'SIZE' } : {}),
      leader: pos(json.leader),
      raftIndex: pos(json.raftIndex),
      raftTerm: pos(json.raftTerm),
      raftAppliedIndex: pos(json.raftAppliedIndex),
    })
  } else if (c.method === 'memberList') {
    // One member each, on its own URLs.
    const members = ((json.members as Record<string, JsonValue>[] | undefined) ?? []).map((m) => ({
      ...m,
      ...(m.peerURLs !== undefined ? { peerURLs: ['URL'] } : {}),
      ...(m.clientURLs !== undefined ? { clientURLs: ['URL'] } : {}),
    }))
    a.text = JSON.stringify({ ...json, members })
  }
  a.text = normalizeServerIds(a.text)
  return a
}

// ---------------------------------------------------------------------------------------------------------------
// The generator

const enc = new TextEncoder()
const bytes = (s: string | number[]) => (typeof s === 'string' ? enc.encode(s) : new Uint8Array(s))
const wideKeys = Array.from({ length: 24 }, (_, i) => bytes(`w/${String(i).padStart(2, '0')}`))

/**
 * The key space: few keys, so that writes collide and ranges and sorts see several of them; even seeds add 24 more
 * under `w/`, so that sorts with ties see more than 12 keys (Go's sort.Sort is no longer an insertion sort there:
 * src/kv/go-sort.ts).
 */
export const baseKeys: Uint8Array[] = [
  bytes('a'),
  bytes('a/1'),
  bytes('a/2'),
  bytes('a0'),
  bytes('b'),
  bytes('b/x'),
  bytes('c'),
  bytes('k\u00e9'),
  bytes('z'),
  bytes([0xff]),
  bytes([0xff, 0xff]),
]

/** Lease ids the generator grants, revokes and attaches (with one that is never granted). */
const leaseIds = [101n, 102n, 103n, -7n, 0x4000_0000_0000_0001n, 7_000_000_000_000_000_000n]
/** Ids for short-lived grants (TTL under the minimum: 2 s), revoked in the same step. */
const shortLeaseIds = [901n, 902n]
const maxLeaseTtl = 9_000_000_000n
const knownLeaseIds = new Set([...leaseIds, ...shortLeaseIds].map(String))

/** clientv3's GetPrefixRangeEnd. */
export function prefixEnd(k: Uint8Array): Uint8Array {
  const end = k.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1
      return end.slice(0, i + 1)
    }
  }
  return new Uint8Array([0])
}

export interface GenState {
  /** The store's revision as last answered. */
  revision: number
  /** The compacted revision (a successful compaction's). */
  compacted: number
  /** Lease ids granted and not revoked (by the generator's requests). */
  live: Set<bigint>
}

/**
 * A step: one call, or a short sequence whose later calls depend on what the first answered (an auto-id grant
 * revoked with the id each server chose).
 */
export type Step = { calls: Call[]; note: string }

/**
 * etcd 3.4 measures a write as its InternalRaftRequest, whose header holds a request ID made from its member id: a
 * varint of (member id & 0xffff) << 48 | ms << 8 | counter, 10 bytes when bit 15 of the member id is set, else 9
 * (8 below 0x100). A real etcd's member id follows its (random) peer port, so a write whose raft request is within a
 * byte of --max-request-bytes is accepted by one etcd and refused by another (edgecd counts 9 bytes, docs/api.md):
 * the generator moves a big value two bytes off that boundary (found by the session 9 soak: random-json seed 9017).
 */
function offIdWidthBoundary(value: Uint8Array, protoSize: (v: Uint8Array) => number): Uint8Array {
  const limit = 1_572_864
  const n = protoSize(value)
  // field 100's tag (2), the header's length (1) and header (tag + 9-byte ID), the request's tag and length, the request
  const raft = 2 + 1 + 10 + 1 + (n < 1 << 21 ? 3 : 4) + n
  return raft === limit || raft === limit + 1 ? value.subarray(0, value.length - 2) : value
}

export class Generator {
  private readonly r: (n: number) => number
  /**
   * A second stream for the edge inputs of reads (session 11: etcdctl-style huge limits, extreme revisions, keys_only
   * with count_only, lease id 0): its own draws, so the main stream (and so every write, and the runs of the seeds
   * earlier sessions name) is the same as before it.
   */
  private readonly x: (n: number) => number
  private readonly keys: Uint8Array[]
  constructor(
    seed: number,
    readonly state: GenState = { revision: 1, compacted: 0, live: new Set() },
    private readonly maxTxnOps = 128,
  ) {
    this.r = rng(seed)
    this.x = rng(seed ^ 0x0edc)
    this.keys = seed % 2 === 0 ? [...baseKeys, ...wideKeys] : baseKeys
  }

  private chance(pct: number): boolean {
    return this.r(100) < pct
  }
  private pick<T>(xs: readonly T[]): T {
    return xs[this.r(xs.length)]!
  }

  private key(): Uint8Array {
    if (this.chance(3)) return new Uint8Array(0)
    return this.pick(this.keys)
  }

  private rangeEnd(key: Uint8Array): Uint8Array | undefined {
    switch (this.r(8)) {
      case 0:
      case 1:
        return undefined
      case 2:
        return prefixEnd(key.length ? key : bytes('a'))
      case 3:
        return new Uint8Array([0])
      case 4:
        return this.pick(this.keys)
      case 5:
        return key
      case 6:
        return new Uint8Array([...key, 0])
      default:
        return bytes([0xff, 0xff, 0xff])
    }
  }

  private value(): Uint8Array {
    switch (this.r(6)) {
      case 0:
        return new Uint8Array(0)
      case 1:
        return bytes([this.r(256), this.r(256), 0, 0xff])
      case 2:
        // Few distinct values: ties for a sort by value.
        return bytes(this.pick(['a', 'b', 'c']))
      default:
        return bytes(`v${this.r(1000)}`)
    }
  }

  /** A revision for reads: current, 0, negative, compacted, historical or future. */
  private readRevision(): bigint {
    const { revision, compacted } = this.state
    switch (this.r(8)) {
      case 0:
        return -1n
      case 1:
        return BigInt(revision + 1 + this.r(3))
      case 2:
        return BigInt(Math.max(0, compacted - this.r(2)))
      case 3:
      case 4:
        return BigInt(1 + this.r(revision))
      default:
        return 0n
    }
  }

  private leaseRef(): bigint {
    const live = [...this.state.live]
    if (live.length > 0 && this.chance(70)) return this.pick(live)
    return this.pick(leaseIds)
  }

  range(inTxn = false): Record<string, unknown> {
    const key = this.chance(4) ? new Uint8Array([0]) : this.key()
    const rangeEnd = this.rangeEnd(key)
    const req: Record<string, unknown> = { key }
    if (rangeEnd) req.rangeEnd = rangeEnd
    if (this.chance(30)) req.limit = BigInt(this.pick([1, 2, 3, 5, -1, 0]))
    if (this.chance(30)) req.revision = this.readRevision()
    const order = this.chance(40) ? this.pick([1, 2, 1, 2, 0, 3, -1]) : 0
    const target = this.chance(40) ? this.pick([0, 1, 2, 3, 4]) : 0
    req.sortOrder = order
    req.sortTarget = target
    // An unknown target that sorts kills etcd 3.4 (see the file comment); with an unknown order nothing sorts.
    if (order !== 0 && order !== 1 && order !== 2 && this.chance(50)) req.sortTarget = this.pick([5, 99])
    if (!inTxn && this.chance(20)) req.serializable = true
    if (this.chance(15)) req.keysOnly = true
    if (this.chance(15)) req.countOnly = true
    const rev = () => BigInt(this.r(this.state.revision + 2) - (this.chance(10) ? 3 : 0))
    if (this.chance(12)) req.minModRevision = rev()
    if (this.chance(12)) req.maxModRevision = rev()
    if (this.chance(12)) req.minCreateRevision = rev()
    if (this.chance(12)) req.maxCreateRevision = rev()
    return this.edgeRange(req)
  }

  /** An etcdctl-style edge input now and then (drawn from `x` alone): what a range makes of the extremes. */
  private edgeRange(req: Record<string, unknown>): Record<string, unknown> {
    const x = this.x(100)
    const int64Max = (1n << 63n) - 1n
    // Limits past the key count, past int32, int64's ends.
    if (x < 6) req.limit = [int64Max, 1n << 31n, 1n << 32n, 1_000_000n, -(1n << 63n)][this.x(5)]!
    // Revisions: far future, int64's ends, far negative (read as the current one).
    else if (x < 10) req.revision = [int64Max, -(1n << 63n), -100n, 1n << 40n][this.x(4)]!
    // keys_only with count_only (etcdctl get --keys-only --count-only), sometimes with a limit.
    else if (x < 14) {
      req.keysOnly = true
      req.countOnly = true
      if (this.x(2) === 0) req.limit = 1n
    }
    // The mod/create revision filters at their ends.
    else if (x < 18) {
      const f = ['minModRevision', 'maxModRevision', 'minCreateRevision', 'maxCreateRevision'][this.x(4)]!
      req[f] = [int64Max, -(1n << 63n), -1n][this.x(3)]!
    }
    // Every key ("\0" to "\0", etcdctl get --from-key ''), sorted on a random target and order.
    else if (x < 21) {
      req.key = new Uint8Array([0])
      req.rangeEnd = new Uint8Array([0])
      req.sortOrder = this.x(3)
      req.sortTarget = this.x(5)
    }
    return req
  }

  put(opts: { ignore?: boolean } = {}): Record<string, unknown> {
    const req: Record<string, unknown> = { key: this.key(), value: this.value() }
    if (this.chance(40)) req.prevKv = true
    if (this.chance(25)) req.lease = this.leaseRef()
    if (opts.ignore !== false) {
      if (this.chance(8)) {
        req.ignoreValue = true
        if (this.chance(75)) req.value = new Uint8Array(0)
      }
      if (this.chance(8)) {
        req.ignoreLease = true
        if (this.chance(75)) delete req.lease
      }
    }
    return req
  }

  deleteRange(): Record<string, unknown> {
    const key = this.chance(4) ? new Uint8Array([0]) : this.key()
    const req: Record<string, unknown> = { key }
    const end = this.rangeEnd(key)
    if (end) req.rangeEnd = end
    if (this.chance(50)) req.prevKv = true
    return req
  }

  private compare(): Record<string, unknown> {
    const target = this.chance(3) ? 7 : this.r(5)
    const c: Record<string, unknown> = {
      key: this.chance(2) ? new Uint8Array(0) : this.pick(this.keys),
      target,
      result: this.chance(3) ? 9 : this.r(4),
    }
    if (this.chance(15)) c.rangeEnd = this.rangeEnd(c.key as Uint8Array) ?? new Uint8Array([0])
    const rev = () => BigInt(this.r(this.state.revision + 2))
    // Usually the union member of the target; sometimes another one (etcd compares the target's zero then).
    const which = this.chance(90) ? target : this.r(5)
    switch (which) {
      case 0:
        c.targetUnion = { case: 'version', value: BigInt(this.r(4)) }
        break
      case 1:
        c.targetUnion = { case: 'createRevision', value: rev() }
        break
      case 2:
        c.targetUnion = { case: 'modRevision', value: rev() }
        break
      case 3:
        c.targetUnion = { case: 'value', value: this.chance(50) ? this.value() : bytes(`v${this.r(1000)}`) }
        break
      case 4:
        c.targetUnion = { case: 'lease', value: this.chance(30) ? 0n : this.leaseRef() }
        break
      default:
        break
    }
    return c
  }

  private op(depth: number, fromKeyDelete: { seen: boolean }): Record<string, unknown> {
    const k = this.r(depth < 2 ? 10 : 9)
    if (k < 3) return { request: { case: 'requestRange', value: this.range(true) } }
    if (k < 6) return { request: { case: 'requestPut', value: this.put() } }
    if (k < 8) {
      const d = this.deleteRange()
      if (d.rangeEnd !== undefined && (d.rangeEnd as Uint8Array).length === 1 && (d.rangeEnd as Uint8Array)[0] === 0)
        fromKeyDelete.seen = true
      return { request: { case: 'requestDeleteRange', value: d } }
    }
    if (k < 9) return this.chance(5) ? {} : { request: { case: 'requestRange', value: this.range(true) } }
    return { request: { case: 'requestTxn', value: this.txnBody(depth + 1, fromKeyDelete) } }
  }

  private txnBody(depth: number, fromKeyDelete: { seen: boolean }): Record<string, unknown> {
    const n = () => this.r(depth === 0 ? 5 : 3)
    return {
      compare: Array.from({ length: n() }, () => this.compare()),
      success: Array.from({ length: n() }, () => this.op(depth, fromKeyDelete)),
      failure: Array.from({ length: n() }, () => this.op(depth, fromKeyDelete)),
    }
  }

  txn(): Record<string, unknown> {
    if (this.chance(3)) {
      // Past --max-txn-ops on one level (or right at it).
      const n = this.maxTxnOps + this.pick([0, 1])
      const arm = this.pick(['compare', 'success', 'failure'])
      const body: Record<string, unknown> = { compare: [], success: [], failure: [] }
      body[arm] = Array.from({ length: n }, (_, i) =>
        arm === 'compare'
          ? { key: bytes(`t${i}`), target: 0, result: 0, targetUnion: { case: 'version', value: 0n } }
          : { request: { case: 'requestRange', value: { key: bytes(`t${i}`) } } },
      )
      return body
    }
    const seen = { seen: false }
    const t = this.txnBody(0, seen)
    // etcd panics on a from-key delete followed by an ignore_value/ignore_lease put of a key it deleted: none here.
    if (seen.seen) stripIgnores(t)
    return t
  }

  compact(): Record<string, unknown> {
    const { revision, compacted } = this.state
    const rev = this.pick([
      compacted,
      compacted + 1,
      revision,
      revision + 1,
      -1,
      compacted + this.r(Math.max(1, revision - compacted)),
    ])
    return { revision: BigInt(rev), physical: this.chance(50) }
  }

  /**
   * A put or a txn around the size limits: a value near --max-request-bytes (1.5 MiB: etcd measures its raft request,
   * the protobuf request plus a small header), or near the gRPC receive limit (2 MiB).
   */
  big(): Step {
    const n = this.chance(70) ? 1_572_864 - 40 + this.r(40) : 2_097_152 - 20 + this.r(20)
    const value = new Uint8Array(n).fill(0x78)
    // Sometimes with a fault of its own too: etcd checks the request before its size.
    const key = this.chance(10) ? new Uint8Array(0) : this.pick(this.keys)
    if (this.chance(70)) {
      const req: { key: Uint8Array; value: Uint8Array; prevKv: boolean; ignoreValue: boolean } = {
        key,
        value,
        prevKv: this.chance(30),
        ignoreValue: this.chance(10),
      }
      req.value = offIdWidthBoundary(
        value,
        (v) => toBinary(pb.PutRequestSchema, create(pb.PutRequestSchema, { ...req, value: v })).length,
      )
      return one('KV', 'put', req, 'big put')
    }
    const txn = (v: Uint8Array) => ({
      success: [{ request: { case: 'requestPut' as const, value: { key, value: v } } }],
    })
    const v = offIdWidthBoundary(
      value,
      (v) => toBinary(pb.TxnRequestSchema, create(pb.TxnRequestSchema, txn(v))).length,
    )
    return one('KV', 'txn', txn(v), 'big txn')
  }

  /** The next step. */
  next(): Step {
    if (this.chance(1)) return this.big()
    const k = this.r(100)
    if (k < 22) return one('KV', 'put', this.put(), 'put')
    if (k < 44) return one('KV', 'range', this.range(), 'range')
    if (k < 54) return one('KV', 'deleteRange', this.deleteRange(), 'delete')
    if (k < 72) return one('KV', 'txn', this.txn(), 'txn')
    if (k < 75) return one('KV', 'compact', this.compact(), 'compact')
    if (k < 81) {
      const ID = this.pick(leaseIds.slice(0, -1))
      // Never one that could run out during a run (a soak seed on a loaded machine takes minutes).
      let TTL = this.pick([3600n, 7200n, 86400n, maxLeaseTtl, maxLeaseTtl + 1n, 36000n])
      // A TTL refused as too large may be int64's max instead (the edge stream's draw: the same refusal, no state).
      if (TTL === maxLeaseTtl + 1n && this.x(2) === 0) TTL = (1n << 63n) - 1n
      return one('Lease', 'leaseGrant', { ID, TTL }, 'grant')
    }
    if (k < 83) {
      // Short TTLs (raised to the 2 s minimum) and server-chosen ids: granted and revoked in one step.
      const ID = this.chance(50) ? 0n : this.pick(shortLeaseIds)
      return {
        note: 'grant+revoke',
        calls: [
          { service: 'Lease', method: 'leaseGrant', req: { ID, TTL: BigInt(this.pick([-5, 0, 1, 2, 3])) } },
          { service: 'Lease', method: 'leaseRevoke', req: { ID } },
        ],
      }
    }
    if (k < 87) return one('Lease', 'leaseRevoke', { ID: this.leaseRef() }, 'revoke')
    if (k < 92) {
      const req = { ID: this.leaseRef(), keys: this.chance(60) }
      // Now and then (the edge stream's draw) the id no lease can have, or int64's ends.
      if (this.x(100) < 10) req.ID = [0n, -(1n << 63n), (1n << 63n) - 1n][this.x(3)]!
      return one('Lease', 'leaseTimeToLive', req, 'timetolive')
    }
    if (k < 95) return one('Lease', 'leaseLeases', {}, 'leases')
    const revision = this.readRevision()
    // Now and then (the edge stream's draw) int64's ends.
    const edge = this.x(100) < 10 ? [(1n << 63n) - 1n, -(1n << 63n)][this.x(2)]! : revision
    return one('Maintenance', 'hashKV', { revision: edge }, 'hashkv')
  }

  /**
   * Takes in what etcd answered to `c` (the reference: a run stops at the first difference). A request sent with a
   * mutated body may have meant something else (a lease grant whose ID was nulled got a server-chosen id): only its
   * revision is learnt.
   */
  /**
   * When the last compaction was answered (performance.now()). etcd 3.4 answers a compaction (physical: false) before
   * its goroutine has deleted the compacted rows, and its reads see the deletes only once the backend commits (every
   * 100 ms): a HashKV in that window hashes rows that are gone a moment later (found by the session 9 soak: random-grpc
   * seed 9005; a put, delete, put, compaction at the delete's revision, delete, then HashKV). runStep waits that out.
   */
  compactedAt: number | undefined

  learn(c: Call, a: Answer, mutated = false): void {
    if (a.revision !== undefined) this.state.revision = a.revision
    if (mutated || a.text.startsWith('gRPC') || a.text.startsWith('HTTP')) return
    if (c.method === 'compact') {
      this.state.compacted = Number(c.req.revision)
      this.compactedAt = performance.now()
    } else if (c.method === 'leaseGrant' && a.leaseId !== undefined && c.req.ID !== 0n) this.state.live.add(a.leaseId)
    else if (c.method === 'leaseRevoke') this.state.live.delete(c.req.ID as bigint)
  }
}

function one(service: Service, method: string, req: Record<string, unknown>, note: string): Step {
  return { calls: [{ service, method, req }], note }
}

function stripIgnores(t: Record<string, unknown>): void {
  for (const arm of ['success', 'failure'] as const)
    for (const op of t[arm] as { request?: { case: string; value: Record<string, unknown> } }[]) {
      if (op.request?.case === 'requestPut') {
        delete op.request.value.ignoreValue
        delete op.request.value.ignoreLease
      } else if (op.request?.case === 'requestTxn') stripIgnores(op.request.value)
    }
}

/** A call as readable JSON (the gateway's), for a failure message. */
export function describeCall(c: Call): string {
  const m = methods[`${c.service}.${c.method}`]!
  const json = toJsonString(m.input, create(m.input, c.req as never), { useProtoFieldName: true })
  return `${c.service}.${c.method} ${json.replace(/"([A-Za-z0-9+/=]{60})[A-Za-z0-9+/=]{40,}"/g, '"$1..."')}`
}

/** The share of JSON requests (percent) sent with one bad field. */
const mutatePct = 8

export interface Mismatch {
  seed: number
  step: number
  /** The door, or the stream run (watch-grpc, watch-ws, auth...). */
  door: string
  /** The test file that reruns it (default random-<door>.test.ts). */
  file?: string
  call: string
  etcd: string
  edgecd: string
}

/**
 * Runs `steps` generated steps of `seed` against both servers through `kind`, the answers compared one by one;
 * returns the first difference (the servers' states may differ after it), or undefined.
 */
export async function runSeed(
  etcdUrl: string,
  edgeUrl: string,
  kind: DoorKind,
  seed: number,
  steps: number,
  state?: GenState,
  /** Counts answers by method and outcome (the error text, or ok), for a report. */
  stats?: Map<string, number>,
): Promise<Mismatch | undefined> {
  const gen = new Generator(seed, state)
  const etcd = new Door(etcdUrl, kind)
  const edge = new Door(edgeUrl, kind)
  const style = rng(seed ^ 0x5eed)
  for (let step = 0; step < steps; step++) {
    const m = await runStep(gen, etcd, edge, gen.next(), { seed, step, style, stats })
    if (m) return m
  }
  return undefined
}

/**
 * Sends one generated step to both servers (through `etcd`'s and `edge`'s door), compares the answers and teaches
 * `gen` what etcd answered; returns the difference, or undefined. Shared by runSeed and the stream runs
 * (random-streams.ts), which interleave these writes with their watches.
 */
/** How long after a compaction a HashKV waits: etcd 3.4's backend commit interval (100 ms) and then some (Generator.compactedAt). */
const settleAfterCompactMs = 300

export async function runStep(
  gen: Generator,
  etcd: Door,
  edge: Door,
  s: Step,
  o: {
    seed: number
    step: number
    style: (n: number) => number
    stats?: Map<string, number> | undefined
    /** The token each server gets (random-admin.ts): etcd's, edgecd's. */
    tokens?: [string | undefined, string | undefined]
  },
): Promise<Mismatch | undefined> {
  const { seed, step, style, stats, tokens } = o
  const kind = etcd.kind
  const ids: [bigint | undefined, bigint | undefined] = [undefined, undefined]
  for (const c of s.calls) {
    if (c.method === 'hashKV' && gen.compactedAt !== undefined) {
      const wait = gen.compactedAt + settleAfterCompactMs - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
    // The second call of an auto-id grant+revoke names what each server chose.
    const forEtcd = ids[0] !== undefined && c.method === 'leaseRevoke' ? { ...c, req: { ID: ids[0] } } : c
    const forEdge = ids[1] !== undefined && c.method === 'leaseRevoke' ? { ...c, req: { ID: ids[1] } } : c
    const st = style(4)
    // Some JSON bodies are made bad in one place (the same place for both servers).
    const mut = kind === 'json' && s.calls.length === 1 && style(100) < mutatePct ? style(1_000_000) : undefined
    const [a, b] = await Promise.all([
      etcd.send(forEtcd, st, mut, tokens?.[0]),
      edge.send(forEdge, st, mut, tokens?.[1]),
    ])
    if (process.env.EDGECD_DIFF_TRACE)
      console.log(
        performance.now().toFixed(0),
        step,
        describeCall(c).slice(0, 3000),
        '=>',
        a.text.slice(0, 3000),
        a.ttl ?? '',
        b.ttl ?? '',
      )
    if (a.down)
      throw new Error(
        `seed ${seed} step ${step}: etcd is gone (${a.text}) after ${mut !== undefined ? `a mutated ` : ''}${describeCall(c)}`,
      )
    if (c.method === 'leaseGrant' && c.req.ID === 0n) {
      ids[0] = a.leaseId
      ids[1] = b.leaseId
    }
    if (a.text !== b.text || Math.abs((a.ttl ?? 0) - (b.ttl ?? 0)) > 1)
      return {
        seed,
        step,
        door: kind,
        call: a.sent ? `${c.service}.${c.method} ${a.sent}` : describeCall(c),
        etcd: a.text + (a.ttl ? ` TTL ${a.ttl}` : ''),
        edgecd: b.text + (b.ttl ? ` TTL ${b.ttl}` : ''),
      }
    if (stats) {
      const k = `${c.method} ${/^(gRPC|HTTP)/.test(a.text) ? a.text.replace(/"code":\d+.*/, '') : 'ok'}`
      stats.set(k, (stats.get(k) ?? 0) + 1)
    }
    gen.learn(c, a, mut !== undefined)
  }
  return undefined
}

/** A mismatch as a failure message: what to rerun, the request, both answers. */
export function formatMismatch(m: Mismatch): string {
  const cut = (s: string) => (s.length > 2000 ? `${s.slice(0, 2000)}...` : s)
  return [
    `seed ${m.seed} step ${m.step} (${m.door}): edgecd answers differently from etcd 3.4`,
    `  rerun: EDGECD_DIFF_SEED=${m.seed} npm test -- test/diff/${m.file ?? `random-${m.door}.test.ts`}`,
    `  request: ${cut(m.call)}`,
    `  etcd:    ${cut(m.etcd)}`,
    `  edgecd:  ${cut(m.edgecd)}`,
  ].join('\n')
}

/**
 * The seeds a run uses: EDGECD_DIFF_SEED=N (one seed, e.g. to rerun a failure), else EDGECD_DIFF_SOAK=1 (seeds 1..40
 * and 500 steps each, EDGECD_DIFF_SEEDS=N for another count, EDGECD_DIFF_SEED_BASE=B for seeds B+1..B+N), else `defaults` (npm test; two seeds of 250 steps).
 */
export function diffRunPlan(defaults: { steps?: number; seeds?: number } = {}): { seeds: number[]; steps: number } {
  const env = process.env
  const soak = env.EDGECD_DIFF_SOAK === '1'
  const steps = Number(env.EDGECD_DIFF_STEPS ?? (soak ? 500 : (defaults.steps ?? 250)))
  if (env.EDGECD_DIFF_SEED) return { seeds: [Number(env.EDGECD_DIFF_SEED)], steps }
  const n = soak ? Number(env.EDGECD_DIFF_SEEDS ?? 40) : (defaults.seeds ?? 2)
  const base = soak ? Number(env.EDGECD_DIFF_SEED_BASE ?? 0) : 0
  return { seeds: Array.from({ length: n }, (_, i) => base + i + 1), steps }
}

/**
 * The suite of one door (random-grpc.test.ts, random-json.test.ts): per seed of diffRunPlan, a fresh etcd 3.4 and a
 * fresh edgecd member answer the same generated steps; a mismatch fails with formatMismatch's text.
 */
export function randomDiffSuite(door: DoorKind, title: string): void {
  const plan = diffRunPlan()
  describe(title, { skip: requires('etcd') }, () => {
    for (const seed of plan.seeds)
      test(`seed ${seed}: ${plan.steps} steps`, { timeout: 600_000 }, async () => {
        const pair = await startDiffPair()
        try {
          const m = await runSeed(pair.etcd.url, pair.edgeUrl, door, seed, plan.steps)
          if (m) assert.fail(formatMismatch(m))
        } finally {
          await pair.stop()
        }
      })
  })
}
