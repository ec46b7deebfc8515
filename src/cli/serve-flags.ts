/**
 * The flags of `edgecd serve` and their EDGECD_* variables, parsed into a ServerConfig. Shared by every runtime's
 * entry (src/cli/serve.ts on Node, src/runtime/deno/main.ts on Deno): it needs only node:util's parseArgs, which
 * Deno provides too.
 */
import { parseArgs } from 'node:util'
import { ConfigError, type ServerConfig, serverDefaults } from '../etcdserver/config.js'
import { bool, duration, envName, goDuration, serveFlags } from './serve-flag-table.js'

export { configFromEnv, envName, serveFlags } from './serve-flag-table.js'

/** The flags' help; `command` is how the user started this entry. */
export function serveUsage(command = 'edgecd serve'): string {
  const w = Math.max(...Object.keys(serveFlags).map((f) => f.length)) + 4
  const lines = Object.entries(serveFlags).map(([flag, [field, conv, help]]) => {
    const d = serverDefaults[field]
    // A duration flag's default as the flag takes it (a Go duration), not the config's milliseconds.
    const shown = conv === duration && typeof d === 'number' ? goDuration(d) : Array.isArray(d) ? d.join(',') : d
    return `  --${flag.padEnd(w)}${help} (default ${JSON.stringify(shown)})`
  })
  return [
    `Usage: ${command} [flags]`,
    '',
    'Runs one member. Every flag may also be set as EDGECD_<FLAG>, e.g. EDGECD_DATA_DIR.',
    '',
    'Flags:',
    ...lines,
  ].join('\n')
}

/**
 * etcd's flags as people type them: Go's flag package takes `-flag` as well as `--flag` (`-data-dir=x`, `-name x`).
 * A single dash before a word becomes two; `-h` stays the short help.
 */
function normalizeDashes(argv: string[]): string[] {
  return argv.map((a) => {
    // Any single-dash word of two or more letters is a long flag to Go (a mistyped one then gets its suggestion).
    return /^-[a-z][a-z0-9-]+(=.*)?$/.test(a) ? `-${a}` : a
  })
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]!
}

/** The known flag closest to a mistyped one, when it is close enough to be what was meant. */
export function suggestFlag(typed: string): string | undefined {
  const name = typed.replace(/^-+/, '').replace(/=.*$/, '')
  let best: string | undefined
  let bestD = Number.POSITIVE_INFINITY
  for (const f of [...Object.keys(serveFlags), 'help']) {
    const d = editDistance(name, f)
    if (d < bestD) {
      best = f
      bestD = d
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 4)) ? `--${best}` : undefined
}

/** Builds the configuration from argv and the environment; throws ConfigError or parseArgs' errors. */
export function serveConfig(argv: string[], env: Record<string, string | undefined>): ServerConfig | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const flag of Object.keys(serveFlags)) options[flag] = { type: 'string' }
  // Boolean flags as Go's flag package takes them: `--client-cert-auth` alone means true, or `--flag=true|false`.
  const args = normalizeDashes(argv).map((a) =>
    /^--?[a-z-]+$/.test(a) && serveFlags[a.replace(/^--?/, '')]?.[1] === bool ? `${a}=true` : a,
  )
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values as typeof values
  } catch (err) {
    const e = err as Error & { code?: string }
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const typed = /'([^']+)'/.exec(e.message)?.[1] ?? ''
      const hint = suggestFlag(typed)
      throw new ConfigError(`unknown flag ${typed}${hint ? ` (did you mean ${hint}?)` : ''}`)
    }
    throw err
  }
  if (values.help) return 'help'
  const c: ServerConfig = { ...serverDefaults }
  for (const [flag, [field, conv]] of Object.entries(serveFlags)) {
    const raw = (values[flag] as string | undefined) ?? env[envName(flag)]
    if (raw !== undefined) (c as unknown as Record<string, unknown>)[field] = conv(raw, flag)
  }
  // As etcd: advertising defaults follow the listen URLs when only those are given.
  if (values['listen-client-urls'] !== undefined || env.EDGECD_LISTEN_CLIENT_URLS !== undefined) {
    if (values['advertise-client-urls'] === undefined && env.EDGECD_ADVERTISE_CLIENT_URLS === undefined)
      c.advertiseClientUrls = c.listenClientUrls
    if (values['initial-advertise-peer-urls'] === undefined && env.EDGECD_INITIAL_ADVERTISE_PEER_URLS === undefined)
      c.initialAdvertisePeerUrls = c.advertiseClientUrls
  }
  return c
}
