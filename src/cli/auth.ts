/**
 * etcdctl 3.4's `user`, `role` and `auth` commands with its simple and json output (printer_simple.go), plus etcd
 * 3.5's `auth status`. Passwords: `user add name:password`, `--new-user-password`, or asked for (twice, on a
 * terminal without echo; without a terminal `--interactive=false` reads one stdin line).
 */
import { type Permission, type PermissionType, prefixRangeEnd } from '../client/index.js'
import { type Ctx, runGroup, simpleCommand, UsageError } from './client-command.js'
import type { CliIo } from './main.js'

type Flags = Record<string, string | boolean | undefined>

/** Asks for a new password twice (etcdctl's readPasswordInteractive), or once from stdin with --interactive=false. */
async function newPassword(ctx: Ctx, name: string, interactive: boolean): Promise<string> {
  if (!interactive) return ctx.askSecret('')
  const first = await ctx.askSecret(`Password of ${name}: `)
  const again = await ctx.askSecret(`Type password of ${name} again for confirmation: `)
  if (first !== again) throw new UsageError('given passwords are different')
  return first
}

const interactiveFlag = {
  type: 'boolean' as const,
  help: 'read the password from stdin instead of asking on a terminal when false (--interactive=false)',
  default: 'true',
}

/** etcdctl's RoleGet printer: read and write permissions, ranges as [key, end) and prefixes named. */
function permissionLines(perm: Permission[]): string[] {
  const line = (p: Permission) => {
    if (p.rangeEndBytes.length === 0) return `\t${p.key}`
    const open = p.rangeEndBytes.length === 1 && p.rangeEndBytes[0] === 0
    const range = open ? `\t[${p.key}, <open ended>` : `\t[${p.key}, ${p.rangeEnd})`
    const end = prefixRangeEnd(p.keyBytes)
    const isPrefix = end.length === p.rangeEndBytes.length && end.every((b, i) => b === p.rangeEndBytes[i])
    return isPrefix ? `${range} (prefix ${p.key})` : range
  }
  const of = (types: PermissionType[]) => perm.filter((p) => types.includes(p.permType)).map(line)
  return ['KV Read:', ...of(['READ', 'READWRITE']), 'KV Write:', ...of(['WRITE', 'READWRITE'])]
}

const userAdd = simpleCommand({
  name: 'user add',
  args: '<user name or user:password> [options]',
  summary: 'Adds a new user',
  nArgs: [1, 1, 'user add command requires user name as its argument'],
  call: async (ctx, [arg], f) => {
    let name = arg!
    let password: string
    const colon = name.indexOf(':')
    if (f['no-password']) password = ''
    else if (colon >= 0) {
      password = name.slice(colon + 1)
      name = name.slice(0, colon)
    } else if (typeof f['new-user-password'] === 'string') password = f['new-user-password']
    else password = await newPassword(ctx, name, f.interactive !== false)
    const r = await ctx.client().auth.userAdd(name, password, { noPassword: f['no-password'] === true })
    return Object.assign(r, { name })
  },
  simple: (r) => [`User ${r.name} created`],
  flags: {
    interactive: interactiveFlag,
    'new-user-password': { type: 'string', help: 'supply the password from the command line flag' },
    'no-password': { type: 'boolean', help: 'create a user without password (CN based auth only)' },
  },
})

const userGet = simpleCommand({
  name: 'user get',
  args: '<user name> [options]',
  summary: 'Gets detailed information of a user',
  nArgs: [1, 1, 'user get command requires user name as its argument'],
  call: async (ctx, [name], f) => {
    const c = ctx.client()
    const r = await c.auth.userGet(name!)
    // --detail: each role's permissions too (etcdctl prints them after the user line).
    const roles = f.detail ? await Promise.all(r.roles.map((role) => c.auth.roleGet(role))) : []
    return Object.assign(r, { details: roles })
  },
  simple: (r, [name], f) =>
    f.detail
      ? [`User: ${name}`, ...r.roles.flatMap((role, i) => ['', `Role ${role}`, ...permissionLines(r.details[i]!.perm)])]
      : [`User: ${name}`, `Roles:${r.roles.map((x) => ` ${x}`).join('')}`],
  flags: { detail: { type: 'boolean', help: "show the permissions of the user's roles" } },
})

