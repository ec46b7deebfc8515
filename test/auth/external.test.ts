/**
 * Tokens from an outside issuer: a throwaway key pair made here, its JWKS given as a file (--auth-jwks-file) or served
 * on loopback (--auth-jwks-url). A good token acts as the edgecd user its claim names (that user's permissions), and
 * every defect is 401 `etcdserver: invalid auth token`: wrong iss or aud, expired, no exp, unknown kid, alg none,
 * HS256 keyed with the public key, a token of edgecd's own key claiming the outside issuer, and the reverse. Also the
 * flag checks (clear errors) and the token cache's rules.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { base64url, exportJWK, generateKeyPair, importPKCS8, type JWK, SignJWT, UnsecuredJWT } from 'jose'
import { authConfigFromFlags } from '../../src/auth/config.js'
import { parseJwks } from '../../src/auth/external.js'
import { TokenCache } from '../../src/auth/verifier.js'
import { serveConfig } from '../../src/cli/serve.js'
import { validateServerConfig } from '../../src/etcdserver/config.js'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { b64 } from '../support/index.js'
import { type AuthFixture, authFixture, call, writeSigningKeys } from './helpers.js'

const iss = 'https://idp.example'
const aud = 'edgecd-test'
const invalid = JSON.stringify({
  error: 'etcdserver: invalid auth token',
  message: 'etcdserver: invalid auth token',
  code: 16,
})

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

/** An outside issuer's key pair and its public JWKS. */
async function issuerKey(alg: 'ES256' | 'RS256' | 'EdDSA', kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { alg, kid, privateKey, jwk }
}

const now = () => Math.floor(Date.now() / 1000)

function mint(
  key: { alg: string; kid: string; privateKey: Key },
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const t = now()
  return new SignJWT({ sub: 'alice', iss, aud, iat: t, exp: t + 300, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header } as never)
    .sign(key.privateKey)
}

