/**
 * Programs some tests need beyond npm's packages: Debian's etcd 3.4 (differential tests, etcdctl), Debian's Chromium
 * (the real-browser tests), the Deno binary that `npm ci` installs, and a Node 22 (scripts/setup-node22.mjs, the
 * installed package's tests on Node 22 where the system Node is 20). A default run never skips those tests
 * silently: `npm test` installs etcd and Chromium first when it can (scripts/run-tests.mjs), and a test file whose
 * program is still missing adds one failing test naming the command that installs it. A developer who cannot install
 * them opts out with EDGECD_ALLOW_MISSING=1 (never honoured under CI=true): the tests are then skipped, with the
 * reason printed.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { node22Binary } from '../../scripts/setup-node22.mjs'
import { denoBinary } from './deno.js'

export { node22Binary }

export type Program = 'etcd' | 'chromium' | 'deno' | 'node22' | 'python-etcd'

export const chromiumPath = '/usr/bin/chromium'
/** Debian's Python, which has the python3-etcd3 and python3-etcd3gw packages (not a pyenv or venv python3). */
export const pythonPath = '/usr/bin/python3'

/** How to install each program, as the message prints it. */
export const installCommand: Record<Program, string> = {
  etcd: 'bash scripts/setup-etcd.sh   (apt-get install etcd-server etcd-client)',
  chromium: 'sh scripts/setup-chromium.sh   (apt-get install chromium)',
  deno: 'npm ci   (the deno package ships the binary at node_modules/deno/deno)',
  node22: 'node scripts/setup-node22.mjs   (npm install node-<platform>-<arch>@22 into ~/.cache/edgecd/node-22)',
  'python-etcd': 'bash scripts/setup-python-clients.sh   (apt-get install python3-etcd3 python3-etcd3gw)',
}

export function programPresent(p: Program): boolean {
  if (p === 'chromium') return existsSync(chromiumPath)
  if (p === 'deno') return denoBinary() !== undefined
  if (p === 'node22') return node22Binary() !== undefined
  if (p === 'python-etcd') return pythonClientsPresent()
  try {
    execFileSync('etcd', ['--version'], { stdio: 'pipe' })
    return true
  } catch {
    return false
  }
}

/** Whether Debian's python3 imports both etcd client libraries. */
export function pythonClientsPresent(): boolean {
  try {
    execFileSync(pythonPath, ['-c', 'import etcd3, etcd3gw'], {
      stdio: 'pipe',
      env: { ...process.env, PYTHONPATH: '' },
    })
    return true
  } catch {
    return false
  }
}

/** Whether a developer opted out of the tests whose programs are missing (ignored under CI). */
export function missingAllowed(env: Record<string, string | undefined> = process.env): boolean {
  return env.EDGECD_ALLOW_MISSING === '1' && env.CI !== 'true'
}

const reported = new Set<Program>()

/**
 * For a test file that needs `p`: false when it is installed (run the tests). When it is missing, a reason to skip
 * the file's tests, and, unless the developer opted out, one failing test (per file) with the install command.
 */
export function requires(p: Program): false | string {
  if (programPresent(p)) return false
  const how = installCommand[p]
  if (missingAllowed()) return `${p} is missing, skipped (EDGECD_ALLOW_MISSING=1): ${how}`
  if (!reported.has(p)) {
    reported.add(p)
    test(`${p} is installed (needed by this file's tests)`, () => {
      throw new Error(
        `${p} is missing: run  ${how}  (or set EDGECD_ALLOW_MISSING=1 to skip the tests that need it locally)`,
      )
    })
  }
  return `${p} is missing: see the failing test "${p} is installed"`
}
