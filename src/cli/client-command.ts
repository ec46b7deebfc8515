/**
 * The shared machinery of edgecd's etcdctl-style commands: global client flags (`--endpoints`, `--token`,
 * `-w simple|json|table`, `--dial-timeout`, `--command-timeout`, and their EDGECD_* variables), per-command flag
 * parsing with `--help`, the client, etcdctl's output helpers (hex ids, tables, Go-style JSON) and its
 * `Error: ...` reporting. Node side: the commands run under bin/edgecd.js.
 */
import type { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Client, type TlsOptions } from '../client/index.js'
import { withExtraCa } from './extra-ca.js'
import { type FlagSpec, globalFlags, globalValueFlags } from './global-flags.js'
import { nodeFetch } from './http-fetch.js'
import { type CliIo, exitBadArgs, exitBadFeature, exitError } from './main.js'
import { errorLine } from './output.js'

export { type FlagSpec, globalFlags, globalValueFlags }

/** What a command gets besides its arguments. */
export interface Ctx {
  io: CliIo
  /** The output format (-w). */
  format: 'simple' | 'json' | 'table'
  /** The endpoints given (--endpoints / EDGECD_ENDPOINTS). */
  endpoints: string[]
  /** The client (created on first use). */
  client(): Client
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM, for commands that run until interrupted. */
  signal: AbortSignal
  /** Reads all of stdin. */
  stdin(): Promise<string>
  /** Reads stdin line by line (interactive txn); every call continues where the last one stopped. */
  stdinLines(): AsyncIterable<string>
  /**
   * Asks for a secret: on a terminal without echo (`read`), otherwise the next stdin line after printing the prompt
   * on stdout as etcdctl does. Throws `EOF` when stdin ends.
   */
  askSecret(prompt: string): Promise<string>
}

/** An etcdctl-style command or subcommand. */
export interface ClientCommandSpec {
  /** As typed: 'get', 'lease grant'. */
  name: string
  /** Arguments after the name, e.g. '[options] <key> [range_end]'. */
  args: string
  summary: string
  flags: Record<string, FlagSpec>
  /** After this many positional arguments, the rest is passed through unparsed (lock NAME command -flags...). */
  passthroughAfter?: number
  run(ctx: Ctx, args: string[], flags: Record<string, string | boolean | undefined>): Promise<number>
}

/** The commands that open a watch (and so need a WebSocket: the `ws` package on Node 20). */
const watchingCommands = new Set(['watch', 'lock', 'elect'])

/** The WebSocket given to commands that open no watch (see runClientCommand); constructing it is a bug. */
class NoWebSocket {
  constructor() {
    throw new Error('edgecd: this command opens no watch (internal error: it tried to open a WebSocket)')
  }
}

/**
 * A bad argument or flag value, exiting as etcdctl does: 128 (its ExitBadArgs) unless another of etcdctl's codes is
 * given (4 for an unsupported output format, 1 where etcdctl fails the command itself).
 */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = exitBadArgs,
  ) {
    super(message)
  }
}

/** Parses Go-style durations as etcdctl takes them: 5s, 500ms, 1m, or plain seconds. */
export function parseDurationMs(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim())
  if (!m) throw new UsageError(`invalid argument "${v}" for "--${flag}" flag: expected a duration like 5s or 500ms`)
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!)
}

/** etcdctl accepts host:port endpoints (https when TLS flags are given); fetch needs a scheme. */
export function normalizeEndpoint(e: string, scheme: 'http' | 'https' = 'http'): string {
  const t = e.trim().replace(/\/+$/, '')
  return /^[a-z]+:\/\//i.test(t) ? t : `${scheme}://${t}`
}

