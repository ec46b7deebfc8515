/**
 * etcd's gRPC front door (etcd's api/v3rpc): the etcdserverpb services KV, Watch, Lease, Cluster, Maintenance and
 * Auth, and the v3lock and v3election services, as ConnectRPC routes over the same member methods as the JSON
 * gateway (src/api/http/app.ts). Only the mapping lives here: each RPC converts its request (./convert.ts), asks the
 * member, converts the answer. Errors are the member's EtcdErrors with etcd's gRPC code and message.
 *
 * Web-standard only: the runtime serves these routes over HTTP/2 (src/runtime/node/grpc.ts) and passes the caller's
 * connection facts (certificate CN, address) as context values.
 */

import { type DescMessage, type DescService, toBinary } from '@bufbuild/protobuf'
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  type HandlerContext,
  type ServiceImpl,
} from '@connectrpc/connect'
import type { AuthInfo } from '../../auth/store.js'
import type { MemberApi } from '../../etcdserver/api.js'
import { EtcdError, etcdError, GrpcCode } from '../../protocol/errors.js'
import type { WatchRequest, WatchResponse } from '../../protocol/types.js'
import { checkRequestSize, proposedTag } from '../http/codec/proto-size.js'
import { type ConcurrencyApi, memberConcurrency } from './concurrency.js'
import { fromProto, toProto } from './convert.js'
import * as election from './gen/etcd/etcdserver/api/v3election/v3electionpb/v3election_pb.js'
import * as lock from './gen/etcd/etcdserver/api/v3lock/v3lockpb/v3lock_pb.js'
import * as pb from './gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { WatchQueueBudget, watchResponseToProto } from './watch-proto.js'
import { GrpcWatchSession, type RawWatch } from './watch-session.js'

/** What the runtime knows about a call's connection. */
export interface GrpcPeer {
  /** The CN of the verified client certificate (--client-cert-auth), the caller when no token is given. */
  certUser?: string | undefined
  /** The client's address, for authenticate's per-address failure limits. */
  address: string
}

export const grpcPeerKey = createContextKey<GrpcPeer>({ address: '' }, { description: 'edgecd gRPC peer' })

export interface GrpcOptions {
  /** Upper bound of concurrent watch streams per member, shared with the HTTP front door when given the same counter. */
  maxWatchStreams: number
  /**
   * etcd's --max-request-bytes and --max-txn-ops (defaults 1.5 MiB and 128): a write whose raft request would be
   * longer is refused with `etcdserver: request is too large`, after the request's own checks, as etcd.
   */
  maxRequestBytes?: number
  maxTxnOps?: number
  /** The shared count of open watch streams (the HTTP and gRPC front doors together). */
  watchStreams?: { n: number }
  /** The member's grpc_server_* counters (src/api/http/metrics.ts), shared with the JSON gateway's calls. */
  metrics?: {
    start(method: string): { received(bytes: number): void; sent(bytes: number): void; end(code: number): void }
    /** Message bytes a runtime counted on the wire for calls served through ConnectRPC (streams): see clientBytes. */
    clientBytes?(received: number, sent: number): void
  }
  /**
   * How often streams opened with clientv3's WithRequireLeader (`hasleader: true` metadata) are checked for a leader
   * (etcd: every election timeout); a check that finds none cancels them with `etcdserver: no leader`.
   */
  leaderCheckMs?: number
  /** The timer of that check (tests inject one); default setInterval. Returns the function that stops it. */
  every?: (ms: number, fn: () => void) => () => void
}

/** Streams opened with WithRequireLeader, cancelled when a periodic check finds no leader (etcd's monitorLeader). */
class LeaderMonitor {
  private readonly streams = new Set<() => void>()
  private stop: (() => void) | undefined
  constructor(
    private readonly hasLeader: () => boolean,
    private readonly ms: number,
    private readonly every: (ms: number, fn: () => void) => () => void,
  ) {}
  /** Registers a stream's cancel; returns its removal. The check runs only while such streams are open. */
  add(cancel: () => void): () => void {
    this.streams.add(cancel)
    this.stop ??= this.every(this.ms, () => this.check())
    return () => {
      this.streams.delete(cancel)
      if (this.streams.size === 0) {
        this.stop?.()
        this.stop = undefined
      }
    }
  }
  private check(): void {
    if (this.hasLeader()) return
    const all = [...this.streams]
    this.streams.clear()
    this.stop?.()
    this.stop = undefined
    for (const cancel of all) cancel()
  }
}

