/**
 * The member's auth front: token checks and permission checks on the serving member, the /v3/auth/* calls (each
 * change proposed through Raft as `{auth, auth_info}` and applied by `AuthStore.apply`), authenticate with its
 * failure limits, and the apply-time re-check of writes (`checkWriteAtApply`), which makes a permission revoked
 * between the check here and the apply count. Kept out of member.ts so the member only wires it in.
 */

import { keyBytes } from '../kv/bytes.js'
import type { InternalRequest } from '../kv/requests.js'
import type { KvStore } from '../kv/store.js'
import { checkDeleteRequest, checkPutRequest, checkRangeRequest, checkTxnRequest } from '../kv/txn.js'
import { EtcdError, etcdError, GrpcCode } from '../protocol/errors.js'
import type {
  AuthenticateRequest,
  AuthRoleAddRequest,
  AuthRoleGrantPermissionRequest,
  AuthRoleNameRequest,
  AuthRoleRevokePermissionRequest,
  AuthUserAddRequest,
  AuthUserChangePasswordRequest,
  AuthUserGrantRoleRequest,
  AuthUserNameRequest,
  AuthUserRevokeRoleRequest,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  ResponseHeader,
  TxnRequest,
} from '../protocol/types.js'
import { checkLeaseKeys, checkTxn } from './check.js'
import { ExternalIssuer, type ExternalIssuerConfig } from './external.js'
import { hashPassword, passwordBytesMax, passwordIterationsDefault, verifyPassword } from './password.js'
import { PermType } from './permissions.js'
import { authFailureLimitsDefault, FailureLimiter, type FailureLimits } from './rate-limit.js'
import type { AuthInfo, AuthRequest, AuthStore } from './store.js'
import { type AuthTokenFlag, generateSigningKey, TokenKeys, tokenFromHeader, tokenIssuerDefault } from './token.js'
import { TokenVerifier } from './verifier.js'

const none = new Uint8Array(0)

/** How a member's auth is configured (from --auth-token and friends). */
export interface AuthConfig {
  token: AuthTokenFlag
  /** PEM text of --auth-token pub-key= / priv-key= (read by the runtime); without it a key is generated and replicated. */
  pem?: { publicPem: string; privatePem: string }
  /** PBKDF2 iterations for new password hashes. */
  passwordIterations: number
  issuer: string
  failureLimits: FailureLimits
  /** Tokens of an outside issuer, also accepted (--auth-jwks-file / --auth-jwks-url and the --auth-jwt-* flags). */
  external?: ExternalIssuerConfig
}

export const authConfigDefault: AuthConfig = {
  token: { signMethod: 'ES256', ttlSeconds: 300 },
  passwordIterations: passwordIterationsDefault,
  issuer: tokenIssuerDefault,
  failureLimits: authFailureLimitsDefault,
}

export interface AuthServiceDeps {
  store: AuthStore
  kv: KvStore
  config: AuthConfig
  /** Proposes a replicated request (encoded by the member) and resolves with its apply result. */
  propose(req: object): Promise<unknown>
  linearizableRead(): Promise<void>
  header(): ResponseHeader
  /** Wall clock in seconds, for token iat/exp. */
  nowSeconds(): number
  /** Monotonic ms, for the failure windows. */
  nowMs(): number
}

/**
 * Methods that only root may call when auth is on (etcd 3.4 checks maintenance; edgecd also guards membership).
 * Compaction and alarms are not among them: etcd 3.4.23 takes both from any caller, with or without a token (as
 * read off it with python3-etcd3 and the JSON gateway: test/diff/python-clients.test.ts).
 */
const rootOnly = new Set([
  'Hash',
  'HashKV',
  'Snapshot',
  'MemberAdd',
  'MemberRemove',
  'MemberUpdate',
  'MemberPromote',
  'MoveLeader',
  'Defragment',
])

/** etcd's isTxnReadonly: every op, nested ones too, is a range. */
function readOnly(t: TxnRequest): boolean {
  for (const ops of [t.success, t.failure])
    for (const op of ops) {
      if (op.request_put || op.request_delete_range) return false
      if (op.request_txn && !readOnly(op.request_txn)) return false
    }
  return true
}

/**
 * etcd 3.4's Maintenance.Alarm returns its raft request's auth error as it is (not translated: code Unknown,
 * `auth: invalid auth token`), as the authMaintenanceServer calls do (AuthService.authorizeMaintenance).
 */
async function rawAuthError<T>(p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (err instanceof EtcdError && err.code === 'ErrInvalidAuthToken')
      throw etcdError(GrpcCode.Unknown, 'auth: invalid auth token')
    throw err
  }
}

