/**
 * Service registration and discovery: an instance registers `<prefix>/<service>/<id>` with its endpoint info,
 * attached to a lease kept alive; it disappears when the instance stops or crashes. discover() lists instances,
 * watch() yields the current list after every change.
 */
import type { Client } from '../client.js'
import { Session } from './session.js'

/** One registered instance. */
export interface ServiceInstance {
  id: string
  /** What the instance registered (e.g. its URL or JSON). */
  value: string
}

/** A registration that lives until close() (or until its lease is lost). */
export interface Registration {
  readonly key: string
  readonly session: Session
  /** Removes the instance at once. */
  close(): Promise<void>
}

/** Registers and discovers service instances under a prefix (default "services"). */
export class ServiceRegistry {
  private readonly pfx: string

  constructor(
    private readonly client: Client,
    prefix = 'services',
  ) {
    this.pfx = `${prefix}/`
  }

  private servicePrefix(service: string): string {
    return `${this.pfx}${service}/`
  }

  /** Registers an instance with a lease of `ttlSeconds` (default 10) kept alive. */
  async register(
    service: string,
    id: string,
    value: string,
    opts: { ttlSeconds?: number } = {},
  ): Promise<Registration> {
    const session = await Session.create(this.client, { ttlSeconds: opts.ttlSeconds ?? 10 })
    const key = `${this.servicePrefix(service)}${id}`
    await this.client.put(key, value, { lease: session.lease })
    return { key, session, close: () => session.close() }
  }

  /** The instances registered now. */
  async discover(service: string): Promise<ServiceInstance[]> {
    const p = this.servicePrefix(service)
    return (await this.client.getPrefix(p)).kvs.map((kv) => ({ id: kv.key.slice(p.length), value: kv.value }))
  }

  /** Yields the instance list now and after every change, until `signal` aborts. */
  async *watch(service: string, signal?: AbortSignal): AsyncGenerator<ServiceInstance[]> {
    const p = this.servicePrefix(service)
    const r = await this.client.getPrefix(p)
    const now = new Map(r.kvs.map((kv) => [kv.key.slice(p.length), kv.value]))
    const list = () =>
      [...now].map(([id, value]) => ({ id, value })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    yield list()
    const w = this.client.watch({ prefix: p }, { startRevision: r.header.revision + 1 })
    const stop = () => w.cancel()
    signal?.addEventListener('abort', stop, { once: true })
    try {
      for await (const resp of w) {
        for (const e of resp.events) {
          const id = e.kv.key.slice(p.length)
          if (e.type === 'DELETE') now.delete(id)
          else now.set(id, e.kv.value)
        }
        yield list()
      }
    } finally {
      signal?.removeEventListener('abort', stop)
      w.cancel()
    }
  }
}
