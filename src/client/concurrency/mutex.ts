/**
 * A distributed lock, as etcd's concurrency.Mutex: each contender puts `<prefix>/<lease hex>` attached to its
 * session's lease; the holder is the key with the lowest create revision; the others each wait for the deletion of
 * the key created just before theirs. A holder that crashes loses the lock when its lease expires.
 */
import { EtcdClientError, GrpcCode } from '../errors.js'
import { Compare, Op } from '../txn.js'
import type { KeyValue } from '../types.js'
import type { Session } from './session.js'
import { waitDeletes } from './wait.js'

/** A lock on a key prefix. */
export class Mutex {
  private readonly pfx: string
  private myKey = ''
  private myRev = -1

  constructor(
    private readonly session: Session,
    prefix: string,
  ) {
    this.pfx = `${prefix}/`
  }

  /** The key this contender holds or waits with (valid after lock()). */
  get key(): string {
    return this.myKey
  }

  /** Its create revision: a fencing token that grows with every new holder. */
  get revision(): number {
    return this.myRev
  }

  /** Puts our key (or finds it) and returns the current owner. */
  private async enqueue(): Promise<KeyValue | undefined> {
    this.session.check()
    const c = this.session.client
    this.myKey = `${this.pfx}${this.session.leaseHex}`
    const owner = Op.get(this.pfx, { prefix: true, sortTarget: 'CREATE', sortOrder: 'ASCEND', limit: 1 })
    const r = await c
      .txn()
      .if(Compare.createRevision(this.myKey, '=', 0))
      .then(Op.put(this.myKey, '', { lease: this.session.lease }), owner)
      .else(Op.get(this.myKey), owner)
      .commit()
    this.myRev = r.header.revision
    if (!r.succeeded) {
      const mine = r.responses[0]
      if (mine?.type === 'range' && mine.kvs[0]) this.myRev = mine.kvs[0].createRevision
    }
    const o = r.responses[1]
    return o?.type === 'range' ? o.kvs[0] : undefined
  }

  /** Acquires the lock, waiting for the holders before us; `signal` gives up (our key is removed). */
  async lock(signal?: AbortSignal): Promise<void> {
    const owner = await this.enqueue()
    if (owner === undefined || owner.createRevision === this.myRev) return
    try {
      await waitDeletes(this.session.client, this.pfx, this.myRev - 1, signal)
      this.session.check()
      // Our key may have gone with an expired session meanwhile.
      const mine = await this.session.client.get(this.myKey)
      if (mine === undefined)
        throw new EtcdClientError('ERR_SESSION_EXPIRED', GrpcCode.NotFound, 'lock: our key vanished (session expired)')
    } catch (err) {
      await this.unlock().catch(() => {})
      throw err
    }
  }

  /** Acquires the lock only if it is free now; else throws ERR_LOCKED-like FailedPrecondition. */
  async tryLock(): Promise<void> {
    const owner = await this.enqueue()
    if (owner === undefined || owner.createRevision === this.myRev) return
    await this.unlock()
    throw new EtcdClientError('ERR_SERVER', GrpcCode.FailedPrecondition, 'mutex: Locked by another session')
  }

  /** Releases the lock (deletes our key). */
  async unlock(): Promise<void> {
    if (this.myKey === '') return
    await this.session.client.delete(this.myKey)
    this.myKey = ''
    this.myRev = -1
  }

  /** A compare that holds only while we own the lock: guard writes with it (`txn().if(m.isOwner())`). */
  isOwner() {
    return Compare.createRevision(this.myKey, '=', this.myRev)
  }
}