/** The TLS client options from --cacert/--cert/--key/--insecure-skip-tls-verify (files read here), if any. */
async function tlsOf(values: Record<string, string | boolean | undefined>): Promise<TlsOptions | undefined> {
  const file = (flag: string, envName: string) => (values[flag] as string | undefined) ?? env(envName)
  const ca = file('cacert', 'CACERT')
  const cert = file('cert', 'CERT')
  const key = file('key', 'KEY')
  const insecure =
    values['insecure-skip-tls-verify'] === true || /^(1|true)$/i.test(env('INSECURE_SKIP_TLS_VERIFY') ?? '')
  if (!ca && !cert && !key && !insecure) return undefined
  if (Boolean(cert) !== Boolean(key)) throw new UsageError('--cert and --key must be given together')
  const { readFile } = await import('node:fs/promises')
  const read = async (flag: string, path: string) => {
    try {
      return await readFile(path, 'utf8')
    } catch (err) {
      throw new UsageError(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const tls: TlsOptions = {}
  if (ca) tls.ca = await read('cacert', ca)
  if (cert && key) {
    tls.cert = await read('cert', cert)
    tls.key = await read('key', key)
  }
  if (insecure) tls.rejectUnauthorized = false
  return tls
}

function usageOf(spec: ClientCommandSpec): string {
  const flagLines = (flags: Record<string, FlagSpec>) => {
    const rows = Object.entries(flags).map(
      ([n, f]) =>
        [
          `${f.short ? `-${f.short}, ` : '    '}--${n}${f.type === 'string' ? ' <value>' : ''}`,
          `${f.help}${f.default !== undefined ? ` (default ${f.default})` : ''}`,
        ] as const,
    )
    const w = Math.max(0, ...rows.map((r) => r[0].length)) + 3
    return rows.map(([a, b]) => `  ${a.padEnd(w)}${b}`)
  }
  return [
    'NAME:',
    `\t${spec.name} - ${spec.summary}`,
    '',
    'USAGE:',
    `\tedgecd ${spec.name} ${spec.args}`.trimEnd(),
    '',
    ...(Object.keys(spec.flags).length ? ['OPTIONS:', ...flagLines(spec.flags), ''] : []),
    'GLOBAL OPTIONS:',
    ...flagLines(globalFlags),
    '',
    'Environment: EDGECD_ENDPOINTS, EDGECD_USER, EDGECD_PASSWORD, EDGECD_TOKEN, EDGECD_WRITE_OUT, EDGECD_DIAL_TIMEOUT,',
    'EDGECD_COMMAND_TIMEOUT, EDGECD_CACERT, EDGECD_CERT, EDGECD_KEY, EDGECD_INSECURE_SKIP_TLS_VERIFY (ETCDCTL_* also read).',
  ].join('\n')
}

let stdinCache: Promise<string> | undefined
function readStdin(): Promise<string> {
  stdinCache ??= (async () => {
    const chunks: Buffer[] = []
    for await (const c of process.stdin) chunks.push(c as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  })()
  return stdinCache
}

let stdinReader: { rl: ReturnType<typeof createInterface>; it: AsyncIterator<string> } | undefined
let stdinOpening: Promise<AsyncIterator<string>> | undefined
/**
 * One line reader over stdin for the whole run, so prompts and txn sections share it (closed when it ends). node:readline
 * is loaded on the first line asked for, not at start-up.
 */
function stdinLines(): AsyncIterable<string> {
  const open = () =>
    (stdinOpening ??= import('node:readline').then(({ createInterface }) => {
      const rl = createInterface({ input: process.stdin, terminal: false })
      stdinReader = { rl, it: rl[Symbol.asyncIterator]() }
      return stdinReader.it
    }))
  return {
    [Symbol.asyncIterator]: () => ({ next: async () => (await open()).next() }),
  }
}

async function askSecret(io: CliIo, prompt: string): Promise<string> {
  if (process.stdin.isTTY) {
    const { read } = await import('read')
    return read({ prompt, silent: true, replace: '', output: process.stderr })
  }
  if (prompt !== '') io.out(prompt)
  const { value, done } = await stdinLines()[Symbol.asyncIterator]().next()
  if (done) throw new Error('EOF')
  return value as string
}

/**
 * User name and password from --user, --password and their variables, as etcdctl: `--user name:password`, or
 * `--user name --password pw` (then the whole --user is the name); a missing password is asked for on a terminal.
 */
async function credentials(
  io: CliIo,
  values: Record<string, string | boolean | undefined>,
): Promise<{ username: string; password: string } | undefined> {
  const user = (values.user as string | undefined) ?? env('USER')
  const password = (values.password as string | undefined) ?? env('PASSWORD')
  if (user === undefined || user === '') {
    if (password !== undefined) throw new UsageError('--password needs --user')
    return undefined
  }
  if (password !== undefined) return { username: user, password }
  const colon = user.indexOf(':')
  if (colon >= 0) return { username: user.slice(0, colon), password: user.slice(colon + 1) }
  if (!process.stdin.isTTY)
    throw new UsageError(
      `no password for user ${user}: give --user ${user}:<password>, --password or EDGECD_PASSWORD (stdin is not a terminal to ask on)`,
      exitError,
    )
  return { username: user, password: await askSecret(io, 'Password: ') }
}

/**
 * pflag (etcdctl) takes `--flag=true` and `--flag=false` for boolean flags; node's parseArgs does not: rewrite them
 * and report the explicit false ones.
 */
function booleanValues(
  argv: string[],
  options: Record<string, { type: 'string' | 'boolean' }>,
): { argv: string[]; falses: string[] } {
  const falses: string[] = []
  const out: string[] = []
  for (const a of argv) {
    const m = /^--([^=]+)=(true|false)$/.exec(a)
    if (m && options[m[1]!]?.type === 'boolean') {
      if (m[2] === 'true') out.push(`--${m[1]}`)
      else falses.push(m[1]!)
    } else out.push(a)
  }
  return { argv: out, falses }
}

function env(name: string): string | undefined {
  return process.env[`EDGECD_${name}`] ?? process.env[`ETCDCTL_${name}`]
}

/** Runs one command spec on argv: parses flags (strict), handles --help, builds the context, reports errors. */
export async function runClientCommand(spec: ClientCommandSpec, argv: string[], io: CliIo): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const [n, f] of Object.entries({ ...globalFlags, ...spec.flags }))
    options[n] = f.short ? { type: f.type, short: f.short } : { type: f.type }
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  let tail: string[] = []
  if (spec.passthroughAfter !== undefined) {
    const valueFlags = new Set(
      Object.entries(options).flatMap(([n, o]) =>
        o.type === 'string' ? [`--${n}`, ...(o.short ? [`-${o.short}`] : [])] : [],
      ),
    )
    let seen = 0
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!
      if (a === '--') break
      if (a.startsWith('-')) {
        if (valueFlags.has(a)) i++
        continue
      }
      if (++seen > spec.passthroughAfter) {
        tail = argv.slice(i)
        argv = argv.slice(0, i)
        break
      }
    }
  }
  try {
    const b = booleanValues(argv, options)
    ;({ values, positionals } = parseArgs({ args: b.argv, options, strict: true, allowPositionals: true }) as {
      values: Record<string, string | boolean | undefined>
      positionals: string[]
    })
    for (const f of b.falses) values[f] = false
  } catch (err) {
    const msg = (err as Error).message
    const flag = /'(-[^']+)'/.exec(msg)?.[1]
    io.err(flag && /Unknown option/.test(msg) ? `Error: unknown flag: ${flag}` : `Error: ${msg}`)
    io.err(`Run 'edgecd ${spec.name} --help' for usage.`)
    // etcdctl (cobra) fails an unknown flag or an unparsable flag value with ExitError.
    return exitError
  }
  if (values.help) {
    io.out(usageOf(spec))
    return 0
  }
  const ac = new AbortController()
  const onSignal = () => ac.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let client: Client | undefined
  try {
    const tls = await tlsOf(values)
    const format = String(values['write-out'] ?? env('WRITE_OUT') ?? 'simple')
    if (format !== 'simple' && format !== 'json' && format !== 'table')
      throw new UsageError(`unsupported output format ${format} (simple, json, table)`, exitBadFeature)
    const endpoints = String(values.endpoints ?? env('ENDPOINTS') ?? 'http://127.0.0.1:2379')
      .split(',')
      .filter((e) => e.trim() !== '')
      .map((e) => normalizeEndpoint(e, tls ? 'https' : 'http'))
    const dialTimeoutMs = parseDurationMs(String(values['dial-timeout'] ?? env('DIAL_TIMEOUT') ?? '2s'), 'dial-timeout')
    const commandTimeoutMs = parseDurationMs(
      String(values['command-timeout'] ?? env('COMMAND_TIMEOUT') ?? '5s'),
      'command-timeout',
    )
    const token = (values.token as string | undefined) ?? env('TOKEN')
    const creds = await credentials(io, values)
    // ws costs about as much to load as the rest of the CLI: only the commands that watch load it.
    // The other commands pass a stand-in, so the client never reads globalThis.WebSocket: on Node 22 that getter
    // loads undici's WebSocket (over 100 ms on a loaded machine) for a command that opens no watch.
    const WebSocket = watchingCommands.has(spec.name) ? (await import('ws')).default : NoWebSocket
    const ctx: Ctx = {
      io,
      format,
      endpoints,
      signal: ac.signal,
      client() {
        // node:http rather than the global fetch (see http-fetch.ts: undici's start-up is most of a one-shot call).
        client ??= new Client({
          endpoints,
          token,
          ...creds,
          // The client uses `tls` for its wss:// watches (its calls go through nodeFetch, which does the same).
          tls: endpoints.some((e) => e.startsWith('https:')) ? withExtraCa(tls) : tls,
          dialTimeoutMs,
          commandTimeoutMs,
          WebSocket,
          fetch: nodeFetch(tls),
        })
        return client
      },
      stdin: readStdin,
      stdinLines,
      askSecret: (prompt) => askSecret(io, prompt),
    }
    return await spec.run(ctx, [...positionals, ...tail], values)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`Error: ${err.message}`)
      return err.exitCode
    }
    io.err(errorLine(err))
    return 1
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    client?.close()
    stdinReader?.rl.close()
    stdinReader = undefined
    stdinOpening = undefined
  }
}