const userList = simpleCommand({
  name: 'user list',
  args: '',
  summary: 'Lists all users',
  nArgs: [0, 0, 'user list command requires no arguments'],
  call: (ctx) => ctx.client().auth.userList(),
  simple: (r) => r.users,
})

const userDelete = simpleCommand({
  name: 'user delete',
  args: '<user name>',
  summary: 'Deletes a user',
  nArgs: [1, 1, 'user delete command requires user name as its argument'],
  call: (ctx, [name]) => ctx.client().auth.userDelete(name!),
  simple: (_r, [name]) => [`User ${name} deleted`],
})

const userPasswd = simpleCommand({
  name: 'user passwd',
  args: '<user name> [options]',
  summary: 'Changes the password of a user',
  nArgs: [1, 1, 'user passwd command requires user name as its argument'],
  call: async (ctx, [name], f) =>
    ctx.client().auth.userChangePassword(name!, await newPassword(ctx, name!, f.interactive !== false)),
  simple: () => ['Password updated'],
  flags: { interactive: interactiveFlag },
})

const userGrantRole = simpleCommand({
  name: 'user grant-role',
  args: '<user name> <role name>',
  summary: 'Grants a role to a user',
  nArgs: [2, 2, 'user grant command requires user name and role name as its argument'],
  call: (ctx, [user, role]) => ctx.client().auth.userGrantRole(user!, role!),
  simple: (_r, [user, role]) => [`Role ${role} is granted to user ${user}`],
})

const userRevokeRole = simpleCommand({
  name: 'user revoke-role',
  args: '<user name> <role name>',
  summary: 'Revokes a role from a user',
  nArgs: [2, 2, 'user revoke-role requires user name and role name as its argument'],
  call: (ctx, [user, role]) => ctx.client().auth.userRevokeRole(user!, role!),
  simple: (_r, [user, role]) => [`Role ${role} is revoked from user ${user}`],
})

const roleAdd = simpleCommand({
  name: 'role add',
  args: '<role name>',
  summary: 'Adds a new role',
  nArgs: [1, 1, 'role add command requires role name as its argument'],
  call: (ctx, [role]) => ctx.client().auth.roleAdd(role!),
  simple: (_r, [role]) => [`Role ${role} created`],
})

const roleGet = simpleCommand({
  name: 'role get',
  args: '<role name>',
  summary: 'Gets detailed information of a role',
  nArgs: [1, 1, 'role get command requires role name as its argument'],
  call: (ctx, [role]) => ctx.client().auth.roleGet(role!),
  simple: (r, [role]) => [`Role ${role}`, ...permissionLines(r.perm)],
})

const roleList = simpleCommand({
  name: 'role list',
  args: '',
  summary: 'Lists all roles',
  nArgs: [0, 0, 'role list command requires no arguments'],
  call: (ctx) => ctx.client().auth.roleList(),
  simple: (r) => r.roles,
})

const roleDelete = simpleCommand({
  name: 'role delete',
  args: '<role name>',
  summary: 'Deletes a role',
  nArgs: [1, 1, 'role delete command requires role name as its argument'],
  call: (ctx, [role]) => ctx.client().auth.roleDelete(role!),
  simple: (_r, [role]) => [`Role ${role} deleted`],
})

/** The range flags of grant-permission and revoke-permission, as etcdctl's permRange. */
function permRange(f: Flags, rangeEnd: string | undefined) {
  if (f.prefix && f['from-key']) throw new UsageError('--from-key and --prefix flags are mutually exclusive')
  if (rangeEnd !== undefined && (f.prefix || f['from-key']))
    throw new UsageError(`unexpected endkey argument with --${f.prefix ? 'prefix' : 'from-key'}`)
  return { rangeEnd, prefix: f.prefix === true, fromKey: f['from-key'] === true }
}

