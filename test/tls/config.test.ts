/**
 * The TLS flags: etcd's names, EDGECD_* variables, Go-style booleans, and a clear startup error for each wrong
 * combination and for a missing, unreadable or mismatched file (naming the flag and file, never a key).
 */
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { serveConfig } from '../../src/cli/serve.js'
import { ConfigError, type ServerConfig, serverDefaults, validateServerConfig } from '../../src/etcdserver/config.js'
import { startNodeMember } from '../../src/runtime/node/serve.js'
import { type CertFiles, createTlsDir, type TestCa, type TlsDir } from '../helpers/tls.js'

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const https = 'https://127.0.0.1:40001'

let dir: TlsDir
let ca: TestCa
let cert: CertFiles
before(() => {
  dir = createTlsDir()
  ca = dir.ca('config-ca')
  cert = ca.issue('member')
})
after(() => dir.remove())

describe('TLS flags', () => {
  test('parsed from flags and EDGECD_* variables; booleans as Go takes them', () => {
    const c = serveConfig(
      [
        '--listen-client-urls',
        https,
        '--cert-file',
        '/c.pem',
        '--key-file=/k.pem',
        '--trusted-ca-file',
        '/ca.pem',
        '--client-cert-auth',
        '--peer-client-cert-auth=false',
      ],
      { EDGECD_PEER_CERT_FILE: '/p.pem', EDGECD_PEER_KEY_FILE: '/pk.pem', EDGECD_PEER_TRUSTED_CA_FILE: '/pca.pem' },
    ) as ServerConfig
    assert.equal(c.certFile, '/c.pem')
    assert.equal(c.keyFile, '/k.pem')
    assert.equal(c.trustedCaFile, '/ca.pem')
    assert.equal(c.clientCertAuth, true)
    assert.equal(c.peerClientCertAuth, false)
    assert.equal(c.peerCertFile, '/p.pem')
    assert.equal(c.peerKeyFile, '/pk.pem')
    assert.equal(c.peerTrustedCaFile, '/pca.pem')
    const e = serveConfig([], { EDGECD_CLIENT_CERT_AUTH: 'true', EDGECD_PEER_CLIENT_CERT_AUTH: '1' }) as ServerConfig
    assert.equal(e.clientCertAuth, true)
    assert.equal(e.peerClientCertAuth, true)
    assert.equal((serveConfig([], {}) as ServerConfig).clientCertAuth, false)
    assert.throws(() => serveConfig(['--client-cert-auth=yes'], {}), /--client-cert-auth must be true or false/)
  })

  const base: ServerConfig = {
    ...serverDefaults,
    listenClientUrls: [https],
    advertiseClientUrls: [https],
    initialAdvertisePeerUrls: [https],
  }
  const cases: [string, Partial<ServerConfig>, RegExp][] = [
    ['https without a certificate', {}, /https:\/\/127\.0\.0\.1:40001: an https URL needs --cert-file and --key-file/],
    ['a cert without its key', { certFile: '/c' }, /--cert-file and --key-file must be given together/],
    ['a peer key without its cert', { certFile: '/c', keyFile: '/k', peerKeyFile: '/k' }, /--peer-cert-file and/],
    [
      '--client-cert-auth without a CA',
      { certFile: '/c', keyFile: '/k', clientCertAuth: true },
      /--client-cert-auth needs --trusted-ca-file/,
    ],
    [
      '--peer-client-cert-auth without a CA',
      { certFile: '/c', keyFile: '/k', peerClientCertAuth: true },
      /--peer-client-cert-auth needs --peer-trusted-ca-file/,
    ],
    [
      '--peer-client-cert-auth without a peer certificate to dial with',
      { certFile: '/c', keyFile: '/k', peerClientCertAuth: true, peerTrustedCaFile: '/ca' },
      /--peer-client-cert-auth needs --peer-cert-file and --peer-key-file/,
    ],
    [
      '--client-cert-auth with a plain http listener',
      {
        certFile: '/c',
        keyFile: '/k',
        clientCertAuth: true,
        trustedCaFile: '/ca',
        listenClientUrls: [https, 'http://127.0.0.1:40002'],
      },
      /--client-cert-auth needs every --listen-client-urls to be https/,
    ],
  ]
  for (const [name, over, re] of cases)
    test(`refused: ${name}`, () => {
      assert.throws(
        () => validateServerConfig({ ...base, ...over }),
        (err: unknown) => err instanceof ConfigError && re.test(err.message),
      )
    })

  test('missing, unreadable, empty or mismatched files stop the start with the flag and file named', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'edgecd-tls-config-'))
    try {
      const start = (over: Partial<ServerConfig>) =>
        startNodeMember({ ...base, dataDir: join(tmp, 'data'), ...over }, silent)
      const missing = join(tmp, 'nope.pem')
      await assert.rejects(
        start({ certFile: missing, keyFile: cert.keyFile }),
        (e: Error) => e instanceof ConfigError && e.message === `--cert-file: cannot read "${missing}" (ENOENT)`,
      )
      const unreadable = join(tmp, 'unreadable.pem')
      writeFileSync(unreadable, 'x')
      chmodSync(unreadable, 0o000)
      // root reads anything: then the file is at least refused as no certificate.
      await assert.rejects(
        start({ certFile: cert.certFile, keyFile: cert.keyFile, trustedCaFile: unreadable, clientCertAuth: true }),
        (e: Error) =>
          e instanceof ConfigError && /^--trusted-ca-file: (cannot read|no PEM certificate in)/.test(e.message),
      )
      // A key that is not the certificate's: named, and no key material in the message.
      const otherKey = ca.issue('someone-else').keyFile
      await assert.rejects(start({ certFile: cert.certFile, keyFile: otherKey }), (e: Error) => {
        assert.ok(e instanceof ConfigError)
        assert.match(e.message, /^--cert-file\/--key-file: cannot use the certificate and key/)
        assert.doesNotMatch(e.message, /PRIVATE KEY/)
        const keyLine = readFileSync(otherKey, 'utf8').split('\n')[1]!
        assert.ok(!e.message.includes(keyLine.slice(0, 20)))
        return true
      })
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })
})
