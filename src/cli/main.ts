/**
 * The `edgecd` command line: `bin/edgecd.js` (and `npm start`) land here. This file is a Node entry point, so it may
 * use `node:*` freely; the commands it dispatches to must keep runtime specifics in `src/runtime/node`.
 *
 * Exit codes follow the usual convention: 0 success, 1 the command failed, 2 the command line was wrong.
 */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { globalFlags, globalValueFlags } from './global-flags.js'
import { writeOut } from './output.js'

// bin/edgecd.js hands the launcher's deferred NODE_EXTRA_CA_CERTS over through the bundle's exports.
export { deferExtraCaCerts } from './extra-ca.js'

/** Exit status of `edgecd serve` for a bad flag or value (etcd itself exits 2 there, as Go's flag package does). */
export const exitUsage = 2
/** etcdctl's exit codes (etcdctl/ctlv3/command/error.go): a failed command, an unsupported feature, bad arguments. */
export const exitError = 1
export const exitBadFeature = 4
export const exitBadArgs = 128

/** What a command writes and which streams it writes to; injected so tests can capture output. */
export interface CliIo {
  out(line: string): void
  err(line: string): void
}

const consoleIo: CliIo = {
  out: (line) => writeOut(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** The package version, read from package.json so there is exactly one place to bump it. */
export function version(): string {
  // require, not an ESM import of node:fs (whose namespace loads fs's streams at start-up): see bin/edgecd.js.
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string }
  return pkg.version
}

interface Command {
  summary: string
  run(args: string[], io: CliIo): Promise<number> | number
  /** A client command: takes the global client flags (--endpoints, -w, ...) before or after its name. */
  client?: boolean
}

/**
 * A client command whose spec lives in another module (see client-command.ts). Every command's module is imported
 * only when that command runs, so `edgecd get` never loads the member, hono or ws: start-up time is what etcdctl
 * users compare us with.
 */
const clientCommand = (
  summary: string,
  load: () => Promise<import('./client-command.js').ClientCommandSpec>,
): Command => ({
  summary,
  client: true,
  run: async (args, io) => {
    const [spec, { runClientCommand }] = await Promise.all([load(), import('./client-command.js')])
    return runClientCommand(spec, args, io)
  },
})

const commands: Record<string, Command> = {
  serve: {
    summary: 'run one member (etcd flags: --name, --data-dir, --listen-client-urls, ...; see serve --help)',
    run: async (args, io) => (await import('./serve.js')).runServe(args, io),
  },
  put: clientCommand('Puts the given key into the store', async () => (await import('./kv.js')).put),
  get: clientCommand('Gets the key or a range of keys', async () => (await import('./kv.js')).get),
  del: clientCommand(
    'Removes the specified key or range of keys [key, range_end)',
    async () => (await import('./kv.js')).del,
  ),
  txn: clientCommand('Txn processes all the requests in one transaction', async () => (await import('./kv.js')).txn),
  watch: clientCommand(
    'Watches events stream on keys or prefixes (until Ctrl-C)',
    async () => (await import('./kv.js')).watch,
  ),
  compaction: clientCommand('Compacts the event history in etcd', async () => (await import('./kv.js')).compaction),
  lease: {
    summary: 'lease grant|revoke|timetolive|list|keep-alive',
    client: true,
    run: async (args, io) => (await import('./lease.js')).runLease(args, io),
  },
  member: {
    summary: 'member list|add|remove|promote|update',
    client: true,
    run: async (args, io) => (await import('./cluster.js')).runMember(args, io),
  },
  endpoint: {
    summary: 'endpoint status|health (over every --endpoints)',
    client: true,
    run: async (args, io) => (await import('./cluster.js')).runEndpoint(args, io),
  },
  snapshot: {
    summary: 'snapshot save FILE | snapshot restore FILE [flags]',
    client: true,
    run: async (args, io) => (await import('./snapshot.js')).runSnapshot(args, io),
  },
  lock: clientCommand(
    'Acquires a named lock (prints the lock key and holds it until Ctrl-C, or runs the command while holding it)',
    async () => (await import('./lock-elect.js')).lock,
  ),
  elect: clientCommand(
    'Observes and participates in leader election (campaigns with the proposal, or observes with -l)',
    async () => (await import('./lock-elect.js')).elect,
  ),
  user: {
    summary: 'user add|get|list|delete|passwd|grant-role|revoke-role',
    client: true,
    run: async (args, io) => (await import('./auth.js')).runUser(args, io),
  },
  role: {
    summary: 'role add|get|list|delete|grant-permission|revoke-permission',
    client: true,
    run: async (args, io) => (await import('./auth.js')).runRole(args, io),
  },
  auth: {
    summary: 'auth enable|disable|status',
    client: true,
    run: async (args, io) => (await import('./auth.js')).runAuth(args, io),
  },
  help: {
    summary: 'show this help',
    run(_args, io) {
      io.out(usage())
      return 0
    },
  },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length)) + 4
  return [
    "edgecd: a Raft-replicated key-value store that speaks etcd's v3 API",
    '',
    'Usage:',
    '  edgecd <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    'Options:',
    '  -h, --help      show this help',
    '  -v, --version   print the version',
    '',
    "Client commands take etcdctl's global flags, before or after the command name:",
    '  --endpoints URLS (default http://127.0.0.1:2379), --user name[:password], --password, --token,',
    '  -w simple|json|table, --dial-timeout 2s, --command-timeout 5s; or EDGECD_ENDPOINTS, EDGECD_USER, ...',
    '  See docs/cli.md.',
  ].join('\n')
}

