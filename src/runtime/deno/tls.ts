/**
 * TLS on Deno: reads --cert-file and friends with clear errors (flag and file, never key material), gives Deno.serve
 * its certificate and key, and builds the Deno.HttpClient that peers are dialed and called with (the CAs of
 * --peer-trusted-ca-file and --trusted-ca-file, and --peer-cert-file/--peer-key-file as this member's certificate).
 *
 * Deno.serve cannot ask a client for a certificate (its options have no requestCert nor client CA; see
 * ../shared/RUNTIMES.md §2), so --client-cert-auth and --peer-client-cert-auth are refused: a Deno member that
 * accepted them could not enforce them. Mutual TLS needs the Node runtime.
 */

import { ConfigError } from '../../etcdserver/config.js'
import type { TlsConfig } from '../../etcdserver/tls-config.js'
import { type DenoFetchInit, type DenoHttpClient, deno } from './deno-api.js'

export interface DenoTls {
  /** Deno.serve's cert and key for https listeners (undefined when no --cert-file). */
  server?: { cert: string; key: string }
  /** The client peers are dialed with over wss:// (undefined: Deno's default trust, no client certificate). */
  client?: DenoHttpClient
  /** The fetch a member calls other members' client URLs with (https through `client`). */
  fetch: typeof fetch
}

/** Why a Deno member refuses the client-certificate flags (docs/tls.md). */
export function mtlsRefusal(flag: 'client-cert-auth' | 'peer-client-cert-auth'): string {
  return `--${flag}: Deno's server (Deno.serve) cannot request client certificates; run this member on the Node runtime for mutual TLS`
}

function readPem(flag: string, file: string): string {
  try {
    return deno.readTextFileSync(file)
  } catch (err) {
    const e = err as Error & { code?: string }
    throw new ConfigError(`--${flag}: cannot read ${JSON.stringify(file)} (${e.code ?? e.name})`)
  }
}

/** The PEM certificates of a CA file; a ConfigError when there is none. */
function readCaFile(flag: string, file: string): string[] {
  const pems = readPem(flag, file).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (pems.length === 0) throw new ConfigError(`--${flag}: no PEM certificate in ${JSON.stringify(file)}`)
  return pems
}

/** Loads the TLS files of a configuration; throws ConfigError naming the flag and file when one cannot be used. */
export function loadDenoTls(c: TlsConfig): DenoTls {
  if (c.clientCertAuth) throw new ConfigError(mtlsRefusal('client-cert-auth'))
  if (c.peerClientCertAuth) throw new ConfigError(mtlsRefusal('peer-client-cert-auth'))
  const caCerts = [
    ...(c.trustedCaFile ? readCaFile('trusted-ca-file', c.trustedCaFile) : []),
    ...(c.peerTrustedCaFile ? readCaFile('peer-trusted-ca-file', c.peerTrustedCaFile) : []),
  ]
  const server = c.certFile
    ? { cert: readPem('cert-file', c.certFile), key: readPem('key-file', c.keyFile) }
    : undefined
  const peer = c.peerCertFile
    ? { cert: readPem('peer-cert-file', c.peerCertFile), key: readPem('peer-key-file', c.peerKeyFile) }
    : undefined
  // Deno checks certificates and keys when they are used (Deno.serve, createHttpClient): check each set now, so a bad
  // one stops the start naming its flags instead of failing a listener or every dial later.
  if (server) checkClientOptions('cert-file/--key-file', server)
  if (caCerts.length > 0) checkClientOptions('trusted-ca-file/--peer-trusted-ca-file', { caCerts })
  if (peer) checkClientOptions('peer-cert-file/--peer-key-file', peer)
  const options = { ...(caCerts.length > 0 ? { caCerts } : {}), ...peer }
  const client = Object.keys(options).length > 0 ? deno.createHttpClient(options) : undefined
  const tlsFetch: typeof fetch = client
    ? (input, init) => {
        const url = input instanceof Request ? input.url : String(input)
        return url.startsWith('https:') ? fetch(input, { ...init, client } as DenoFetchInit) : fetch(input, init)
      }
    : fetch
  return { ...(server ? { server } : {}), ...(client ? { client } : {}), fetch: tlsFetch }
}

/** Throws a ConfigError naming `flags` when Deno refuses these client options. */
function checkClientOptions(flags: string, options: { caCerts?: string[]; cert?: string; key?: string }): void {
  try {
    deno.createHttpClient(options).close()
  } catch (err) {
    // Deno's messages ("keys may not be consistent: KeyMismatch", "invalid peer certificate: BadEncoding") hold no key.
    throw new ConfigError(`--${flags}: cannot use the certificates (${(err as Error).message})`)
  }
}