/** A group of subcommands (`lease grant|revoke|...`). */
export function groupUsage(group: string, summary: string, subs: ClientCommandSpec[]): string {
  const w = Math.max(...subs.map((s) => s.name.length)) + 4
  return [
    'NAME:',
    `\t${group} - ${summary}`,
    '',
    'USAGE:',
    `\tedgecd ${group} <subcommand> [options]`,
    '',
    'COMMANDS:',
    ...subs.map((s) => `  ${s.name.padEnd(w)}${s.summary}`),
    '',
    `Run 'edgecd ${group} <subcommand> --help' for a subcommand's options.`,
  ].join('\n')
}

/** Dispatches `group sub args...`. */
export async function runGroup(
  group: string,
  summary: string,
  subs: ClientCommandSpec[],
  argv: string[],
  io: CliIo,
): Promise<number> {
  // Global flags may come before the subcommand (main.ts puts them first): the subcommand is the first word.
  let at = -1
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--help' || a === '-h' || !a.startsWith('-')) {
      at = i
      break
    }
    if (globalValueFlags.has(a)) i++
  }
  const sub = at < 0 ? undefined : argv[at]
  const rest = at < 0 ? argv : [...argv.slice(0, at), ...argv.slice(at + 1)]
  const spec = subs.find((s) => s.name === `${group} ${sub}`)
  if (spec === undefined) {
    // As etcdctl: a group without a known subcommand prints its help on stdout and succeeds.
    io.out(groupUsage(group, summary, subs))
    return 0
  }
  return runClientCommand(spec, rest, io)
}

