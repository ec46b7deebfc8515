/**
 * etcd's auth API (`client.auth`): enable/disable, status, authenticate, users and roles, named as clientv3's Auth
 * interface (AuthEnable → `enable`, UserAdd → `userAdd`, RoleGrantPermission → `roleGrantPermission`, ...). Changes
 * are writes (never retried after they may have reached a server); gets and lists are reads.
 */

import type { PermType } from '../protocol/types.js'
import { type Bytes, bytesToString, fromBase64, toBase64 } from './bytes.js'
import { rangeEndOf } from './requests.js'
import type { Transport } from './transport.js'
import { type Answer, decodeHeader, type Raw, type ResponseHeader, withRaw } from './types.js'

/** etcd's permission types by name (authpb.Permission.Type: 'READ' | 'WRITE' | 'READWRITE'). */
export type PermissionType = keyof typeof PermType

/** One permission of a role: a key, or a range [key, rangeEnd) (rangeEnd "\0": every key from `key` on). */
export interface Permission {
  permType: PermissionType
  key: string
  keyBytes: Uint8Array
  /** Empty for a single key. */
  rangeEnd: string
  rangeEndBytes: Uint8Array
}

/** The range a permission covers: one key, a prefix, every key from `key` on, or [key, rangeEnd). */
export interface PermissionRange {
  rangeEnd?: Bytes
  prefix?: boolean
  fromKey?: boolean
}

export interface AuthStatusResponse {
  header: ResponseHeader
  readonly raw?: Raw
  enabled: boolean
  /** +1 on every change of users, roles or the enabled flag. */
  authRevision: number
}

export interface AuthenticateResponse {
  header: ResponseHeader
  readonly raw?: Raw
  token: string
}

export interface UserGetResponse {
  header: ResponseHeader
  readonly raw?: Raw
  roles: string[]
}

export interface UserListResponse {
  header: ResponseHeader
  readonly raw?: Raw
  users: string[]
}

export interface RoleGetResponse {
  header: ResponseHeader
  readonly raw?: Raw
  perm: Permission[]
}

export interface RoleListResponse {
  header: ResponseHeader
  readonly raw?: Raw
  roles: string[]
}

/** A permission as the gateway answers it: permType omitted for READ (proto3 default), bytes in base64. */
export function decodePermission(p: Raw): Permission {
  const keyBytes = fromBase64(p.key)
  const rangeEndBytes = fromBase64(p.range_end)
  const t = p.permType
  return {
    permType: t === 'WRITE' || t === 1 ? 'WRITE' : t === 'READWRITE' || t === 2 ? 'READWRITE' : 'READ',
    key: bytesToString(keyBytes),
    keyBytes,
    rangeEnd: bytesToString(rangeEndBytes),
    rangeEndBytes,
  }
}

function rangeFields(key: Bytes, range: PermissionRange): { key: string; range_end?: string } {
  const end = rangeEndOf(key, range)
  return end === undefined ? { key: toBase64(key) } : { key: toBase64(key), range_end: toBase64(end) }
}

/** The auth API of a client (`client.auth`). */
export class AuthClient {
  constructor(private readonly t: Transport) {}

  private async write(path: string, body: unknown, what: string): Promise<Answer> {
    const r: Raw = await this.t.call(path, body, { idempotent: false, what })
    return withRaw({ header: decodeHeader(r.header) }, r)
  }

  private read(path: string, body: unknown, what: string): Promise<Raw> {
    return this.t.call(path, body, { idempotent: true, what })
  }

  /** Turns authentication on (needs user `root` with role `root`). */
  enable(): Promise<Answer> {
    return this.write('/v3/auth/enable', {}, 'auth enable')
  }

  /** Turns authentication off (root only). */
  disable(): Promise<Answer> {
    return this.write('/v3/auth/disable', {}, 'auth disable')
  }

