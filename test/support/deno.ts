/**
 * The one place that knows how to run Deno here: the binary the `deno` npm package installed (RUNTIMES.md §2), run
 * offline (--cached-only; node_modules through deno.json's nodeModulesDir "manual"; DENO_DIR in the repo's .deno/).
 * Used by scripts/test-deno.mjs (`npm run test:deno`), tests that run one file under Deno, and Deno members.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { repoRoot } from './process.js'

/** The Deno binary from node_modules (the linked `deno/deno`, else the platform package's copy), or undefined. */
export function denoBinary(): string | undefined {
  const candidates = [join(repoRoot, 'node_modules/deno/deno')]
  const scoped = join(repoRoot, 'node_modules/@deno')
  if (existsSync(scoped)) for (const d of readdirSync(scoped)) candidates.push(join(scoped, d, 'deno'))
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK)
      // The real path: Deno.execPath() reports it, and --allow-run must name the same file (node_modules may be a link).
      return realpathSync(c)
    } catch {}
  }
  return undefined
}

/** The environment every Deno run gets: the repo's DENO_DIR, no update check, no colours unless asked. */
export function denoEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DENO_DIR: process.env.DENO_DIR || join(repoRoot, '.deno'),
    DENO_NO_UPDATE_CHECK: '1',
    NO_COLOR: '1',
    ...extra,
  }
}

/** `deno test` arguments before the permissions and files: the repo's config, no prompts, offline. */
export function denoTestArgs(extra: string[] = []): string[] {
  return ['test', `--config=${join(repoRoot, 'deno.json')}`, '--no-prompt', '--cached-only', '--allow-env', ...extra]
}

/** `deno run` arguments for src/runtime/deno/main.ts (the CLI as users run it under Deno), then `args`. */
export function denoMainArgs(args: string[]): string[] {
  return ['run', `--config=${join(repoRoot, 'deno.json')}`, '--cached-only', '-A', 'src/runtime/deno/main.ts', ...args]
}

/**
 * Runs one test file under Deno with read access to the repo and read/write access to a temp directory of its own
 * only (Deno's TMPDIR: write access to the system temp dir would include the checkout itself when it lives there).
 */
export async function runUnderDeno(file: string): Promise<{ status: number; output: string; skipped?: string }> {
  const deno = denoBinary()
  if (!deno) {
    // Never a silent skip in a default run: a developer may opt out (EDGECD_ALLOW_MISSING=1, not under CI).
    const how = 'deno is missing: run  npm ci  (the deno package ships the binary in node_modules)'
    const allowed = process.env.EDGECD_ALLOW_MISSING === '1' && process.env.CI !== 'true'
    return allowed ? { status: 0, output: '', skipped: how } : { status: 1, output: how }
  }
  const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-run-'))
  const args = denoTestArgs([`--allow-read=${repoRoot},${tmp}`, `--allow-write=${tmp}`, file])
  const child = spawn(deno, args, { cwd: repoRoot, env: denoEnv({ TMPDIR: tmp }), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d) => {
    output += d
  })
  child.stderr.on('data', (d) => {
    output += d
  })
  const status = await new Promise<number>((res) => child.on('close', (code) => res(code ?? 1)))
  rmSync(tmp, { recursive: true, force: true })
  return { status, output }
}