/** A one-shot command described by what it calls and what it prints (see `simpleCommand`). */
export interface SimpleCommand<R> {
  name: string
  args: string
  summary: string
  flags?: Record<string, FlagSpec>
  /** Positional arguments: at least, at most, and the usage error otherwise. */
  nArgs: [min: number, max: number, usage: string]
  call(ctx: Ctx, args: string[], f: Record<string, string | boolean | undefined>): Promise<R>
  /** What -w json prints, as etcdctl's JSON (default: the gateway's answer, `raw`). */
  json?(r: R, args: string[]): unknown
  /** The lines -w simple prints. */
  simple(r: R, args: string[], f: Record<string, string | boolean | undefined>): string[]
}

/**
 * The shape most etcdctl commands share: check the arguments, make one call, print it as JSON (-w json) or as
 * etcdctl's simple lines; no table (`Error: table not supported as output format`, as etcdctl).
 */
export function simpleCommand<R>(c: SimpleCommand<R>): ClientCommandSpec {
  return {
    name: c.name,
    args: c.args,
    summary: c.summary,
    flags: c.flags ?? {},
    async run(ctx, args, f) {
      noTable(ctx)
      needArgs(args, ...c.nArgs)
      const r = await c.call(ctx, args, f)
      const lines =
        ctx.format === 'json' ? [goJson(c.json ? c.json(r, args) : (r as { raw?: unknown }).raw)] : c.simple(r, args, f)
      for (const line of lines) ctx.io.out(line)
      return 0
    },
  }
}

/** Checks the number of positional arguments. */
export function needArgs(args: string[], min: number, max: number, what: string): void {
  if (args.length < min || args.length > max) throw new UsageError(`${what}`)
}

