/**
 * The CLI's fetch: the few parts of `fetch` the client's transport uses (a POST or GET with string headers and a string
 * body, an AbortSignal; an answer's `ok`, `status`, `text()`, `json()` and a streamed `body`). A one-shot `edgecd get`
 * would spend most of its start-up initialising undici behind the global fetch, so:
 *   - http:// goes over one connection per request (`connection: close`) from tcp-connection.ts (libuv's TCP handle
 *     itself where Node lets it, else node:net), the answer parsed by http-parser-js (chunked or sized bodies, as
 *     node:http's own parser): node:http's client (agent, parser binding, ClientRequest) cost a one-shot call about
 *     8 ms more CPU than node:net on the loaded 2-core machine, and node:net about 12 ms more than the bare handle
 *     (docs/cli.md#start-up);
 *   - https:// goes through node:https (loaded on the first https call), TLS options on an https.Agent.
 *
 * It behaves as undici's fetch where the transport can tell: a socket error rejects with `TypeError('fetch failed')`
 * whose `cause` is the socket error (so its `code`, ECONNREFUSED..., classifies the failure the same way and the
 * messages users see are unchanged), a body cut short errors with `TypeError('terminated')`, an abort rejects with an
 * `AbortError`, and TLS options (a private CA, a client certificate, skipping verification) go to an https.Agent as
 * undici's `connect` options would.
 */
import type { Agent as HttpAgent, IncomingMessage, RequestOptions } from 'node:http'
import type { Agent as HttpsAgent } from 'node:https'
import { createRequire } from 'node:module'
import { HTTPParser } from 'http-parser-js'
import type { TlsOptions } from '../client/index.js'
import { withExtraCa } from './extra-ca.js'
import { connect } from './tcp-connection.js'

