/**
 * `edgecd serve`: runs one member. Flags use etcd's names; each can also come from an environment variable
 * EDGECD_<FLAG> (upper case, dashes as underscores), e.g. EDGECD_DATA_DIR. A flag beats its variable.
 */

import { ConfigError, type ServerConfig } from '../etcdserver/config.js'
import { createLogger } from '../runtime/node/log.js'
import { startNodeMember } from '../runtime/node/serve.js'
import type { CliIo } from './main.js'
import { serveConfig, serveUsage } from './serve-flags.js'

export { serveConfig, serveFlags, serveUsage } from './serve-flags.js'

export async function runServe(argv: string[], io: CliIo): Promise<number> {
  let config: ServerConfig | 'help'
  try {
    config = serveConfig(argv, process.env)
  } catch (err) {
    io.err(`edgecd serve: ${(err as Error).message}`)
    io.err("Run 'edgecd serve --help' for the flags.")
    return 2
  }
  if (config === 'help') {
    io.out(serveUsage())
    return 0
  }
  const log = createLogger(config.logLevel)
  let running: Awaited<ReturnType<typeof startNodeMember>>
  try {
    running = await startNodeMember(config, log, {
      onFatal: () => {
        process.exitCode = 1
        // The member stopped itself (a failed fsync, or it was removed from the cluster): exit once it has.
        setTimeout(() => process.kill(process.pid, 'SIGTERM'), 100)
      },
    })
  } catch (err) {
    const e = err as Error
    io.err(`edgecd serve: ${e instanceof ConfigError ? '' : 'cannot start: '}${e.message}`)
    return e instanceof ConfigError ? 2 : 1
  }
  io.out(`edgecd: member ${config.name} serving on ${running.urls.join(', ')} (data in ${config.dataDir})`)
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('received signal', { signal: sig })
      running.stop().then(resolve, resolve)
    }
    process.once('SIGTERM', () => onSignal('SIGTERM'))
    process.once('SIGINT', () => onSignal('SIGINT'))
  })
  return process.exitCode === 1 ? 1 : 0
}
