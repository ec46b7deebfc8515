/**
 * A Session is a lease kept alive for as long as the session lives, as etcd's concurrency.Session: locks and
 * elections attach their keys to it, so a crashed holder's keys vanish when its lease expires.
 */
import type { Client } from '../client.js'
import { EtcdClientError, GrpcCode } from '../errors.js'
import type { LeaseKeepAlive } from '../lease.js'
import type { LeaseId, LeaseIdLike } from '../types.js'

/** Options of a Session. */
export interface SessionOptions {
  /** Lease TTL in seconds (default 60, as etcd). */
  ttlSeconds?: number
  /** Use an existing lease instead of granting one. */
  lease?: LeaseIdLike
}

/** A lease kept alive until close() or until it is lost. */
export class Session {
  /** Resolves when the session ends: undefined after close(), the error when the lease was lost. */
  readonly done: Promise<EtcdClientError | undefined>
  private closed = false

  private constructor(
    readonly client: Client,
    /** The session's lease id (decimal). */
    readonly lease: LeaseId,
    private readonly ka: LeaseKeepAlive,
  ) {
    this.done = ka.done
    void ka.done.then((e) => {
      if (e) this.lost = true
    })
  }

  /** Grants a lease (or adopts `lease`) and keeps it alive. */
  static async create(client: Client, opts: SessionOptions = {}): Promise<Session> {
    const lease = opts.lease !== undefined ? String(opts.lease) : (await client.lease.grant(opts.ttlSeconds ?? 60)).id
    const ka = await client.lease.keepAlive(lease)
    return new Session(client, lease, ka)
  }

  /** The lease id in hex, as etcd's recipes write it into keys. */
  get leaseHex(): string {
    return BigInt(this.lease).toString(16)
  }

  /** Whether the lease is still being kept alive. */
  get alive(): boolean {
    return !this.closed && !this.lost
  }

  private lost = false

  /** Throws ERR_SESSION_EXPIRED once the lease was lost. */
  check(): void {
    if (this.lost || this.closed)
      throw new EtcdClientError('ERR_SESSION_EXPIRED', GrpcCode.NotFound, 'session expired or closed')
  }

  /** Stops the keep-alive and revokes the lease (deleting every key attached to it). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.ka.stop()
    await this.client.lease.revoke(this.lease).catch(() => {})
  }

  /** Stops the keep-alive without revoking: the lease expires after its TTL (simulates a crashed holder). */
  orphan(): void {
    this.closed = true
    this.ka.stop()
  }
}
