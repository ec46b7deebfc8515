/**
 * A closed-loop HTTP load generator for etcd's JSON gateway: N clients, each on its own keep-alive connection (an
 * undici Pool with one connection per client, no pipelining), each sending its next request as soon as the previous
 * answer is read. Request bodies are built once up front so that the generator spends its CPU on the socket, not on
 * JSON or base64. Every run is bounded by time and by a request count.
 */
import { Pool } from 'undici'

/** Keys in the key space (`bench/key/00000` ... `bench/key/09999`). */
export const keyCount = 10_000
export const valueBytes = 256
/** Latency samples kept per run; requests past this still count, their latency is not recorded. */
const samplesMax = 4_000_000
/** Requests per run at most, whatever the duration (a runaway fast server still ends). */
const requestsMax = 50_000_000

export type WorkloadKind = 'put' | 'range-linearizable' | 'range-serializable' | 'mix-90-10'

export interface Workload {
  kind: WorkloadKind
  clients: number
}

export interface LoadResult {
  ops: number
  secs: number
  opsPerSec: number
  p50Ms: number
  p99Ms: number
  /** The slowest request's latency (a stall shows here when it is too short to move the p99). */
  maxMs: number
  errors: number
  /** The first error seen, for the report. */
  firstError?: string
  /** CPU the generator process used during the run, as a share of one core (1 = one core busy). */
  clientCpuCores: number
  /** CPU the server used per request during the run, in µs (NaN when unknown): steadier than ops/s on a busy machine. */
  serverCpuUsPerOp: number
}

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64')

/** The precomputed request bodies of the key space: one put, one linearizable and one serializable range per key. */
export class Bodies {
  readonly put: string[] = []
  readonly rangeLinearizable: string[] = []
  readonly rangeSerializable: string[] = []

  constructor(seed = 1) {
    const value = new Uint8Array(valueBytes)
    let x = seed >>> 0 || 1
    for (let k = 0; k < keyCount; k++) {
      for (let i = 0; i < valueBytes; i++) {
        // xorshift32: values differ per key but are the same on every run.
        x ^= x << 13
        x ^= x >>> 17
        x ^= x << 5
        value[i] = x & 0xff
      }
      const key = b64(`bench/key/${String(k).padStart(5, '0')}`)
      this.put.push(`{"key":"${key}","value":"${b64(value)}"}`)
      this.rangeLinearizable.push(`{"key":"${key}"}`)
      this.rangeSerializable.push(`{"key":"${key}","serializable":true}`)
    }
  }
}

const jsonHeaders = { 'content-type': 'application/json' }

/** The path and body of the next request of a workload, from a random number in [0, 1). */
function nextRequest(kind: WorkloadKind, bodies: Bodies, r: number, k: number): [string, string] {
  switch (kind) {
    case 'put':
      return ['/v3/kv/put', bodies.put[k]!]
    case 'range-linearizable':
      return ['/v3/kv/range', bodies.rangeLinearizable[k]!]
    case 'range-serializable':
      return ['/v3/kv/range', bodies.rangeSerializable[k]!]
    case 'mix-90-10':
      return r < 0.1 ? ['/v3/kv/put', bodies.put[k]!] : ['/v3/kv/range', bodies.rangeLinearizable[k]!]
  }
}

