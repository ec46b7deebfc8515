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
  UsageError,
} from './client-command.js'
import type { CliIo } from './main.js'

const grant: ClientCommandSpec = {
  name: 'lease grant',
  args: '<ttl>',
  summary: 'Creates leases',
  flags: {},
  async run(ctx, args) {
    noTable(ctx)
    needArgs(args, 1, 1, 'lease grant command needs TTL argument')
    if (!/^\d+$/.test(args[0]!)) throw new UsageError(`bad TTL (${args[0]})`)
    const r = await ctx.client().lease.grant(Number(args[0]))
    if (ctx.format === 'json') ctx.io.out(goJson({ ...flatHeader(r.raw), ID: r.id, TTL: String(r.ttl), Error: '' }))
    else ctx.io.out(`lease ${hex16(r.id)} granted with TTL(${r.ttl}s)`)
    return 0
  },
}

const revoke: ClientCommandSpec = {
  name: 'lease revoke',
  args: '<leaseID>',
  summary: 'Revokes leases',
  flags: {},
  async run(ctx, args) {
    noTable(ctx)
    needArgs(args, 1, 1, 'lease revoke command needs 1 argument')
    const id = parseHexId(args[0], 'lease')
    try {
      const r = await ctx.client().lease.revoke(id)
      if (ctx.format === 'json') ctx.io.out(goJson(flatHeader(r.raw)))
      else ctx.io.out(`lease ${hex16(id)} revoked`)
    } catch (err) {
      if (err instanceof EtcdClientError && err.code === 'ERR_SERVER')
        throw new Error(`failed to revoke lease (${err.message})`)
      throw err
    }
    return 0
  },
}

const timetolive: ClientCommandSpec = {
  name: 'lease timetolive',
  args: '<leaseID> [options]',
  summary: 'Get lease information',
  flags: { keys: { type: 'boolean', help: 'get keys attached to this lease' } },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 1, 'lease timetolive command needs lease ID as argument')
    const id = parseHexId(args[0], 'lease')
    const r = await ctx.client().lease.timeToLive(id, { keys: f.keys === true })
    if (ctx.format === 'json') {
      const raw = r.raw as Record<string, unknown>
      ctx.io.out(
        goJson({
          ...flatHeader(raw),
          id: r.id,
          ttl: String(r.ttl),
          'granted-ttl': String(r.grantedTtl),
          keys: (raw.keys as unknown) ?? null,
        }),
      )
      return 0
    }
    if (r.ttl === -1) {
      ctx.io.out(`lease ${hex16(id)} already expired`)
      return 0
    }
    let line = `lease ${hex16(id)} granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)`
    if (f.keys) line += `, attached keys([${r.keys.join(' ')}])`
    ctx.io.out(line)
    return 0
  },
}

const list: ClientCommandSpec = {
  name: 'lease list',
  args: '',
  summary: 'List all active leases',
  flags: {},
  async run(ctx, args) {
    noTable(ctx)
    needArgs(args, 0, 0, 'lease list command takes no arguments')
    const r = await ctx.client().lease.list()
    if (ctx.format === 'json') {
      ctx.io.out(goJson({ ...flatHeader(r.raw), leases: r.leases.map((id) => ({ id })) }))
      return 0
    }
    ctx.io.out(`found ${r.leases.length} leases`)
    for (const id of r.leases) ctx.io.out(hex16(id))
    return 0
  },
}

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
