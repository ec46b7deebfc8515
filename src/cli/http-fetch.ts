/**
 * The CLI's fetch: the few parts of `fetch` the client's transport uses (a POST or GET with string headers and a string
 * body, an AbortSignal; an answer's `ok`, `status`, `text()`, `json()` and a streamed `body`), made with node:http and
 * node:https. A one-shot `edgecd get` spends most of its start-up initialising undici behind the global fetch (about
 * as long as loading the whole CLI); node:http is already in the snapshot Node starts from.
 *
 * It behaves as undici's fetch where the transport can tell: a socket error rejects with `TypeError('fetch failed')`
 * whose `cause` is the socket error (so its `code`, ECONNREFUSED..., classifies the failure the same way and the
 * messages users see are unchanged), an abort rejects with an `AbortError`, and TLS options (a private CA, a client
 * certificate, skipping verification) go to an https.Agent as undici's `connect` options would.
 */
import type { Agent as HttpAgent, IncomingMessage, RequestOptions } from 'node:http'
import type { Agent as HttpsAgent } from 'node:https'
import { createRequire } from 'node:module'
import type { TlsOptions } from '../client/index.js'
import { withExtraCa } from './extra-ca.js'

// node:http and node:https through require, not ESM imports: an ESM import builds the module's namespace by reading
// every export, and on Node 22 node:http's exports include lazy getters (WebSocket, MessageEvent...) that load all of
// undici, the very start-up cost this module exists to avoid.
const require = createRequire(import.meta.url)
const { request: httpRequest } = require('node:http') as typeof import('node:http')

/** The part of a fetch Response the client reads. */
interface SmallResponse {
  readonly ok: boolean
  readonly status: number
  readonly headers: { get(name: string): string | null }
  text(): Promise<string>
  json(): Promise<unknown>
  readonly body: ReadableStream<Uint8Array> | null
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError')
}

/** A fetch over node:http/https; `tls` as the client's option (the https agent's CA, certificate and key). */
export function nodeFetch(tls?: TlsOptions): typeof fetch {
  let httpsAgent: HttpsAgent | undefined
  // node:https (and node:tls under it) is loaded on the first https call only: plain http is the common case.
  let httpsModule: typeof import('node:https') | undefined
  const agentFor = (
    https: boolean,
    mod: typeof import('node:https') | undefined,
  ): HttpAgent | HttpsAgent | undefined => {
    if (!https) return undefined // the global agent (keep-alive, idle sockets unref'd)
    if (httpsAgent !== undefined) return httpsAgent
    // NODE_EXTRA_CA_CERTS kept from Node's start by the launcher is read here, on the first https call.
    const t = withExtraCa(tls)
    if (t === undefined) return undefined
    httpsAgent = new mod!.Agent({
      keepAlive: true,
      ...(t.ca !== undefined ? { ca: t.ca } : {}),
      ...(t.cert !== undefined ? { cert: t.cert } : {}),
      ...(t.key !== undefined ? { key: t.key } : {}),
      ...(t.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    })
    return httpsAgent
  }
  return (async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
    const https = url.protocol === 'https:'
    if (!https && url.protocol !== 'http:')
      throw new TypeError('fetch failed', { cause: new Error(`unsupported protocol ${url.protocol}`) })
    let mod: typeof import('node:https') | undefined
    if (https) mod = httpsModule ??= require('node:https') as typeof import('node:https')
    return new Promise<SmallResponse>((resolve, reject) => {
      const signal = init.signal ?? undefined
      if (signal?.aborted) {
        reject(abortError(signal))
        return
      }
      const body = init.body === undefined || init.body === null ? undefined : String(init.body)
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries((init.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = v
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
      const options: RequestOptions = { method: init.method ?? 'GET', headers }
      const agent = agentFor(https, mod)
      if (agent !== undefined) options.agent = agent
      let settled = false
      let res: IncomingMessage | undefined
      const onAbort = () => {
        const e = abortError(signal!)
        req.destroy(e as Error)
        res?.destroy(e as Error)
        if (!settled) {
          settled = true
          reject(e)
        }
      }
      const req = (mod?.request ?? httpRequest)(url, options, (r) => {
        res = r
        settled = true
        const status = r.statusCode ?? 0
        let consumed: Promise<string> | undefined
        const text = () => {
          consumed ??= new Promise<string>((ok, fail) => {
            const chunks: Buffer[] = []
            r.on('data', (c: Buffer) => chunks.push(c))
            r.on('end', () => {
              signal?.removeEventListener('abort', onAbort)
              ok(Buffer.concat(chunks).toString('utf8'))
            })
            r.on('error', (err) =>
              fail(signal?.aborted ? abortError(signal) : new TypeError('terminated', { cause: err })),
            )
          })
          return consumed
        }
        let stream: ReadableStream<Uint8Array> | undefined
        resolve({
          ok: status >= 200 && status < 300,
          status,
          headers: {
            get: (name) => {
              const v = r.headers[name.toLowerCase()]
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v
            },
          },
          text,
          json: async () => JSON.parse(await text()) as unknown,
          get body() {
            stream ??= new ReadableStream<Uint8Array>({
              start(c) {
                r.on('data', (d: Buffer) => c.enqueue(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)))
                r.on('end', () => c.close())
                r.on('error', (err) => c.error(err))
              },
              cancel: () => {
                r.destroy()
              },
            })
            return stream
          },
        })
      })
      req.on('error', (err) => {
        if (settled) return
        settled = true
        signal?.removeEventListener('abort', onAbort)
        reject(signal?.aborted ? abortError(signal) : new TypeError('fetch failed', { cause: err }))
      })
      signal?.addEventListener('abort', onAbort, { once: true })
      req.end(body)
    })
  }) as unknown as typeof fetch
}
