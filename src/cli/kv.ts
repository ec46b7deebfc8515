/**
 * etcdctl's key-value commands: put, get, del, txn, compaction and watch, with etcdctl 3.4's output in the simple
 * and json formats.
 */
import {
  Compare,
  type CompareOp,
  type KeyValue,
  Op,
  type RangeOptions,
  type SortTarget,
  type WatchEvent,
} from '../client/index.js'
import {
  type ClientCommandSpec,
  type Ctx,
  goJson,
  needArgs,
  noTable,
  parseHexId,
  simpleCommand,
  UsageError,
} from './client-command.js'
import { kvLines } from './output.js'

function printKv(ctx: Ctx, kv: KeyValue, opts: { valueOnly?: boolean; keysOnly?: boolean } = {}): void {
  for (const line of kvLines(kv, opts)) ctx.io.out(line)
}

const sortTargets: Record<string, SortTarget> = {
  CREATE: 'CREATE',
  KEY: 'KEY',
  MODIFY: 'MOD',
  VALUE: 'VALUE',
  VERSION: 'VERSION',
}

const num = (v: string | boolean | undefined, flag: string): number => {
  if (v === undefined) return 0
  if (typeof v !== 'string' || !/^-?\d+$/.test(v))
    throw new UsageError(`invalid argument "${String(v)}" for "--${flag}" flag`)
  return Number(v)
}

const putUsage = 'put command needs 1 argument and input from stdin or 2 arguments'

export const put = simpleCommand({
  name: 'put',
  args: '[options] <key> <value> (<value> can also be given from stdin)',
  summary: 'Puts the given key into the store',
  flags: {
    lease: { type: 'string', help: 'lease ID (in hexadecimal) to attach to the key', default: '0' },
    'prev-kv': { type: 'boolean', help: 'return the previous key-value pair before modification' },
    'ignore-value': { type: 'boolean', help: 'updates the key using its current value' },
    'ignore-lease': { type: 'boolean', help: 'updates the key using its current lease' },
  },
  nArgs: [1, 2, putUsage],
  async call(ctx, [key, arg], f) {
    const value = arg ?? (f['ignore-value'] ? '' : (await ctx.stdin()).replace(/\n$/, ''))
    return ctx.client().put(key!, value, {
      lease: f.lease && f.lease !== '0' ? parseHexId(String(f.lease), 'lease') : undefined,
      prevKv: f['prev-kv'] === true,
      ignoreValue: f['ignore-value'] === true,
      ignoreLease: f['ignore-lease'] === true,
    })
  },
  simple: (r) => ['OK', ...(r.prevKv ? kvLines(r.prevKv) : [])],
})

function rangeOpts(f: Record<string, string | boolean | undefined>, rangeEnd: string | undefined): RangeOptions {
  const o: RangeOptions = {}
  if (rangeEnd !== undefined) {
    if (f.prefix || f['from-key'])
      throw new UsageError('too many arguments, only accept one argument when `--prefix` or `--from-key` is set')
    o.rangeEnd = rangeEnd
  }
  if (f.prefix && f['from-key'])
    throw new UsageError('`--prefix` and `--from-key` cannot be set at the same time, choose one')
  if (f.prefix) o.prefix = true
  if (f['from-key']) o.fromKey = true
  return o
}

