/**
 * TLS client options (`new Client({ tls: { ca, cert, key } })`): a private CA to trust and a client certificate to
 * present, for members serving https with --trusted-ca-file/--client-cert-auth. Web-standard fetch has no such
 * options, so on Node the calls go through undici's fetch with an Agent dispatcher, and watches through the `ws`
 * package's options. undici is loaded on the first call only when `tls` is given, by a module name esbuild does not
 * follow, so browser bundles never include it (a browser uses the system's trust store and certificates).
 */
import { EtcdClientError, GrpcCode } from './errors.js'
import type { WebSocketConstructor } from './watch-stream.js'

/** PEM texts (not file names: the client reads no files; the CLI does). */
export interface TlsOptions {
  /** CA certificate(s) to trust instead of the system's. */
  ca?: string | string[]
  /** Client certificate (chain) to present. */
  cert?: string
  /** Private key of `cert`. */
  key?: string
  /** false skips server certificate verification (etcdctl's --insecure-skip-tls-verify; tests only). */
  rejectUnauthorized?: boolean
}

/** Node's tls.connect options for these TLS options. */
function connectOptions(tls: TlsOptions): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  if (tls.ca !== undefined) o.ca = tls.ca
  if (tls.cert !== undefined) o.cert = tls.cert
  if (tls.key !== undefined) o.key = tls.key
  if (tls.rejectUnauthorized === false) o.rejectUnauthorized = false
  return o
}

/** Kept in a variable so bundlers leave the import alone (undici is Node-only). */
const undiciModule = 'undici'

/** A fetch that presents and trusts per `tls` (Node: undici Agent); fails clearly where undici cannot load. */
export function tlsFetch(tls: TlsOptions): typeof fetch {
  let loaded: Promise<typeof fetch> | undefined
  const load = async (): Promise<typeof fetch> => {
    let undici: typeof import('undici')
    try {
      undici = (await import(undiciModule)) as typeof import('undici')
    } catch (err) {
      throw new EtcdClientError(
        'ERR_CLOSED',
        GrpcCode.Unimplemented,
        'edgecd client: the tls option needs Node.js with the undici package (browsers use the system trust store)',
        { cause: err },
      )
    }
    const dispatcher = new undici.Agent({ connect: connectOptions(tls) })
    return ((input: string, init?: RequestInit) =>
      undici.fetch(input, { ...(init as object), dispatcher } as never)) as unknown as typeof fetch
  }
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    loaded ??= load()
    return (await loaded)(input, init)
  }) as typeof fetch
}

/**
 * The WebSocket constructor with the TLS options as its third argument (the `ws` package's `{ca, cert, key}`), for
 * wss:// watches. A WHATWG WebSocket ignores a third argument: it cannot present a client certificate.
 */
export function tlsWebSocket(WS: WebSocketConstructor, tls: TlsOptions): WebSocketConstructor {
  const Base = WS as unknown as new (url: string, protocols?: string[], options?: unknown) => InstanceType<typeof WS>
  const options = connectOptions(tls)
  return class extends Base {
    constructor(url: string, protocols?: string[]) {
      super(url, protocols, options)
    }
  } as unknown as WebSocketConstructor
}
