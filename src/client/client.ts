/**
 * The edgecd client: etcd's v3 API over the JSON gateway with Web-standard `fetch` and `WebSocket` only, so it runs
 * on Node, Deno, browsers and Workers. Calls fail over between endpoints (see transport.ts for what is retried).
 *
 * ```ts
 * const client = new Client({ endpoints: ['http://127.0.0.1:2379'] })
 * await client.put('greeting', 'hello')
 * const kv = await client.get('greeting')          // kv?.value === 'hello'
 * for await (const r of client.watch({ prefix: 'app/' })) console.log(r.events)
 * ```
 */
import { AuthClient } from './auth.js'
import { type Bytes, fromBase64 } from './bytes.js'
import { EtcdClientError, GrpcCode } from './errors.js'
import { LeaseClient } from './lease.js'
import {
  type DeleteOptions,
  deleteRequest,
  type PutOptions,
  putRequest,
  type RangeOptions,
  rangeRequest,
} from './requests.js'
import { type TlsOptions, tlsFetch, tlsWebSocket } from './tls.js'
import { Transport } from './transport.js'
import { TxnBuilder } from './txn.js'
import {
  type Answer,
  type DeleteResponse,
  decodeDelete,
  decodeHeader,
  decodeMember,
  decodePut,
  decodeRange,
  decodeStatus,
  decodeTxn,
  idString,
  type KeyValue,
  type LeaseIdLike,
  type MemberAddResponse,
  type MemberListResponse,
  type PutResponse,
  type RangeResponse,
  type Raw,
  type StatusResponse,
  withRaw,
} from './types.js'
import { Watcher, type WatchOptions, type WatchTarget } from './watch.js'
import { WatchStream, type WebSocketConstructor } from './watch-stream.js'
import { chooseWebSocket } from './websocket.js'

/** Options of a Client. */
export interface ClientOptions {
  /** Member URLs, e.g. ['http://127.0.0.1:2379']; calls go to one and fail over to the next. */
  endpoints: string[]
  /** A ready token, sent as `Authorization: Bearer <token>` (ignored when `username` is given). */
  token?: string
  /**
   * User name and password: the client authenticates on first use, caches the token, and when the server refuses
   * it (`etcdserver: invalid auth token`, expired, or older than the auth store) authenticates again and retries once.
   */
  username?: string
  password?: string
  /** Bound on opening a connection (WebSocket watch opens), ms; default 5,000. */
  dialTimeoutMs?: number
  /** Bound on one call including its retries, ms; default 10,000. */
  commandTimeoutMs?: number
  /**
   * WebSocket constructor for watches; default globalThis.WebSocket, or on Node (through the package's `edgecd` import)
   * the `ws` package where there is no global one or where `tls` is set.
   */
  WebSocket?: unknown
  /** fetch to use; default globalThis.fetch (with `tls`: undici's, on Node). */
  fetch?: typeof fetch
  /**
   * TLS: CA PEM(s) to trust, a client certificate and key PEM to present (Node; watches need the `ws` package as
   * `WebSocket`). Without it https endpoints use the runtime's trust store.
   */
  tls?: TlsOptions
  /** Backoff between fail-over attempts, ms (default 25 doubling up to 1,000). */
  backoffMinMs?: number
  backoffMaxMs?: number
}

/** Default timeouts, as etcdctl's (dial 2 s there; a little more here for slow CI) and a command budget. */
export const clientDefaults = { dialTimeoutMs: 5000, commandTimeoutMs: 10_000 } as const

/** An etcd v3 client over the JSON gateway. */
export class Client {
  /** The transport (endpoints, fail-over); exposed for recipes and tools. */
  readonly transport: Transport
  /** Lease API. */
  readonly lease: LeaseClient
  /** Cluster membership API. */
  readonly member: MemberClient
  /** Auth API: enable/disable, status, authenticate, users, roles. */
  readonly auth: AuthClient
  private readonly WS: WebSocketConstructor | undefined
  private readonly watchers = new Set<Watcher>()
  /** One WebSocket shared by every watch of this client (opened on the first watch). */
  private watchStream: WatchStream | undefined

  constructor(opts: ClientOptions) {
    this.transport = new Transport({
      endpoints: opts.endpoints,
      token: opts.token,
      username: opts.username,
      password: opts.password,
      dialTimeoutMs: opts.dialTimeoutMs ?? clientDefaults.dialTimeoutMs,
      commandTimeoutMs: opts.commandTimeoutMs ?? clientDefaults.commandTimeoutMs,
      backoffMinMs: opts.backoffMinMs,
      backoffMaxMs: opts.backoffMaxMs,
      fetch: opts.fetch ?? (opts.tls ? tlsFetch(opts.tls) : undefined),
    })
    const WS = chooseWebSocket(opts.WebSocket, opts.tls !== undefined)
    this.WS = WS && opts.tls ? tlsWebSocket(WS, opts.tls) : WS
    this.lease = new LeaseClient(this.transport)
    this.member = new MemberClient(this.transport)
    this.auth = new AuthClient(this.transport)
  }