export const get: ClientCommandSpec = {
  name: 'get',
  args: '[options] <key> [range_end]',
  summary: 'Gets the key or a range of keys',
  flags: {
    consistency: { type: 'string', help: 'Linearizable(l) or Serializable(s)', default: 'l' },
    'from-key': {
      type: 'boolean',
      help: 'get keys that are greater than or equal to the given key using byte compare',
    },
    'keys-only': { type: 'boolean', help: 'get only the keys' },
    'count-only': { type: 'boolean', help: 'get only the count' },
    limit: { type: 'string', help: 'maximum number of results', default: '0' },
    order: { type: 'string', help: 'order of results; ASCEND or DESCEND (ASCEND by default)' },
    prefix: { type: 'boolean', help: 'get keys with matching prefix' },
    'print-value-only': { type: 'boolean', help: 'only write values when using the "simple" output format' },
    rev: { type: 'string', help: 'specify the kv revision', default: '0' },
    'sort-by': { type: 'string', help: 'sort target; CREATE, KEY, MODIFY, VALUE, or VERSION' },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 2, 'get command needs one argument as key and an optional argument as range_end')
    const o = rangeOpts(f, args[1])
    const order = f.order === undefined ? undefined : String(f.order).toUpperCase()
    if (order !== undefined && order !== 'ASCEND' && order !== 'DESCEND')
      throw new UsageError(`bad ordering ${f.order}`)
    if (order) o.sortOrder = order as 'ASCEND' | 'DESCEND'
    if (f['sort-by'] !== undefined) {
      const t = sortTargets[String(f['sort-by']).toUpperCase()]
      if (!t) throw new UsageError(`bad sort target ${f['sort-by']}`)
      o.sortTarget = t
    }
    if (f.consistency !== undefined && f.consistency !== 'l') {
      if (f.consistency !== 's') throw new UsageError(`unknown consistency flag "${f.consistency}"`)
      o.serializable = true
    }
    o.limit = num(f.limit, 'limit')
    o.revision = num(f.rev, 'rev')
    o.keysOnly = f['keys-only'] === true
    o.countOnly = f['count-only'] === true
    const r = await ctx.client().range(args[0]!, o)
    if (ctx.format === 'json') {
      ctx.io.out(goJson(r.raw))
      return 0
    }
    if (o.countOnly) {
      ctx.io.out(String(r.count))
      return 0
    }
    for (const kv of r.kvs) printKv(ctx, kv, { valueOnly: f['print-value-only'] === true, keysOnly: o.keysOnly })
    return 0
  },
}

export const del = simpleCommand({
  name: 'del',
  args: '[options] <key> [range_end]',
  summary: 'Removes the specified key or range of keys [key, range_end)',
  flags: {
    prefix: { type: 'boolean', help: 'delete keys with matching prefix' },
    'prev-kv': { type: 'boolean', help: 'return deleted key-value pairs' },
    'from-key': {
      type: 'boolean',
      help: 'delete keys that are greater than or equal to the given key using byte compare',
    },
  },
  nArgs: [1, 2, 'del command needs one argument as key and an optional argument as range_end'],
  call: (ctx, [key, end], f) => ctx.client().delete(key!, { ...rangeOpts(f, end), prevKv: f['prev-kv'] === true }),
  simple: (r) => [String(r.deleted), ...r.prevKvs.flatMap((kv) => kvLines(kv))],
})

export const compaction: ClientCommandSpec = {
  name: 'compaction',
  args: '[options] <revision>',
  summary: 'Compacts the event history in etcd',
  flags: { physical: { type: 'boolean', help: 'wait for the compaction to physically remove all old revisions' } },
  async run(ctx, args, f) {
    needArgs(args, 1, 1, 'compaction command needs 1 argument')
    const rev = num(args[0], 'revision')
    const r = await ctx.client().compact(rev, { physical: f.physical === true })
    if (ctx.format === 'json') ctx.io.out(goJson(r.raw))
    else ctx.io.out(`compacted revision ${rev}`)
    return 0
  },
}

// ---- txn: etcdctl's syntax ----

/** Splits a line into words, honouring "double" and 'single' quotes (etcdctl uses a shell-like splitter). */
export function splitWords(line: string): string[] {
  const out: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g
  for (let m = re.exec(line); m !== null; m = re.exec(line))
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!))
  return out
}