const defaultEvery = (ms: number, fn: () => void): (() => void) => {
  const t = setInterval(fn, ms)
  ;(t as { unref?: () => void }).unref?.()
  return () => clearInterval(t)
}

/** The snapshot's chunk size, as etcd's (32 KiB). */
const snapshotChunkBytes = 32 * 1024

/** Any thrown value as a ConnectError with etcd's code and exact message (unknown failures: code 13). */
export function grpcError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err
  const e = err instanceof EtcdError ? err : etcdError(GrpcCode.Internal, 'etcdserver: internal error')
  return new ConnectError(e.message, e.grpcCode as number as Code)
}

/** One call's grpc_server_* counting (GrpcOptions.metrics' start), told the bytes sent and the code it ends with. */
export interface UnaryMeter {
  sent(bytes: number): void
  end(code: number): void
}

/**
 * A unary RPC without the protobuf-es messages, for a runtime that reads and writes the wire itself (./codec.ts):
 * `meter` starts the call's counting (undefined when metrics are not kept), then `call` takes the member's request
 * object and answers the member's response object: the member's promise itself, with no wrapper of its own (one
 * promise and one microtask per call fewer), or a throw. The caller ends the meter: `sent` and `end(0)` after the
 * answer, `end(grpcError(err).code)` on a failure. Attached to each unary implementation under `rawUnary`.
 */
export interface RawUnary {
  method: string
  input: DescMessage
  output: DescMessage
  /** `receivedBytes` (counted in metrics) may include the transport's envelope. */
  meter(receivedBytes: number): UnaryMeter | undefined
  /** `messageBytes` is the request message's length (--max-request-bytes). */
  call(req: unknown, ctx: HandlerContext, messageBytes: number): Promise<object> | object
}
export const rawUnary = Symbol('edgecd raw unary')

/** A service and its implementation (what `ConnectRouter.service` takes). */
export type GrpcService = [DescService, Partial<ServiceImpl<any>>]

/** The unary methods by path (`/etcdserverpb.KV/Range`): those whose implementation has a raw form. */
export function unaryTable(services: GrpcService[]): Map<string, RawUnary> {
  const table = new Map<string, RawUnary>()
  for (const [desc, impl] of services)
    for (const m of desc.methods) {
      const fn = (impl as Record<string, unknown>)[m.localName] as { [rawUnary]?: RawUnary } | undefined
      const raw = fn?.[rawUnary]
      if (m.methodKind === 'unary' && raw) table.set(`/${desc.typeName}/${m.name}`, raw)
    }
  return table
}

/** The Watch call on raw bytes (./watch-session.ts), attached to the Watch implementation under `rawWatch`. */
export const rawWatch = Symbol('edgecd raw watch')

/** The raw Watch call of these services (the runtime serves `/etcdserverpb.Watch/Watch` with it). */
export function rawWatchOf(services: GrpcService[]): RawWatch | undefined {
  for (const [desc, impl] of services)
    if (desc.typeName === pb.Watch.typeName)
      return ((impl as Record<string, unknown>).watch as { [rawWatch]?: RawWatch } | undefined)?.[rawWatch]
  return undefined
}

/** The routes of every etcd service over `member`, for a ConnectRPC router. */
export function grpcRoutes(member: MemberApi, opts: GrpcOptions): (router: ConnectRouter) => void {
  const services = grpcServices(member, opts)
  return (router) => {
    for (const [desc, impl] of services) router.service(desc, impl)
  }
}

