/**
 * TLS client options against a member serving https with --client-cert-auth (throwaway CA and certificates made at
 * test time): the client's `tls` option (undici Agent for calls, `ws` options for the wss:// watch) and the CLI's
 * --cacert/--cert/--key/--insecure-skip-tls-verify, each refused clearly without a client certificate or with an
 * untrusted server.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { EtcdClientError } from '../../src/client/index.js'
import { serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { type CertFiles, createTlsDir, type TestCa, type TlsDir } from '../helpers/tls.js'
import { freePort, silent } from '../support/index.js'
import { testClient, within } from './helpers.js'

const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))

/** Runs `node bin/edgecd.js`, or with `launcher` the bin itself as a user's shell does (its sh launcher first). */
function cli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; launcher?: boolean } = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const [cmd, argv] = opts.launcher ? [bin, args] : [process.execPath, [bin, ...args]]
    execFile(cmd, argv, { timeout: 20_000, env: opts.env ?? process.env }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    )
  })
}

describe('TLS client options against a member with client certificate auth', () => {
  let certs: TlsDir
  let ca: TestCa
  let other: TestCa
  let alice: CertFiles
  let member: RunningMember
  let url: string
  let dataDir: string
  const pem = (f: string) => readFileSync(f, 'utf8')

  before(async () => {
    certs = createTlsDir()
    ca = certs.ca('edgecd-test-ca')
    other = certs.ca('another-ca')
    const server = ca.issue('member')
    alice = ca.issue('alice', { server: false })
    dataDir = mkdtempSync(join(tmpdir(), 'edgecd-client-tls-'))
    url = `https://127.0.0.1:${await freePort()}`
    member = await startNodeMember(
      {
        ...serverDefaults,
        dataDir,
        listenClientUrls: [url],
        advertiseClientUrls: [url],
        initialAdvertisePeerUrls: [url],
        certFile: server.certFile,
        keyFile: server.keyFile,
        trustedCaFile: ca.certFile,
        clientCertAuth: true,
        logLevel: 'error',
      },
      silent,
    )
  })
  after(async () => {
    await member?.stop()
    rmSync(dataDir, { recursive: true, force: true })
    certs?.remove()
  })

  test('client: calls and a wss:// watch with the CA and a client certificate; refused without', async () => {
    const c = testClient([url], { tls: { ca: pem(ca.certFile), cert: pem(alice.certFile), key: pem(alice.keyFile) } })
    const w = c.watch({ prefix: 'tls/' })
    await within(30_000, w.ready, 'watch over wss')
    await c.put('tls/a', '1')
    assert.equal((await c.get('tls/a'))?.value, '1')
    const it = w.events()[Symbol.asyncIterator]()
    const e = await within(30_000, it.next(), 'event over wss')
    assert.equal(e.value?.kv.key, 'tls/a')
    assert.equal((await c.status()).header.memberId !== '0', true)
    assert.equal((await c.health(url)).health, true)
    c.close()

    // No client certificate: the handshake is refused, reported as an unreachable endpoint, never retried forever.
    const noCert = testClient([url], { tls: { ca: pem(ca.certFile) }, commandTimeoutMs: 2000 })
    const e1 = await noCert.get('tls/a').catch((err: unknown) => err)
    assert.ok(e1 instanceof EtcdClientError, String(e1))
    assert.match(e1.code, /ERR_UNAVAILABLE|ERR_TIMEOUT/)
    // A server certificate from a CA the client does not trust.
    const wrongCa = testClient([url], {
      tls: { ca: pem(other.certFile), cert: pem(alice.certFile), key: pem(alice.keyFile) },
      // Long enough that a loaded machine completes at least one handshake (and its refusal) before the deadline.
      commandTimeoutMs: 4000,
    })
    const e2 = await wrongCa.get('tls/a').catch((err: unknown) => err)
    assert.ok(e2 instanceof EtcdClientError)
    assert.match(String((e2.cause as EtcdClientError | undefined)?.message ?? e2.message), /certificate|fetch failed/)
    // Skipping verification still presents the client certificate.
    const insecure = testClient([url], {
      tls: { cert: pem(alice.certFile), key: pem(alice.keyFile), rejectUnauthorized: false },
    })
    assert.equal((await insecure.get('tls/a'))?.value, '1')
  })

  test('CLI: --cacert, --cert, --key (and host:port means https), --insecure-skip-tls-verify', async () => {
    const flags = ['--cacert', ca.certFile, '--cert', alice.certFile, '--key', alice.keyFile]
    assert.equal((await cli([`--endpoints=${url}`, ...flags, 'put', 'tls/cli', 'v'])).out, 'OK\n')
    const hostPort = url.replace('https://', '')
    assert.equal((await cli([`--endpoints=${hostPort}`, ...flags, 'get', 'tls/cli'])).out, 'tls/cli\nv\n')
    const insecure = await cli([
      `--endpoints=${url}`,
      '--insecure-skip-tls-verify',
      '--cert',
      alice.certFile,
      '--key',
      alice.keyFile,
      'get',
      'tls/cli',
      '--print-value-only',
    ])
    assert.equal(insecure.out, 'v\n')
    const noCert = await cli([`--endpoints=${url}`, '--cacert', ca.certFile, '--command-timeout=2s', 'get', 'x'])
    assert.equal(noCert.code, 1)
    assert.match(noCert.err, /^Error: /m)
    const missing = await cli([`--endpoints=${url}`, '--cacert', '/nonexistent/ca.pem', 'get', 'x'])
    assert.equal(missing.code, 128, "etcdctl's ExitBadArgs")
    assert.match(missing.err, /^Error: --cacert \/nonexistent\/ca\.pem: ENOENT$/m)
    const half = await cli([`--endpoints=${url}`, '--cert', alice.certFile, 'get', 'x'])
    assert.match(half.err, /^Error: --cert and --key must be given together$/m)
  })

  test('CLI: a CA given only by NODE_EXTRA_CA_CERTS is trusted, through the launcher (which defers it) and without', async () => {
    const certFlags = ['--cert', alice.certFile, '--key', alice.keyFile, '--command-timeout=3s']
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: ca.certFile }
    for (const launcher of [true, false]) {
      const put = await cli([`--endpoints=${url}`, ...certFlags, 'put', 'tls/extra', String(launcher)], {
        env,
        launcher,
      })
      assert.equal(put.out, 'OK\n', `launcher ${launcher}: ${put.err}`)
      const get = await cli([`--endpoints=${url}`, ...certFlags, 'get', 'tls/extra', '--print-value-only'], {
        env,
        launcher,
      })
      assert.equal(get.out, `${launcher}\n`)
      // --cacert replaces Node's roots and the extra file, as Node does.
      const wrongCa = await cli([`--endpoints=${url}`, ...certFlags, '--cacert', other.certFile, 'get', 'tls/extra'], {
        env,
        launcher,
      })
      assert.equal(wrongCa.code, 1, `launcher ${launcher}: --cacert of another CA`)
    }
    // Without the variable the member's certificate is not trusted.
    const { NODE_EXTRA_CA_CERTS: _, ...noExtra } = process.env
    const untrusted = await cli([`--endpoints=${url}`, ...certFlags, 'get', 'tls/extra'], {
      env: noExtra,
      launcher: true,
    })
    assert.equal(untrusted.code, 1)
    // Commands `lock` runs see the variable as it was given.
    const locked = await cli(
      [`--endpoints=${url}`, ...certFlags, 'lock', 'tls-lock', 'sh', '-c', 'printf %s "$NODE_EXTRA_CA_CERTS"'],
      { env, launcher: true },
    )
    assert.equal(locked.out, ca.certFile, locked.err)
    // An unreadable file: Node's warning (from the CLI, on the https call), and the call goes on without it.
    const missing = await cli([`--endpoints=${url}`, ...certFlags, 'get', 'tls/extra'], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/extra.pem' },
      launcher: true,
    })
    assert.equal(missing.code, 1)
    assert.match(missing.err, /Warning: Ignoring extra certs from `\/nonexistent\/extra\.pem`, load failed/)
  })
})