/** A keep-alive connection pool to one server, one connection per client. */
export function openPool(url: string, clients: number): Pool {
  return new Pool(url, {
    connections: clients,
    pipelining: 1,
    // Under workerd's 5 s: workerd closes a keep-alive connection idle 5 s and sends no Keep-Alive header (it drops
    // one a Worker sets), so a client that reuses a connection idle that long can have its request reset by the
    // close (docs/workers.md). 4 s is undici's default; a connection idle longer is opened again.
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
}

/**
 * Runs one workload for `ms` (after `warmupMs` not measured) and returns throughput, latency percentiles and errors.
 * Any non-200 answer or transport error counts as an error; the client then goes on with its next request.
 */
export async function runLoad(
  pool: Pool,
  bodies: Bodies,
  w: Workload,
  ms: number,
  warmupMs: number,
  serverCpuSecs: () => number = () => Number.NaN,
  seed = 7,
  /** Sent with every request, e.g. `{ authorization: 'Bearer <jwt>' }` for the auth runs. */
  extraHeaders: Record<string, string> = {},
): Promise<LoadResult> {
  const headers = { ...jsonHeaders, ...extraHeaders }
  const samples = new Float64Array(Math.min(samplesMax, 1 << 22))
  let nSamples = 0
  let ops = 0
  let errors = 0
  let firstError: string | undefined
  let measuring = false
  let started = 0
  const tStart = performance.now()
  const tMeasure = tStart + warmupMs
  const tEnd = tMeasure + ms
  let cpuAtMeasure = process.cpuUsage()
  let serverCpuAtMeasure = Number.NaN

  async function client(id: number): Promise<void> {
    // Each client has its own xorshift state, so key choice costs nothing and runs repeat.
    let x = (seed * 7919 + id * 104729) >>> 0 || 1
    const rand = () => {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      return (x >>> 0) / 4294967296
    }
    for (let i = 0; i < requestsMax; i++) {
      const t0 = performance.now()
      if (t0 >= tEnd) return
      if (!measuring && t0 >= tMeasure) {
        measuring = true
        started = t0
        cpuAtMeasure = process.cpuUsage()
        serverCpuAtMeasure = serverCpuSecs()
      }
      const r = rand()
      const k = Math.floor(rand() * keyCount)
      const [path, body] = nextRequest(w.kind, bodies, r, k)
      let ok = false
      try {
        const res = await pool.request({ path, method: 'POST', body, headers })
        if (res.statusCode === 200) {
          await res.body.dump()
          ok = true
        } else {
          const text = await res.body.text()
          firstError ??= `HTTP ${res.statusCode}: ${text.slice(0, 200)}`
        }
      } catch (err) {
        firstError ??= String((err as Error)?.message ?? err)
        // A refused or reset connection would otherwise spin; a short pause keeps the loop bounded in CPU too.
        await new Promise((r) => setTimeout(r, 1))
      }
      const t1 = performance.now()
      if (!measuring || t0 < tMeasure || t1 > tEnd) continue
      if (ok) {
        ops++
        if (nSamples < samples.length) samples[nSamples++] = t1 - t0
      } else {
        errors++
      }
    }
  }

  await Promise.all(Array.from({ length: w.clients }, (_, i) => client(i)))
  const cpu = process.cpuUsage(cpuAtMeasure)
  const serverCpu = serverCpuSecs() - serverCpuAtMeasure
  const secs = (Math.min(performance.now(), tEnd) - (started || tMeasure)) / 1000
  const sorted = samples.subarray(0, nSamples).sort()
  const pct = (p: number) => (nSamples === 0 ? Number.NaN : sorted[Math.min(nSamples - 1, Math.floor(p * nSamples))]!)
  return {
    ops,
    secs,
    opsPerSec: ops / secs,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs: nSamples === 0 ? Number.NaN : sorted[nSamples - 1]!,
    errors,
    ...(firstError ? { firstError } : {}),
    clientCpuCores: (cpu.user + cpu.system) / 1e6 / secs,
    serverCpuUsPerOp: (serverCpu * 1e6) / ops,
  }
}

/** Puts per preload txn: under etcd's and edgecd's default --max-txn-ops (128). */
export const preloadTxnOps = 100

/**
 * Writes every key once, `preloadTxnOps` keys per txn (one Raft entry and one storage transaction each), with up to
 * `clients` txns in flight, so that ranges find a value and the store has its working size. Batched because a
 * member that commits slowly per entry (workerd: one SQLite transaction per save) took over 120 s for 10,000 single
 * puts; 100 txns take seconds anywhere. The keys and values are the same as single puts would write.
 */
export async function preload(pool: Pool, bodies: Bodies, clients: number, deadlineMs = 120_000): Promise<void> {
  const batches: string[] = []
  for (let k = 0; k < keyCount; k += preloadTxnOps) {
    const puts = bodies.put.slice(k, Math.min(keyCount, k + preloadTxnOps)).map((p) => `{"request_put":${p}}`)
    batches.push(`{"success":[${puts.join(',')}]}`)
  }
  let next = 0
  let failures = 0
  /** Batches whose txn failed in transport, written again (a txn of puts is idempotent in effect). */
  const retry: number[] = []
  const deadline = performance.now() + deadlineMs
  /** Txns sent and not yet answered: a writer with nothing to take waits for them (one may fail and come back). */
  let inFlight = 0
  async function writer(): Promise<void> {
    while (next < batches.length || retry.length > 0 || inFlight > 0) {
      if (performance.now() > deadline) throw new Error(`preload did not finish in ${deadlineMs} ms`)
      if (next >= batches.length && retry.length === 0) {
        await new Promise((r) => setTimeout(r, 10))
        continue
      }
      const b = retry.pop() ?? next++
      inFlight++
      try {
        let res: Awaited<ReturnType<Pool['request']>>
        try {
          res = await pool.request({ path: '/v3/kv/txn', method: 'POST', body: batches[b]!, headers: jsonHeaders })
        } catch (err) {
          // A connection the server closed or reset under the request: the batch is written again later.
          if (++failures > 1000) throw err
          retry.push(b)
          continue
        }
        const text = await res.body.text()
        if (res.statusCode !== 200) {
          if (++failures > 10) throw new Error(`preload: HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
          retry.push(b)
        }
      } finally {
        inFlight--
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(clients, batches.length) }, () => writer()))
}
