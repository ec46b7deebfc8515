/**
 * etcdctl 3.4's `user`, `role` and `auth` commands with its simple and json output (printer_simple.go), plus etcd
 * 3.5's `auth status`. Passwords: `user add name:password`, `--new-user-password`, or asked for (twice, on a
 * terminal without echo; without a terminal `--interactive=false` reads one stdin line).
 */
import { type Answer, type Permission, type PermissionType, prefixRangeEnd } from '../client/index.js'
import { type ClientCommandSpec, type Ctx, goJson, needArgs, noTable, runGroup, UsageError } from './client-command.js'
import type { CliIo } from './main.js'

type Flags = Record<string, string | boolean | undefined>

/**
 * A user or role command: checks its arguments, calls, then prints the gateway's JSON with -w json or the line(s)
 * `simple` makes of the answer (no table, as etcdctl).
 */
function command<R extends Answer>(
  name: string,
  args: string,
  summary: string,
  nArgs: [min: number, max: number, usage: string],
  call: (ctx: Ctx, args: string[], f: Flags) => Promise<R>,
  simple: (r: R, args: string[], f: Flags) => string[],
  flags: ClientCommandSpec['flags'] = {},
): ClientCommandSpec {
  return {
    name,
    args,
    summary,
    flags,
    async run(ctx, argv, f) {
      noTable(ctx)
      needArgs(argv, ...nArgs)
      const r = await call(ctx, argv, f)
      for (const line of ctx.format === 'json' ? [goJson(r.raw)] : simple(r, argv, f)) ctx.io.out(line)
      return 0
    },
  }
}

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

const userAdd = command(
  'user add',
  '<user name or user:password> [options]',
  'Adds a new user',
  [1, 1, 'user add command requires user name as its argument'],
  async (ctx, [arg], f) => {
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
  (r) => [`User ${r.name} created`],
  {
    interactive: interactiveFlag,
    'new-user-password': { type: 'string', help: 'supply the password from the command line flag' },
    'no-password': { type: 'boolean', help: 'create a user without password (CN based auth only)' },
  },
)

const userGet = command(
  'user get',
  '<user name> [options]',
  'Gets detailed information of a user',
  [1, 1, 'user get command requires user name as its argument'],
  async (ctx, [name], f) => {
    const c = ctx.client()
    const r = await c.auth.userGet(name!)
    // --detail: each role's permissions too (etcdctl prints them after the user line).
    const roles = f.detail ? await Promise.all(r.roles.map((role) => c.auth.roleGet(role))) : []
    return Object.assign(r, { details: roles })
  },
  (r, [name], f) =>
    f.detail
      ? [`User: ${name}`, ...r.roles.flatMap((role, i) => ['', `Role ${role}`, ...permissionLines(r.details[i]!.perm)])]
      : [`User: ${name}`, `Roles:${r.roles.map((x) => ` ${x}`).join('')}`],
  { detail: { type: 'boolean', help: "show the permissions of the user's roles" } },
)

const userList = command(
  'user list',
  '',
  'Lists all users',
  [0, 0, 'user list command requires no arguments'],
  (ctx) => ctx.client().auth.userList(),
  (r) => r.users,
)

const userDelete = command(
  'user delete',
  '<user name>',
  'Deletes a user',
  [1, 1, 'user delete command requires user name as its argument'],
  (ctx, [name]) => ctx.client().auth.userDelete(name!),
  (_r, [name]) => [`User ${name} deleted`],
)

const userPasswd = command(
  'user passwd',
  '<user name> [options]',
  'Changes the password of a user',
  [1, 1, 'user passwd command requires user name as its argument'],
  async (ctx, [name], f) =>
    ctx.client().auth.userChangePassword(name!, await newPassword(ctx, name!, f.interactive !== false)),
  () => ['Password updated'],
  { interactive: interactiveFlag },
)

const userGrantRole = command(
  'user grant-role',
  '<user name> <role name>',
  'Grants a role to a user',
  [2, 2, 'user grant command requires user name and role name as its argument'],
  (ctx, [user, role]) => ctx.client().auth.userGrantRole(user!, role!),
  (_r, [user, role]) => [`Role ${role} is granted to user ${user}`],
)

const userRevokeRole = command(
  'user revoke-role',
  '<user name> <role name>',
  'Revokes a role from a user',
  [2, 2, 'user revoke-role requires user name and role name as its argument'],
  (ctx, [user, role]) => ctx.client().auth.userRevokeRole(user!, role!),
  (_r, [user, role]) => [`Role ${role} is revoked from user ${user}`],
)

const roleAdd = command(
  'role add',
  '<role name>',
  'Adds a new role',
  [1, 1, 'role add command requires role name as its argument'],
  (ctx, [role]) => ctx.client().auth.roleAdd(role!),
  (_r, [role]) => [`Role ${role} created`],
)

const roleGet = command(
  'role get',
  '<role name>',
  'Gets detailed information of a role',
  [1, 1, 'role get command requires role name as its argument'],
  (ctx, [role]) => ctx.client().auth.roleGet(role!),
  (r, [role]) => [`Role ${role}`, ...permissionLines(r.perm)],
)

const roleList = command(
  'role list',
  '',
  'Lists all roles',
  [0, 0, 'role list command requires no arguments'],
  (ctx) => ctx.client().auth.roleList(),
  (r) => r.roles,
)

const roleDelete = command(
  'role delete',
  '<role name>',
  'Deletes a role',
  [1, 1, 'role delete command requires role name as its argument'],
  (ctx, [role]) => ctx.client().auth.roleDelete(role!),
  (_r, [role]) => [`Role ${role} deleted`],
)

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

const roleGrantPermission = command(
  'role grant-permission',
  '[options] <role name> <permission type> <key> [endkey]',
  'Grants a key to a role',
  [3, 4, 'role grant command requires role name, permission type, and key [endkey] as its argument'],
  (ctx, [role, type, key, end], f) => {
    const t = permTypes[type!.toLowerCase()]
    if (t === undefined) throw new UsageError(`invalid permission type: ${type}`)
    return ctx.client().auth.roleGrantPermission(role!, t, key!, permRange(f, end))
  },
  (_r, [role]) => [`Role ${role} updated`],
  rangeFlags('grant'),
)

const roleRevokePermission = command(
  'role revoke-permission',
  '<role name> <key> [endkey]',
  'Revokes a key from a role',
  [2, 3, 'role revoke-permission command requires role name and key [endkey] as its argument'],
  (ctx, [role, key, end], f) => ctx.client().auth.roleRevokePermission(role!, key!, permRange(f, end)),
  (_r, [role, key, end], f) => {
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
  rangeFlags('revoke'),
)

const authEnable = command(
  'auth enable',
  '',
  'Enables authentication',
  [0, 0, 'auth enable command does not accept any arguments'],
  (ctx) => ctx.client().auth.enable(),
  () => ['Authentication Enabled'],
)

const authDisable = command(
  'auth disable',
  '',
  'Disables authentication',
  [0, 0, 'auth disable command does not accept any arguments'],
  (ctx) => ctx.client().auth.disable(),
  () => ['Authentication Disabled'],
)

const authStatus = command(
  'auth status',
  '',
  "Returns authentication status (etcd 3.5's; etcdctl 3.4 has none)",
  [0, 0, 'auth status command does not accept any arguments'],
  (ctx) => ctx.client().auth.status(),
  (r) => [`Authentication Status: ${r.enabled}`, `AuthRevision: ${r.authRevision}`],
)

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
