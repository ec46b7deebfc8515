/**
 * The `edgecd` command line: `bin/edgecd.js` (and `npm start`) land here. This file is a Node entry point, so it may
 * use `node:*` freely; the commands it dispatches to must keep runtime specifics in `src/runtime/node`.
 *
 * Exit codes follow the usual convention: 0 success, 1 the command failed, 2 the command line was wrong.
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { runServe } from './serve.js'

/** Exit status for a bad command line (unknown command or option), as getopt-style tools do. */
export const exitUsage = 2

/** What a command writes and which streams it writes to; injected so tests can capture output. */
export interface CliIo {
  out(line: string): void
  err(line: string): void
}

const consoleIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** The package version, read from package.json so there is exactly one place to bump it. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

interface Command {
  summary: string
  run(args: string[], io: CliIo): Promise<number> | number
}

const commands: Record<string, Command> = {
  serve: {
    summary: 'run one member (etcd flags: --name, --data-dir, --listen-client-urls, ...; see serve --help)',
    run: (args, io) => runServe(args, io),
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
  ].join('\n')
}

/**
 * Runs the CLI on argv (without the node and script paths) and returns the exit status. It never calls
 * process.exit itself, so it can be tested in-process.
 */
export async function main(argv: string[], io: CliIo = consoleIo): Promise<number> {
  // Global options come before the command name; everything from the command name on belongs to the command.
  const at = argv.findIndex((a) => !a.startsWith('-'))
  const globalArgs = at < 0 ? argv : argv.slice(0, at)
  const [name, ...rest] = at < 0 ? [] : argv.slice(at)
  let values: ReturnType<typeof parseGlobal>['values']
  try {
    values = parseGlobal(globalArgs).values
  } catch (err) {
    io.err(`edgecd: ${(err as Error).message}`)
    io.err("Run 'edgecd --help' for usage.")
    return exitUsage
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
    io.err(usage())
    return exitUsage
  }
  const command = commands[name]
  if (command === undefined) {
    io.err(`edgecd: unknown command '${name}'`)
    io.err(`Commands: ${Object.keys(commands).join(', ')}. Run 'edgecd --help' for usage.`)
    return exitUsage
  }
  return command.run(rest, io)
}

/** The global options (node:util parseArgs: strict, so a mistyped option is an error, not ignored). */
function parseGlobal(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
    allowPositionals: false,
    strict: true,
  })
}

// Run when started directly (`node --import tsx src/cli/main.ts`, i.e. `npm start`); bin/edgecd.js imports and calls
// main() itself.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2))
}
