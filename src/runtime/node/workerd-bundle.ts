/**
 * Bundles a worker entry for workerd with esbuild, as RUNTIMES.md §3 and §5 prescribe: ESM, platform neutral, the
 * workerd/worker/browser export conditions, `cloudflare:*` left to the runtime, and cbor-x replaced by its no-eval
 * build (workerd forbids code generation inside handlers, where cbor-x's record JIT would otherwise run). Used by
 * `edgecd serve --runtime workerd` and the workerd tests. esbuild is loaded lazily, only when a bundle is made.
 */
import { createRequire } from 'node:module'

export async function bundleWorkerEntry(entry: string, alias: Record<string, string> = {}): Promise<string> {
  const { build } = await import('esbuild')
  const require = createRequire(import.meta.url)
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    external: ['cloudflare:*'],
    write: false,
    logLevel: 'silent',
    alias: { 'cbor-x': require.resolve('cbor-x/index-no-eval'), ...alias },
    // The npm `assert` port (tests only) reads these when it loads.
    define: { 'process.env.NODE_DEBUG': 'false', 'process.env.NODE_ENV': '"production"' },
  })
  return out.outputFiles[0]!.text
}
