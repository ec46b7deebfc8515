/**
 * Unit tests of src/auth: permission intervals (prefix boundaries, from-key, merging), the auth store's etcd rules,
 * password hashing, token signing and verification against forgeries, and the failure limiter.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { base64url, generateKeyPair, importJWK, SignJWT, UnsecuredJWT } from 'jose'
import { checkTxn } from '../../src/auth/check.js'
import { hashPassword, verifyPassword } from '../../src/auth/password.js'
import { isRangePermitted, type Permission, PermType, prefixEnd } from '../../src/auth/permissions.js'
import { FailureLimiter } from '../../src/auth/rate-limit.js'
import { AuthStore } from '../../src/auth/store.js'
import { generateSigningKey, parseAuthTokenFlag, TokenKeys, tokenFromHeader } from '../../src/auth/token.js'
import { EtcdError } from '../../src/protocol/errors.js'
import type { TxnRequest } from '../../src/protocol/types.js'

const b = (s: string) => new TextEncoder().encode(s)
const none = new Uint8Array(0)
const fromKey = new Uint8Array([0])
const perm = (permType: PermType, key: string, end: Uint8Array | string = none): Permission => ({
  permType,
  key: b(key),
  range_end: typeof end === 'string' ? b(end) : end,
})
const code = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    return (err as EtcdError).code
  }
  return 'ok'
}

describe('permissions', () => {
  const prefix = (p: string) => perm(PermType.READ, p, prefixEnd(b(p)))
  test('a prefix covers its keys and sub-prefixes, never the neighbouring prefix', () => {
    const ps = [prefix('foo/')]
    assert.ok(isRangePermitted(ps, PermType.READ, b('foo/'), none))
    assert.ok(isRangePermitted(ps, PermType.READ, b('foo/a/b'), none))
    assert.ok(isRangePermitted(ps, PermType.READ, b('foo/'), prefixEnd(b('foo/'))))
    assert.ok(isRangePermitted(ps, PermType.READ, b('foo/a'), prefixEnd(b('foo/a'))))
    assert.ok(!isRangePermitted(ps, PermType.READ, b('foo0'), none), 'foo0 sorts right after foo/ but is outside')
    assert.ok(!isRangePermitted(ps, PermType.READ, b('foo'), none))
    assert.ok(!isRangePermitted(ps, PermType.READ, b('fo'), prefixEnd(b('fo'))), 'a wider prefix is not covered')
    assert.ok(!isRangePermitted(ps, PermType.READ, b('foo/'), fromKey), 'from-key runs past the prefix')
    assert.ok(!isRangePermitted(ps, PermType.READ, b('foo/'), b('foo0\u0000')))
    assert.ok(!isRangePermitted(ps, PermType.WRITE, b('foo/a'), none), 'READ does not grant WRITE')
  })
  test('single key, range and from-key permissions', () => {
    assert.ok(isRangePermitted([perm(PermType.WRITE, 'k')], PermType.WRITE, b('k'), none))
    assert.ok(!isRangePermitted([perm(PermType.WRITE, 'k')], PermType.WRITE, b('k0'), none))
    assert.ok(
      !isRangePermitted([perm(PermType.WRITE, 'k')], PermType.WRITE, b('k'), b('k0')),
      'the range [k, k0) holds k\\0...',
    )
    const r = [perm(PermType.READWRITE, 'a', 'c')]
    assert.ok(isRangePermitted(r, PermType.READ, b('a'), b('c')))
    assert.ok(isRangePermitted(r, PermType.WRITE, b('bzzz'), none))
    assert.ok(!isRangePermitted(r, PermType.READ, b('c'), none), 'range_end is exclusive')
    assert.ok(!isRangePermitted(r, PermType.READ, b('a'), b('c\u0000')))
    const f = [perm(PermType.READ, 'm', fromKey)]
    assert.ok(isRangePermitted(f, PermType.READ, b('zzzz'), fromKey))
    assert.ok(!isRangePermitted(f, PermType.READ, b('l'), none))
    assert.ok(
      isRangePermitted([perm(PermType.READ, '\u0000', fromKey)], PermType.READ, b('\u0000'), fromKey),
      'all keys',
    )
  })
  test('adjacent and overlapping grants merge; a gap does not', () => {
    const ps = [perm(PermType.READ, 'a', 'c'), perm(PermType.READ, 'c', 'e'), perm(PermType.READWRITE, 'd', 'g')]
    assert.ok(isRangePermitted(ps, PermType.READ, b('a'), b('g')))
    assert.ok(!isRangePermitted(ps, PermType.READ, b('a'), b('g\u0000')))
    const gap = [perm(PermType.READ, 'a', 'c'), perm(PermType.READ, 'c\u0000', 'e')]
    assert.ok(!isRangePermitted(gap, PermType.READ, b('a'), b('e')), 'key "c" is not covered')
  })
  // Diff seed 11440 (session 11): etcd 3.4's permission cache reads a grant whose range_end is at or before its key
  // as the interval [key, range_end), which holds no key; it was read as the key alone here.
  test('a permission whose range_end is at or before its key grants no key, not even its own', () => {
    const inverted = [perm(PermType.READWRITE, 'x', 'c')]
    assert.ok(!isRangePermitted(inverted, PermType.WRITE, b('x'), none))
    assert.ok(!isRangePermitted(inverted, PermType.READ, b('c'), none))
    assert.ok(!isRangePermitted([perm(PermType.READ, 'k', 'k')], PermType.READ, b('k'), none))
    // Beside a grant that covers the key, it takes nothing away.
    assert.ok(isRangePermitted([...inverted, perm(PermType.WRITE, 'x')], PermType.WRITE, b('x'), none))
    const s = storeWithRoot()
    s.apply({ user_add: { name: 'alice' } }, undefined)
    s.apply({ role_add: { name: 'ro' } }, undefined)
    s.apply({ role_grant_permission: { name: 'ro', perm: inverted[0]! } }, undefined)
    s.apply({ user_grant_role: { user: 'alice', role: 'ro' } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    const alice = { user: 'alice', rev: s.revision }
    assert.equal(
      code(() => s.checkRange(alice, PermType.WRITE, b('x'), none)),
      'ErrPermissionDenied',
    )
  })
  test('prefixEnd of 0xff bytes is from-key', () => {
    assert.deepEqual(prefixEnd(new Uint8Array([0x61, 0xff])), new Uint8Array([0x62]))
    assert.deepEqual(prefixEnd(new Uint8Array([0xff, 0xff])), fromKey)
  })
})

function storeWithRoot(): AuthStore {
  const s = new AuthStore()
  s.apply({ user_add: { name: 'root' } }, undefined)
  s.apply({ user_grant_role: { user: 'root', role: 'root' } }, undefined)
  return s
}

describe('auth store', () => {
  test('enable needs user root holding role root', () => {
    const s = new AuthStore()
    assert.equal(
      code(() => s.apply({ auth_enable: {} }, undefined)),
      'ErrRootUserNotExist',
    )
    s.apply({ user_add: { name: 'root' } }, undefined)
    assert.equal(
      code(() => s.apply({ auth_enable: {} }, undefined)),
      'ErrRootRoleNotExist',
    )
    s.apply({ user_grant_role: { user: 'root', role: 'root' } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    assert.ok(s.enabled)
  })
  test('etcd errors for users and roles', () => {
    const s = new AuthStore()
    assert.equal(
      code(() => s.apply({ user_add: { name: '' } }, undefined)),
      'ErrUserEmpty',
    )
    s.apply({ user_add: { name: 'u' } }, undefined)
    assert.equal(
      code(() => s.apply({ user_add: { name: 'u' } }, undefined)),
      'ErrUserAlreadyExist',
    )
    assert.equal(
      code(() => s.apply({ user_grant_role: { user: 'u', role: 'nope' } }, undefined)),
      'ErrRoleNotFound',
    )
    assert.equal(
      code(() => s.apply({ user_grant_role: { user: 'x', role: 'r' } }, undefined)),
      'ErrUserNotFound',
    )
    s.apply({ role_add: { name: 'r' } }, undefined)
    assert.equal(
      code(() => s.apply({ role_add: { name: 'r' } }, undefined)),
      'ErrRoleAlreadyExist',
    )
    assert.equal(
      code(() => s.apply({ user_revoke_role: { name: 'u', role: 'r' } }, undefined)),
      'ErrRoleNotGranted',
    )
    assert.equal(
      code(() => s.apply({ role_revoke_permission: { role: 'r', key: b('k'), range_end: none } }, undefined)),
      'ErrPermissionNotGranted',
    )
    s.apply({ user_grant_role: { user: 'u', role: 'r' } }, undefined)
    s.apply({ role_delete: { role: 'r' } }, undefined)
    assert.deepEqual(s.userGet('u').roles, [], 'deleting a role takes it from its users')
  })
  test('every change bumps the revision; failures and no-ops do not', () => {
    const s = storeWithRoot()
    const r0 = s.revision
    s.apply({ role_add: { name: 'r' } }, undefined)
    assert.equal(s.revision, r0 + 1)
    code(() => s.apply({ role_add: { name: 'r' } }, undefined))
    assert.equal(s.revision, r0 + 1)
    s.apply({ auth_disable: {} }, undefined)
    assert.equal(s.revision, r0 + 1, 'disable while disabled is a no-op')
  })
  test('with auth on: admin only, root cannot be removed, a user may get itself', () => {
    const s = storeWithRoot()
    s.apply({ user_add: { name: 'alice' } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    const root = { user: 'root', rev: s.revision }
    const alice = { user: 'alice', rev: s.revision }
    assert.equal(
      code(() => s.apply({ role_add: { name: 'x' } }, undefined)),
      'ErrUserEmpty',
    )
    assert.equal(
      code(() => s.apply({ role_add: { name: 'x' } }, alice)),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => s.apply({ user_grant_role: { user: 'alice', role: 'root' } }, alice)),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => s.apply({ user_delete: { name: 'root' } }, root)),
      'ErrInvalidAuthMgmt',
    )
    assert.equal(
      code(() => s.apply({ user_revoke_role: { name: 'root', role: 'root' } }, root)),
      'ErrInvalidAuthMgmt',
    )
    assert.equal(
      code(() => s.requireUserGet(alice, 'alice')),
      'ok',
    )
    assert.equal(
      code(() => s.requireUserGet(alice, 'root')),
      'ErrPermissionDenied',
    )
  })
  test('checkRange: old revision, unknown user, root, grants', () => {
    const s = storeWithRoot()
    s.apply({ user_add: { name: 'alice' } }, undefined)
    s.apply({ role_add: { name: 'r' } }, undefined)
    s.apply({ role_grant_permission: { name: 'r', perm: perm(PermType.READ, 'a/', prefixEnd(b('a/'))) } }, undefined)
    s.apply({ user_grant_role: { user: 'alice', role: 'r' } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    const alice = { user: 'alice', rev: s.revision }
    assert.equal(
      code(() => s.checkRange(alice, PermType.READ, b('a/x'), none)),
      'ok',
    )
    assert.equal(
      code(() => s.checkRange(alice, PermType.WRITE, b('a/x'), none)),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => s.checkRange({ user: 'root', rev: s.revision }, PermType.WRITE, b('zz'), fromKey)),
      'ok',
    )
    assert.equal(
      code(() => s.checkRange({ user: 'ghost', rev: s.revision }, PermType.READ, b('a/x'), none)),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => s.checkRange(undefined, PermType.READ, b('a/x'), none)),
      'ErrUserEmpty',
    )
    s.apply(
      { role_revoke_permission: { role: 'r', key: b('a/'), range_end: prefixEnd(b('a/')) } },
      { user: 'root', rev: s.revision },
    )
    assert.equal(
      code(() => s.checkRange(alice, PermType.READ, b('a/x'), none)),
      'ErrAuthOldRevision',
    )
    assert.equal(
      code(() => s.checkRange({ user: 'alice', rev: s.revision }, PermType.READ, b('a/x'), none)),
      'ErrPermissionDenied',
    )
  })
  test('txn: compares need READ, both branches are checked, nested txns too', () => {
    const s = storeWithRoot()
    s.apply({ user_add: { name: 'alice' } }, undefined)
    s.apply({ role_add: { name: 'r' } }, undefined)
    s.apply(
      { role_grant_permission: { name: 'r', perm: perm(PermType.READWRITE, 'ok/', prefixEnd(b('ok/'))) } },
      undefined,
    )
    s.apply({ user_grant_role: { user: 'alice', role: 'r' } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    const alice = { user: 'alice', rev: s.revision }
    const cmp = (k: string) => ({ result: 0, target: 0, key: b(k), range_end: none, version: 0 })
    const put = (k: string) => ({
      request_put: { key: b(k), value: b('v'), lease: 0n, prev_kv: false, ignore_value: false, ignore_lease: false },
    })
    const t = (c: string[], ok: object[], fail: object[] = []): TxnRequest =>
      ({ compare: c.map(cmp), success: ok, failure: fail }) as unknown as TxnRequest
    assert.equal(
      code(() => checkTxn(s, alice, t(['ok/1'], [put('ok/2')]))),
      'ok',
    )
    assert.equal(
      code(() => checkTxn(s, alice, t(['secret'], [put('ok/2')]))),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => checkTxn(s, alice, t(['ok/1'], [put('ok/2')], [put('secret')]))),
      'ErrPermissionDenied',
    )
    assert.equal(
      code(() => checkTxn(s, alice, t([], [{ request_txn: t(['secret'], []) }]))),
      'ErrPermissionDenied',
    )
  })
  test('snapshot round trip', () => {
    const s = storeWithRoot()
    s.apply({ role_add: { name: 'r' } }, undefined)
    s.apply({ role_grant_permission: { name: 'r', perm: perm(PermType.WRITE, 'a', 'b') } }, undefined)
    s.apply({ auth_enable: {} }, undefined)
    const t = new AuthStore()
    t.restore(structuredClone(s.toSnapshot()))
    assert.deepEqual(t.toSnapshot(), s.toSnapshot())
  })
})

// Found by test/diff/random-admin.test.ts (seed 9605, session 10); checked with etcdctl against etcd 3.4.23.
describe("a role's permissions as etcd 3.4 keeps them", () => {
  const list = (s: AuthStore) =>
    s
      .roleGet('r')
      .perm.map(
        (p) =>
          `${PermType[p.permType]} ${new TextDecoder().decode(p.key)}..${p.range_end.length === 1 && p.range_end[0] === 0 ? '\\0' : new TextDecoder().decode(p.range_end)}`,
      )
  test('a new permission goes after those of an equal key; only the first of its key is updated in place; a revoke takes every copy', () => {
    const s = storeWithRoot()
    s.apply({ role_add: { name: 'r' } }, undefined)
    const grant = (t: PermType, key: string, end: Uint8Array | string = none) =>
      s.apply({ role_grant_permission: { name: 'r', perm: perm(t, key, end) } }, undefined)
    grant(PermType.READWRITE, 'd')
    grant(PermType.WRITE, 'c')
    grant(PermType.READ, 'c', fromKey)
    grant(PermType.READ, 'a')
    assert.deepEqual(list(s), ['READ a..', 'WRITE c..', 'READ c..\\0', 'READWRITE d..'])
    // [c, \0) again: the first permission of key c is [c] (another range_end), so etcd adds a second [c, \0).
    grant(PermType.READWRITE, 'c', fromKey)
    assert.deepEqual(list(s), ['READ a..', 'WRITE c..', 'READ c..\\0', 'READWRITE c..\\0', 'READWRITE d..'])
    // [c] is the first of its key: updated in place.
    grant(PermType.READ, 'c')
    assert.deepEqual(list(s), ['READ a..', 'READ c..', 'READ c..\\0', 'READWRITE c..\\0', 'READWRITE d..'])
    s.apply({ role_revoke_permission: { role: 'r', key: b('c'), range_end: fromKey } }, undefined)
    assert.deepEqual(list(s), ['READ a..', 'READ c..', 'READWRITE d..'])
    assert.equal(
      code(() => s.apply({ role_revoke_permission: { role: 'r', key: b('c'), range_end: fromKey } }, undefined)),
      'ErrPermissionNotGranted',
    )
  })
})

describe('passwords', () => {
  test('an unknown user spends the same work as a known one: one PBKDF2 derivation, same iterations', async () => {
    // Counted, not timed: every derivation goes through crypto.subtle.deriveBits; record its PBKDF2 parameters.
    const subtle = crypto.subtle as { deriveBits: SubtleCrypto['deriveBits'] }
    const original = subtle.deriveBits
    const calls: { iterations: number; bits: number }[] = []
    subtle.deriveBits = function (this: SubtleCrypto, alg, key, length) {
      calls.push({ iterations: (alg as Pbkdf2Params).iterations, bits: length ?? 0 })
      return original.call(this, alg, key, length)
    }
    try {
      const known = await hashPassword('secret', 2000)
      calls.length = 0
      assert.ok(!(await verifyPassword('wrong', known, 2000)))
      const knownCalls = [...calls]
      calls.length = 0
      assert.ok(!(await verifyPassword('wrong', undefined, 2000)))
      assert.deepEqual(calls, knownCalls)
      assert.deepEqual(knownCalls, [{ iterations: 2000, bits: knownCalls[0]!.bits }])
    } finally {
      subtle.deriveBits = original
    }
  })

  test('hash and verify; salt is random', async () => {
    const h1 = await hashPassword('secret', 1000)
    const h2 = await hashPassword('secret', 1000)
    assert.notDeepEqual(h1.salt, h2.salt)
    assert.notDeepEqual(h1.hash, h2.hash)
    assert.ok(await verifyPassword('secret', h1, 1000))
    assert.ok(!(await verifyPassword('Secret', h1, 1000)))
    assert.ok(!(await verifyPassword('secret', undefined, 1000)))
    assert.ok(!(await verifyPassword('x'.repeat(5000), h1, 1000)))
    assert.ok(!JSON.stringify(h1).includes('secret'))
    await assert.rejects(hashPassword('x', 10))
  })
})

describe('tokens', () => {
  const opts = { ttlSeconds: 300, issuer: 'edgecd' }
  const now = 1_700_000_000
  for (const alg of ['ES256', 'EdDSA'] as const) {
    test(`${alg}: sign and verify; claims`, async () => {
      const keys = await TokenKeys.fromRecord(await generateSigningKey(alg), opts)
      const tok = await keys.sign('alice', 7, now)
      assert.deepEqual(await keys.verify(tok, now + 10), { user: 'alice', rev: 7 })
      await assert.rejects(keys.verify(tok, now + 301), /invalid auth token/)
      assert.ok(!JSON.stringify(keys.jwks()).includes('"d"'), 'no private part in the JWKS')
    })
  }
  test('forgeries are all "invalid auth token"', async () => {
    const rec = await generateSigningKey('ES256')
    const keys = await TokenKeys.fromRecord(rec, opts)
    const good = await keys.sign('alice', 3, now)
    const [h, p, s] = good.split('.') as [string, string, string]
    const enc = (o: object) => base64url.encode(JSON.stringify(o))
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p)))
    const forged: Record<string, string> = {
      none: new UnsecuredJWT({ rev: 3 })
        .setSubject('root')
        .setIssuer('edgecd')
        .setIssuedAt(now)
        .setExpirationTime(now + 100)
        .encode(),
      hs256WithPublicKey: await new SignJWT({ rev: 3 })
        .setProtectedHeader({ alg: 'HS256', kid: rec.kid })
        .setSubject('root')
        .setIssuer('edgecd')
        .setIssuedAt(now)
        .setExpirationTime(now + 100)
        .sign(new TextEncoder().encode(JSON.stringify(rec.publicJwk))),
      tamperedPayload: `${h}.${enc({ ...payload, sub: 'root' })}.${s}`,
      unknownKid: `${enc({ alg: 'ES256', kid: 'other', typ: 'JWT' })}.${p}.${s}`,
      otherKey: await (async () => {
        const { privateKey } = await generateKeyPair('ES256')
        return new SignJWT({ rev: 3 })
          .setProtectedHeader({ alg: 'ES256', kid: rec.kid, typ: 'JWT' })
          .setSubject('root')
          .setIssuer('edgecd')
          .setIssuedAt(now)
          .setExpirationTime(now + 100)
          .sign(privateKey)
      })(),
      wrongIssuer: await new SignJWT({ rev: 3 })
        .setProtectedHeader({ alg: 'ES256', kid: rec.kid, typ: 'JWT' })
        .setSubject('root')
        .setIssuer('evil')
        .setIssuedAt(now)
        .setExpirationTime(now + 100)
        .sign(await importJWK(rec.privateJwk, 'ES256')),
      notYetValid: await new SignJWT({ rev: 3 })
        .setProtectedHeader({ alg: 'ES256', kid: rec.kid, typ: 'JWT' })
        .setSubject('root')
        .setIssuer('edgecd')
        .setIssuedAt(now)
        .setNotBefore(now + 100)
        .setExpirationTime(now + 200)
        .sign(await importJWK(rec.privateJwk, 'ES256')),
      noRev: await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: rec.kid, typ: 'JWT' })
        .setSubject('root')
        .setIssuer('edgecd')
        .setIssuedAt(now)
        .setExpirationTime(now + 200)
        .sign(await importJWK(rec.privateJwk, 'ES256')),
      oversized: `${enc({ alg: 'ES256', kid: rec.kid, x: 'a'.repeat(5000) })}.${p}.${s}`,
      garbageHeader: `${base64url.encode('not json')}.${p}.${s}`,
      twoParts: `${h}.${p}`,
      emptySignature: `${h}.${p}.`,
      junk: 'PROYCHhZGegpTSXx.62',
    }
    for (const [name, tok] of Object.entries(forged)) {
      await assert.rejects(
        keys.verify(tok, now + 1),
        (err: unknown) => err instanceof EtcdError && err.code === 'ErrInvalidAuthToken',
        name,
      )
    }
  })
  test('--auth-token parsing and the Authorization header', () => {
    assert.deepEqual(parseAuthTokenFlag('jwt,pub-key=a.pem,priv-key=b.pem,sign-method=EdDSA,ttl=10m'), {
      signMethod: 'EdDSA',
      pubKeyFile: 'a.pem',
      privKeyFile: 'b.pem',
      ttlSeconds: 600,
    })
    assert.throws(() => parseAuthTokenFlag('jwt,sign-method=HS256'))
    assert.throws(() => parseAuthTokenFlag('jwt,pub-key=a.pem'))
    assert.equal(tokenFromHeader('Bearer abc'), 'abc')
    assert.equal(tokenFromHeader('abc'), 'abc')
    assert.equal(tokenFromHeader('  '), undefined)
    assert.equal(tokenFromHeader(undefined), undefined)
  })
})

describe('failure limiter', () => {
  test('blocks after failuresMax within the window, bounded entries', () => {
    let t = 0
    const l = new FailureLimiter({ failuresMax: 3, windowMs: 1000, entriesMax: 4 }, () => t)
    for (let i = 0; i < 3; i++) l.fail('u')
    assert.ok(l.blocked('u'))
    t = 1000
    assert.ok(!l.blocked('u'))
    for (let i = 0; i < 100; i++) l.fail(`k${i}`)
    assert.ok(l.size <= 4)
    l.fail('v')
    l.succeed('v')
    assert.ok(!l.blocked('v'))
  })
})