  /**
   * A raw gateway call: POSTs `body` to `path` (e.g. '/v3/kv/range') and returns the JSON answer. `idempotent`
   * says whether it may be sent again after a failure that might have reached a server.
   */
  request<T = Raw>(path: string, body: unknown, opts: { idempotent: boolean }): Promise<T> {
    return this.transport.call<T>(path, body, opts)
  }

  /** One key, or undefined when it does not exist. */
  async get(
    key: Bytes,
    opts: Omit<RangeOptions, 'rangeEnd' | 'prefix' | 'fromKey'> = {},
  ): Promise<KeyValue | undefined> {
    return (await this.range(key, opts)).kvs[0]
  }

  /** Every key starting with `prefix`. */
  getPrefix(prefix: Bytes, opts: Omit<RangeOptions, 'rangeEnd' | 'prefix' | 'fromKey'> = {}): Promise<RangeResponse> {
    return this.range(prefix, { ...opts, prefix: true })
  }

  /** A range read with every option of etcd's RangeRequest. */
  async range(key: Bytes, opts: RangeOptions = {}): Promise<RangeResponse> {
    return decodeRange(
      await this.transport.call('/v3/kv/range', rangeRequest(key, opts), { idempotent: true, what: 'range' }),
    )
  }

  /** Sets a key. Not retried once it may have reached a server (ERR_UNKNOWN_OUTCOME instead). */
  async put(key: Bytes, value: Bytes, opts: PutOptions = {}): Promise<PutResponse> {
    return decodePut(
      await this.transport.call('/v3/kv/put', putRequest(key, value, opts), { idempotent: false, what: 'put' }),
    )
  }

  /** Deletes a key or a range (`prefix`, `fromKey`, `rangeEnd`). */
  async delete(key: Bytes, opts: DeleteOptions = {}): Promise<DeleteResponse> {
    return decodeDelete(
      await this.transport.call('/v3/kv/deleterange', deleteRequest(key, opts), { idempotent: false, what: 'delete' }),
    )
  }

  /** A transaction builder: `client.txn().if(...).then(...).else(...).commit()`. */
  txn(): TxnBuilder {
    return new TxnBuilder(async (body) => {
      // A txn without writes is a read and may be retried.
      const writes = JSON.stringify(body).match(/"request_(put|delete_range)"/) !== null
      return decodeTxn(await this.transport.call('/v3/kv/txn', body, { idempotent: !writes, what: 'txn' }))
    })
  }

  /** Compacts the history up to `revision`. */
  async compact(revision: number, opts: { physical?: boolean } = {}): Promise<Answer> {
    const body: Record<string, unknown> = { revision: String(revision) }
    if (opts.physical) body.physical = true
    const r: Raw = await this.transport.call('/v3/kv/compaction', body, { idempotent: true, what: 'compaction' })
    return withRaw({ header: decodeHeader(r.header) }, r)
  }

  /**
   * Watches a key (`'k'`), a prefix (`{prefix: 'app/'}`) or a range (`{key, rangeEnd}`); iterate the result.
   * Every watch of a client shares one WebSocket; each resumes after disconnects without losing or repeating events.
   */
  watch(target: WatchTarget, opts: WatchOptions = {}): Watcher {
    if (this.WS === undefined)
      throw new EtcdClientError(
        'ERR_CLOSED',
        GrpcCode.Unimplemented,
        "edgecd client: no WebSocket in this runtime; pass the WebSocket option, or import the package's Node entry ('edgecd' under Node picks the ws package itself)",
      )
    this.watchStream ??= new WatchStream(this.transport, this.WS)
    const w = new Watcher(this.watchStream, target, opts)
    this.watchers.add(w)
    void w.ready.then(
      () => {},
      () => this.watchers.delete(w),
    )
    return w
  }

  /**
   * @internal The WebSocket watch stream shared by every watch of this client (the replica drives its own watches
   * on it). Throws when the runtime has no WebSocket.
   */
  sharedWatchStream(): WatchStream {
    if (this.WS === undefined)
      throw new EtcdClientError(
        'ERR_CLOSED',
        GrpcCode.Unimplemented,
        'edgecd client: no WebSocket in this runtime; pass the WebSocket option (on Node 20: the ws package)',
      )
    this.watchStream ??= new WatchStream(this.transport, this.WS)
    return this.watchStream
  }

  /** Status of one member: the given endpoint, or whichever the client reaches. */
  async status(endpoint?: string): Promise<StatusResponse & { endpoint: string }> {
    const ep = endpoint ?? this.transport.current()
    const r = decodeStatus(
      await this.transport.call('/v3/maintenance/status', {}, { idempotent: true, endpoint: endpoint, what: 'status' }),
    )
    return Object.assign(r, { endpoint: endpoint ?? ep })
  }