/** Root-only calls of etcd 3.4's authMaintenanceServer (see AuthService.authorizeMaintenance). */
const maintenanceAdmin = new Set(['Hash', 'HashKV', 'Snapshot', 'Defragment', 'MoveLeader'])

/** The calls etcd 3.4 reads a token of while auth is off (its raft requests and reads: AuthInfoFromCtx). */
const tokenReadWhileOff = new Set([
  'Range',
  'Put',
  'DeleteRange',
  'Txn',
  'Compact',
  'LeaseGrant',
  'LeaseRevoke',
  'Alarm',
  'AuthEnable',
  'AuthDisable',
  'UserAdd',
  'UserGet',
  'UserList',
  'UserDelete',
  'UserChangePassword',
  'UserGrantRole',
  'UserRevokeRole',
  'RoleAdd',
  'RoleGet',
  'RoleList',
  'RoleDelete',
  'RoleGrantPermission',
  'RoleRevokePermission',
])

/**
 * The caller a client write carries when the serving member checked it with auth off. Without it a write checked
 * just before an enable and applied just after would skip every check; with it, apply refuses such a write with
 * etcd's `user name is empty` (etcd's isOpPermitted answers the same for a request without a user, revision 0).
 */
export const authOffCaller: AuthInfo = Object.freeze({ user: '', rev: 0 })

/**
 * Re-checks a client write at apply time, deterministically, with the user the serving member put in the proposal
 * (etcd's authApplierV3). Throws etcd's error; the write is then not applied.
 */
export function checkWriteAtApply(
  store: AuthStore,
  kv: KvStore,
  req: InternalRequest,
  info: AuthInfo | undefined,
): void {
  if (!store.enabled) return
  if ('put' in req) {
    store.checkRange(info, PermType.WRITE, req.put.key, none)
    if (req.put.prev_kv) store.checkRange(info, PermType.READ, req.put.key, none)
    // etcd's checkLeasePuts: attaching a lease that holds keys the user may not write would let her revoke them.
    if (req.put.lease) checkLeaseKeys(store, info, leaseKeys(kv, req.put.lease), PermType.WRITE)
  } else if ('delete_range' in req) {
    const d = req.delete_range
    store.checkRange(info, PermType.WRITE, d.key, d.range_end)
    if (d.prev_kv) store.checkRange(info, PermType.READ, d.key, d.range_end)
  } else if ('txn' in req) checkTxn(store, info, req.txn, (id) => leaseKeys(kv, id))
  else if ('lease_revoke' in req) checkLeaseRevoke(store, kv, info, req.lease_revoke.ID)
  // Compaction and alarms: no check, as etcd 3.4's authApplierV3 (needAdminPermission covers auth changes only).
}

/** The keys a lease holds, as bytes (undefined for a lease that does not exist). */
function leaseKeys(kv: KvStore, id: bigint): Iterable<Uint8Array> | undefined {
  const lease = kv.lessor.lookup(id)
  if (!lease) return undefined
  return (function* () {
    for (const k of lease.keys) yield keyBytes(k)
  })()
}

/** etcd's checkLeasePuts: revoking a lease deletes its keys, so the caller must be allowed to write each of them. */
function checkLeaseRevoke(store: AuthStore, kv: KvStore, info: AuthInfo | undefined, id: bigint): void {
  // etcd 3.4's checkLeasePuts checks each key of the lease: a lease without keys (or none) needs no user (found by
  // test/diff/random-admin.test.ts, session 9).
  const keys = [...(leaseKeys(kv, id) ?? [])]
  if (keys.length === 0) return
  checkLeaseKeys(store, info, keys, PermType.WRITE)
}

/** The serving member's side of auth. */
export class AuthService {
  private readonly byUser: FailureLimiter
  private readonly byAddress: FailureLimiter
  private keysCache: { id: string; keys: Promise<TokenKeys> } | undefined
  /** Token checks (own and outside tokens) with the cache of verified tokens. */
  readonly verifier: TokenVerifier

  constructor(private readonly d: AuthServiceDeps) {
    this.byUser = new FailureLimiter(d.config.failureLimits, d.nowMs)
    this.byAddress = new FailureLimiter(d.config.failureLimits, d.nowMs)
    this.verifier = new TokenVerifier({
      keys: () => this.keys(),
      external: d.config.external ? new ExternalIssuer(d.config.external) : undefined,
      revision: () => d.store.revision,
      nowSeconds: d.nowSeconds,
    })
  }

  get store(): AuthStore {
    return this.d.store
  }

