/**
 * `edgecd member list|add|remove|promote|update` and `endpoint status|health`, as etcdctl 3.4 (`snapshot` is in
 * snapshot.ts: it loads the member's storage code, which these commands must not pay for at start-up).
 */
import type { Member } from '../client/index.js'
import {
  type ClientCommandSpec,
  type Ctx,
  goDuration,
  goJson,
  hex,
  humanBytes,
  needArgs,
  noTable,
  parseHexId,
  runGroup,
  simpleCommand,
  table,
  UsageError,
} from './client-command.js'
import type { CliIo } from './main.js'

function memberRow(m: Member): string[] {
  return [
    hex(m.id),
    m.name ? 'started' : 'unstarted',
    m.name,
    m.peerUrls.join(','),
    m.clientUrls.join(','),
    String(m.isLearner),
  ]
}

const memberList: ClientCommandSpec = {
  name: 'member list',
  args: '',
  summary: 'Lists all members in the cluster',
  flags: {},
  async run(ctx, args) {
    needArgs(args, 0, 0, 'member list command takes no arguments')
    const r = await ctx.client().member.list()
    if (ctx.format === 'json') ctx.io.out(goJson(r.raw))
    else if (ctx.format === 'table')
      ctx.io.out(table(['ID', 'Status', 'Name', 'Peer Addrs', 'Client Addrs', 'Is Learner'], r.members.map(memberRow)))
    else for (const m of r.members) ctx.io.out(memberRow(m).join(', '))
    return 0
  },
}

const memberAdd: ClientCommandSpec = {
  name: 'member add',
  args: '<memberName> [options]',
  summary: 'Adds a member into the cluster',
  flags: {
    'peer-urls': { type: 'string', help: 'comma separated peer URLs for the new member' },
    learner: { type: 'boolean', help: 'indicates if the new member is raft learner' },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 1, 'member name not provided')
    if (typeof f['peer-urls'] !== 'string' || f['peer-urls'] === '')
      throw new UsageError('member peer urls not provided')
    const urls = f['peer-urls'].split(',').map((s) => s.trim())
    const r = await ctx.client().member.add(urls, { isLearner: f.learner === true })
    if (ctx.format === 'json') {
      ctx.io.out(goJson(r.raw))
      return 0
    }
    ctx.io.out(
      `Member ${hex(r.member.id).padStart(16, '0')} added to cluster ${hex(r.header.clusterId).padStart(16, '0')}`,
    )
    const conf: string[] = []
    for (const m of r.members) {
      const name = m.id === r.member.id ? args[0]! : m.name
      for (const u of m.peerUrls) if (name !== '') conf.push(`${name}=${u}`)
    }
    ctx.io.out('')
    ctx.io.out(`ETCD_NAME="${args[0]}"`)
    ctx.io.out(`ETCD_INITIAL_CLUSTER="${conf.join(',')}"`)
    ctx.io.out(`ETCD_INITIAL_ADVERTISE_PEER_URLS="${urls.join(',')}"`)
    ctx.io.out('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0
  },
}

function memberChange(name: 'remove' | 'promote' | 'update', verb: string, summary: string): ClientCommandSpec {
  return simpleCommand({
    name: `member ${name}`,
    args: name === 'update' ? '<memberID> [options]' : '<memberID>',
    summary,
    flags:
      name === 'update'
        ? { 'peer-urls': { type: 'string', help: 'comma separated peer URLs for the updated member' } }
        : {},
    nArgs: [1, 1, 'member ID is not provided'],
    call(ctx, [arg], f) {
      const id = parseHexId(arg, 'member')
      const c = ctx.client()
      if (name !== 'update') return name === 'remove' ? c.member.remove(id) : c.member.promote(id)
      if (typeof f['peer-urls'] !== 'string') throw new UsageError('member peer urls not provided')
      return c.member.update(id, f['peer-urls'].split(','))
    },
    simple: (r, [arg]) => [
      `Member ${hex(parseHexId(arg, 'member')).padStart(16, '0')} ${verb} cluster ${hex(r.header.clusterId).padStart(16, '0')}`,
    ],
  })
}