  /** Whether auth is on, and the auth revision (etcd 3.5's AuthStatus). */
  async status(): Promise<AuthStatusResponse> {
    const r = await this.read('/v3/auth/status', {}, 'auth status')
    return withRaw(
      { header: decodeHeader(r.header), enabled: r.enabled === true, authRevision: Number(r.authRevision ?? 0) },
      r,
    )
  }

  /**
   * A token for a user name and password. The client does this by itself when given `username`/`password`; this
   * call is for tools that want the token (it does not change the client's own credentials).
   */
  async authenticate(name: string, password: string): Promise<AuthenticateResponse> {
    const r: Raw = await this.t.call(
      '/v3/auth/authenticate',
      { name, password },
      { idempotent: true, what: 'authenticate', anonymous: true },
    )
    return withRaw({ header: decodeHeader(r.header), token: String(r.token ?? '') }, r)
  }

  /** Adds a user; `noPassword` makes a user that can only be used with other means than a password (etcd 3.4+). */
  userAdd(name: string, password: string, opts: { noPassword?: boolean } = {}): Promise<Answer> {
    const body: Record<string, unknown> = { name, password }
    if (opts.noPassword) body.options = { no_password: true }
    return this.write('/v3/auth/user/add', body, 'user add')
  }

  /** The roles of a user (root, or the user itself). */
  async userGet(name: string): Promise<UserGetResponse> {
    const r = await this.read('/v3/auth/user/get', { name }, 'user get')
    return withRaw({ header: decodeHeader(r.header), roles: (r.roles ?? []) as string[] }, r)
  }

  /** Every user name, sorted. */
  async userList(): Promise<UserListResponse> {
    const r = await this.read('/v3/auth/user/list', {}, 'user list')
    return withRaw({ header: decodeHeader(r.header), users: (r.users ?? []) as string[] }, r)
  }

  userDelete(name: string): Promise<Answer> {
    return this.write('/v3/auth/user/delete', { name }, 'user delete')
  }

  userChangePassword(name: string, password: string): Promise<Answer> {
    return this.write('/v3/auth/user/changepw', { name, password }, 'user changepw')
  }

  userGrantRole(user: string, role: string): Promise<Answer> {
    return this.write('/v3/auth/user/grant', { user, role }, 'user grant role')
  }

  userRevokeRole(name: string, role: string): Promise<Answer> {
    return this.write('/v3/auth/user/revoke', { name, role }, 'user revoke role')
  }

  roleAdd(name: string): Promise<Answer> {
    return this.write('/v3/auth/role/add', { name }, 'role add')
  }

  /** The permissions of a role (root, or a user holding it). */
  async roleGet(role: string): Promise<RoleGetResponse> {
    const r = await this.read('/v3/auth/role/get', { role }, 'role get')
    return withRaw({ header: decodeHeader(r.header), perm: ((r.perm ?? []) as Raw[]).map(decodePermission) }, r)
  }

  /** Every role name, sorted. */
  async roleList(): Promise<RoleListResponse> {
    const r = await this.read('/v3/auth/role/list', {}, 'role list')
    return withRaw({ header: decodeHeader(r.header), roles: (r.roles ?? []) as string[] }, r)
  }

  roleDelete(role: string): Promise<Answer> {
    return this.write('/v3/auth/role/delete', { role }, 'role delete')
  }

  /** Grants `permType` on a key or range (`{prefix: true}`, `{fromKey: true}`, `{rangeEnd}`) to a role. */
  roleGrantPermission(
    name: string,
    permType: PermissionType,
    key: Bytes,
    range: PermissionRange = {},
  ): Promise<Answer> {
    const perm: Record<string, unknown> = { permType, ...rangeFields(key, range) }
    return this.write('/v3/auth/role/grant', { name, perm }, 'role grant permission')
  }

  /** Revokes the permission on exactly this key or range from a role. */
  roleRevokePermission(role: string, key: Bytes, range: PermissionRange = {}): Promise<Answer> {
    return this.write('/v3/auth/role/revoke', { role, ...rangeFields(key, range) }, 'role revoke permission')
  }
}
