/**
 * The flags of `edgecd serve` and their EDGECD_* variables, parsed into a ServerConfig. Shared by every runtime's
 * entry (src/cli/serve.ts on Node, src/runtime/deno/main.ts on Deno): it needs only node:util's parseArgs, which
 * Deno provides too.
 */
import { parseArgs } from 'node:util'
import { type ServerConfig, serverDefaults } from '../etcdserver/config.js'
import { bool, envName, serveFlags } from './serve-flag-table.js'

export { configFromEnv, envName, serveFlags } from './serve-flag-table.js'

/** The flags' help; `command` is how the user started this entry. */
export function serveUsage(command = 'edgecd serve'): string {
  const w = Math.max(...Object.keys(serveFlags).map((f) => f.length)) + 4
  const lines = Object.entries(serveFlags).map(([flag, [field, , help]]) => {
    const d = serverDefaults[field]
    return `  --${flag.padEnd(w)}${help} (default ${JSON.stringify(Array.isArray(d) ? d.join(',') : d)})`
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

/** Builds the configuration from argv and the environment; throws ConfigError or parseArgs' errors. */
export function serveConfig(argv: string[], env: Record<string, string | undefined>): ServerConfig | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  }
  for (const flag of Object.keys(serveFlags)) options[flag] = { type: 'string' }
  // Boolean flags as Go's flag package takes them: `--client-cert-auth` alone means true, or `--flag=true|false`.
  const args = argv.map((a) =>
    /^--?[a-z-]+$/.test(a) && serveFlags[a.replace(/^--?/, '')]?.[1] === bool ? `${a}=true` : a,
  )
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false })
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