const rangeFlags = (verb: string) => ({
  prefix: { type: 'boolean' as const, help: `${verb} a prefix permission` },
  'from-key': {
    type: 'boolean' as const,
    help: `${verb} a permission of keys that are greater than or equal to the given key using byte compare`,
  },
})

const permTypes: Record<string, PermissionType> = { read: 'READ', write: 'WRITE', readwrite: 'READWRITE' }

const roleGrantPermission = simpleCommand({
  name: 'role grant-permission',
  args: '[options] <role name> <permission type> <key> [endkey]',
  summary: 'Grants a key to a role',
  nArgs: [3, 4, 'role grant command requires role name, permission type, and key [endkey] as its argument'],
  call: (ctx, [role, type, key, end], f) => {
    const t = permTypes[type!.toLowerCase()]
    if (t === undefined) throw new UsageError(`invalid permission type: ${type}`)
    return ctx.client().auth.roleGrantPermission(role!, t, key!, permRange(f, end))
  },
  simple: (_r, [role]) => [`Role ${role} updated`],
  flags: rangeFlags('grant'),
})

const roleRevokePermission = simpleCommand({
  name: 'role revoke-permission',
  args: '<role name> <key> [endkey]',
  summary: 'Revokes a key from a role',
  nArgs: [2, 3, 'role revoke-permission command requires role name and key [endkey] as its argument'],
  call: (ctx, [role, key, end], f) => ctx.client().auth.roleRevokePermission(role!, key!, permRange(f, end)),
  simple: (_r, [role, key, end], f) => {
    // etcdctl prints the range it sent: the prefix end, `<open ended` for --from-key, or the argument.
    const range = f.prefix
      ? `[${key}, ${new TextDecoder().decode(prefixRangeEnd(key!))})`
      : f['from-key']
        ? `[${key}, <open ended>`
        : end === undefined
          ? undefined
          : `[${key}, ${end})`
    return [
      range === undefined
        ? `Permission of key ${key} is revoked from role ${role}`
        : `Permission of range ${range} is revoked from role ${role}`,
    ]
  },
  flags: rangeFlags('revoke'),
})

const authEnable = simpleCommand({
  name: 'auth enable',
  args: '',
  summary: 'Enables authentication',
  nArgs: [0, 0, 'auth enable command does not accept any arguments'],
  call: (ctx) => ctx.client().auth.enable(),
  simple: () => ['Authentication Enabled'],
})

const authDisable = simpleCommand({
  name: 'auth disable',
  args: '',
  summary: 'Disables authentication',
  nArgs: [0, 0, 'auth disable command does not accept any arguments'],
  call: (ctx) => ctx.client().auth.disable(),
  simple: () => ['Authentication Disabled'],
})

const authStatus = simpleCommand({
  name: 'auth status',
  args: '',
  summary: "Returns authentication status (etcd 3.5's; etcdctl 3.4 has none)",
  nArgs: [0, 0, 'auth status command does not accept any arguments'],
  call: (ctx) => ctx.client().auth.status(),
  simple: (r) => [`Authentication Status: ${r.enabled}`, `AuthRevision: ${r.authRevision}`],
})

/** `edgecd user ...`. */
export function runUser(argv: string[], io: CliIo): Promise<number> {
  const subs = [userAdd, userDelete, userGet, userList, userPasswd, userGrantRole, userRevokeRole]
  return runGroup('user', 'User related commands', subs, argv, io)
}

/** `edgecd role ...`. */
export function runRole(argv: string[], io: CliIo): Promise<number> {
  const subs = [roleAdd, roleDelete, roleGet, roleList, roleGrantPermission, roleRevokePermission]
  return runGroup('role', 'Role related commands', subs, argv, io)
}

/** `edgecd auth ...`. */
export function runAuth(argv: string[], io: CliIo): Promise<number> {
  return runGroup('auth', 'Enable or disable authentication', [authEnable, authDisable, authStatus], argv, io)
}
