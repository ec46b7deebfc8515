/**
 * The quick path of `edgecd get`: the common one-shot read (`edgecd [--endpoints URLS] get KEY [--prefix]
 * [--keys-only] [--print-value-only]` over plain http) in a bundle of its own (dist/cli/quick-get.cjs, about a
 * sixth of the full CLI's), which bin/edgecd.js tries before the full CLI.
 *
 * On this machine (a VM where every page of memory a process touches first costs about 10 µs) a one-shot call pays
 * for every byte of JavaScript it reads and every function V8 deserializes from the code cache: loading the full
 * CLI's bundle (every command, the whole client, node:util's parseArgs) cost a `get` about 8 ms of CPU before it did
 * anything. This path loads only what that read runs, and it runs the same code as the full CLI where it matters:
 * the client's Transport (fail-over over the endpoints, timeouts, retries and error messages), rangeRequest and
 * decodeRange, the CLI's fetch (http-fetch.ts), and etcdctl's output (output.ts). What it adds is the reading of a
 * command line it is sure of; anything else it leaves to the full CLI, which then does all the work itself:
 *   - another command, another flag or form (`--help`, `-w`, `--limit`, `--flag=value` but for `--endpoints=`, a
 *     range end, `--`...), or a flag's value that begins with `-`;
 *   - TLS or authentication, by flag or environment (`EDGECD_*`/`ETCDCTL_*` USER, PASSWORD, TOKEN, CACERT, CERT,
 *     KEY, INSECURE_SKIP_TLS_VERIFY), and WRITE_OUT, DIAL_TIMEOUT or COMMAND_TIMEOUT in the environment;
 *   - an endpoint that is not written as `http://IP:port` (https, a host name, a path or a trailing slash: the full
 *     CLI normalises those).
 * It returns before any request is sent in each of those cases, so the full CLI never repeats a request; once sent,
 * the answer or error it prints is the full CLI's own (the same Transport, the same `Error: ...` line and exit 1).
 * EDGECD_CLI_NO_QUICK=1 turns it off (the tests compare both paths).
 */
import type { RangeOptions } from '../client/requests.js'
import { rangeRequest } from '../client/requests.js'
import { Transport } from '../client/transport.js'
import { decodeRange } from '../client/types.js'
import { nodeFetch } from './http-fetch.js'
import { errorLine, kvLines, writeOut } from './output.js'

/** Environment variables (after EDGECD_ or ETCDCTL_) that make a `get` something the full CLI handles. */
const fullOnlyEnv = [
  'USER',
  'PASSWORD',
  'TOKEN',
  'CACERT',
  'CERT',
  'KEY',
  'INSECURE_SKIP_TLS_VERIFY',
  'WRITE_OUT',
  'DIAL_TIMEOUT',
  'COMMAND_TIMEOUT',
]

/** An endpoint the full CLI would take as it is: http, an IPv4 or bracketed IPv6 literal, a port, nothing more. */
const plainEndpoint = /^http:\/\/(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/

/** The full CLI's defaults (client-command.ts: --endpoints, --dial-timeout 2s, --command-timeout 5s). */
const defaultEndpoint = 'http://127.0.0.1:2379'
const dialTimeoutMs = 2_000
const commandTimeoutMs = 5_000

/** What quickGet understood of a command line: the endpoints, the key and get's flags. */
export interface QuickGet {
  endpoints: string[]
  key: string
  prefix: boolean
  keysOnly: boolean
  valueOnly: boolean
}

/** Reads a command line the quick path takes; undefined for anything it leaves to the full CLI. */
export function parseQuickGet(argv: string[], env: NodeJS.ProcessEnv = process.env): QuickGet | undefined {
  for (const name of fullOnlyEnv)
    if (env[`EDGECD_${name}`] !== undefined || env[`ETCDCTL_${name}`] !== undefined) return undefined
  let endpoints: string | undefined
  const words: string[] = []
  const f = { prefix: false, keysOnly: false, valueOnly: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--endpoints') {
      const v = argv[++i]
      if (v === undefined || v.startsWith('-')) return undefined
      endpoints = v
    } else if (a.startsWith('--endpoints=')) endpoints = a.slice('--endpoints='.length)
    else if (a === '--prefix') f.prefix = true
    else if (a === '--keys-only') f.keysOnly = true
    else if (a === '--print-value-only') f.valueOnly = true
    else if (a.startsWith('-')) return undefined
    else words.push(a)
  }
  // The command name first (global flags may come before it; get's flags anywhere), then exactly one key.
  if (words.length !== 2 || words[0] !== 'get') return undefined
  if (f.prefix && argv.indexOf('--prefix') < argv.indexOf('get')) return undefined
  if (f.keysOnly && argv.indexOf('--keys-only') < argv.indexOf('get')) return undefined
  if (f.valueOnly && argv.indexOf('--print-value-only') < argv.indexOf('get')) return undefined
  const list = (endpoints ?? env.EDGECD_ENDPOINTS ?? env.ETCDCTL_ENDPOINTS ?? defaultEndpoint).split(',')
  if (!list.every((e) => plainEndpoint.test(e))) return undefined
  return { endpoints: list, key: words[1]!, ...f }
}

/**
 * Runs `edgecd get` when the command line is one the quick path takes, and returns its exit status; undefined
 * (nothing sent, nothing printed) when the full CLI is to run it.
 */
export async function quickGet(argv: string[]): Promise<number | undefined> {
  const q = parseQuickGet(argv)
  if (q === undefined) return undefined
  // As kv.ts's get: the same RangeOptions for the same flags, the same call as Client.range.
  const o: RangeOptions = {}
  if (q.prefix) o.prefix = true
  o.limit = 0
  o.revision = 0
  o.keysOnly = q.keysOnly
  o.countOnly = false
  const transport = new Transport({ endpoints: q.endpoints, dialTimeoutMs, commandTimeoutMs, fetch: nodeFetch() })
  let kvs: ReturnType<typeof decodeRange>['kvs']
  try {
    const r = decodeRange(
      await transport.call('/v3/kv/range', rangeRequest(q.key, o), { idempotent: true, what: 'range' }),
    )
    kvs = r.kvs
  } catch (err) {
    process.stderr.write(`${errorLine(err)}\n`)
    return 1
  }
  // A write per line, as the full CLI (and etcdctl) print: a reader that goes away mid-way (`| head -1`) makes a
  // later write fail, and the call exit 141 (output.ts), however much the pipe's buffers could have held at once.
  for (const kv of kvs)
    for (const line of kvLines(kv, { valueOnly: q.valueOnly, keysOnly: q.keysOnly })) writeOut(`${line}\n`)
  return 0
}