const memberSubs = [
  memberList,
  memberAdd,
  memberChange('remove', 'removed from', 'Removes a member from the cluster'),
  memberChange('promote', 'promoted in', 'Promotes a non-voting member in the cluster'),
  memberChange('update', 'updated in', 'Updates a member in the cluster'),
]

/** `edgecd member ...`. */
export function runMember(argv: string[], io: CliIo): Promise<number> {
  return runGroup('member', 'Membership related commands', memberSubs, argv, io)
}

async function endpointsOf(ctx: Ctx, cluster: boolean): Promise<string[]> {
  if (!cluster) return ctx.endpoints
  const r = await ctx.client().member.list()
  return [...new Set(r.members.flatMap((m) => m.clientUrls))]
}

const endpointFlags = { cluster: { type: 'boolean' as const, help: 'use all endpoints from the cluster member list' } }

const endpointStatus: ClientCommandSpec = {
  name: 'endpoint status',
  args: '',
  summary: 'Prints out the status of endpoints specified in `--endpoints` flag',
  flags: endpointFlags,
  async run(ctx, _args, f) {
    const eps = await endpointsOf(ctx, f.cluster === true)
    const c = ctx.client()
    const rows: { ep: string; s?: Awaited<ReturnType<typeof c.status>>; err?: string }[] = []
    for (const ep of eps) {
      try {
        rows.push({ ep, s: await c.status(ep) })
      } catch (err) {
        rows.push({ ep, err: (err as Error).message })
      }
    }
    const failed = rows.filter((r) => r.err)
    for (const r of failed) ctx.io.err(`Failed to get the status of endpoint ${r.ep} (${r.err})`)
    const ok = rows.filter((r) => r.s)
    const fields = (r: (typeof ok)[number]) => {
      const s = r.s!
      return [
        r.ep,
        hex(s.header.memberId),
        s.version,
        humanBytes(s.dbSize),
        String(s.leader === s.header.memberId),
        String(s.isLearner),
        String(s.raftTerm),
        String(s.raftIndex),
        String(s.raftAppliedIndex),
        s.errors.join(', '),
      ]
    }
    if (ctx.format === 'json')
      ctx.io.out(`[${ok.map((r) => `{"Endpoint":${JSON.stringify(r.ep)},"Status":${goJson(r.s!.raw)}}`).join(',')}]`)
    else if (ctx.format === 'table')
      ctx.io.out(
        table(
          [
            'Endpoint',
            'ID',
            'Version',
            'DB Size',
            'Is Leader',
            'Is Learner',
            'Raft Term',
            'Raft Index',
            'Raft Applied Index',
            'Errors',
          ],
          ok.map(fields),
        ),
      )
    else for (const r of ok) ctx.io.out(fields(r).join(', '))
    return failed.length ? 1 : 0
  },
}

const endpointHealth: ClientCommandSpec = {
  name: 'endpoint health',
  args: '',
  summary: 'Checks the healthiness of endpoints specified in `--endpoints` flag',
  flags: endpointFlags,
  async run(ctx, _args, f) {
    const eps = await endpointsOf(ctx, f.cluster === true)
    const c = ctx.client()
    const rs = await Promise.all(eps.map((ep) => c.health(ep)))
    if (ctx.format === 'json')
      ctx.io.out(
        `[${rs.map((r) => JSON.stringify({ endpoint: r.endpoint, health: r.health, took: goDuration(r.tookMs), ...(r.error ? { error: r.error } : {}) })).join(',')}]`,
      )
    else if (ctx.format === 'table')
      ctx.io.out(
        table(
          ['Endpoint', 'Health', 'Took', 'Error'],
          rs.map((r) => [r.endpoint, String(r.health), goDuration(r.tookMs), r.error ?? '']),
        ),
      )
    else
      for (const r of rs) {
        if (r.health)
          ctx.io.out(`${r.endpoint} is healthy: successfully committed proposal: took = ${goDuration(r.tookMs)}`)
        else ctx.io.err(`${r.endpoint} is unhealthy: failed to commit proposal: ${r.error}`)
      }
    if (rs.some((r) => !r.health)) throw new Error('unhealthy cluster')
    return 0
  },
}

/** `edgecd endpoint ...`. */
export function runEndpoint(argv: string[], io: CliIo): Promise<number> {
  return runGroup('endpoint', 'Endpoint related commands', [endpointStatus, endpointHealth], argv, io)
}
