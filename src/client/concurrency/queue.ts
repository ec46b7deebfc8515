/**
 * A FIFO queue on a key prefix, as etcd's recipe queue: enqueue puts a new unique key; dequeue takes the key with
 * the lowest create revision and deletes it with a compare on its mod revision, so each item goes to exactly one
 * consumer; an empty queue is waited on by watch.
 */
import type { Client } from '../client.js'
import { Compare, Op } from '../txn.js'
import { abortable } from './wait.js'

let seq = 0

/** A FIFO on `prefix`. */
export class Queue {
  private readonly pfx: string

  constructor(
    private readonly client: Client,
    prefix: string,
  ) {
    this.pfx = `${prefix}/`
  }

  /** Appends a value; resolves with its key. */
  async enqueue(value: string): Promise<string> {
    for (let attempt = 0; attempt < 100; attempt++) {
      // Time plus a per-process sequence and randomness: unique without coordination; a clash just retries.
      const key = `${this.pfx}${Date.now().toString(16).padStart(12, '0')}${(seq++ & 0xffff).toString(16).padStart(4, '0')}${Math.floor(Math.random() * 0xffff).toString(16)}`
      const r = await this.client
        .txn()
        .if(Compare.createRevision(key, '=', 0))
        .then(Op.put(key, value))
        .commit()
      if (r.succeeded) return key
    }
    throw new Error('queue: could not find a free key in 100 attempts')
  }

  /** Removes and returns the oldest value, waiting while the queue is empty. */
  async dequeue(signal?: AbortSignal): Promise<string> {
    for (;;) {
      const r = await this.client.range(this.pfx, { prefix: true, sortTarget: 'CREATE', sortOrder: 'ASCEND', limit: 1 })
      const first = r.kvs[0]
      if (first !== undefined) {
        const d = await this.client
          .txn()
          .if(Compare.modRevision(first.keyBytes, '=', first.modRevision))
          .then(Op.delete(first.keyBytes))
          .commit()
        if (d.succeeded) return first.value
        continue // another consumer took it
      }
      const w = this.client.watch({ prefix: this.pfx }, { startRevision: r.header.revision + 1, filters: ['NODELETE'] })
      try {
        await abortable(w.next(), signal, () => w.cancel())
      } finally {
        w.cancel()
      }
    }
  }

  /** Number of queued values. */
  async size(): Promise<number> {
    return (await this.client.range(this.pfx, { prefix: true, countOnly: true })).count
  }
}
