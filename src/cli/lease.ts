/** `edgecd lease grant|revoke|timetolive|list|keep-alive`, with etcdctl 3.4's output. */
import { EtcdClientError } from '../client/index.js'
import {
  type ClientCommandSpec,
  flatHeader,
  goJson,
  hex16,
  needArgs,
  noTable,
  parseHexId,
  runGroup,
  simpleCommand,
  UsageError,
} from './client-command.js'
import type { CliIo } from './main.js'

const grant = simpleCommand({
  name: 'lease grant',
  args: '<ttl>',
  summary: 'Creates leases',
  nArgs: [1, 1, 'lease grant command needs TTL argument'],
  call: (ctx, [ttl]) => {
    if (!/^\d+$/.test(ttl!)) throw new UsageError(`bad TTL (${ttl})`)
    return ctx.client().lease.grant(Number(ttl))
  },
  json: (r) => ({ ...flatHeader(r.raw), ID: r.id, TTL: String(r.ttl), Error: '' }),
  simple: (r) => [`lease ${hex16(r.id)} granted with TTL(${r.ttl}s)`],
})

const revoke = simpleCommand({
  name: 'lease revoke',
  args: '<leaseID>',
  summary: 'Revokes leases',
  nArgs: [1, 1, 'lease revoke command needs 1 argument'],
  async call(ctx, [id]) {
    try {
      return await ctx.client().lease.revoke(parseHexId(id, 'lease'))
    } catch (err) {
      if (err instanceof EtcdClientError && err.code === 'ERR_SERVER')
        throw new Error(`failed to revoke lease (${err.message})`)
      throw err
    }
  },
  json: (r) => flatHeader(r.raw),
  simple: (_r, [id]) => [`lease ${hex16(parseHexId(id, 'lease'))} revoked`],
})

const timetolive = simpleCommand({
  name: 'lease timetolive',
  args: '<leaseID> [options]',
  summary: 'Get lease information',
  flags: { keys: { type: 'boolean', help: 'get keys attached to this lease' } },
  nArgs: [1, 1, 'lease timetolive command needs lease ID as argument'],
  call: (ctx, [id], f) => ctx.client().lease.timeToLive(parseHexId(id, 'lease'), { keys: f.keys === true }),
  json: (r) => ({
    ...flatHeader(r.raw),
    id: r.id,
    ttl: String(r.ttl),
    'granted-ttl': String(r.grantedTtl),
    keys: (r.raw?.keys as unknown) ?? null,
  }),
  simple: (r, [id], f) => {
    const lease = hex16(parseHexId(id, 'lease'))
    if (r.ttl === -1) return [`lease ${lease} already expired`]
    const line = `lease ${lease} granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)`
    return [f.keys ? `${line}, attached keys([${r.keys.join(' ')}])` : line]
  },
})

const list = simpleCommand({
  name: 'lease list',
  args: '',
  summary: 'List all active leases',
  nArgs: [0, 0, 'lease list command takes no arguments'],
  call: (ctx) => ctx.client().lease.list(),
  json: (r) => ({ ...flatHeader(r.raw), leases: r.leases.map((id) => ({ id })) }),
  simple: (r) => [`found ${r.leases.length} leases`, ...r.leases.map(hex16)],
})

const keepAlive: ClientCommandSpec = {
  name: 'lease keep-alive',
  args: '[options] <leaseID>',
  summary: 'Keeps leases alive (renew), until Ctrl-C',
  flags: { once: { type: 'boolean', help: 'keep the lease alive only once' } },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 1, 'lease keep-alive command needs lease ID as argument')
    const id = parseHexId(args[0], 'lease')
    const print = (ttl: number, raw: unknown) => {
      if (ctx.format === 'json')
        ctx.io.out(goJson({ ...flatHeader(raw as Record<string, unknown>), ID: id, TTL: String(ttl) }))
      else ctx.io.out(`lease ${hex16(id)} keepalived with TTL(${ttl})`)
    }
    const c = ctx.client()
    if (f.once) {
      const r = await c.lease.keepAliveOnce(id)
      print(r.ttl, r.raw)
      return 0
    }
    let ka: Awaited<ReturnType<typeof c.lease.keepAlive>>
    try {
      ka = await c.lease.keepAlive(id)
    } catch (err) {
      if (err instanceof EtcdClientError && err.grpcCode === 5) {
        ctx.io.out(`lease ${hex16(id)} expired or revoked.`)
        return 0
      }
      throw err
    }
    print(ka.ttl, undefined)
    ka.onRenew = (r) => print(r.ttl, r.raw)
    const stop = () => ka.stop()
    ctx.signal.addEventListener('abort', stop, { once: true })
    const end = await ka.done
    ctx.signal.removeEventListener('abort', stop)
    if (end) ctx.io.out(`lease ${hex16(id)} expired or revoked.`)
    return 0
  },
}

const subs = [grant, revoke, timetolive, list, keepAlive]

/** `edgecd lease ...`. */
export function runLease(argv: string[], io: CliIo): Promise<number> {
  return runGroup('lease', 'Lease related commands', subs, argv, io)
}
