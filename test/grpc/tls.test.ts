/**
 * gRPC over TLS (h2 by ALPN on the https client URL, the JSON API beside it on the same port) with etcdctl 3.4:
 * --client-cert-auth makes a certificate required, and with auth on the certificate's CN is the user (etcd's
 * AuthInfoFromTLS); endpoint status (whose :authority is the whole URL) works over TLS too.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { createTlsDir, type TestCa, type TlsDir, tlsFetch } from '../helpers/tls.js'
import { freePort } from '../support/index.js'

interface Out {
  code: number
  stdout: string
  stderr: string
}

describe('gRPC over TLS with client certificates (etcdctl 3.4)', () => {
  let tls: TlsDir
  let ca: TestCa
  let m: RunningMember
  let dir: string
  let url: string
  const certs: Record<string, { certFile: string; keyFile: string }> = {}

  const etcdctl = (user: 'root' | 'alice' | 'none', args: string[]): Promise<Out> =>
    new Promise((resolve) => {
      const c = user === 'none' ? [] : [`--cert=${certs[user]!.certFile}`, `--key=${certs[user]!.keyFile}`]
      execFile(
        'etcdctl',
        [`--endpoints=${url}`, `--cacert=${ca.certFile}`, ...c, '--dial-timeout=3s', '--command-timeout=5s', ...args],
        { env: { ...process.env, ETCDCTL_API: '3' } },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      )
    })

  before(async () => {
    tls = createTlsDir()
    ca = tls.ca('grpc-test-ca')
    const server = ca.issue('server')
    certs.root = ca.issue('root', { server: false })
    certs.alice = ca.issue('alice', { server: false })
    dir = mkdtempSync(join(tmpdir(), 'edgecd-grpc-tls-'))
    url = `https://127.0.0.1:${await freePort()}`
    m = await startNodeMember(
      {
        ...serverDefaults,
        dataDir: dir,
        listenClientUrls: [url],
        advertiseClientUrls: [url],
        initialAdvertisePeerUrls: [url],
        logLevel: 'error',
        certFile: server.certFile,
        keyFile: server.keyFile,
        trustedCaFile: ca.certFile,
        clientCertAuth: true,
        authPasswordIterations: 1000,
      },
      { debug() {}, info() {}, warn() {}, error() {} },
    )
  })
  after(async () => {
    await m?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
    tls?.remove()
  })

  test('a certificate is required; its CN is the user once auth is on; HTTP/1.1 JSON on the same port', async () => {
    assert.equal((await etcdctl('root', ['put', 'foo', 'bar'])).stdout, 'OK\n')
    assert.equal((await etcdctl('root', ['get', 'foo', '--print-value-only'])).stdout, 'bar\n')
    assert.match((await etcdctl('root', ['endpoint', 'status'])).stdout, /, 3\.4\.23, .*, true, false, /)
    const without = await etcdctl('none', ['get', 'foo'])
    assert.notEqual(without.code, 0)

    for (const args of [
      ['user', 'add', 'root:rootpw'],
      ['role', 'add', 'app'],
      ['role', 'grant-permission', 'app', 'readwrite', 'a/', '--prefix'],
      ['user', 'add', 'alice:alicepw'],
      ['user', 'grant-role', 'alice', 'app'],
      ['auth', 'enable'],
    ]) {
      const r = await etcdctl('root', args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    }
    assert.equal((await etcdctl('alice', ['put', 'a/1', 'x'])).stdout, 'OK\n')
    const denied = await etcdctl('alice', ['put', 'b', 'x'])
    assert.match(denied.stderr, /etcdserver: permission denied/)
    assert.equal((await etcdctl('root', ['get', 'a/1', '--print-value-only'])).stdout, 'x\n')

    // The JSON gateway answers on the same port over HTTP/1.1 (ALPN http/1.1).
    const f = tlsFetch({ ca: ca.certFile, cert: certs.root!.certFile, key: certs.root!.keyFile })
    const r = await f(`${url}/version`)
    assert.equal(r.status, 200)
    assert.equal(((await r.json()) as { etcdserver: string }).etcdserver, '3.4.23')
  })
})