// node:net and node:https through require, not ESM imports: an ESM import builds the module's namespace by reading
// every export, and on Node 22 node:http's exports include lazy getters (WebSocket, MessageEvent...) that load all of
// undici, the very start-up cost this module exists to avoid.
// process.getBuiltinModule where Node has it (20.16+, 22.3+), else a require made on first use (in the CLI bundle
// import.meta.url is computed when read: scripts/build.mjs).
let nodeRequire: NodeJS.Require | undefined
function require(id: string): unknown {
  const m = process.getBuiltinModule?.(id)
  if (m !== undefined) return m
  nodeRequire ??= createRequire(import.meta.url)
  return nodeRequire(id)
}

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
  const agentFor = (mod: typeof import('node:https')): HttpAgent | HttpsAgent | undefined => {
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
    if (!https) return plainHttp(url, init)
    httpsModule ??= require('node:https') as typeof import('node:https')
    const mod = httpsModule
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
      const agent = agentFor(mod)
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
      const req = mod.request(url, options, (r) => {
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

/** An answer's body as it arrives: chunks are kept until text() or `body` takes them. */
class BodyQueue {
  private chunks: Buffer[] = []
  private ended = false
  private error: unknown
  private sink: { data(b: Buffer): void; end(): void; error(e: unknown): void } | undefined

  push(b: Buffer): void {
    if (this.sink) this.sink.data(b)
    else this.chunks.push(b)
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    this.sink?.end()
  }

  fail(e: unknown): void {
    if (this.ended) return
    this.ended = true
    this.error = e
    this.sink?.error(e)
  }

  attach(sink: { data(b: Buffer): void; end(): void; error(e: unknown): void }): void {
    this.sink = sink
    for (const c of this.chunks) sink.data(c)
    this.chunks = []
    if (this.error !== undefined) sink.error(this.error)
    else if (this.ended) sink.end()
  }
}

/** One http:// request on its own node:net connection; the answer parsed by http-parser-js. */
function plainHttp(url: URL, init: RequestInit): Promise<SmallResponse> {
  return new Promise<SmallResponse>((resolve, reject) => {
    const signal = init.signal ?? undefined
    if (signal?.aborted) {
      reject(abortError(signal))
      return
    }
    const method = init.method ?? 'GET'
    const body = init.body === undefined || init.body === null ? undefined : String(init.body)
    let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`
    for (const [k, v] of Object.entries((init.headers ?? {}) as Record<string, string>)) {
      const name = k.toLowerCase()
      if (name === 'host' || name === 'content-length' || name === 'connection') continue
      if (/[\r\n]/.test(name) || /[\r\n]/.test(String(v))) {
        // node:http's check (ERR_INVALID_CHAR): a header must not smuggle another line into the request.
        reject(new TypeError(`Invalid character in header content ["${k}"]`))
        return
      }
      head += `${name}: ${v}\r\n`
    }
    if (body !== undefined || (method !== 'GET' && method !== 'HEAD'))
      head += `content-length: ${body === undefined ? 0 : Buffer.byteLength(body)}\r\n`
    head += 'connection: close\r\n\r\n'

    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const queue = new BodyQueue()
    const parser = new HTTPParser(HTTPParser.RESPONSE)
    let answered = false
    let complete = false
    const finish = () => {
      signal?.removeEventListener('abort', onAbort)
    }
    const fail = (err: unknown) => {
      if (complete) return
      complete = true
      finish()
      socket.destroy()
      if (!answered) {
        answered = true
        reject(signal?.aborted ? abortError(signal) : new TypeError('fetch failed', { cause: err }))
      } else {
        queue.fail(signal?.aborted ? abortError(signal) : new TypeError('terminated', { cause: err }))
      }
    }
    const onAbort = () => {
      const e = abortError(signal!)
      if (complete) return
      complete = true
      socket.destroy()
      if (!answered) {
        answered = true
        reject(e)
      } else queue.fail(e)
    }
    parser[HTTPParser.kOnHeadersComplete] = (info: { statusCode?: number; headers: string[] }) => {
      answered = true
      const status = info.statusCode ?? 0
      const headers = new Map<string, string>()
      for (let i = 0; i + 1 < info.headers.length; i += 2) {
        const name = info.headers[i]!.toLowerCase()
        const prev = headers.get(name)
        headers.set(name, prev === undefined ? info.headers[i + 1]! : `${prev}, ${info.headers[i + 1]}`)
      }
      resolve(smallResponse(status, headers, queue, () => socket.destroy()))
    }
    parser[HTTPParser.kOnBody] = (chunk: Buffer, start: number, len: number) => {
      queue.push(chunk.subarray(start, start + len))
    }
    parser[HTTPParser.kOnMessageComplete] = () => {
      if (complete) return
      complete = true
      finish()
      queue.end()
      socket.destroy()
    }
    const socket = connect(host, Number(url.port) || 80, {
      data(d) {
        const r = parser.execute(d)
        if (r instanceof Error) fail(r)
      },
      end() {
        const r = parser.finish()
        if (r instanceof Error) fail(r)
        else if (!complete) fail(new Error('other side closed'))
      },
      error: fail,
      close: () => fail(new Error('other side closed')),
    })
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.write(body === undefined ? head : head + body)
  })
}

/** The response object for a status, lower-cased headers and a body queue; `destroy` drops the connection. */
function smallResponse(
  status: number,
  headers: Map<string, string>,
  queue: BodyQueue,
  destroy: () => void,
): SmallResponse {
  let consumed: Promise<string> | undefined
  let stream: ReadableStream<Uint8Array> | undefined
  const text = () => {
    consumed ??= new Promise<string>((ok, fail) => {
      const chunks: Buffer[] = []
      queue.attach({ data: (c) => chunks.push(c), end: () => ok(Buffer.concat(chunks).toString('utf8')), error: fail })
    })
    return consumed
  }
  return {
    ok: status >= 200 && status < 300,
    status,
    headers: { get: (name) => headers.get(name.toLowerCase()) ?? null },
    text,
    json: async () => JSON.parse(await text()) as unknown,
    get body() {
      stream ??= new ReadableStream<Uint8Array>({
        start(c) {
          queue.attach({
            data: (d) => c.enqueue(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)),
            end: () => c.close(),
            error: (e) => c.error(e),
          })
        },
        cancel: () => destroy(),
      })
      return stream
    },
  }
}