for (const source of ['file', 'url'] as const) {
  describe(`outside issuer, JWKS from a ${source}`, () => {
    let m: TestMember
    let f: AuthFixture & { url: string }
    let es: Awaited<ReturnType<typeof issuerKey>>
    let rs: Awaited<ReturnType<typeof issuerKey>>
    let ownPrivatePem: string
    let jwksServer: Server | undefined
    let jwksFetches = 0

    before(async () => {
      es = await issuerKey('ES256', 'es-1')
      rs = await issuerKey('RS256', 'rs-1')
      const jwks = JSON.stringify({ keys: [es.jwk, rs.jwk] })
      const dir = mkdtempSync(join(tmpdir(), 'edgecd-jwks-'))
      // edgecd's own keys from files, so the test can sign with edgecd's own private key too
      const own = writeSigningKeys(dir)
      ownPrivatePem = own.privatePem
      let jwksFlag: Record<string, string>
      if (source === 'file') {
        writeFileSync(join(dir, 'jwks.json'), jwks)
        jwksFlag = { authJwksFile: join(dir, 'jwks.json') }
      } else {
        jwksServer = createServer((_req, res) => {
          jwksFetches++
          res.writeHead(200, { 'content-type': 'application/json' }).end(jwks)
        })
        await new Promise<void>((r) => jwksServer!.listen(0, '127.0.0.1', r))
        const port = (jwksServer.address() as { port: number }).port
        jwksFlag = { authJwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json` }
      }
      m = await startTestMember({
        authPasswordIterations: 1000,
        authToken: own.authToken,
        ...jwksFlag,
        authJwtIssuer: iss,
        authJwtAudience: aud,
      })
      f = await authFixture(m.url)
    })
    after(async () => {
      await m?.stop()
      jwksServer?.close()
    })

    test("a good token acts as its user, with that user's permissions, on every endpoint", async () => {
      for (const key of [es, rs]) {
        const tok = await mint(key)
        for (const bearer of [true, false]) {
          const put = await call(f.url, '/v3/kv/put', { key: b64('app/x'), value: b64('v') }, tok, bearer)
          assert.equal(put.status, 200, put.text)
          const got = await call(f.url, '/v3/kv/range', { key: b64('app/x') }, tok, bearer)
          assert.equal(got.json.count, '1')
        }
        // alice's role gives app/ and READ on shared, nothing else
        assert.equal((await call(f.url, '/v3/kv/range', { key: b64('secret') }, tok)).status, 403)
        assert.equal((await call(f.url, '/v3/kv/put', { key: b64('shared'), value: b64('v') }, tok)).status, 403)
        assert.equal((await call(f.url, '/v3/auth/user/list', {}, tok)).status, 403)
        assert.equal((await call(f.url, '/v3/auth/user/get', { name: 'alice' }, tok)).status, 200)
      }
      // a root user named by the claim may administer
      const root = await mint(es, { sub: 'root' })
      assert.equal((await call(f.url, '/v3/auth/user/list', {}, root)).status, 200)
      // edgecd's own tokens still work next to them
      assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/x') }, f.alice)).status, 200)
    })

    test('a user the claim names must exist in edgecd', async () => {
      const r = await call(f.url, '/v3/kv/range', { key: b64('app/x') }, await mint(es, { sub: 'nobody' }))
      assert.equal(r.status, 403, r.text)
    })

    test('every defect is 401 invalid auth token', async () => {
      const t = now()
      const pub = es.jwk
      const own = { alg: 'ES256', kid: JSON.parse(Buffer.from(f.alice.split('.')[0]!, 'base64url').toString()).kid }
      const ownKey = await importPKCS8(ownPrivatePem, 'ES256')
      const other = await issuerKey('ES256', 'es-1') // same kid, another key
      const good = await mint(es)
      const [h, p, s] = good.split('.') as [string, string, string]
      const forged: Record<string, string> = {
        wrongIssuer: await mint(es, { iss: 'https://evil.example' }),
        wrongAudience: await mint(es, { aud: 'someone-else' }),
        noAudience: await mint(es, { aud: undefined }),
        expired: await mint(es, { iat: t - 400, exp: t - 60 }),
        noExp: await mint(es, { exp: undefined }),
        notYetValid: await mint(es, { nbf: t + 600 }),
        unknownKid: await mint({ ...es, kid: 'no-such-kid' }),
        otherKeySameKid: await mint(other),
        rsKidWithEsAlg: await mint({ ...es, kid: rs.kid }),
        algNone: new UnsecuredJWT({ sub: 'alice', iss, aud, exp: t + 300 }).encode(),
        hs256KeyedWithPublicJwk: await new SignJWT({ sub: 'alice', iss, aud, exp: t + 300 })
          .setProtectedHeader({ alg: 'HS256', kid: es.kid })
          .sign(new TextEncoder().encode(JSON.stringify(pub))),
        hs256KeyedWithX: await new SignJWT({ sub: 'alice', iss, aud, exp: t + 300 })
          .setProtectedHeader({ alg: 'HS256', kid: es.kid })
          .sign(Buffer.from(pub.x!, 'base64url')),
        ownKeyClaimingOutsideIssuer: await new SignJWT({ sub: 'root', iss, aud, iat: t, exp: t + 300, rev: 1e6 })
          .setProtectedHeader({ alg: 'ES256', kid: own.kid, typ: 'JWT' })
          .sign(ownKey),
        outsideKeyClaimingOwnIssuer: await mint(es, { iss: 'edgecd', rev: 1e6 }),
        tamperedSubject: `${h}.${base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'root' }))}.${s}`,
        emptyUser: await mint(es, { sub: '' }),
        numericUser: await mint(es, { sub: 42 }),
        critHeader: await mint(es, {}, { crit: ['exp'] }).catch(() => 'x.y.z'),
        oversized: await mint(es, { pad: 'x'.repeat(5000) }),
      }
      for (const [name, tok] of Object.entries(forged)) {
        const r = await call(f.url, '/v3/kv/range', { key: b64('app/x') }, tok, name.length % 2 === 0)
        assert.equal(r.status, 401, `${name}: ${r.status} ${r.text}`)
        assert.equal(r.text, invalid, name)
        // a refused token is refused again (nothing is cached for it)
        assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/x') }, tok)).status, 401, name)
      }
      if (source === 'url') assert.ok(jwksFetches <= 3, `the JWKS is cached, fetched ${jwksFetches} times`)
    })

    test('a permission revoked after the token was first used applies to the outside token at once', async () => {
      const tok = await mint(es, { sub: 'alice' })
      assert.equal((await call(f.url, '/v3/kv/range', { key: b64('shared') }, tok)).status, 200)
      const root = await mint(es, { sub: 'root' })
      assert.equal((await call(f.url, '/v3/auth/role/revoke', { role: 'app', key: b64('shared') }, root)).status, 200)
      // the outside token carries no auth revision: it is checked with the current permissions, cached or not
      assert.equal((await call(f.url, '/v3/kv/range', { key: b64('shared') }, tok)).status, 403)
      assert.equal((await call(f.url, '/v3/kv/range', { key: b64('app/x') }, tok)).status, 200)
    })
  })
}

describe('outside issuer flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-jwks-flags-'))
  const check = (args: string[]) => {
    const c = serveConfig(args, {})
    assert.ok(c !== 'help')
    validateServerConfig(c)
    return authConfigFromFlags(c, (p) => {
      throw new Error(`ENOENT ${p}`)
    })
  }
  test('a JWKS needs an issuer and an audience; the other flags need a JWKS', () => {
    const cases: [string[], RegExp][] = [
      [['--auth-jwks-file', 'x.json'], /--auth-jwks-file needs --auth-jwt-issuer/],
      [['--auth-jwks-url', 'https://idp/jwks', '--auth-jwt-issuer', iss], /needs --auth-jwt-audience/],
      [['--auth-jwt-issuer', iss], /--auth-jwt-issuer needs --auth-jwks-file or --auth-jwks-url/],
      [['--auth-jwt-audience', aud], /--auth-jwt-audience needs/],
      [['--auth-jwt-user-claim', 'email'], /--auth-jwt-user-claim needs/],
      [
        ['--auth-jwks-file', 'a', '--auth-jwks-url', 'https://b', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud],
        /one, not both/,
      ],
      [
        ['--auth-jwks-url', 'http://idp.example/jwks', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud],
        /must be https \(http only on loopback\)/,
      ],
      [['--auth-jwks-url', 'nope', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud], /invalid URL/],
      [['--auth-jwks-file', 'j', '--auth-jwt-issuer', 'edgecd', '--auth-jwt-audience', aud], /must differ/],
      [
        ['--auth-jwks-file', 'j', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud, '--auth-jwt-user-claim', ''],
        /claim name of 1 to 256/,
      ],
      [['--auth-jwks-file', '/no/such', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud], /cannot read.*ENOENT/],
    ]
    for (const [args, re] of cases) assert.throws(() => check(args), re, args.join(' '))
    const ok = check(['--auth-jwks-url', 'http://127.0.0.1:1/j', '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud])
    assert.ok(ok.external?.jwks instanceof URL)
    assert.equal(ok.external?.userClaim, 'sub')
  })

  test('a JWKS file must hold public signature keys', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true })
    const priv = await exportJWK(privateKey)
    const pub = { ...priv }
    delete pub.d
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['{}', /no "keys" array/],
      ['{"keys":[]}', /no "keys" array/],
      [JSON.stringify({ keys: [priv] }), /private key material/],
      [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /kty must be RSA, EC or OKP/],
      [JSON.stringify({ keys: [{ ...pub, alg: 'HS256' }] }), /alg must be one of RS256, ES256, EdDSA/],
      [JSON.stringify({ keys: [{ ...pub, use: 'enc' }] }), /use must be "sig"/],
    ]
    for (const [text, re] of cases) assert.throws(() => parseJwks(text), re, text)
    const file = join(dir, 'priv.json')
    writeFileSync(file, JSON.stringify({ keys: [priv] }))
    const c = serveConfig(['--auth-jwks-file', file, '--auth-jwt-issuer', iss, '--auth-jwt-audience', aud], {})
    assert.ok(c !== 'help')
    assert.throws(
      () => authConfigFromFlags(c, () => JSON.stringify({ keys: [priv] })),
      /--auth-jwks-file ".*priv.json": JWKS key 0 holds private key material/,
    )
    assert.deepEqual(parseJwks(JSON.stringify({ keys: [pub] })).keys.length, 1)
    // and a member refuses to start with it, saying why
    await assert.rejects(
      startTestMember({ authJwksFile: file, authJwtIssuer: iss, authJwtAudience: aud }),
      (e: Error) =>
        e.name === 'ConfigError' && /--auth-jwks-file ".*priv.json": JWKS key 0 holds private/.test(e.message),
    )
  })
})

describe('token cache', () => {
  test('bounded, least recently used dropped first, entries end at expiry or a newer auth revision', () => {
    const c = new TokenCache(3)
    c.set('a', { user: 'u', rev: 5, validUntilSeconds: 100 })
    c.set('b', { user: 'u', rev: undefined, validUntilSeconds: 100 })
    c.set('c', { user: 'u', rev: 5, validUntilSeconds: 100 })
    assert.ok(c.get('a', 10, 5)) // a is now the most recent
    c.set('d', { user: 'u', rev: 5, validUntilSeconds: 100 })
    assert.equal(c.size, 3)
    assert.equal(c.get('b', 10, 5), undefined, 'b was the least recently used')
    assert.ok(c.get('a', 10, 5))
    assert.equal(c.get('a', 10, 6), undefined, 'a newer auth revision ends an own token entry')
    assert.equal(c.get('a', 10, 5), undefined, 'and it is gone')
    c.set('e', { user: 'u', rev: undefined, validUntilSeconds: 100 })
    assert.ok(c.get('e', 10, 99), 'an outside token entry does not depend on the revision')
    assert.equal(c.get('e', 100, 99), undefined, 'expired at validUntilSeconds')
  })
})