  /** The token keys: the configured PEM pair, or the replicated generated key (undefined before the first enable). */
  keys(): Promise<TokenKeys> | undefined {
    const c = this.d.config
    const opts = { ttlSeconds: c.token.ttlSeconds, issuer: c.issuer }
    const id = c.pem ? 'pem' : this.d.store.key?.kid
    if (id === undefined) return undefined
    if (this.keysCache?.id !== id) {
      const keys = c.pem
        ? TokenKeys.fromPem(c.token.signMethod, c.pem.publicPem, c.pem.privatePem, opts)
        : TokenKeys.fromRecord(this.d.store.key!, opts)
      this.keysCache = { id, keys }
    }
    return this.keysCache.keys
  }

  /** The JWK Set of the verification key, or undefined when there is none yet. */
  async jwks(): Promise<object | undefined> {
    const k = this.keys()
    return k ? (await k).jwks() : undefined
  }

  /** Who the Authorization header names: undefined without a token; ErrInvalidAuthToken for a bad one. */
  async info(authorization: string | undefined): Promise<AuthInfo | undefined> {
    const token = tokenFromHeader(authorization)
    if (token === undefined) return undefined
    return this.verifier.verify(token)
  }

  /**
   * Checks a unary call before it runs, on this member's applied auth state (after the read's linearizable wait for
   * reads). Returns the caller for the proposal; with auth off, returns undefined synchronously (no cost).
   * `certUser` is the CN of a verified client certificate (--client-cert-auth): the caller when no token is given,
   * at the current auth revision, as etcd's AuthInfoFromTLS; a token, even an invalid one, wins.
   */
  authorize(
    method: string,
    req: unknown,
    authorization: string | undefined,
    certUser?: string,
  ): AuthInfo | undefined | Promise<AuthInfo | undefined> {
    if (!this.d.store.enabled) {
      if (authorization === undefined) return undefined
      if (method === 'Watch') return this.watchTokenWhileOff(authorization)
      // etcd's authMaintenanceServer reads the token first (its error untranslated), then lets anyone through.
      if (maintenanceAdmin.has(method)) return rawAuthError(this.checkTokenWhileOff(authorization))
      if (!tokenReadWhileOff.has(method)) return undefined
      this.checkRequest(method, req)
      if (method === 'Alarm') return rawAuthError(this.checkTokenWhileOff(authorization))
      return this.checkTokenWhileOff(
        authorization,
        method === 'Range' || (method === 'Txn' && readOnly(req as TxnRequest)),
      )
    }
    // etcd 3.4 never reads a token for these (no AuthInfoFromCtx): a bad one is no error.
    if (method === 'Status' || method === 'MemberList') return undefined
    this.checkRequest(method, req)
    const info = this.authorizeEnabled(method, req, authorization, certUser)
    return method === 'Alarm' ? rawAuthError(info) : info
  }

  /**
   * etcd 3.4's authMaintenanceServer (Hash, HashKV, Snapshot, Defragment, MoveLeader): IsAdminPermitted, which does
   * not look at the token's auth revision, and its errors as they are, not translated to etcdserver's (code Unknown,
   * `auth: ...`; HTTP 500 on the gateway). Found by test/diff/random-admin.test.ts (session 9).
   */
  private async authorizeMaintenance(
    authorization: string | undefined,
    certUser: string | undefined,
  ): Promise<AuthInfo | undefined> {
    const raw = (m: string) => etcdError(GrpcCode.Unknown, `auth: ${m}`)
    let info: AuthInfo | undefined
    try {
      info =
        (await this.info(authorization)) ??
        (certUser !== undefined ? { user: certUser, rev: this.d.store.revision } : undefined)
    } catch {
      throw raw('invalid auth token')
    }
    const s = this.d.store
    if (!info || info.user === '') throw raw('user name is empty')
    if (!s.users.has(info.user)) throw raw('user not found')
    if (!s.isRoot(info)) throw raw('permission denied')
    return info
  }

  /**
   * etcd 3.4 reads a token given with a raft request or a read whether auth is on or not (AuthInfoFromCtx): one that
   * does not verify fails the call with `invalid auth token` while auth is off too. A good one names nobody here (auth
   * off: every call is allowed).
   */
  /**
   * etcd's gRPC layer checks a KV request (empty key, too many ops, duplicate keys in a txn...) before the server
   * reads its token: a bad request with a bad token gets the request's error (session 9, random-admin.test.ts).
   */
  private checkRequest(method: string, req: unknown): void {
    if (method === 'Range') checkRangeRequest(req as RangeRequest)
    else if (method === 'Put') checkPutRequest(req as PutRequest)
    else if (method === 'DeleteRange') checkDeleteRequest(req as DeleteRangeRequest)
    else if (method === 'Txn') checkTxnRequest(req as TxnRequest, this.d.kv.config.maxTxnOps)
  }