/** Every etcd service over `member`, with its implementation. */
export function grpcServices(member: MemberApi, opts: GrpcOptions): GrpcService[] {
  const watchStreams = opts.watchStreams ?? { n: 0 }
  const leaderKnown = () => (member.hasLeader ? member.hasLeader() : member.healthy())
  /** clientv3's WithRequireLeader: a call that asks for a leader is refused while the member knows none. */
  const requiresLeader = (ctx: HandlerContext): boolean => {
    if (ctx.requestHeader.get('hasleader') !== 'true') return false
    if (!leaderKnown()) throw new EtcdError('ErrNoLeader')
    return true
  }
  const leaderMonitor = new LeaderMonitor(leaderKnown, opts.leaderCheckMs ?? 1000, opts.every ?? defaultEvery)
  const limits = { maxRequestBytes: opts.maxRequestBytes ?? 1.5 * 1024 * 1024, maxTxnOps: opts.maxTxnOps ?? 128 }
  /** --max-request-bytes on the raft request etcd would propose for a write of `size` protobuf bytes. */
  const checkSize = (method: string, r: unknown, size: number, info: AuthInfo | undefined) =>
    checkRequestSize(method, r, size, limits, info ? { name: info.user, rev: info.rev } : undefined)
  /** The caller's auth check: synchronous (no promise, no microtask) while auth is off. */
  const authorizeNow = (
    method: string,
    req: unknown,
    ctx: HandlerContext,
  ): AuthInfo | undefined | Promise<AuthInfo | undefined> => {
    // Auth off (the common case): no peer to look up; a token given is still read (etcd fails a bad one).
    if (!member.authorize) return undefined
    const token = ctx.requestHeader.get('token') ?? undefined
    if (member.authEnabled?.() === false && token === undefined) return undefined
    const peer = ctx.values.get(grpcPeerKey)
    return member.authorize(method, req, token, peer.certUser)
  }
  const authorize = async (method: string, req: unknown, ctx: HandlerContext): Promise<AuthInfo | undefined> =>
    authorizeNow(method, req, ctx)
  /** A unary RPC: convert, authorize, call, convert back; errors as etcd's. */
  const unary = <Req, Res extends DescMessage>(
    method: string,
    reqDesc: DescMessage,
    resDesc: Res,
    fn: (r: Req, info: AuthInfo | undefined, ctx: HandlerContext) => Promise<object>,
  ) =>
    Object.assign(
      async (msg: object, ctx: HandlerContext) => {
        const call = opts.metrics?.start(method)
        call?.received(0)
        try {
          requiresLeader(ctx)
          const r = fromProto<Req>(reqDesc, msg)
          const info = await authorize(method, r, ctx)
          // The message's length is known only encoded: measured when it may be near the limit (a write).
          if (proposedTag(method, r) !== undefined) checkSize(method, r, toBinary(reqDesc, msg as never).length, info)
          const out = toProto(resDesc, await fn(r, info, ctx))
          call?.sent(0)
          call?.end(0)
          return out
        } catch (err) {
          const e = grpcError(err)
          call?.end(e.code)
          throw e
        }
      },
      {
        [rawUnary]: {
          method,
          input: reqDesc,
          output: resDesc,
          meter: (received: number) => {
            const call = opts.metrics?.start(method)
            call?.received(received)
            return call
          },
          call: (r: unknown, ctx: HandlerContext, size: number) => {
            requiresLeader(ctx)
            const a = authorizeNow(method, r, ctx)
            if (a instanceof Promise)
              return a.then((info) => {
                checkSize(method, r, size, info)
                return fn(r as Req, info, ctx)
              })
            checkSize(method, r, size, a)
            return fn(r as Req, a, ctx)
          },
        } satisfies RawUnary,
      },
    )
  const conc: ConcurrencyApi = memberConcurrency(member)
  /**
   * A stream call's grpc_server_* counting, as go-grpc-prometheus' stream interceptor: started when the stream opens,
   * one msg_received / msg_sent per message, handled once with the code it ends with (a stream the client goes away
   * from ends Canceled). Message sizes are not known here (ConnectRPC serialises): the runtime counts the bytes on the
   * wire (metrics.clientBytes, src/runtime/node/grpc.ts), so these count 0.
   */
  const streamCall = (method: string, ctx: HandlerContext) => {
    const call = opts.metrics?.start(method)
    return {
      received: () => call?.received(0),
      sent: () => call?.sent(0),
      end: (err?: unknown) => {
        if (!call) return
        if (err === undefined) call.end(ctx.signal.aborted ? GrpcCode.Canceled : 0)
        else call.end(ctx.signal.aborted ? GrpcCode.Canceled : grpcError(err).code)
      },
    }
  }

  const services: GrpcService[] = []
  const router = {
    service<D extends DescService>(desc: D, impl: Partial<ServiceImpl<D>>) {
      services.push([desc, impl as Partial<ServiceImpl<any>>])
    },
  }
  {
    router.service(pb.KV, {
      range: unary('Range', pb.RangeRequestSchema, pb.RangeResponseSchema, (r) => member.range(r as never)),
      put: unary('Put', pb.PutRequestSchema, pb.PutResponseSchema, (r, i) => member.put(r as never, i)),
      deleteRange: unary('DeleteRange', pb.DeleteRangeRequestSchema, pb.DeleteRangeResponseSchema, (r, i) =>
        member.deleteRange(r as never, i),
      ),
      txn: unary('Txn', pb.TxnRequestSchema, pb.TxnResponseSchema, (r, i) => member.txn(r as never, i)),
      compact: unary('Compact', pb.CompactionRequestSchema, pb.CompactionResponseSchema, (r, i) =>
        member.compact(r as never, i),
      ),
    })

    router.service(pb.Lease, {
      leaseGrant: unary('LeaseGrant', pb.LeaseGrantRequestSchema, pb.LeaseGrantResponseSchema, (r) =>
        member.leaseGrant(r as never),
      ),
      leaseRevoke: unary('LeaseRevoke', pb.LeaseRevokeRequestSchema, pb.LeaseRevokeResponseSchema, (r, i) =>
        member.leaseRevoke(r as never, i),
      ),
      leaseTimeToLive: unary(
        'LeaseTimeToLive',
        pb.LeaseTimeToLiveRequestSchema,
        pb.LeaseTimeToLiveResponseSchema,
        (r) => member.leaseTimeToLive(r as never),
      ),
      leaseLeases: unary('LeaseLeases', pb.LeaseLeasesRequestSchema, pb.LeaseLeasesResponseSchema, () =>
        member.leaseLeases(),
      ),
      // One renewal per request, answered in order; a lease that is gone answers TTL 0 (etcd's leaseKeepAlive).
      async *leaseKeepAlive(reqs, ctx) {
        const call = streamCall('LeaseKeepAlive', ctx)
        let failure: unknown
        let unmonitor: (() => void) | undefined
        try {
          // WithRequireLeader: refused without a leader, and ended with `no leader` when a check finds none.
          let noLeader: Promise<never> | undefined
          if (requiresLeader(ctx))
            noLeader = new Promise<never>((_, reject) => {
              unmonitor = leaderMonitor.add(() => reject(new EtcdError('ErrNoLeader')))
            })
          noLeader?.catch(() => undefined)
          const it = reqs[Symbol.asyncIterator]()
          for (;;) {
            const next = noLeader ? await Promise.race([it.next(), noLeader]) : await it.next()
            if (next.done) break
            const msg = next.value
            call.received()
            const res = await member.leaseKeepAlive(fromProto(pb.LeaseKeepAliveRequestSchema, msg))
            yield toProto(pb.LeaseKeepAliveResponseSchema, res)
            call.sent()
          }
        } catch (err) {
          failure = err
          throw grpcError(err)
        } finally {
          unmonitor?.()
          call.end(failure)
        }
      },
    })

    router.service(pb.Watch, {
      // The gRPC-Web / Connect door (./fetch.ts) serves Watch here; the Node door serves it on raw bytes (rawWatch).
      watch: Object.assign(watchViaConnect, {
        [rawWatch]: ((meta, transport) =>
          new GrpcWatchSession(
            {
              member,
              requiresLeader: (hasLeader) => {
                if (!hasLeader) return false
                if (!leaderKnown()) throw new EtcdError('ErrNoLeader')
                return true
              },
              monitorLeader: (cancel) => leaderMonitor.add(cancel),
              authorize: (token, certUser) => member.authorize?.('Watch', undefined, token, certUser),
              maxWatchStreams: opts.maxWatchStreams,
              watchStreams,
              ...(opts.metrics ? { metrics: opts.metrics } : {}),
            },
            meta,
            transport,
          )) satisfies RawWatch,
      }),
    })
    async function* watchViaConnect(reqs: AsyncIterable<pb.WatchRequest>, ctx: HandlerContext) {
      {
        const call = streamCall('Watch', ctx)
        let info: AuthInfo | undefined
        let requireLeader = false
        try {
          // clientv3's WithRequireLeader (etcdctl watch sends it): no stream while the member knows no leader, and
          // the stream is cancelled with `no leader` when a later check finds none (etcd's monitorLeader).
          requireLeader = requiresLeader(ctx)
          info = await authorize('Watch', undefined, ctx)
          if (watchStreams.n >= opts.maxWatchStreams)
            throw new ConnectError('etcdserver: too many watch streams', Code.ResourceExhausted)
        } catch (err) {
          call.end(err)
          throw grpcError(err)
        }
        watchStreams.n++
        const queue: WatchResponse[] = []
        let held = false
        let failed: unknown
        let wake: (() => void) | undefined
        const budget = new WatchQueueBudget()
        const stream = member.openWatchStream(
          (resp) => {
            queue.push(resp)
            wake?.()
            if (budget.add(resp)) return true
            held = true
            return false
          },
          info,
          { busy: true },
        )
        // Requests are read alongside: a half-closed request side leaves the watches running, as etcd's recvLoop.
        void (async () => {
          try {
            for await (const msg of reqs) {
              call.received()
              stream.request(fromProto<WatchRequest>(pb.WatchRequestSchema, msg))
            }
          } catch (err) {
            failed = err
            wake?.()
          }
        })()
        let ended: unknown
        const unmonitor = requireLeader
          ? leaderMonitor.add(() => {
              failed ??= new EtcdError('ErrNoLeader')
              wake?.()
            })
          : undefined
        const aborted = () => wake?.()
        ctx.signal.addEventListener('abort', aborted)
        try {
          for (;;) {
            while (queue.length > 0) {
              const batch = queue.splice(0, queue.length)
              budget.reset()
              for (const r of batch) {
                yield watchResponseToProto(r)
                call.sent()
              }
            }
            if (held) {
              held = false
              stream.resume()
              continue
            }
            if (failed !== undefined) {
              ended = failed
              throw grpcError(failed)
            }
            if (ctx.signal.aborted) return
            await new Promise<void>((resolve) => {
              wake = resolve
            })
            wake = undefined
          }
        } finally {
          ctx.signal.removeEventListener('abort', aborted)
          unmonitor?.()
          stream.close()
          watchStreams.n--
          call.end(ended)
        }
      }
    }

    router.service(pb.Cluster, {
      memberAdd: unary('MemberAdd', pb.MemberAddRequestSchema, pb.MemberAddResponseSchema, (r) =>
        member.memberAdd(r as never),
      ),
      memberRemove: unary('MemberRemove', pb.MemberRemoveRequestSchema, pb.MemberRemoveResponseSchema, (r) =>
        member.memberRemove(r as never),
      ),
      memberUpdate: unary('MemberUpdate', pb.MemberUpdateRequestSchema, pb.MemberUpdateResponseSchema, (r) =>
        member.memberUpdate(r as never),
      ),
      memberList: unary('MemberList', pb.MemberListRequestSchema, pb.MemberListResponseSchema, () =>
        member.memberList(),
      ),
      memberPromote: unary('MemberPromote', pb.MemberPromoteRequestSchema, pb.MemberPromoteResponseSchema, (r) =>
        member.memberPromote(r as never),
      ),
    })

    router.service(pb.Maintenance, {
      // etcd 3.4's maintenance server answers alarms without a header.
      alarm: unary('Alarm', pb.AlarmRequestSchema, pb.AlarmResponseSchema, (r) =>
        member.alarm(r as never).then((x) => ({ alarms: x.alarms })),
      ),
      status: unary('Status', pb.StatusRequestSchema, pb.StatusResponseSchema, () => member.status()),
      // Nothing to defragment (no bolt file): etcd 3.4's DefragmentResponse has no header.
      defragment: unary('Defragment', pb.DefragmentRequestSchema, pb.DefragmentResponseSchema, async () => ({})),
      hash: unary('Hash', pb.HashRequestSchema, pb.HashResponseSchema, () => member.hash()),
      hashKV: unary('HashKV', pb.HashKVRequestSchema, pb.HashKVResponseSchema, (r) => member.hashKV(r as never)),
      moveLeader: unary('MoveLeader', pb.MoveLeaderRequestSchema, pb.MoveLeaderResponseSchema, (r) =>
        member.moveLeader(r as never),
      ),
      async *snapshot(_req, ctx) {
        const call = streamCall('Snapshot', ctx)
        call.received()
        let snap: Awaited<ReturnType<MemberApi['snapshot']>>
        try {
          requiresLeader(ctx)
          await authorize('Snapshot', undefined, ctx)
          snap = await member.snapshot()
        } catch (err) {
          call.end(err)
          throw grpcError(err)
        }
        let done = false
        // As etcd 3.4: 32 KiB chunks counting down remaining_bytes (no header), then the SHA-256 of the whole as
        // one last message, which etcdctl checks (the snapshot's length is a multiple of 512: saved-snapshot.ts).
        try {
          const { data } = snap
          const sha = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
          for (let off = 0; off < data.length; ) {
            const blob = data.subarray(off, Math.min(off + snapshotChunkBytes, data.length))
            off += blob.length
            yield toProto(pb.SnapshotResponseSchema, { remaining_bytes: data.length - off, blob })
            call.sent()
          }
          yield toProto(pb.SnapshotResponseSchema, { remaining_bytes: 0, blob: sha })
          call.sent()
          done = true
        } finally {
          // A consumer that stops early (the client went away) ends the generator here: Canceled.
          call.end(done ? undefined : new ConnectError('canceled', Code.Canceled))
        }
      },
    })

    // The Auth service: each method is one call on the member's auth service (etcd's AuthServer), refused with
    // ErrAuthNotEnabled on a member built without auth; names and message types come from the service descriptor.
    const auth = member.auth
    type AuthCall = (
      a: NonNullable<typeof auth>,
      r: never,
      i: AuthInfo | undefined,
      c: HandlerContext,
    ) => Promise<object>
    const authCalls: Record<keyof typeof pb.Auth.method, AuthCall> = {
      authEnable: (a, _r, i) => a.enable(i),
      authDisable: (a, _r, i) => a.disable(i),
      authenticate: (a, r, _i, c) => a.authenticate(r, c.values.get(grpcPeerKey).address),
      userAdd: (a, r, i) => a.userAdd(r, i),
      userGet: (a, r, i) => a.userGet(r, i),
      userList: (a, _r, i) => a.userList(i),
      userDelete: (a, r, i) => a.userDelete(r, i),
      userChangePassword: (a, r, i) => a.userChangePassword(r, i),
      userGrantRole: (a, r, i) => a.userGrantRole(r, i),
      userRevokeRole: (a, r, i) => a.userRevokeRole(r, i),
      roleAdd: (a, r, i) => a.roleAdd(r, i),
      roleGet: (a, r, i) => a.roleGet(r, i),
      roleList: (a, _r, i) => a.roleList(i),
      roleDelete: (a, r, i) => a.roleDelete(r, i),
      roleGrantPermission: (a, r, i) => a.roleGrantPermission(r, i),
      roleRevokePermission: (a, r, i) => a.roleRevokePermission(r, i),
    }
    router.service(
      pb.Auth,
      Object.fromEntries(
        Object.entries(authCalls).map(([key, call]) => {
          const m = pb.Auth.method[key as keyof typeof pb.Auth.method]
          return [
            key,
            unary(m.name, m.input, m.output, async (r: never, i, c) => {
              if (auth === undefined) throw new EtcdError('ErrAuthNotEnabled')
              return call(auth, r, i, c)
            }),
          ]
        }),
      ),
    )

    router.service(lock.Lock, {
      lock: unary('Lock', lock.LockRequestSchema, lock.LockResponseSchema, (r, i, c) =>
        conc.lock(r as never, i, c.signal),
      ),
      unlock: unary('Unlock', lock.UnlockRequestSchema, lock.UnlockResponseSchema, (r, i) =>
        conc.unlock(r as never, i),
      ),
    })

    router.service(election.Election, {
      campaign: unary('Campaign', election.CampaignRequestSchema, election.CampaignResponseSchema, (r, i, c) =>
        conc.campaign(r as never, i, c.signal),
      ),
      proclaim: unary('Proclaim', election.ProclaimRequestSchema, election.ProclaimResponseSchema, (r, i) =>
        conc.proclaim(r as never, i),
      ),
      leader: unary('Leader', election.LeaderRequestSchema, election.LeaderResponseSchema, (r) =>
        conc.leader(r as never),
      ),
      resign: unary('Resign', election.ResignRequestSchema, election.ResignResponseSchema, (r, i) =>
        conc.resign(r as never, i),
      ),
      async *observe(req, ctx) {
        const call = streamCall('Observe', ctx)
        call.received()
        let failure: unknown
        try {
          requiresLeader(ctx)
          for await (const res of conc.observe(fromProto(election.LeaderRequestSchema, req), ctx.signal)) {
            yield toProto(election.LeaderResponseSchema, res)
            call.sent()
          }
        } catch (err) {
          if (ctx.signal.aborted) return
          failure = err
          throw grpcError(err)
        } finally {
          call.end(failure)
        }
      },
    })
  }
  return services
}