/**
 * Runs the CLI on argv (without the node and script paths) and returns the exit status. It never calls
 * process.exit itself, so it can be tested in-process.
 */
export async function main(argv: string[], io: CliIo = consoleIo): Promise<number> {
  // Global options come before the command name; everything from the command name on belongs to the command.
  // Client flags that take a value (`--endpoints URL`) may be given as two words, so their value is skipped.
  let at = -1
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (!a.startsWith('-')) {
      at = i
      break
    }
    if (globalValueFlags.has(a)) i++
  }
  const globalArgs = at < 0 ? argv : argv.slice(0, at)
  const [name, ...rest] = at < 0 ? [] : argv.slice(at)
  let values: ReturnType<typeof parseGlobal>['values']
  const clientArgs = globalArgs.filter(
    (a, i) => !['-h', '--help', '-v', '--version'].includes(a) || globalValueFlags.has(globalArgs[i - 1] ?? ''),
  )
  try {
    values = parseGlobal(globalArgs).values
  } catch (err) {
    io.err(`Error: ${(err as Error).message}`)
    io.err("Run 'edgecd --help' for usage.")
    return exitError
  }
  if (values.version) {
    io.out(version())
    return 0
  }
  if (values.help) {
    io.out(usage())
    return 0
  }
  if (name === undefined) {
    // As etcdctl: no command prints the help on stdout and succeeds.
    io.out(usage())
    return 0
  }
  const command = commands[name]
  if (command === undefined) {
    io.err(`Error: unknown command "${name}" for "edgecd"`)
    io.err(`Commands: ${Object.keys(commands).join(', ')}. Run 'edgecd --help' for usage.`)
    return exitError
  }
  if (clientArgs.length > 0 && !command.client) {
    io.err(`Error: '${name}' takes no client flags (${clientArgs.join(' ')})`)
    return exitError
  }
  return command.run(command.client ? [...clientArgs, ...rest] : rest, io)
}

function globalParseOptions(): Record<string, { type: 'string' | 'boolean'; short?: string }> {
  const o: Record<string, { type: 'string' | 'boolean'; short?: string }> = {}
  for (const [n, f] of Object.entries(globalFlags)) o[n] = f.short ? { type: f.type, short: f.short } : { type: f.type }
  return o
}

/** The global options (node:util parseArgs: strict, so a mistyped option is an error, not ignored). */
function parseGlobal(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      ...globalParseOptions(),
    },
    allowPositionals: false,
    strict: true,
  })
}

// Run when started directly (`node --import tsx src/cli/main.ts`, i.e. `npm start`); bin/edgecd.js imports and calls
// main() itself (the name test first: in the bundle import.meta.url is computed when read, through node:url).
const entry = process.argv[1]
if (entry !== undefined && /main\.[jt]s$/.test(entry) && import.meta.url === pathToFileURL(entry).href) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code
  })
}