  private async watchTokenWhileOff(authorization: string): Promise<AuthInfo | undefined> {
    try {
      await this.checkTokenWhileOff(authorization)
      return undefined
    } catch (err) {
      return { user: '', rev: 0, refused: err as Error }
    }
  }

  private async checkTokenWhileOff(authorization: string, read = false): Promise<undefined> {
    const token = tokenFromHeader(authorization)
    if (token === undefined) return undefined
    const info = await this.verifier.verify(token)
    // etcd's doSerialize (a range, a read-only txn) ends with `ai.Revision != 0 && ai.Revision != authStore.Revision()`
    // whether auth is on or not: a token from another auth revision fails a read (session 9, random-admin.test.ts).
    if (read && info.rev !== 0 && info.rev !== this.d.store.revision) throw new EtcdError('ErrAuthOldRevision')
    return undefined
  }

  private async authorizeEnabled(
    method: string,
    req: unknown,
    authorization: string | undefined,
    certUser: string | undefined,
  ): Promise<AuthInfo | undefined> {
    if (method === 'Authenticate') return undefined
    if (maintenanceAdmin.has(method)) return this.authorizeMaintenance(authorization, certUser)
    const info =
      (await this.info(authorization)) ??
      (certUser !== undefined ? { user: certUser, rev: this.d.store.revision } : undefined)
    const s = this.d.store
    switch (method) {
      case 'Range': {
        const r = req as RangeRequest
        if (!r.serializable) {
          await this.d.linearizableRead()
          // etcd waits once, checks, then reads: the read is served from the state applied now, at least as new as
          // the wait asked for, without a second ReadIndex round (a heartbeat round trip in a cluster).
          r.serializable = true
        }
        s.checkRange(info, PermType.READ, r.key, r.range_end)
        break
      }
      case 'Put':
      case 'DeleteRange':
        checkWriteAtApply(
          s,
          this.d.kv,
          (method === 'Put' ? { put: req } : { delete_range: req }) as InternalRequest,
          info,
        )
        break
      case 'Txn':
        checkTxnRequest(req as TxnRequest, this.d.kv.config.maxTxnOps)
        await this.d.linearizableRead()
        checkTxn(s, info, req as TxnRequest, (id) => leaseKeys(this.d.kv, id))
        break
      case 'LeaseRevoke':
        checkLeaseRevoke(s, this.d.kv, info, (req as { ID: bigint }).ID)
        break
      // etcd 3.4.26+ / 3.5.9+ (CVE-2023-32082): timetolive with keys needs a user with READ on every key of the
      // lease (root passes). Without keys etcd 3.4 asks nothing.
      case 'LeaseTimeToLive': {
        const r = req as { ID: bigint; keys?: boolean }
        if (r.keys) {
          s.checkUser(info)
          await this.d.linearizableRead()
          checkLeaseKeys(s, info, leaseKeys(this.d.kv, r.ID), PermType.READ)
        }
        break
      }
      // etcd's checkLeaseLeases (3.4.42+, 3.5.28+): listing leases needs a user with READ on every key of every lease.
      case 'LeaseLeases': {
        s.checkUser(info)
        if (s.isRoot(info)) break
        await this.d.linearizableRead()
        for (const id of this.d.kv.lessor.ids()) checkLeaseKeys(s, info, leaseKeys(this.d.kv, id), PermType.READ)
        break
      }
      default:
        if (rootOnly.has(method)) {
          s.checkUser(info)
          s.requireAdmin(info)
        }
    }
    return info
  }

  // ---- /v3/auth/* ----

  private async change(req: AuthRequest, info: AuthInfo | undefined): Promise<{ header: ResponseHeader }> {
    // Fail early here; apply checks again with the state it applies on.
    this.d.store.requireAdmin(info)
    await this.d.propose({ auth: req, ...(info ? { auth_info: info } : {}) })
    return { header: this.d.header() }
  }

  async enable(info: AuthInfo | undefined) {
    const key =
      this.d.config.pem || this.d.store.key ? undefined : await generateSigningKey(this.d.config.token.signMethod)
    return this.change({ auth_enable: key ? { key } : {} }, info)
  }

  disable(info: AuthInfo | undefined) {
    return this.change({ auth_disable: {} }, info)
  }

