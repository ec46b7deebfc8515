/**
 * The console's calls to etcd's JSON gateway on the member that serves it (and on the other members' client URLs,
 * which answer cross-origin: the gateway sends CORS headers). Keys and values travel as base64, as in the gateway.
 */

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly status: number,
  ) {
    super(message)
  }
  /** The call needs a (valid) token: show the login form. */
  get needsLogin(): boolean {
    return (
      this.code === 16 ||
      /user name is empty|invalid auth token|permission denied|authentication failed/.test(this.message)
    )
  }
}

const te = new TextEncoder()
const td = new TextDecoder('utf-8', { fatal: false })

export function b64(s: string | Uint8Array): string {
  const bytes = typeof s === 'string' ? te.encode(s) : s
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return btoa(bin)
}

export function unb64(s: string | undefined): Uint8Array {
  if (!s) return new Uint8Array(0)
  const bin = atob(s)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export const text = (s: string | undefined): string => td.decode(unb64(s))

/** The key just past every key with this prefix (etcd's clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: string): string {
  const k = te.encode(prefix)
  for (let i = k.length - 1; i >= 0; i--) {
    if (k[i]! < 0xff) {
      const end = k.slice(0, i + 1)
      end[i]!++
      return b64(end)
    }
  }
  return b64(new Uint8Array([0]))
}

let token: string | undefined = sessionStorage.getItem('edgecd-console-token') ?? undefined

/** The token only (never the password), for this tab's session. */
export function setToken(t: string | undefined): void {
  token = t
  if (t) sessionStorage.setItem('edgecd-console-token', t)
  else sessionStorage.removeItem('edgecd-console-token')
}

export const getToken = (): string | undefined => token

export async function call<T = any>(path: string, body: unknown = {}, base = ''): Promise<T> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = token
  const r = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) })
  const t = await r.text()
  let j: any
  try {
    j = JSON.parse(t)
  } catch {
    throw new ApiError(t.trim() || r.statusText, 2, r.status)
  }
  if (!r.ok || j.error) throw new ApiError(j.message ?? j.error ?? r.statusText, j.code ?? 2, r.status)
  return j as T
}

export interface KeyValue {
  key: string
  value?: string
  create_revision?: string
  mod_revision?: string
  version?: string
  lease?: string
}

/** A key listing from wherever the keys view reads: the member, or the browser's last copy when it is away. */
export interface KeyListing {
  kvs: KeyValue[]
  revision: number
  count: number
  /** True when the member could not be reached and this is the last known listing. */
  stale: boolean
  source: string
}

/**
 * Where the keys view reads. The gateway source asks the member and keeps the last listing of each prefix in
 * localStorage, answering with it (stale) when the member is away; the browser replica (src/replica, when it is
 * served at /ui/replica.js) replaces it without the view changing.
 */
export interface KeySource {
  list(prefix: string, limit: number): Promise<KeyListing>
}

export const gatewaySource: KeySource = {
  async list(prefix, limit) {
    const cacheKey = `edgecd-console-keys:${prefix}`
    try {
      const r = await call<{ kvs?: KeyValue[]; header: { revision: string }; count?: string }>('/v3/kv/range', {
        key: b64(prefix === '' ? '\0' : prefix),
        range_end: prefix === '' ? b64('\0') : prefixEnd(prefix),
        limit,
      })
      const listing = { kvs: r.kvs ?? [], revision: Number(r.header.revision), count: Number(r.count ?? 0) }
      try {
        localStorage.setItem(cacheKey, JSON.stringify(listing))
      } catch {}
      return { ...listing, stale: false, source: 'member' }
    } catch (err) {
      if (err instanceof ApiError) throw err
      const cached = localStorage.getItem(cacheKey)
      if (!cached) throw err
      return { ...(JSON.parse(cached) as Omit<KeyListing, 'stale' | 'source'>), stale: true, source: 'browser copy' }
    }
  },
}

/** Prometheus text -> sample values by series (`name` or `name{labels}`). */
export function parseMetrics(t: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of t.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

/** What the console uses of the browser replica's module (/ui/replica.js, src/runtime/browser/replica-entry.ts). */
interface ReplicaModule {
  openReplica(o: { endpoint: string; prefix: string; token?: string; openTimeoutMs?: number }): Promise<{
    range(
      span: { prefix: string },
      o: { limit: number },
    ): Promise<{
      kvs: {
        keyBytes: Uint8Array
        valueBytes: Uint8Array
        createRevision: number
        modRevision: number
        version: number
        lease: string
      }[]
      revision: number
      count: number
      stale: boolean
    }>
    close(): Promise<void>
  }>
}

/**
 * The keys view on the browser replica (docs/replica.md): one replica per prefix shown (the last one kept open, its
 * copy in IndexedDB), read linearizably when the member answers and from the stored copy, stale, when it does not.
 * A replica that cannot open (no stored copy and no member, or refused) leaves the read to the gateway source.
 */
export function replicaSource(mod: ReplicaModule, endpoint: string): KeySource {
  let current: { prefix: string; token: string | undefined; r: ReturnType<ReplicaModule['openReplica']> } | undefined
  return {
    async list(prefix, limit) {
      if (!current || current.prefix !== prefix || current.token !== token) {
        const old = current
        current = {
          prefix,
          token,
          r: mod.openReplica({ endpoint, prefix, ...(token ? { token } : {}), openTimeoutMs: 5000 }),
        }
        void old?.r.then((r) => r.close()).catch(() => {})
      }
      const mine = current
      let res: Awaited<ReturnType<Awaited<ReturnType<ReplicaModule['openReplica']>>['range']>>
      try {
        res = await (await mine.r).range({ prefix }, { limit })
      } catch {
        if (current === mine) current = undefined
        return gatewaySource.list(prefix, limit)
      }
      return {
        kvs: res.kvs.map((kv) => ({
          key: b64(kv.keyBytes),
          value: b64(kv.valueBytes),
          create_revision: String(kv.createRevision),
          mod_revision: String(kv.modRevision),
          version: String(kv.version),
          ...(kv.lease && kv.lease !== '0' ? { lease: kv.lease } : {}),
        })),
        revision: res.revision,
        count: res.count,
        stale: res.stale,
        source: 'browser replica',
      }
    },
  }
}
