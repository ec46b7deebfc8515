/**
 * HTTP calls to etcd's JSON gateway with endpoint fail-over. One endpoint is pinned; on a failure that certainly
 * did not apply the request (connection refused, `etcdserver: no leader`), the call moves to the next endpoint with
 * bounded exponential backoff. A non-idempotent call whose request may have reached a server (connection reset
 * after sending, timeout, `request timed out`) is never retried: it fails with ERR_UNKNOWN_OUTCOME, as etcd's
 * clientv3 retry policy does for non-repeatable requests.
 */
import { etcdErrorMessage } from '../protocol/errors.js'
import { EtcdClientError, GrpcCode } from './errors.js'

/** Options shared by every call. */
export interface TransportOptions {
  endpoints: string[]
  /** A ready token (sent as `Authorization: Bearer`); ignored when `username` is given. */
  token?: string | undefined
  /** Credentials: the transport authenticates on first use, caches the token and renews it once when refused. */
  username?: string | undefined
  password?: string | undefined
  /** Bound on one whole call, retries included (ms). */
  commandTimeoutMs: number
  /** Bound on reaching an endpoint: used for WebSocket opens and per-attempt connection waits (ms). */
  dialTimeoutMs: number
  /** First backoff between attempts (ms); doubles up to backoffMaxMs. */
  backoffMinMs?: number
  backoffMaxMs?: number
  fetch?: typeof fetch
}

/** How a call may be retried. */
export interface CallOptions {
  /** Safe to send twice (reads, status): retried after any transport failure. */
  idempotent: boolean
  /** Only this endpoint, no fail-over (endpoint status). */
  endpoint?: string
  /** Name used in error messages, e.g. "put". */
  what?: string
  /** Stream answers (`{"result":...}\n` lines) are returned as a list of results. */
  stream?: boolean
  /** Sent without a token (authenticate itself). */
  anonymous?: boolean
}

/**
 * Answers that mean "this token will not do" (etcd's ErrInvalidAuthToken, ErrAuthOldRevision, and ErrUserEmpty when
 * auth was turned on after the client found it off): with credentials the call authenticates again and is sent
 * once more, as etcd's clientv3 does. Each is refused before anything is applied (or, for the old revision at
 * apply, refused by the apply), so even a write may be sent again.
 */
const tokenRefused = new Set(
  (['ErrInvalidAuthToken', 'ErrAuthOldRevision', 'ErrUserEmpty'] as const).map((c) => etcdErrorMessage(c)),
)

/** etcd's answer to authenticate while auth is off: the client then sends no token (clientv3 does the same). */
const authNotEnabled = etcdErrorMessage('ErrAuthNotEnabled')

const attemptsMax = 64

/** Socket error codes that mean the request never left this machine. */
const notSentCodes = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/** Digs a socket error code out of fetch's error (undici nests it in `cause`, sometimes in an AggregateError). */
function socketCode(err: unknown, depth = 0): string | undefined {
  if (depth > 4 || err === null || typeof err !== 'object') return undefined
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown[] }
  if (typeof e.code === 'string' && e.code !== '') return e.code
  if (Array.isArray(e.errors))
    for (const x of e.errors) {
      const c = socketCode(x, depth + 1)
      if (c !== undefined) return c
    }
  return socketCode(e.cause, depth + 1)
}

/** The result of classifying a failed attempt. */
type Failure = { retry: boolean; error: EtcdClientError }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** One transport per client: knows the endpoints, which one is pinned, and how to retry. */
export class Transport {
  private pinned = 0
  readonly endpoints: string[]
  /** The token from authenticate: undefined until fetched, null when the server said auth is off. */
  private authed: string | null | undefined
  private authenticating: Promise<string | null> | undefined