  /** etcd 3.5's AuthStatus (3.4 has none): whether auth is on and the auth revision. Anyone may ask. */
  async status() {
    await this.d.linearizableRead()
    return { header: this.d.header(), enabled: this.d.store.enabled, authRevision: this.d.store.revision }
  }

  /**
   * etcd's Authenticate: a token for a user whose password matches. Failures are limited per user and per client
   * address; a limited attempt is refused as a wrong password would be, without looking at the password.
   */
  async authenticate(req: AuthenticateRequest, address: string) {
    const s = this.d.store
    if (!s.enabled) throw new EtcdError('ErrAuthNotEnabled')
    const userKey = `u:${req.name}`
    const addrKey = `a:${address}`
    if (this.byUser.blocked(userKey) || this.byAddress.blocked(addrKey)) throw new EtcdError('ErrAuthFailed')
    await this.d.linearizableRead()
    const ok = await verifyPassword(req.password, s.users.get(req.name)?.password, this.d.config.passwordIterations)
    if (!ok) {
      this.byUser.fail(userKey)
      this.byAddress.fail(addrKey)
      throw new EtcdError('ErrAuthFailed')
    }
    this.byUser.succeed(userKey)
    const keys = this.keys()
    if (!keys) throw new EtcdError('ErrAuthFailed')
    const token = await (await keys).sign(req.name, s.revision, this.d.nowSeconds())
    return { header: this.d.header(), token }
  }

  private async hash(password: string) {
    if (new TextEncoder().encode(password).length > passwordBytesMax) throw new EtcdError('ErrInvalidAuthMgmt')
    return hashPassword(password, this.d.config.passwordIterations)
  }

  async userAdd(req: AuthUserAddRequest, info: AuthInfo | undefined) {
    this.d.store.requireAdmin(info) // before hashing: hashing is the expensive part
    if (req.name === '') throw new EtcdError('ErrUserEmpty')
    const password = req.options?.no_password ? undefined : await this.hash(req.password)
    return this.change({ user_add: { name: req.name, ...(password ? { password } : {}) } }, info)
  }

  userDelete(req: AuthUserNameRequest, info: AuthInfo | undefined) {
    return this.change({ user_delete: { name: req.name } }, info)
  }

  async userChangePassword(req: AuthUserChangePasswordRequest, info: AuthInfo | undefined) {
    this.d.store.requireAdmin(info)
    return this.change({ user_change_password: { name: req.name, password: await this.hash(req.password) } }, info)
  }

  userGrantRole(req: AuthUserGrantRoleRequest, info: AuthInfo | undefined) {
    return this.change({ user_grant_role: { user: req.user, role: req.role } }, info)
  }

  userRevokeRole(req: AuthUserRevokeRoleRequest, info: AuthInfo | undefined) {
    return this.change({ user_revoke_role: { name: req.name, role: req.role } }, info)
  }

  roleAdd(req: AuthRoleAddRequest, info: AuthInfo | undefined) {
    return this.change({ role_add: { name: req.name } }, info)
  }

  roleDelete(req: AuthRoleNameRequest, info: AuthInfo | undefined) {
    return this.change({ role_delete: { role: req.role } }, info)
  }

  roleGrantPermission(req: AuthRoleGrantPermissionRequest, info: AuthInfo | undefined) {
    const p = req.perm ?? { permType: PermType.READ, key: none, range_end: none }
    const perm = { permType: p.permType, key: p.key, range_end: p.range_end }
    return this.change({ role_grant_permission: { name: req.name, perm } }, info)
  }

  roleRevokePermission(req: AuthRoleRevokePermissionRequest, info: AuthInfo | undefined) {
    return this.change({ role_revoke_permission: { role: req.role, key: req.key, range_end: req.range_end } }, info)
  }

  async userGet(req: AuthUserNameRequest, info: AuthInfo | undefined) {
    await this.d.linearizableRead()
    this.d.store.requireUserGet(info, req.name)
    return { header: this.d.header(), ...this.d.store.userGet(req.name) }
  }

  async userList(info: AuthInfo | undefined) {
    await this.d.linearizableRead()
    this.d.store.requireAdmin(info)
    return { header: this.d.header(), users: this.d.store.userList() }
  }

  async roleGet(req: AuthRoleNameRequest, info: AuthInfo | undefined) {
    await this.d.linearizableRead()
    this.d.store.requireRoleGet(info, req.role)
    return { header: this.d.header(), ...this.d.store.roleGet(req.role) }
  }

  async roleList(info: AuthInfo | undefined) {
    await this.d.linearizableRead()
    this.d.store.requireAdmin(info)
    return { header: this.d.header(), roles: this.d.store.roleList() }
  }
}
