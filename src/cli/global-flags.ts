/**
 * The flags every client command takes (etcdctl's global flags). Kept apart from client-command.ts so main.ts can
 * find the command name without importing the client: every command's module loads only when it runs.
 */

/** A flag of a command. */
export interface FlagSpec {
  type: 'string' | 'boolean'
  short?: string
  help: string
  default?: string
}

/** Global flags of every client command (as etcdctl's). */
export const globalFlags: Record<string, FlagSpec> = {
  endpoints: {
    type: 'string',
    help: 'comma-separated member URLs (env EDGECD_ENDPOINTS)',
    default: 'http://127.0.0.1:2379',
  },
  token: { type: 'string', help: 'bearer token sent with every request (env EDGECD_TOKEN)' },
  'write-out': {
    type: 'string',
    short: 'w',
    help: 'output format: simple, json or table (env EDGECD_WRITE_OUT)',
    default: 'simple',
  },
  'dial-timeout': { type: 'string', help: 'timeout to reach an endpoint (env EDGECD_DIAL_TIMEOUT)', default: '2s' },
  'command-timeout': {
    type: 'string',
    help: 'timeout of a short command, retries included (env EDGECD_COMMAND_TIMEOUT)',
    default: '5s',
  },
  user: {
    type: 'string',
    help: 'username[:password] for authentication (prompts for the password on a terminal if not given; env EDGECD_USER)',
  },
  password: {
    type: 'string',
    help: 'password for authentication (then --user is the whole user name; env EDGECD_PASSWORD)',
  },
  cacert: {
    type: 'string',
    help: 'verify certificates of TLS-enabled secure servers using this CA bundle (env EDGECD_CACERT)',
  },
  cert: { type: 'string', help: 'identify secure client using this TLS certificate file (env EDGECD_CERT)' },
  key: { type: 'string', help: 'identify secure client using this TLS key file (env EDGECD_KEY)' },
  'insecure-skip-tls-verify': {
    type: 'boolean',
    help: 'skip server certificate verification (CAUTION: for testing only; env EDGECD_INSECURE_SKIP_TLS_VERIFY)',
  },
}

/** Global flags that take a value (main.ts needs them to find where the command name starts). */
export const globalValueFlags = new Set(
  Object.entries(globalFlags)
    .filter(([, f]) => f.type === 'string')
    .flatMap(([n, f]) => [`--${n}`, ...(f.short ? [`-${f.short}`] : [])]),
)
