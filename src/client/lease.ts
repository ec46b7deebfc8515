/**
 * Leases: grant, revoke, keep-alive (once, or on an interval until stopped), time-to-live and list. Keep-alives use
 * the gateway's streaming POST /v3/lease/keepalive with one `{"ID":...}` per request, which etcd answers and ends.
 */

import { bytesToString, fromBase64 } from './bytes.js'
import { EtcdClientError, GrpcCode, leaseNotFoundMessage } from './errors.js'
import type { Transport } from './transport.js'
import {
  type Answer,
  decodeHeader,
  idString,
  type LeaseGrantResponse,
  type LeaseId,
  type LeaseIdLike,
  type LeaseKeepAliveResponse,
  type LeaseTimeToLiveResponse,
  type Raw,
  withRaw,
} from './types.js'

/** A running keep-alive: renews the lease every `intervalMs` until `stop()` or until the lease is lost. */
export interface LeaseKeepAlive {
  readonly id: LeaseId
  /** TTL (s) of the last successful renewal. */
  readonly ttl: number
  /** Resolves when the keep-alive ends: undefined after stop(), the error when the lease was lost. */
  readonly done: Promise<EtcdClientError | undefined>
  /** Called after each successful renewal. */
  onRenew?: (r: LeaseKeepAliveResponse) => void
  stop(): void
}

/** Options of lease.keepAlive. */
export interface KeepAliveOptions {
  /** Renewal interval (ms); default a third of the TTL, as etcd's clientv3. */
  intervalMs?: number
}

/** The lease API of a client (`client.lease`). */
export class LeaseClient {
  constructor(private readonly t: Transport) {}

  /** Grants a lease of `ttlSeconds` (etcd raises it to its minimum); `id` 0 or absent lets the server choose. */
  async grant(ttlSeconds: number, id?: LeaseIdLike): Promise<LeaseGrantResponse> {
    const body: Record<string, unknown> = { TTL: String(ttlSeconds) }
    if (id !== undefined && idString(id) !== '0') body.ID = idString(id)
    const r: Raw = await this.t.call('/v3/lease/grant', body, { idempotent: false, what: 'lease grant' })
    return withRaw({ header: decodeHeader(r.header), id: String(r.ID ?? '0'), ttl: Number(r.TTL ?? 0) }, r)
  }

  /** Revokes a lease, deleting its keys. */
  async revoke(id: LeaseIdLike): Promise<Answer> {
    const r: Raw = await this.t.call(
      '/v3/lease/revoke',
      { ID: idString(id) },
      { idempotent: false, what: 'lease revoke' },
    )
    return withRaw({ header: decodeHeader(r.header) }, r)
  }

  /** Remaining TTL (-1 for an unknown lease, as etcd) and, with `keys`, the keys attached. */
  async timeToLive(id: LeaseIdLike, opts: { keys?: boolean } = {}): Promise<LeaseTimeToLiveResponse> {
    const body: Record<string, unknown> = { ID: idString(id) }
    if (opts.keys) body.keys = true
    const r: Raw = await this.t.call('/v3/lease/timetolive', body, { idempotent: true, what: 'lease timetolive' })
    const keysBytes = ((r.keys ?? []) as string[]).map(fromBase64)
    return withRaw(
      {
        header: decodeHeader(r.header),
        id: String(r.ID ?? idString(id)),
        ttl: Number(r.TTL ?? 0),
        grantedTtl: Number(r.grantedTTL ?? 0),
        keysBytes,
        keys: keysBytes.map(bytesToString),
      },
      r,
    )
  }

  /** Every lease the cluster has. */
  async list(): Promise<Answer & { leases: LeaseId[] }> {
    const r: Raw = await this.t.call('/v3/lease/leases', {}, { idempotent: true, what: 'lease list' })
    return withRaw({ header: decodeHeader(r.header), leases: ((r.leases ?? []) as Raw[]).map((l) => String(l.ID)) }, r)
  }

  /**
   * Renews a lease once. An unknown or expired lease is an error (NotFound, etcd's "requested lease not found"),
   * as etcd's clientv3 KeepAliveOnce. Renewing twice is harmless, so it is retried like a read.
   */
  async keepAliveOnce(id: LeaseIdLike): Promise<LeaseKeepAliveResponse> {
    const lines: Raw[] = await this.t.call(
      '/v3/lease/keepalive',
      { ID: idString(id) },
      { idempotent: true, stream: true, what: 'lease keep-alive' },
    )
    const r = lines[0]
    if (r === undefined)
      throw new EtcdClientError('ERR_BAD_RESPONSE', GrpcCode.Internal, 'lease keep-alive: empty answer')
    const ttl = Number(r.TTL ?? 0)
    if (ttl <= 0) throw new EtcdClientError('ERR_SERVER', GrpcCode.NotFound, leaseNotFoundMessage, { httpStatus: 200 })
    return withRaw({ header: decodeHeader(r.header), id: String(r.ID ?? idString(id)), ttl }, r)
  }

  /**
   * Keeps a lease alive until stopped: renews at once, then every `intervalMs` (default TTL/3). Transient failures
   * are retried on the next tick; the keep-alive ends with an error once the lease is gone or no renewal succeeded
   * for a whole TTL (by then the server has expired it).
   */
  async keepAlive(id: LeaseIdLike, opts: KeepAliveOptions = {}): Promise<LeaseKeepAlive> {
    const first = await this.keepAliveOnce(id)
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let finish!: (e: EtcdClientError | undefined) => void
    const done = new Promise<EtcdClientError | undefined>((r) => (finish = r))
    let lastOk = Date.now()
    const ka: LeaseKeepAlive = {
      id: first.id,
      ttl: first.ttl,
      done,
      stop() {
        if (stopped) return
        stopped = true
        clearTimeout(timer)
        finish(undefined)
      },
    }
    const interval = () => opts.intervalMs ?? Math.max(100, Math.floor((ka.ttl * 1000) / 3))
    const tick = async () => {
      if (stopped) return
      try {
        const r = await this.keepAliveOnce(id)
        lastOk = Date.now()
        ;(ka as { ttl: number }).ttl = r.ttl
        if (!stopped) ka.onRenew?.(r)
      } catch (err) {
        const e =
          err instanceof EtcdClientError
            ? err
            : new EtcdClientError('ERR_UNAVAILABLE', GrpcCode.Unavailable, String(err))
        if ((e.code === 'ERR_SERVER' && e.grpcCode === GrpcCode.NotFound) || Date.now() - lastOk > ka.ttl * 1000) {
          stopped = true
          finish(e)
          return
        }
      }
      if (!stopped) timer = setTimeout(tick, interval())
    }
    timer = setTimeout(tick, interval())
    return ka
  }
}
