/**
 * Throwaway certificates for TLS tests, made at test time with the openssl CLI (no private key is ever committed):
 * a private CA (EC P-256) that issues leaf certificates, each valid for loopback (SAN DNS:localhost, IP:127.0.0.1)
 * and for both server and client use, so one certificate can serve a member's listener and dial its peers. Also a
 * `fetch` that trusts a given CA and presents a client certificate (undici's Agent), for calls to https members.
 *
 *   const tls = createTlsDir()              // a fresh temp dir; tls.remove() deletes it and every key in it
 *   const ca = tls.ca('test-ca')            // ca.certFile, ca.keyFile
 *   const server = ca.issue('member-0')     // { certFile, keyFile, cn }
 *   const alice = ca.issue('alice', { server: false })
 *   const f = tlsFetch({ ca: ca.certFile, cert: alice.certFile, key: alice.keyFile })
 *   await f('https://127.0.0.1:1234/v3/kv/range', { method: 'POST', body: '{"key":"YQ=="}' })
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, fetch as undiciFetch } from 'undici'

/** A certificate and its key, as files (PEM). */
export interface CertFiles {
  /** The subject's common name (the user name with --client-cert-auth and auth on). */
  cn: string
  certFile: string
  keyFile: string
}

export interface TestCa extends CertFiles {
  /**
   * Issues a leaf certificate signed by this CA. `server` (default true) adds serverAuth and the loopback SANs;
   * `client` (default true) adds clientAuth. Valid for 30 days.
   */
  issue(cn: string, opts?: { server?: boolean; client?: boolean }): CertFiles
}

export interface TlsDir {
  dir: string
  /** A new self-signed CA in this dir (its name is also its CN). */
  ca(cn: string): TestCa
  /** A self-signed leaf certificate that no CA vouches for. */
  selfSigned(cn: string): CertFiles
  /** Deletes the dir with every key in it. */
  remove(): void
}

const openssl = (args: string[], cwd: string) =>
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
const safe = (cn: string) => cn.replace(/[^A-Za-z0-9_.-]/g, '_')
let serial = 0

/** Makes a temp dir for certificates; call remove() when done (an `after` hook). */
export function createTlsDir(): TlsDir {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-tls-'))
  const newKey = (file: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir)
  /** A new key and a self-signed certificate for it with the given extensions (a CA's, or a rogue leaf). */
  const selfSignedCert = (prefix: string, cn: string, exts: string[]) => {
    const base = `${prefix}-${safe(cn)}-${++serial}`
    const keyFile = join(dir, `${base}.key`)
    const certFile = join(dir, `${base}.crt`)
    newKey(keyFile)
    const args = ['req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '30', '-subj', `/CN=${cn}`]
    openssl([...args, ...exts.flatMap((e) => ['-addext', e])], dir)
    return { keyFile, certFile }
  }
  return {
    dir,
    ca(cn) {
      const { keyFile, certFile } = selfSignedCert('ca', cn, [
        'basicConstraints=critical,CA:TRUE',
        'keyUsage=critical,keyCertSign,cRLSign',
      ])
      return {
        cn,
        certFile,
        keyFile,
        issue(leafCn, opts = {}) {
          const server = opts.server ?? true
          const client = opts.client ?? true
          const leaf = `${safe(leafCn)}-${++serial}`
          const leafKey = join(dir, `${leaf}.key`)
          const csr = join(dir, `${leaf}.csr`)
          const crt = join(dir, `${leaf}.crt`)
          const ext = join(dir, `${leaf}.ext`)
          newKey(leafKey)
          openssl(['req', '-new', '-key', leafKey, '-out', csr, '-subj', `/CN=${leafCn}`], dir)
          const usages = [server ? 'serverAuth' : '', client ? 'clientAuth' : ''].filter(Boolean).join(',')
          writeFileSync(
            ext,
            [
              'basicConstraints=CA:FALSE',
              `extendedKeyUsage=${usages}`,
              server ? 'subjectAltName=DNS:localhost,IP:127.0.0.1' : '',
            ].join('\n'),
          )
          openssl(
            [
              'x509',
              '-req',
              '-in',
              csr,
              '-CA',
              certFile,
              '-CAkey',
              keyFile,
              '-CAcreateserial',
              '-out',
              crt,
              '-extfile',
              ext,
              '-days',
              '30',
            ],
            dir,
          )
          rmSync(csr)
          return { cn: leafCn, certFile: crt, keyFile: leafKey }
        },
      }
    },
    selfSigned(cn) {
      return {
        cn,
        ...selfSignedCert('self', cn, [
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          'extendedKeyUsage=serverAuth,clientAuth',
        ]),
      }
    },
    remove() {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** PEM texts for Node's tls/https/ws options: `ca` trusted, `cert`/`key` presented (all optional). */
export function tlsOptions(files: { ca?: string; cert?: string; key?: string }): {
  ca?: string
  cert?: string
  key?: string
} {
  const out: { ca?: string; cert?: string; key?: string } = {}
  if (files.ca) out.ca = readFileSync(files.ca, 'utf8')
  if (files.cert) out.cert = readFileSync(files.cert, 'utf8')
  if (files.key) out.key = readFileSync(files.key, 'utf8')
  return out
}

/** What tlsFetch answers: a standard Response, plus close() for the connection pool behind it. */
export type TlsFetch = ((
  url: string,
  init?: { method?: string; body?: string; headers?: Record<string, string> },
) => Promise<Response>) & { close(): Promise<void> }

/**
 * A fetch that trusts `ca` (a file) and, when given, presents `cert`/`key` (files) as its client certificate.
 * Connections are pooled per returned function: call close() when done.
 */
export function tlsFetch(files: { ca?: string; cert?: string; key?: string }): TlsFetch {
  const agent = new Agent({ connect: tlsOptions(files) })
  const f = (async (url, init = {}) =>
    (await undiciFetch(url, { ...init, dispatcher: agent })) as unknown as Response) as TlsFetch
  f.close = () => agent.close()
  return f
}
