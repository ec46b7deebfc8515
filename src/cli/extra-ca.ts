/**
 * NODE_EXTRA_CA_CERTS, read only when the CLI talks TLS. Node 20 parses the whole file (and its own ~140 root
 * certificates) while it starts, before any JavaScript runs: about 35 ms of CPU on every call, https or not. The
 * `edgecd` launcher (bin/edgecd.js, whose first lines are a POSIX sh script) therefore starts Node with the variable
 * empty and the file's name in EDGECD_NODE_EXTRA_CA_CERTS; bin/edgecd.js puts NODE_EXTRA_CA_CERTS back into
 * process.env (for the commands `lock` runs) and hands the file here. An https call then trusts what Node would
 * have trusted: Node's root certificates plus the file's, as the variable documents ("the well known root CAs ...
 * extended with the extra certificates in file"). --cacert replaces both, as it does when Node loads the file.
 */
import { createRequire } from 'node:module'
import type { TlsOptions } from '../client/index.js'

let deferredFile: string | undefined
let bundle: string[] | null | undefined

/** Called by bin/edgecd.js when the launcher kept NODE_EXTRA_CA_CERTS from Node's start. */
export function deferExtraCaCerts(file: string): void {
  deferredFile = file
  bundle = undefined
}

/** Node's roots plus the deferred file's certificates; null (after Node's warning) if the file cannot be read. */
function extraBundle(): string[] | null {
  if (bundle !== undefined) return bundle
  const builtin = (id: string): unknown => process.getBuiltinModule?.(id) ?? createRequire(import.meta.url)(id)
  const { readFileSync } = builtin('node:fs') as typeof import('node:fs')
  const { rootCertificates } = builtin('node:tls') as typeof import('node:tls')
  try {
    bundle = [...rootCertificates, readFileSync(deferredFile!, 'utf8')]
  } catch (err) {
    // Node's own words when it cannot load the file at start-up (it goes on without it).
    process.stderr.write(
      `Warning: Ignoring extra certs from \`${deferredFile}\`, load failed: ${(err as Error).message}\n`,
    )
    bundle = null
  }
  return bundle
}

/**
 * The TLS options for a connection to an https endpoint: unchanged unless NODE_EXTRA_CA_CERTS was deferred and no
 * --cacert was given, else with `ca` set to Node's roots plus the deferred file.
 */
export function withExtraCa(tls: TlsOptions | undefined): TlsOptions | undefined {
  if (deferredFile === undefined || tls?.ca !== undefined || tls?.rejectUnauthorized === false) return tls
  const ca = extraBundle()
  return ca === null ? tls : { ...tls, ca }
}
