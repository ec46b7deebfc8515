/**
 * TLS on Node: reads --cert-file and friends (with clear errors for missing, unreadable or invalid files), builds the
 * https listener's options, checks a connection's client certificate against the CA set of a route (client routes:
 * --trusted-ca-file, /raft: --peer-trusted-ca-file), and holds the options peers are dialed with. How the client
 * and peer sets combine on the shared listener is described in src/etcdserver/tls-config.ts and docs/tls.md.
 */

import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpsRequest, type ServerOptions } from 'node:https'
import type { Socket } from 'node:net'
import { createSecureContext, type PeerCertificate, type TLSSocket } from 'node:tls'
import { ConfigError } from '../../etcdserver/config.js'
import type { TlsConfig } from '../../etcdserver/tls-config.js'

/** TLS options for outbound peer connections (ws's and https' client options). */
export interface PeerTlsOptions {
  ca?: string[]
  cert?: string
  key?: string
}

export interface NodeTls {
  /** Options for https listeners (undefined when no cert is configured). */
  server?: ServerOptions
  /** What peers are dialed with: trust and this member's peer certificate. */
  peer: PeerTlsOptions
  /**
   * The CN of the connection's client certificate when the handshake verified it and it chains to the CA set of
   * `use`; undefined otherwise. Cached per connection.
   */
  verifiedCn(socket: Socket | undefined, use: 'client' | 'peer'): string | undefined
  /**
   * The fetch a member uses to call other members' client URLs (forwarding to the leader, looking itself up when
   * joining): https with the peer options, plain fetch otherwise.
   */
  fetch: typeof fetch
}

/** A fetch for https URLs with Node's TLS options (the global fetch cannot take a CA or a client certificate). */
function fetchWithTls(tls: PeerTlsOptions): typeof fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    if (url.protocol !== 'https:') return fetch(input, init)
    const body = init.body === undefined || init.body === null ? undefined : String(init.body)
    const headers: Record<string, string> = Object.fromEntries(new Headers(init.headers).entries())
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        { method: init.method ?? 'GET', headers, ...tls, ...(init.signal ? { signal: init.signal } : {}) },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', reject)
          res.on('end', () => {
            const h = new Headers()
            for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v)
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500, headers: h }))
          })
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  }) as typeof fetch
}

function readPem(flag: string, file: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`--${flag}: cannot read ${JSON.stringify(file)} (${code})`)
  }
  return text
}

/** The certificates of a CA file (one or more PEM blocks); a ConfigError when there is none or one is invalid. */
function readCaFile(flag: string, file: string): { pems: string[]; certs: X509Certificate[] } {
  const pems = readPem(flag, file).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (pems.length === 0) throw new ConfigError(`--${flag}: no PEM certificate in ${JSON.stringify(file)}`)
  try {
    return { pems, certs: pems.map((p) => new X509Certificate(p)) }
  } catch (err) {
    throw new ConfigError(`--${flag}: invalid certificate in ${JSON.stringify(file)} (${(err as Error).message})`)
  }
}

/** Checks that a certificate and key load together (Node's message names the problem, never the key). */
function checkPair(certFlag: string, keyFlag: string, cert: string, key: string): void {
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    throw new ConfigError(`--${certFlag}/--${keyFlag}: cannot use the certificate and key (${(err as Error).message})`)
  }
}

/** Whether some certificate of the verified chain is one of `anchors` or was issued (and signed) by one of them. */
function chainsTo(chain: X509Certificate[], anchors: X509Certificate[]): boolean {
  for (const cert of chain)
    for (const a of anchors) {
      if (cert.fingerprint256 === a.fingerprint256) return true
      if (cert.checkIssued(a) && cert.verify(a.publicKey)) return true
    }
  return false
}

/** The peer's certificate chain as sent (leaf first), with whatever issuers Node attached from the trust store. */
function peerChain(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = []
  let c: PeerCertificate | undefined = socket.getPeerCertificate(true) as PeerCertificate & {
    issuerCertificate?: PeerCertificate
  }
  const seen = new Set<string>()
  while (c?.raw && !seen.has(c.fingerprint256) && out.length < 16) {
    seen.add(c.fingerprint256)
    out.push(new X509Certificate(c.raw))
    c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate
  }
  return out
}

/** Loads the TLS files of a configuration; throws ConfigError with the flag and file when one cannot be used. */
export function loadNodeTls(c: TlsConfig): NodeTls {
  const clientCa = c.trustedCaFile ? readCaFile('trusted-ca-file', c.trustedCaFile) : undefined
  const peerCa = c.peerTrustedCaFile ? readCaFile('peer-trusted-ca-file', c.peerTrustedCaFile) : undefined
  const trusted = [...(clientCa?.pems ?? []), ...(peerCa?.pems ?? [])]
  let server: ServerOptions | undefined
  if (c.certFile) {
    const cert = readPem('cert-file', c.certFile)
    const key = readPem('key-file', c.keyFile)
    checkPair('cert-file', 'key-file', cert, key)
    const requestCert = c.clientCertAuth || c.peerClientCertAuth
    server = {
      cert,
      key,
      ...(requestCert ? { ca: trusted } : {}),
      requestCert,
      // With --client-cert-auth every connection needs a certificate, as etcd's RequireAndVerifyClientCert; with only
      // --peer-client-cert-auth clients may come without one, and /raft checks (verifiedCn).
      rejectUnauthorized: c.clientCertAuth,
    }
  }
  const peer: PeerTlsOptions = {}
  if (trusted.length > 0) peer.ca = trusted
  if (c.peerCertFile) {
    peer.cert = readPem('peer-cert-file', c.peerCertFile)
    peer.key = readPem('peer-key-file', c.peerKeyFile)
    checkPair('peer-cert-file', 'peer-key-file', peer.cert, peer.key)
  }
  // Per connection: the chain and CN, and the answer for each use (checking a chain costs signature verifications).
  const cache = new WeakMap<object, { chain: X509Certificate[]; cn: string; client?: boolean; peer?: boolean }>()
  return {
    server,
    peer,
    fetch: fetchWithTls(peer),
    verifiedCn(socket, use) {
      const anchors = (use === 'client' ? clientCa : peerCa)?.certs
      const tls = socket as TLSSocket | undefined
      if (!anchors || !tls?.encrypted || !tls.authorized) return undefined
      let v = cache.get(tls)
      if (v === undefined) {
        const cn = tls.getPeerCertificate().subject?.CN
        v = { chain: peerChain(tls), cn: Array.isArray(cn) ? (cn[0] ?? '') : (cn ?? '') }
        cache.set(tls, v)
      }
      v[use] ??= v.chain.length > 0 && chainsTo(v.chain, anchors)
      return v[use] ? v.cn : undefined
    },
  }
}
