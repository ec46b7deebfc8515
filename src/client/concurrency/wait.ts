/** Shared by Mutex and Election: wait until every key under a prefix created before a revision is gone. */
import type { Client } from '../client.js'
import { EtcdClientError, GrpcCode } from '../errors.js'

/** Rejects with ERR_CLOSED when `signal` aborts. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return p
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort?.()
      reject(new EtcdClientError('ERR_CLOSED', GrpcCode.Canceled, 'aborted'))
    }
    if (signal.aborted) return abort()
    signal.addEventListener('abort', abort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', abort)
        reject(e)
      },
    )
  })
}

/**
 * etcd's waitDeletes: repeatedly finds the newest key under `prefix` with create revision ≤ maxCreateRevision and
 * waits (by watch) for its deletion, until there is none. Waiters are thereby ordered by create revision and each
 * waits only for its predecessor, so a release wakes one waiter, not all of them.
 */
export async function waitDeletes(
  client: Client,
  prefix: string,
  maxCreateRevision: number,
  signal?: AbortSignal,
): Promise<void> {
  for (;;) {
    if (signal?.aborted) throw new EtcdClientError('ERR_CLOSED', GrpcCode.Canceled, 'aborted')
    const r = await client.range(prefix, {
      prefix: true,
      maxCreateRevision,
      sortTarget: 'CREATE',
      sortOrder: 'DESCEND',
      limit: 1,
    })
    const last = r.kvs[0]
    if (last === undefined) return
    const w = client.watch(last.keyBytes, { startRevision: r.header.revision + 1, filters: ['NOPUT'] })
    try {
      await abortable(
        (async () => {
          for (;;) {
            const resp = await w.next()
            if (resp === undefined) return
            if (resp.events.some((e) => e.type === 'DELETE')) return
          }
        })(),
        signal,
        () => w.cancel(),
      )
    } finally {
      w.cancel()
    }
  }
}