  constructor(private readonly opts: TransportOptions) {
    if (opts.endpoints.length === 0) throw new TypeError('edgecd client: at least one endpoint is required')
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''))
  }

  /** The endpoint calls go to now. */
  current(): string {
    return this.endpoints[this.pinned % this.endpoints.length]!
  }

  /** Moves the pin to the next endpoint (after a failure there). */
  rotate(from: string): void {
    if (this.current() === from) this.pinned = (this.pinned + 1) % this.endpoints.length
  }

  headers(token: string | undefined): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json' }
    if (token) h.authorization = `Bearer ${token}`
    return h
  }

  /** Whether the transport has a user name and password (and so can get a new token). */
  get hasCredentials(): boolean {
    return this.opts.username !== undefined
  }

  /**
   * The token to send: the `token` option, or (with credentials) the cached one from authenticate, fetched once
   * however many calls ask at the same time. Undefined when there is none or auth is off.
   */
  async authToken(): Promise<string | undefined> {
    if (!this.hasCredentials) return this.opts.token || undefined
    if (this.authed !== undefined) return this.authed ?? undefined
    this.authenticating ??= this.authenticate().finally(() => {
      this.authenticating = undefined
    })
    return (await this.authenticating) ?? undefined
  }

  private async authenticate(): Promise<string | null> {
    try {
      const r = await this.call<{ token?: string }>(
        '/v3/auth/authenticate',
        { name: this.opts.username, password: this.opts.password ?? '' },
        { idempotent: true, what: 'authenticate', anonymous: true },
      )
      this.authed = r.token || null
    } catch (err) {
      if (!(err instanceof EtcdClientError && err.message === authNotEnabled)) throw err
      this.authed = null
    }
    return this.authed
  }

  /** Forgets a token the server refused, so the next call authenticates again (another call may have already). */
  invalidateToken(token: string | undefined): void {
    if ((this.authed ?? undefined) === token) this.authed = undefined
  }

  /** Whether an error is the server refusing the token (see tokenRefused). */
  static isTokenRefused(err: unknown): boolean {
    return err instanceof EtcdClientError && err.code === 'ERR_SERVER' && tokenRefused.has(err.message)
  }

  backoffMs(attempt: number): number {
    const min = this.opts.backoffMinMs ?? 25
    const max = this.opts.backoffMaxMs ?? 1000
    return Math.min(max, min * 2 ** Math.min(attempt, 16))
  }

  /** The fetch calls go through (the option, or the global one). */
  get fetch(): typeof fetch {
    return this.opts.fetch ?? fetch
  }

  get dialTimeoutMs(): number {
    return this.opts.dialTimeoutMs
  }

  /**
   * POSTs `body` to `path` and returns the parsed answer (or the list of stream results). With credentials, a
   * refused token is renewed and the call sent once more.
   */
  async call<T = any>(path: string, body: unknown, co: CallOptions): Promise<T> {
    if (co.anonymous) return this.callWith<T>(undefined, path, body, co)
    const token = await this.authToken()
    try {
      return await this.callWith<T>(token, path, body, co)
    } catch (err) {
      if (!this.hasCredentials || !Transport.isTokenRefused(err)) throw err
      this.invalidateToken(token)
      return this.callWith<T>(await this.authToken(), path, body, co)
    }
  }

  private async callWith<T>(token: string | undefined, path: string, body: unknown, co: CallOptions): Promise<T> {
    const deadline = Date.now() + this.opts.commandTimeoutMs
    const what = co.what ?? path
    let last: EtcdClientError | undefined
    // The last failure that was not the deadline cutting an attempt short: when the final attempt only timed out
    // (say, mid-handshake), this is the error worth reporting (as gRPC reports its "last connection error").
    let lastCause: EtcdClientError | undefined
    for (let attempt = 0; attempt < attemptsMax; attempt++) {
      const endpoint = co.endpoint ?? this.current()
      const left = deadline - Date.now()
      if (left <= 0) break
      const r = await this.attempt<T>(endpoint, token, path, body, co, what, left)
      if (!('retry' in r)) return r.value
      last = r.error
      if (r.error.code === 'ERR_TIMEOUT' && lastCause !== undefined)
        throw new EtcdClientError(
          'ERR_TIMEOUT',
          GrpcCode.DeadlineExceeded,
          `${what}: command timed out; last failure: ${lastCause.message}`,
          { endpoint: lastCause.endpoint, cause: lastCause },
        )
      if (r.error.code !== 'ERR_TIMEOUT') lastCause = r.error
      if (!r.retry || co.endpoint !== undefined) throw r.error
      this.rotate(endpoint)
      // A full round over the endpoints without success: back off before the next round.
      const wait = this.backoffMs(attempt)
      if (Date.now() + wait >= deadline) break
      await sleep(wait)
    }
    if (last === undefined)
      throw new EtcdClientError('ERR_TIMEOUT', GrpcCode.DeadlineExceeded, `${what}: command timed out`)
    if (last.code === 'ERR_SERVER') throw last
    throw new EtcdClientError(
      'ERR_UNAVAILABLE',
      GrpcCode.Unavailable,
      `${what}: no endpoint available (${last.message})`,
      {
        endpoint: last.endpoint,
        cause: last,
      },
    )
  }

  private async attempt<T>(
    endpoint: string,
    token: string | undefined,
    path: string,
    body: unknown,
    co: CallOptions,
    what: string,
    leftMs: number,
  ): Promise<{ value: T } | Failure> {
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), leftMs)
    let sent = false
    try {
      const f = this.fetch
      const res = await f(endpoint + path, {
        method: 'POST',
        headers: this.headers(token),
        body: JSON.stringify(body ?? {}),
        signal: ac.signal,
      })
      sent = true
      const text = await res.text()
      if (res.ok) {
        try {
          if (co.stream) {
            const out: unknown[] = []
            for (const line of text.split('\n'))
              if (line.trim() !== '') out.push((JSON.parse(line) as { result: unknown }).result)
            return { value: out as T }
          }
          return { value: JSON.parse(text) as T }
        } catch (err) {
          return {
            retry: false,
            error: new EtcdClientError(
              'ERR_BAD_RESPONSE',
              GrpcCode.Internal,
              `${what}: bad answer from ${endpoint}: ${(err as Error).message}`,
              { endpoint, httpStatus: res.status },
            ),
          }
        }
      }
      let parsed: { error?: string; message?: string; code?: number } | undefined
      try {
        parsed = JSON.parse(text) as typeof parsed
      } catch {
        parsed = undefined
      }
      const message = parsed?.message ?? parsed?.error ?? (text.trim() || `HTTP ${res.status}`)
      const grpcCode =
        typeof parsed?.code === 'number' ? parsed.code : res.status === 503 ? GrpcCode.Unavailable : GrpcCode.Unknown
      const error = new EtcdClientError('ERR_SERVER', grpcCode, message, { httpStatus: res.status, endpoint })
      if (grpcCode === GrpcCode.Unavailable) {
        // "no leader" and "server stopped" are answered before anything is proposed, so any call may go elsewhere.
        // "request timed out" comes after a proposal: only idempotent calls may be repeated.
        const certainlyNotApplied = /no leader|server stopped|not capable|leader changed/.test(message)
        if (certainlyNotApplied || co.idempotent) return { retry: true, error }
        return {
          retry: false,
          error: new EtcdClientError(
            'ERR_UNKNOWN_OUTCOME',
            grpcCode,
            `${what}: outcome unknown: ${endpoint} answered "${message}" after the request was sent; not retried`,
            { endpoint, httpStatus: res.status, cause: error },
          ),
        }
      }
      return { retry: false, error }
    } catch (err) {
      const timedOut = ac.signal.aborted
      const code = socketCode(err)
      const notSent = !sent && !timedOut && code !== undefined && notSentCodes.has(code)
      const detail = timedOut ? 'timed out' : `${(err as Error).message}${code ? ` (${code})` : ''}`
      if (notSent || co.idempotent) {
        const c = timedOut ? 'ERR_TIMEOUT' : 'ERR_UNAVAILABLE'
        return {
          retry: !timedOut,
          error: new EtcdClientError(
            c,
            timedOut ? GrpcCode.DeadlineExceeded : GrpcCode.Unavailable,
            `${what}: ${endpoint}: ${detail}`,
            { endpoint, cause: err },
          ),
        }
      }
      return {
        retry: false,
        error: new EtcdClientError(
          'ERR_UNKNOWN_OUTCOME',
          timedOut ? GrpcCode.DeadlineExceeded : GrpcCode.Unavailable,
          `${what}: outcome unknown: ${detail} after the request may have reached ${endpoint}; not retried`,
          { endpoint, cause: err },
        ),
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * POSTs and returns the raw streaming response (snapshot); no fail-over once the answer has begun. A refused token
   * is renewed once, as in call().
   */
  async open(
    path: string,
    body: unknown,
    what: string,
  ): Promise<{ endpoint: string; response: Response; abort: () => void }> {
    const token = await this.authToken()
    try {
      return await this.openWith(token, path, body, what)
    } catch (err) {
      if (!this.hasCredentials || !Transport.isTokenRefused(err)) throw err
      this.invalidateToken(token)
      return this.openWith(await this.authToken(), path, body, what)
    }
  }

  private async openWith(
    token: string | undefined,
    path: string,
    body: unknown,
    what: string,
  ): Promise<{ endpoint: string; response: Response; abort: () => void }> {
    const f = this.fetch
    let lastErr: unknown
    for (let attempt = 0; attempt < this.endpoints.length * 2; attempt++) {
      const endpoint = this.current()
      const ac = new AbortController()
      const timer = setTimeout(() => ac.abort(), this.opts.dialTimeoutMs + this.opts.commandTimeoutMs)
      try {
        const response = await f(endpoint + path, {
          method: 'POST',
          headers: this.headers(token),
          body: JSON.stringify(body ?? {}),
          signal: ac.signal,
        })
        clearTimeout(timer)
        if (!response.ok) {
          const text = await response.text()
          let parsed: { message?: string; code?: number } | undefined
          try {
            parsed = JSON.parse(text) as typeof parsed
          } catch {}
          throw new EtcdClientError('ERR_SERVER', parsed?.code ?? GrpcCode.Unknown, parsed?.message ?? text, {
            endpoint,
            httpStatus: response.status,
          })
        }
        return { endpoint, response, abort: () => ac.abort() }
      } catch (err) {
        clearTimeout(timer)
        if (err instanceof EtcdClientError) throw err
        lastErr = err
        this.rotate(endpoint)
        await sleep(this.backoffMs(attempt))
      }
    }
    throw new EtcdClientError(
      'ERR_UNAVAILABLE',
      GrpcCode.Unavailable,
      `${what}: no endpoint available: ${(lastErr as Error)?.message}`,
      { cause: lastErr },
    )
  }
}
