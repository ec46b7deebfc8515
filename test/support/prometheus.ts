/**
 * Debian's Prometheus for the metrics tests: `promtool` checks /metrics against the exposition format, `prometheus`
 * scrapes a live cluster with etcd's mixin alerts. scripts/setup-prometheus.sh installs both (CI calls it from
 * .ci/run); a test that finds them missing runs it once itself, and skips with a clear message if that fails (not
 * root, no package index).
 */
import { spawnSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

let checked: string | false | undefined

/** false when promtool and prometheus are usable, else the reason to skip. */
export function prometheusMissing(): string | false {
  if (checked !== undefined) return checked
  if (!has('promtool') || !has('prometheus')) {
    spawnSync('bash', [resolve(repoRoot, 'scripts/setup-prometheus.sh')], { stdio: 'inherit', timeout: 300_000 })
  }
  checked =
    has('promtool') && has('prometheus')
      ? false
      : 'Debian prometheus is not installed: run `bash scripts/setup-prometheus.sh` (CI does) to enable this test'
  return checked
}

/** `promtool check metrics` over an exposition text: its output (problems found) and exit status. */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() }
}
