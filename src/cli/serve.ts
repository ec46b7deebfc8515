/**
 * `edgecd serve`: runs one member. Flags use etcd's names; each can also come from an environment variable
 * EDGECD_<FLAG> (upper case, dashes as underscores), e.g. EDGECD_DATA_DIR. A flag beats its variable.
 *
 * `--runtime node|deno|workerd` (or EDGECD_RUNTIME) picks where the member runs, with the same flags and variables:
 * in this Node process (the default), in a Deno child process (src/runtime/deno/main.ts), or as a Durable Object in
 * a local workerd (src/runtime/node/workerd-member.ts, through Miniflare). A child dies with this process, even on
 * SIGKILL.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, type ServerConfig } from '../etcdserver/config.js'
import { guardChildren } from '../runtime/node/child-guard.js'
import { createLogger } from '../runtime/node/log.js'
import { startNodeMember } from '../runtime/node/serve.js'
import { startWorkerdMember } from '../runtime/node/workerd-member.js'
import type { CliIo } from './main.js'
import { serveConfig, serveFlags, serveUsage } from './serve-flags.js'

export { serveConfig, serveFlags, serveUsage } from './serve-flags.js'

export const runtimes = ['node', 'deno', 'workerd'] as const
export type Runtime = (typeof runtimes)[number]

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..')

/** `--runtime`'s help line, padded as serveUsage pads the others (the longest flag name + 4). */
const runtimeHelp = `  --${'runtime'.padEnd(Math.max(...Object.keys(serveFlags).map((f) => f.length)) + 4)}where the member runs: node (this process), deno (a Deno child process) or workerd (a Durable Object in a local workerd, data under --data-dir) (default "node")`

/** Takes `--runtime X` / `--runtime=X` out of argv; EDGECD_RUNTIME when absent. */
export function splitRuntime(
  argv: string[],
  env: Record<string, string | undefined>,
): { runtime: Runtime; rest: string[] } {
  const rest: string[] = []
  let value: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const m = /^--?runtime(?:=(.*))?$/.exec(a)
    if (!m) {
      rest.push(a)
      continue
    }
    value = m[1] ?? argv[++i]
    if (value === undefined) throw new ConfigError('--runtime needs a value: node, deno or workerd')
  }
  value ??= env.EDGECD_RUNTIME ?? 'node'
  if (!(runtimes as readonly string[]).includes(value))
    throw new ConfigError(`--runtime must be node, deno or workerd, got ${JSON.stringify(value)}`)
  return { runtime: value as Runtime, rest }
}

/** Waits for SIGTERM or SIGINT, then runs `stop`. */
function untilSignal(log: { info(m: string, f?: Record<string, unknown>): void }, stop: () => Promise<void>) {
  return new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('received signal', { signal: sig })
      stop().then(resolve, resolve)
    }
    process.once('SIGTERM', () => onSignal('SIGTERM'))
    process.once('SIGINT', () => onSignal('SIGINT'))
  })
}

/** The Deno entry: the TypeScript source in a checkout, the compiled module in an installed package. */
function denoMain(): string {
  const src = join(repoRoot, 'src/runtime/deno/main.ts')
  return existsSync(src) ? src : join(repoRoot, 'dist/runtime/deno/main.js')
}

/** Runs src/runtime/deno/main.ts with the same arguments in a Deno child; its exit code is ours. */
function runDeno(rest: string[]): Promise<number> {
  const deno = process.env.EDGECD_DENO_BIN ?? join(repoRoot, 'node_modules/.bin/deno')
  const child = spawn(
    deno,
    [
      'run',
      `--config=${join(repoRoot, 'deno.json')}`,
      '--cached-only',
      '--allow-net',
      '--allow-read',
      '--allow-write',
      '--allow-env',
      '--allow-ffi',
      denoMain(),
      'serve',
      ...rest,
    ],
    { stdio: 'inherit', env: { DENO_NO_UPDATE_CHECK: '1', ...process.env } },
  )
  if (child.pid !== undefined) guardChildren([child.pid])
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig)
  const onTerm = forward('SIGTERM')
  const onInt = forward('SIGINT')
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  return new Promise((resolve) => {
    child.once('error', (err) => {
      process.stderr.write(`edgecd serve: cannot start deno (${deno}): ${err.message}\n`)
      resolve(1)
    })
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      resolve(code ?? (signal ? 1 : 0))
    })
  })
}

export async function runServe(argv: string[], io: CliIo): Promise<number> {
  let config: ServerConfig | 'help'
  let runtime: Runtime
  let rest: string[]
  try {
    ;({ runtime, rest } = splitRuntime(argv, process.env))
    config = serveConfig(rest, process.env)
  } catch (err) {
    io.err(`edgecd serve: ${(err as Error).message}`)
    io.err("Run 'edgecd serve --help' for the flags.")
    return 2
  }
  if (config === 'help') {
    const usage = serveUsage().split('\n')
    const at = usage.indexOf('Flags:') + 1
    io.out([...usage.slice(0, at), runtimeHelp, ...usage.slice(at)].join('\n'))
    return 0
  }
  if (runtime === 'deno') return runDeno(rest)
  const log = createLogger(config.logLevel)
  if (runtime === 'workerd') {
    let running: Awaited<ReturnType<typeof startWorkerdMember>>
    try {
      running = await startWorkerdMember(config, log)
    } catch (err) {
      const e = err as Error
      io.err(`edgecd serve: ${e instanceof ConfigError ? '' : 'cannot start: '}${e.message}`)
      return e instanceof ConfigError ? 2 : 1
    }
    io.out(`edgecd: member ${config.name} serving on ${running.urls.join(', ')} (data in ${config.dataDir}) on workerd`)
    await untilSignal(log, () => running.stop())
    return 0
  }
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
  await untilSignal(log, () => running.stop())
  return process.exitCode === 1 ? 1 : 0
}
