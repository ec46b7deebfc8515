/**
 * Leader election, as etcd's concurrency.Election: candidates put `<prefix>/<lease hex>` with their proposal; the
 * leader is the key with the lowest create revision. campaign() waits until elected, proclaim() changes the
 * leader's value, resign() steps down, leader() reads the current leader, observe() follows leader changes.
 */
import type { Client } from '../client.js'
import { EtcdClientError, GrpcCode } from '../errors.js'
import { Compare, Op } from '../txn.js'
import type { KeyValue } from '../types.js'
import type { Session } from './session.js'
import { waitDeletes } from './wait.js'

/** An election on a key prefix. */
export class Election {
  private readonly pfx: string
  private leaderKey = ''
  private leaderRev = -1

  constructor(
    private readonly session: Session,
    prefix: string,
  ) {
    this.pfx = `${prefix}/`
  }

  private get client(): Client {
    return this.session.client
  }

  /** Our key while we campaign or lead. */
  get key(): string {
    return this.leaderKey
  }

  /** Its create revision. */
  get revision(): number {
    return this.leaderRev
  }

  /** Puts our candidacy with `value` and resolves once we are the leader. */
  async campaign(value: string, signal?: AbortSignal): Promise<void> {
    this.session.check()
    const key = `${this.pfx}${this.session.leaseHex}`
    const r = await this.client
      .txn()
      .if(Compare.createRevision(key, '=', 0))
      .then(Op.put(key, value, { lease: this.session.lease }))
      .else(Op.get(key))
      .commit()
    this.leaderKey = key
    this.leaderRev = r.header.revision
    if (!r.succeeded) {
      const kv = r.responses[0]?.type === 'range' ? r.responses[0].kvs[0] : undefined
      if (kv) {
        this.leaderRev = kv.createRevision
        if (kv.value !== value) await this.proclaim(value)
      }
    }
    try {
      await waitDeletes(this.client, this.pfx, this.leaderRev - 1, signal)
      this.session.check()
    } catch (err) {
      await this.resign().catch(() => {})
      throw err
    }
  }

  /** Changes the leader's value; fails with ERR_NOT_LEADER if we do not lead. */
  async proclaim(value: string): Promise<void> {
    if (this.leaderKey === '')
      throw new EtcdClientError('ERR_NOT_LEADER', GrpcCode.FailedPrecondition, 'election: not leader')
    const r = await this.client
      .txn()
      .if(Compare.createRevision(this.leaderKey, '=', this.leaderRev))
      .then(Op.put(this.leaderKey, value, { lease: this.session.lease }))
      .commit()
    if (!r.succeeded) {
      this.leaderKey = ''
      throw new EtcdClientError('ERR_NOT_LEADER', GrpcCode.FailedPrecondition, 'election: not leader')
    }
  }

  /** Steps down (deletes our key if it is still ours). */
  async resign(): Promise<void> {
    if (this.leaderKey === '') return
    await this.client
      .txn()
      .if(Compare.createRevision(this.leaderKey, '=', this.leaderRev))
      .then(Op.delete(this.leaderKey))
      .commit()
    this.leaderKey = ''
    this.leaderRev = -1
  }

  /** The current leader's key-value, or undefined when there is none. */
  async leader(): Promise<KeyValue | undefined> {
    return (await this.client.range(this.pfx, { prefix: true, sortTarget: 'CREATE', sortOrder: 'ASCEND', limit: 1 }))
      .kvs[0]
  }

  /** Follows the leader: yields its key-value at first and after every change (new leader or proclaim). */
  observe(signal?: AbortSignal): AsyncIterable<KeyValue> {
    return observeLeader(this.client, this.pfx, signal)
  }
}

/** The observe() loop, usable without a session (etcdctl elect -l). */
export async function* observeLeader(client: Client, pfx: string, signal?: AbortSignal): AsyncGenerator<KeyValue> {
  for (;;) {
    if (signal?.aborted) return
    const r = await client.range(pfx, { prefix: true, sortTarget: 'CREATE', sortOrder: 'ASCEND', limit: 1 })
    let leader = r.kvs[0]
    let from = r.header.revision + 1
    if (leader === undefined) {
      // No leader: wait for the first candidacy.
      const w = client.watch({ prefix: pfx }, { startRevision: from, filters: ['NODELETE'] })
      const stop = () => w.cancel()
      signal?.addEventListener('abort', stop, { once: true })
      try {
        const resp = await w.next()
        if (resp === undefined) return
        leader = resp.events[0]!.kv
        from = leader.modRevision + 1
      } finally {
        signal?.removeEventListener('abort', stop)
        w.cancel()
      }
    }
    yield leader
    const w = client.watch(leader.keyBytes, { startRevision: from })
    const stop = () => w.cancel()
    signal?.addEventListener('abort', stop, { once: true })
    try {
      outer: for (;;) {
        const resp = await w.next()
        if (resp === undefined) return
        for (const e of resp.events) {
          if (e.type === 'DELETE') break outer
          if (e.kv.value !== leader.value) {
            leader = e.kv
            yield leader
          }
        }
      }
    } finally {
      signal?.removeEventListener('abort', stop)
      w.cancel()
    }
  }
}
