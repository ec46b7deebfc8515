/**
 * TLS settings of a member (etcd's flag names) and their checks. Peers share the client listener (/raft), so the two
 * sets combine as follows (docs/tls.md):
 * - every https listener presents --cert-file/--key-file;
 * - it asks for a client certificate when --client-cert-auth or --peer-client-cert-auth is on, trusting the
 *   certificates of --trusted-ca-file and --peer-trusted-ca-file;
 * - with --client-cert-auth, client routes need a certificate that chains to --trusted-ca-file (the handshake already
 *   refuses a connection without one); with --peer-client-cert-auth, /raft needs one that chains to
 *   --peer-trusted-ca-file;
 * - a member dials its peers (wss:// when their URLs are https) with --peer-cert-file/--peer-key-file, and trusts
 *   --peer-trusted-ca-file and --trusted-ca-file for the listener's certificate.
 * The cluster credential (an HMAC of --initial-cluster-token) is checked on /raft in every case.
 */
export interface TlsConfig {
  /** --cert-file: PEM certificate (chain) every https listener presents. */
  certFile: string
  /** --key-file: PEM private key of --cert-file. */
  keyFile: string
  /** --trusted-ca-file: PEM CA certificates that client certificates must chain to. */
  trustedCaFile: string
  /** --client-cert-auth: require a client certificate from --trusted-ca-file on client routes. */
  clientCertAuth: boolean
  /** --peer-cert-file: PEM certificate this member presents when it dials its peers. */
  peerCertFile: string
  /** --peer-key-file: PEM private key of --peer-cert-file. */
  peerKeyFile: string
  /** --peer-trusted-ca-file: PEM CA certificates that peer certificates must chain to. */
  peerTrustedCaFile: string
  /** --peer-client-cert-auth: require a peer certificate from --peer-trusted-ca-file on /raft. */
  peerClientCertAuth: boolean
}

export const tlsDefaults: TlsConfig = {
  certFile: '',
  keyFile: '',
  trustedCaFile: '',
  clientCertAuth: false,
  peerCertFile: '',
  peerKeyFile: '',
  peerTrustedCaFile: '',
  peerClientCertAuth: false,
}

/** What is wrong with the TLS settings given the listen URLs, or undefined (config.ts throws it as a ConfigError). */
export function tlsConfigProblem(c: TlsConfig, listenClientUrls: string[]): string | undefined {
  if ((c.certFile === '') !== (c.keyFile === '')) return '--cert-file and --key-file must be given together'
  if ((c.peerCertFile === '') !== (c.peerKeyFile === ''))
    return '--peer-cert-file and --peer-key-file must be given together'
  const https = listenClientUrls.filter((u) => u.startsWith('https:'))
  if (https.length > 0 && c.certFile === '')
    return `--listen-client-urls ${https[0]}: an https URL needs --cert-file and --key-file`
  for (const [on, flag, ca, caFlag] of [
    [c.clientCertAuth, 'client-cert-auth', c.trustedCaFile, 'trusted-ca-file'],
    [c.peerClientCertAuth, 'peer-client-cert-auth', c.peerTrustedCaFile, 'peer-trusted-ca-file'],
  ] as const) {
    if (!on) continue
    if (ca === '') return `--${flag} needs --${caFlag} (the CA certificates to verify against)`
    if (https.length !== listenClientUrls.length)
      return `--${flag} needs every --listen-client-urls to be https:// (a plain http listener cannot verify certificates)`
  }
  if (c.peerClientCertAuth && c.peerCertFile === '')
    return '--peer-client-cert-auth needs --peer-cert-file and --peer-key-file (this member dials its peers with them)'
  return undefined
}
