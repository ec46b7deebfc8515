/**
 * `edgecd serve --runtime workerd`: runs one member as a Durable Object in a local workerd process, through
 * Miniflare's API from Node. The member code is the Worker of src/runtime/workers (bundled here with esbuild, cbor-x's
 * no-eval build); this file only starts and stops it:
 *
 * - the Worker serves one member (EDGECD_MEMBER) on the first --listen-client-urls address, paths unchanged, so the
 *   member looks to clients and peers exactly like a Node or Deno member;
 * - the configuration is the one the flags and EDGECD_* variables gave, passed whole as EDGECD_CONFIG; files that
 *   flags name (JWT keys, a JWKS) are read here and passed as EDGECD_FILES (a Worker has no file system);
 * - the object's SQLite database lives under --data-dir (Miniflare's durableObjectsPersist), which this process locks
 *   as a Node member does, so a kill -9 and a restart with the same flags keeps the data;
 * - workerd is a child process: a watchdog kills it when this process dies, even by SIGKILL, so a killed member
 *   really stops serving.
 *
 * Nothing reaches the network: Miniflare gets `cf: false` (no Request.cf download) and wrangler is not involved.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Miniflare } from 'miniflare'
import { authConfigFromFlags } from '../../auth/config.js'
import { ConfigError, type ServerConfig, validateServerConfig } from '../../etcdserver/config.js'
import type { Logger } from '../../etcdserver/log.js'
import { childrenNamed, guardChildren } from './child-guard.js'
import { NodeFileOps } from './file-ops.js'
import { bundleWorkerEntry } from './workerd-bundle.js'

/** The compatibility date of the member Worker: at most the installed workerd's build date (RUNTIMES.md §3). */
export const workerdCompatibilityDate = '2026-04-20'

/**
 * The member Worker's compatibility flags (wrangler.toml says the same). `enable_request_signal`: a request's
 * `signal` aborts when its client goes away, so an HTTP watch stream is released at its first write after the
 * client left rather than at the second (docs/workers.md, test/workers/watch-disconnect.test.ts).
 */
export const workerdCompatibilityFlags = ['enable_request_signal']

/** The Worker's entry: the TypeScript source in a checkout, the compiled module when this runs from dist/. */
const workerEntry = ['worker.ts', 'worker.js']
  .map((f) => join(dirname(fileURLToPath(import.meta.url)), '../workers', f))
  .find((p) => existsSync(p))!

/**
 * The Worker already bundled by `npm run build` (dist/worker/worker.js, the package's `edgecd/worker`), used when this
 * runs from dist/: an installed package has no esbuild (a dev dependency) to bundle with.
 */
const prebuiltWorker = join(dirname(fileURLToPath(import.meta.url)), '../../worker/worker.js')

async function workerScript(): Promise<string> {
  if (workerEntry.endsWith('.js') && existsSync(prebuiltWorker)) return readFileSync(prebuiltWorker, 'utf8')
  return bundleWorkerEntry(workerEntry)
}

export interface RunningWorkerdMember {
  urls: string[]
  stop(): Promise<void>
}

/** Checks what a workerd member cannot do, before anything starts. */
function checkWorkerdConfig(c: ServerConfig): void {
  if (c.listenClientUrls.length !== 1)
    throw new ConfigError('--runtime workerd listens on exactly one --listen-client-urls address')
  if (new URL(c.listenClientUrls[0]!).protocol !== 'http:')
    throw new ConfigError('--runtime workerd serves http only (on Cloudflare the platform terminates TLS)')
  const tls = [c.certFile, c.keyFile, c.trustedCaFile, c.peerCertFile, c.peerKeyFile, c.peerTrustedCaFile]
  if (tls.some((f) => f !== '') || c.clientCertAuth || c.peerClientCertAuth)
    throw new ConfigError('--runtime workerd does not take the TLS flags (see docs/workers.md)')
}

/** Starts the member in a local workerd; resolves once it listens and the member object has started. */
export async function startWorkerdMember(config: ServerConfig, log: Logger): Promise<RunningWorkerdMember> {
  validateServerConfig(config)
  checkWorkerdConfig(config)
  const files: Record<string, string> = {}
  try {
    authConfigFromFlags(config, (path) => {
      const text = readFileSync(path, 'utf8')
      files[path] = text
      return text
    })
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
  const dataDir = resolve(config.dataDir)
  mkdirSync(dataDir, { recursive: true })
  const unlock = await new NodeFileOps(dataDir).lock()
  let mf: Miniflare | undefined
  try {
    const script = await workerScript()
    const listen = new URL(config.listenClientUrls[0]!)
    const { Miniflare, Log, LogLevel } = await import('miniflare')
    mf = new Miniflare({
      modules: true,
      script,
      scriptPath: 'edgecd-worker.js',
      compatibilityDate: workerdCompatibilityDate,
      compatibilityFlags: workerdCompatibilityFlags,
      durableObjects: { MEMBER: { className: 'EdgecdMember', useSQLite: true } },
      bindings: {
        EDGECD_MEMBER: config.name,
        EDGECD_CONFIG: JSON.stringify(config),
        EDGECD_FILES: JSON.stringify(files),
      },
      durableObjectsPersist: join(dataDir, 'workerd'),
      cf: false,
      host: listen.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(listen.port),
      log: new Log(LogLevel.WARN),
      // EDGECD_WORKERD_INSPECTOR_PORT: workerd's V8 inspector on that loopback port, for a CPU profile of the member
      // (`npm run bench -- http --runtime workerd --profile DIR` records one; Chrome DevTools can attach too).
      ...(process.env.EDGECD_WORKERD_INSPECTOR_PORT
        ? { inspectorPort: Number(process.env.EDGECD_WORKERD_INSPECTOR_PORT) }
        : {}),
      // The member's JSON log lines (console.log in the object) go to stderr, as on Node and Deno.
      handleRuntimeStdio(stdout: Readable, stderr: Readable) {
        stdout.pipe(process.stderr)
        stderr.pipe(process.stderr)
      },
    })
    const url = await mf.ready
    guardChildren(childrenNamed('workerd'))
    // The member starts with the object's first request; ask for /health until it answers (or says why not).
    const deadline = Date.now() + 30_000
    for (;;) {
      const r = await mf.dispatchFetch('http://localhost/health')
      const text = await r.text()
      if (r.status === 200 || (r.status === 503 && text.startsWith('{'))) break
      if (r.status === 404 || Date.now() > deadline) throw new ConfigError(text.trim())
      await new Promise((res) => setTimeout(res, 100))
    }
    const base = `http://${listen.hostname}:${url.port}`
    log.info('serving client requests', { name: config.name, runtime: 'workerd', urls: [base], dataDir })
    let stopping: Promise<void> | undefined
    const running = mf
    return {
      urls: [base],
      stop() {
        stopping ??= (async () => {
          log.info('stopping', { name: config.name })
          await running.dispose()
          await unlock()
          log.info('stopped', { name: config.name })
        })()
        return stopping
      },
    }
  } catch (err) {
    await mf?.dispose().catch(() => {})
    await unlock()
    throw err
  }
}
