/**
 * `deno run -A src/runtime/deno/main.ts serve [flags]` (or `npm run start:deno -- [flags]`): runs one member on Deno
 * with the flags and EDGECD_* variables of `edgecd serve` (src/cli/serve-flags.ts). SIGTERM and SIGINT stop it
 * cleanly. Exit codes as `edgecd serve`: 0 after a clean stop, 2 for a configuration error, 1 when the member could
 * not start or stopped on a fatal error.
 */

import { serveConfig, serveUsage } from '../../cli/serve-flags.js'
import { ConfigError, type ServerConfig } from '../../etcdserver/config.js'
import { deno, writeAllSync } from './deno-api.js'
import { createDenoLogger, type RunningDenoMember, startDenoMember } from './serve.js'

const usageCommand = 'deno run -A src/runtime/deno/main.ts serve'

async function main(args: string[]): Promise<number> {
  const out = (line: string) => writeAllSync(deno.stdout, `${line}\n`)
  const err = (line: string) => writeAllSync(deno.stderr, `${line}\n`)
  const [command, ...rest] = args
  if (command !== 'serve') {
    if (command === '--help' || command === '-h' || command === 'help') {
      out(serveUsage(usageCommand))
      return 0
    }
    err(`edgecd (deno): unknown command ${JSON.stringify(command ?? '')}; this entry runs only "serve"`)
    err(`Usage: ${usageCommand} [flags]`)
    return 2
  }
  let config: ServerConfig | 'help'
  try {
    config = serveConfig(rest, deno.env.toObject())
  } catch (e) {
    err(`edgecd serve: ${(e as Error).message}`)
    err(`Run '${usageCommand} --help' for the flags.`)
    return 2
  }
  if (config === 'help') {
    out(serveUsage(usageCommand))
    return 0
  }
  const log = createDenoLogger(config.logLevel)
  let fatal = false
  let finish = () => {}
  const finished = new Promise<void>((resolve) => {
    finish = resolve
  })
  let running: RunningDenoMember | undefined
  try {
    running = await startDenoMember(config, log, {
      // The member stopped itself (a failed fsync, or it was removed from the cluster): exit once it has.
      onFatal: () => {
        fatal = true
        setTimeout(() => running?.stop().then(finish, finish), 0)
      },
    })
  } catch (e) {
    const error = e as Error
    err(`edgecd serve: ${error instanceof ConfigError ? '' : 'cannot start: '}${error.message}`)
    return error instanceof ConfigError ? 2 : 1
  }
  const member = running
  out(`edgecd: member ${config.name} serving on ${member.urls.join(', ')} (data in ${config.dataDir}) on Deno`)
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    deno.addSignalListener(signal, () => {
      log.info('received signal', { signal })
      member.stop().then(finish, finish)
    })
  if (fatal) member.stop().then(finish, finish)
  await finished
  return fatal ? 1 : 0
}

deno.exit(await main(deno.args))
