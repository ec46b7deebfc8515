/** `edgecd lock NAME [command...]` and `edgecd elect NAME [proposal]` / `elect -l NAME`, as etcdctl 3.4. */
import { spawn } from 'node:child_process'
import { Election, Mutex, observeLeader, Session } from '../client/index.js'
import { type ClientCommandSpec, noTable, UsageError } from './client-command.js'

const untilAborted = (signal: AbortSignal, also?: Promise<unknown>) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve()
    signal.addEventListener('abort', () => resolve(), { once: true })
    void also?.then(() => resolve())
  })

export const lock: ClientCommandSpec = {
  name: 'lock',
  args: '<lockname> [exec-command arg1 arg2 ...]',
  summary:
    'Acquires a named lock (prints the lock key and holds it until Ctrl-C, or runs the command while holding it)',
  flags: { ttl: { type: 'string', help: 'timeout for session', default: '10' } },
  passthroughAfter: 1,
  async run(ctx, args, f) {
    noTable(ctx)
    if (args.length === 0) throw new UsageError('lock takes a lock name argument and an optional command to execute')
    const ttl = Number(f.ttl ?? 10)
    const c = ctx.client()
    const s = await Session.create(c, { ttlSeconds: ttl })
    const m = new Mutex(s, args[0]!)
    try {
      await m.lock(ctx.signal)
      if (args.length > 1) {
        // As etcdctl: run the command with the lock key and revision in its environment, release when it exits.
        const child = spawn(args[1]!, args.slice(2), {
          stdio: 'inherit',
          env: { ...process.env, ETCD_LOCK_KEY: m.key, ETCD_LOCK_REV: String(m.revision) },
        })
        const code = await new Promise<number>((resolve) => {
          child.once('error', (e) => {
            ctx.io.err(`Error: ${e.message}`)
            resolve(1)
          })
          child.once('exit', (c) => resolve(c ?? 1))
        })
        return code
      }
      ctx.io.out(m.key)
      await untilAborted(ctx.signal, s.done)
      if (!s.alive && !ctx.signal.aborted) throw new Error('session expired')
      return 0
    } finally {
      await m.unlock().catch(() => {})
      await s.close()
    }
  },
}

export const elect: ClientCommandSpec = {
  name: 'elect',
  args: '<election-name> [proposal]',
  summary: 'Observes and participates in leader election (campaigns with the proposal, or observes with -l)',
  flags: {
    listen: { type: 'boolean', short: 'l', help: 'observation mode' },
    ttl: { type: 'string', help: 'timeout for session', default: '10' },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    const listen = f.listen === true
    if (listen ? args.length !== 1 : args.length !== 2)
      throw new UsageError(listen ? 'observe takes exactly one argument' : 'no proposal argument but -l not set')
    const c = ctx.client()
    if (listen) {
      try {
        for await (const kv of observeLeader(c, `${args[0]}/`, ctx.signal)) {
          ctx.io.out(kv.key)
          ctx.io.out(kv.value)
        }
      } catch (err) {
        if (!ctx.signal.aborted) throw err
      }
      return 0
    }
    const s = await Session.create(c, { ttlSeconds: Number(f.ttl ?? 10) })
    const e = new Election(s, args[0]!)
    try {
      await e.campaign(args[1]!, ctx.signal)
      const leader = await e.leader()
      if (leader) {
        ctx.io.out(leader.key)
        ctx.io.out(leader.value)
      }
      await untilAborted(ctx.signal, s.done)
      return 0
    } catch (err) {
      if (ctx.signal.aborted) return 0
      throw err
    } finally {
      await e.resign().catch(() => {})
      await s.close()
    }
  },
}
