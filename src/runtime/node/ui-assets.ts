/**
 * GET /ui/replica.js on Node: the browser replica (src/runtime/browser/replica-entry.ts) bundled by esbuild into one
 * self-contained ES module on the first request and kept in memory (esbuild is a devDependency, so `npm install`
 * then `npm start` serves it from a fresh clone, always current with the sources). An installed package (no src/,
 * maybe no esbuild) serves dist/browser/replica.js, built by `npm run build` (`prepare`) or
 * `node scripts/build-replica.mjs`.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const replicaEntry = resolve(root, 'src/runtime/browser/replica-entry.ts')
export const replicaDist = resolve(root, 'dist/browser/replica.js')

/** esbuild's options for the browser replica (shared with scripts/build-replica.mjs). */
export const replicaBuildOptions = {
  entryPoints: [replicaEntry],
  bundle: true,
  format: 'esm' as const,
  platform: 'browser' as const,
  target: 'es2022',
  minify: true,
  legalComments: 'none' as const,
  logLevel: 'silent' as const,
}

let built: Promise<string> | undefined

/** The bundled module's text (built once per process). */
export function replicaScript(): Promise<string> {
  built ??= build().catch((err) => {
    built = undefined
    throw err
  })
  return built
}

async function build(): Promise<string> {
  // From the sources when they are here (a checkout: never a stale bundle); an installed package has only dist/.
  let esbuild: typeof import('esbuild') | undefined
  if (existsSync(replicaEntry)) {
    try {
      esbuild = await import('esbuild')
    } catch {
      esbuild = undefined
    }
  }
  if (esbuild) {
    const out = await esbuild.build({ ...replicaBuildOptions, write: false })
    return out.outputFiles[0]!.text
  }
  try {
    return await readFile(replicaDist, 'utf8')
  } catch {
    throw new Error(
      'esbuild is not installed and dist/browser/replica.js was not built (node scripts/build-replica.mjs)',
    )
  }
}