const compareRe = /^\s*(\w+)\("((?:[^"\\]|\\.)*)"\)\s*(==|=|!=|>|<)\s*"?((?:[^"\\]|\\.)*)"?\s*$/

/** Parses `value("k") = "v"`, `version("k") > "2"`, `create("k") < "5"`, `mod("k") = "3"`, `lease("k") = "abc"`. */
export function parseCompare(line: string) {
  const m = compareRe.exec(line)
  if (!m) throw new Error(`malformed comparison: ${line}`)
  const [, target, key, rawOp, v] = m as unknown as [string, string, string, string, string]
  const op = (rawOp === '==' ? '=' : rawOp) as CompareOp
  const int = (s: string) => {
    if (!/^-?\d+$/.test(s)) throw new Error(`malformed comparison: ${line}`)
    return Number(s)
  }
  switch (target) {
    case 'value':
    case 'val':
      return Compare.value(key, op, v)
    case 'version':
    case 'ver':
      return Compare.version(key, op, int(v))
    case 'create':
    case 'c':
      return Compare.createRevision(key, op, int(v))
    case 'mod':
    case 'm':
      return Compare.modRevision(key, op, int(v))
    case 'lease':
      return Compare.lease(key, op, parseHexId(v, 'lease'))
    default:
      throw new Error(`malformed comparison: ${line}; got unknown target "${target}"`)
  }
}

/** Parses `put k v [--lease=x] [--prev-kv]`, `get k [end] [--prefix ...]`, `del k [end] [--prefix] [--prev-kv]`. */
export function parseOp(line: string) {
  const words = splitWords(line)
  const [cmd, ...rest] = words
  const flags = new Set(rest.filter((w) => w.startsWith('--')).map((w) => w.replace(/=.*$/, '')))
  const flagValue = (name: string) => rest.find((w) => w.startsWith(`--${name}=`))?.slice(name.length + 3)
  const pos = rest.filter((w) => !w.startsWith('--'))
  switch (cmd) {
    case 'put': {
      if (pos.length !== 2) throw new Error(`invalid txn put operation: ${line}`)
      const lease = flagValue('lease')
      return Op.put(pos[0]!, pos[1]!, {
        prevKv: flags.has('--prev-kv'),
        lease: lease ? parseHexId(lease, 'lease') : undefined,
      })
    }
    case 'get': {
      if (pos.length < 1 || pos.length > 2) throw new Error(`invalid txn get operation: ${line}`)
      return Op.get(pos[0]!, {
        rangeEnd: pos[1],
        prefix: flags.has('--prefix'),
        fromKey: flags.has('--from-key'),
        keysOnly: flags.has('--keys-only'),
        countOnly: flags.has('--count-only'),
      })
    }
    case 'del':
    case 'delete': {
      if (pos.length < 1 || pos.length > 2) throw new Error(`invalid txn del operation: ${line}`)
      return Op.delete(pos[0]!, {
        rangeEnd: pos[1],
        prefix: flags.has('--prefix'),
        fromKey: flags.has('--from-key'),
        prevKv: flags.has('--prev-kv'),
      })
    }
    default:
      throw new Error(`unknown txn operation: ${line}`)
  }
}

/** Go's oneof names for txn responses in etcdctl's JSON. */
const oneofNames: Record<string, string> = {
  response_range: 'ResponseRange',
  response_put: 'ResponsePut',
  response_delete_range: 'ResponseDeleteRange',
  response_txn: 'ResponseTxn',
}

function txnJson(raw: Record<string, any>): string {
  const out: Record<string, unknown> = { ...raw }
  if (Array.isArray(raw.responses))
    out.responses = raw.responses.map((r: Record<string, unknown>) => {
      const [k, v] = Object.entries(r)[0] ?? ['response_txn', {}]
      return { Response: { [oneofNames[k] ?? k]: v } }
    })
  return goJson(out)
}

export const txn: ClientCommandSpec = {
  name: 'txn',
  args: '[options] (reads compares, success and failure requests from stdin, each part ending with a blank line)',
  summary: 'Txn processes all the requests in one transaction',
  flags: {
    interactive: { type: 'boolean', short: 'i', help: 'input transaction in interactive mode (prompts for each part)' },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 0, 0, 'txn command does not accept argument')
    const interactive = f.interactive === true
    const lines = ctx.stdinLines()[Symbol.asyncIterator]()
    // Reads lines until a blank one; EOF before it is etcdctl's "Error: EOF".
    const section = async (prompt: string): Promise<string[]> => {
      if (interactive) ctx.io.out(prompt)
      const out: string[] = []
      for (;;) {
        const { value, done } = await lines.next()
        if (done) throw new Error('EOF')
        if (value.trim() === '') return out
        out.push(value)
      }
    }
    const compares = (await section('compares:')).map(parseCompare)
    const success = (await section('success requests (get, put, del):')).map(parseOp)
    const failure = (await section('failure requests (get, put, del):')).map(parseOp)
    const r = await ctx
      .client()
      .txn()
      .if(...compares)
      .then(...success)
      .else(...failure)
      .commit()
    if (ctx.format === 'json') {
      ctx.io.out(txnJson(r.raw as Record<string, any>))
      return 0
    }
    ctx.io.out(r.succeeded ? 'SUCCESS' : 'FAILURE')
    for (const resp of r.responses) {
      ctx.io.out('')
      if (resp.type === 'put') {
        ctx.io.out('OK')
        if (resp.prevKv) printKv(ctx, resp.prevKv)
      } else if (resp.type === 'range') for (const kv of resp.kvs) printKv(ctx, kv)
      else if (resp.type === 'delete') {
        ctx.io.out(String(resp.deleted))
        for (const kv of resp.prevKvs) printKv(ctx, kv)
      }
    }
    return 0
  },
}

function eventJson(e: WatchEvent): Record<string, unknown> {
  const kv = (k: KeyValue) => {
    const o: Record<string, unknown> = { key: btoa(String.fromCharCode(...k.keyBytes)) }
    if (k.createRevision) o.create_revision = k.createRevision
    if (k.modRevision) o.mod_revision = k.modRevision
    if (k.version) o.version = k.version
    if (k.valueBytes.length) o.value = btoa(String.fromCharCode(...k.valueBytes))
    if (k.lease !== '0') o.lease = `${k.lease}`
    return o
  }
  const o: Record<string, unknown> = {}
  if (e.type === 'DELETE') o.type = 1
  o.kv = kv(e.kv)
  if (e.prevKv) o.prev_kv = kv(e.prevKv)
  return o
}

export const watch: ClientCommandSpec = {
  name: 'watch',
  args: '[options] <key> [range_end]',
  summary: 'Watches events stream on keys or prefixes (until Ctrl-C)',
  flags: {
    prefix: { type: 'boolean', help: 'watch on a prefix if prefix is set' },
    rev: { type: 'string', help: 'revision to start watching', default: '0' },
    'prev-kv': { type: 'boolean', help: 'get the previous key-value pair before the event happens' },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 2, 'bad number of arguments')
    if (args[1] !== undefined && f.prefix) throw new UsageError('unexpected range_end with --prefix')
    const target =
      args[1] !== undefined
        ? { key: args[0]!, rangeEnd: args[1] }
        : f.prefix
          ? { key: args[0]!, prefix: true }
          : args[0]!
    const w = ctx.client().watch(target, { startRevision: num(f.rev, 'rev'), prevKv: f['prev-kv'] === true })
    const stop = () => w.cancel()
    ctx.signal.addEventListener('abort', stop, { once: true })
    try {
      for await (const r of w) {
        if (r.events.length === 0) continue
        if (ctx.format === 'json') {
          const h = (x: typeof r.header) => ({
            cluster_id: x.clusterId,
            member_id: x.memberId,
            revision: String(x.revision),
            raft_term: String(x.raftTerm),
          })
          ctx.io.out(
            goJson({
              Header: h(r.header),
              Events: r.events.map(eventJson),
              CompactRevision: 0,
              Canceled: false,
              Created: false,
            }),
          )
          continue
        }
        for (const e of r.events) {
          ctx.io.out(e.type)
          if (e.prevKv) printKv(ctx, e.prevKv)
          printKv(ctx, e.kv)
        }
      }
    } finally {
      ctx.signal.removeEventListener('abort', stop)
    }
    return 0
  },
}