// ---- output helpers ----

/** etcd prints lease and member ids as hex. */
export const hex = (id: string | bigint): string => BigInt(id).toString(16)
/** Lease ids as etcdctl's %016x. */
export const hex16 = (id: string | bigint): string => hex(id).padStart(16, '0')
/** A lease id typed as etcdctl takes it: hex. */
export function parseHexId(s: string | undefined, what: string): string {
  if (s === undefined || !/^(0x)?[0-9a-f]+$/i.test(s))
    throw new UsageError(`bad ${what} ID arg (${s ?? 'missing'}), expecting ID in Hex`)
  return BigInt(s.startsWith('0x') ? s : `0x${s}`).toString()
}

/** Fields that are int64/uint64 in etcd's protos: the gateway quotes them, etcdctl's JSON (Go encoding/json) does not. */
const int64Fields = new Set([
  'cluster_id',
  'member_id',
  'revision',
  'raft_term',
  'create_revision',
  'mod_revision',
  'version',
  'lease',
  'count',
  'deleted',
  'ID',
  'TTL',
  'grantedTTL',
  'dbSize',
  'leader',
  'raftIndex',
  'raftTerm',
  'raftAppliedIndex',
  'dbSizeInUse',
  'compact_revision',
  'watch_id',
  'remaining_bytes',
  'id',
  'ttl',
  'granted-ttl',
  'authRevision',
])
const enums: Record<string, Record<string, number>> = {
  type: { PUT: 0, DELETE: 1 },
  permType: { READ: 0, WRITE: 1, READWRITE: 2 },
}

/** JSON as etcdctl prints it: int64 unquoted, enums as numbers, gateway key order kept. */
export function goJson(v: unknown, key?: string): string {
  if (Array.isArray(v)) return `[${v.map((x) => goJson(x, key)).join(',')}]`
  if (v !== null && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${JSON.stringify(k)}:${goJson(x, k)}`)
      .join(',')}}`
  if (typeof v === 'string' && key !== undefined) {
    if (int64Fields.has(key) && /^-?\d+$/.test(v)) return v
    const e = enums[key]?.[v]
    if (e !== undefined) return String(e)
  }
  return JSON.stringify(v)
}

/** The header fields flattened, as etcdctl's JSON for lease answers (Go embeds *ResponseHeader). */
export function flatHeader(raw: Record<string, unknown> | undefined): Record<string, unknown> {
  return { ...((raw?.header as Record<string, unknown>) ?? {}) }
}

/** A table like etcdctl's (olekukonko/tablewriter: centered upper-case headers, right-aligned cells). */
export function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = `+${w.map((n) => '-'.repeat(n + 2)).join('+')}+`
  const center = (s: string, n: number) => {
    const l = Math.floor((n - s.length) / 2)
    return ' '.repeat(l) + s + ' '.repeat(n - s.length - l)
  }
  const out = [line, `|${headers.map((h, i) => ` ${center(h.toUpperCase(), w[i]!)} `).join('|')}|`, line]
  for (const r of rows) out.push(`|${w.map((n, i) => ` ${(r[i] ?? '').padStart(n)} `).join('|')}|`)
  out.push(line)
  return out.join('\n')
}

/** Bytes as go-humanize's Bytes (SI units: "20 kB"), which etcdctl uses for the db size. */
export function humanBytes(s: number): string {
  if (s < 10) return `${s} B`
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB']
  const e = Math.floor(Math.log(s) / Math.log(1000))
  const val = Math.floor((s / 1000 ** e) * 10 + 0.5) / 10
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)} ${units[e]}`
}

/** A duration as Go's time.Duration prints it ("2.527462ms"). */
export function goDuration(ms: number): string {
  const ns = Math.round(ms * 1e6)
  const trim = (x: string) => x.replace(/\.?0+$/, '')
  if (ns < 1000) return `${ns}ns`
  if (ns < 1e6) return `${trim((ns / 1e3).toFixed(3))}µs`
  if (ns < 1e9) return `${trim((ns / 1e6).toFixed(6))}ms`
  return `${trim((ns / 1e9).toFixed(9))}s`
}

/** Throws the etcdctl error for a format a command does not print. */
export function noTable(ctx: Ctx): void {
  if (ctx.format === 'table') throw new Error('table not supported as output format')
}