  /** Whether an endpoint answers GET /health with health true. */
  async health(endpoint: string): Promise<{ endpoint: string; health: boolean; tookMs: number; error?: string }> {
    const start = performance.now()
    const f = this.transport.fetch
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), this.transport.dialTimeoutMs)
    try {
      const r = await f(`${endpoint.replace(/\/+$/, '')}/health`, { signal: ac.signal })
      const j = (await r.json()) as { health?: string }
      const ok = j.health === 'true'
      return {
        endpoint,
        health: ok,
        tookMs: performance.now() - start,
        ...(ok ? {} : { error: 'unhealthy: no leader' }),
      }
    } catch (err) {
      return {
        endpoint,
        health: false,
        tookMs: performance.now() - start,
        error: ac.signal.aborted ? 'context deadline exceeded' : String((err as Error).message),
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /** Hands leadership to `targetId`; sent to the current leader, found by asking the endpoints. */
  async moveLeader(targetId: LeaseIdLike): Promise<Answer> {
    const s = await this.status()
    let leaderEndpoint: string | undefined
    for (const ep of this.transport.endpoints) {
      const st = await this.status(ep).catch(() => undefined)
      if (st && st.header.memberId === s.leader) leaderEndpoint = ep
    }
    if (leaderEndpoint === undefined) {
      const members = await this.member.list()
      leaderEndpoint = members.members.find((m) => m.id === s.leader)?.clientUrls[0]
    }
    if (leaderEndpoint === undefined)
      throw new EtcdClientError(
        'ERR_UNAVAILABLE',
        GrpcCode.Unavailable,
        'move leader: the leader has no reachable client URL',
      )
    const r: Raw = await this.transport.call(
      '/v3/maintenance/transfer-leadership',
      { targetID: idString(targetId) },
      { idempotent: false, endpoint: leaderEndpoint, what: 'move leader' },
    )
    return withRaw({ header: decodeHeader(r.header) }, r)
  }

  /**
   * Streams a snapshot of the store: yields `{blob, remainingBytes}` chunks (edgecd's snapshot format). Not failed
   * over once the stream has begun.
   */
  async *snapshot(): AsyncGenerator<{ blob: Uint8Array; remainingBytes: number; totalBytes: number }> {
    const { response, abort } = await this.transport.open('/v3/maintenance/snapshot', {}, 'snapshot')
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let buf = ''
    let total = -1
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (value) buf += decoder.decode(value, { stream: true })
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i)
          buf = buf.slice(i + 1)
          if (line.trim() === '') continue
          const msg = JSON.parse(line) as Raw
          if (msg.error)
            throw new EtcdClientError(
              'ERR_SERVER',
              Number(msg.error.grpc_code ?? msg.error.code ?? 2),
              String(msg.error.message),
            )
          const blob = fromBase64(msg.result?.blob)
          const remainingBytes = Number(msg.result?.remaining_bytes ?? 0)
          if (total < 0) total = blob.length + remainingBytes
          yield { blob, remainingBytes, totalBytes: total }
        }
        if (done) return
      }
    } finally {
      abort()
    }
  }

  /** Cancels every watcher. Leases and keep-alives started by the caller are the caller's to stop. */
  close(): void {
    for (const w of this.watchers) w.cancel()
    this.watchers.clear()
    this.watchStream?.close()
  }
}

/** Cluster membership (`client.member`). */
export class MemberClient {
  constructor(private readonly t: Transport) {}

  async list(opts: { endpoint?: string } = {}): Promise<MemberListResponse> {
    const r: Raw = await this.t.call(
      '/v3/cluster/member/list',
      {},
      { idempotent: true, endpoint: opts.endpoint, what: 'member list' },
    )
    return withRaw({ header: decodeHeader(r.header), members: ((r.members ?? []) as Raw[]).map(decodeMember) }, r)
  }

  async add(peerUrls: string[], opts: { isLearner?: boolean } = {}): Promise<MemberAddResponse> {
    const body: Record<string, unknown> = { peerURLs: peerUrls }
    if (opts.isLearner) body.isLearner = true
    const r: Raw = await this.t.call('/v3/cluster/member/add', body, { idempotent: false, what: 'member add' })
    return withRaw(
      {
        header: decodeHeader(r.header),
        member: decodeMember(r.member ?? {}),
        members: ((r.members ?? []) as Raw[]).map(decodeMember),
      },
      r,
    )
  }

  async remove(id: LeaseIdLike): Promise<MemberListResponse> {
    return this.members('/v3/cluster/member/remove', { ID: idString(id) }, 'member remove')
  }

  async promote(id: LeaseIdLike): Promise<MemberListResponse> {
    return this.members('/v3/cluster/member/promote', { ID: idString(id) }, 'member promote')
  }

  async update(id: LeaseIdLike, peerUrls: string[]): Promise<MemberListResponse> {
    return this.members('/v3/cluster/member/update', { ID: idString(id), peerURLs: peerUrls }, 'member update')
  }

  private async members(path: string, body: unknown, what: string): Promise<MemberListResponse> {
    const r: Raw = await this.t.call(path, body, { idempotent: false, what })
    return withRaw({ header: decodeHeader(r.header), members: ((r.members ?? []) as Raw[]).map(decodeMember) }, r)
  }
}
