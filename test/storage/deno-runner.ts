/**
 * Runs one test file under the Deno binary that the `deno` npm package installed (RUNTIMES.md §2), offline
 * (--cached-only, node_modules via deno.json's nodeModulesDir "manual"), with read access to the repo and read/write
 * access to a temp directory of its own only.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

export async function runUnderDeno(file: string): Promise<{ status: number; output: string; skipped?: string }> {
  const deno = join(root, 'node_modules/deno/deno')
  if (!existsSync(deno)) return { status: 0, output: '', skipped: 'no Deno binary at node_modules/deno/deno (npm ci)' }
  // A temp dir of its own, as Deno's TMPDIR: write access to the system temp dir would include the checkout itself
  // when it lives there (a CI clone in /tmp), and the read-only case would then not be read-only.
  const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-run-'))
  const args = [
    'test',
    `--config=${join(root, 'deno.json')}`,
    '--no-prompt',
    '--cached-only',
    '--allow-env',
    `--allow-read=${root},${tmp}`,
    `--allow-write=${tmp}`,
    file,
  ]
  const env = {
    ...process.env,
    DENO_DIR: process.env.DENO_DIR || join(root, '.deno'),
    DENO_NO_UPDATE_CHECK: '1',
    NO_COLOR: '1',
    TMPDIR: tmp,
  }
  const child = spawn(deno, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
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
