/**
 * `npm run bench`: runs the bench modules in `bench/` and prints one table, with the machine and the exact command so
 * a number can be reproduced and compared.
 *
 *   npm run bench                 every bench module (bench/*.ts except run.ts and types.ts)
 *   npm run bench -- raft wal     only bench/raft.ts and bench/wal.ts
 *   npm run bench -- --quick      short runs (each module decides what "quick" means)
 *   npm run bench -- --json       the same results as one JSON document, for tooling
 *   npm run bench -- http --etcd  options from the first one the runner does not know go to the modules (opts.args)
 *
 * A bench module exports `async function run(opts: BenchOptions): Promise<BenchResult[]>` (see bench/types.ts).
 * Helpers shared by several modules belong in `bench/lib/`, which is not scanned. Modules not written yet are simply
 * absent: with none present the runner says so and exits 0.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { arch, cpus, platform, totalmem } from 'node:os'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { BenchModule, BenchOptions, BenchResult } from './types.js'

const benchDir = dirname(fileURLToPath(import.meta.url))
const repoRoot = dirname(benchDir)
/**
 * Files in bench/ that are not bench modules: the runner and types, and stand-alone A/B and probe scripts run with
 * `node --import tsx bench/<file>.ts` (each says how in its header; importing one would start its run).
 */
const notBenches = new Set([
  'run.ts',
  'types.ts',
  'replica-apply-ab.ts',
  'replica-fanout-ab.ts',
  'watch-client-probe.ts',
  'watch-lag-micro.ts',
  'watch-put-micro.ts',
  'watch-session-micro.ts',
])

/** The bench modules in dir, by name (file name without .ts), sorted. */
export function discover(dir: string): Map<string, string> {
  const found = new Map<string, string>()
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !notBenches.has(e.name))
    .map((e) => e.name)
    .sort()
  for (const name of names) found.set(basename(name, '.ts'), join(dir, name))
  return found
}

export interface Row extends BenchResult {
  bench: string
}

/** Formats a number for reading: thousands grouped, at most 3 decimals, and no decimals above 1000. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  const digits = Math.abs(v) >= 1000 || Number.isInteger(v) ? 0 : 3
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

/** One plain-text table: bench, name, value (right-aligned), unit, note. */
export function formatTable(rows: Row[]): string {
  const header = ['bench', 'name', 'value', 'unit', 'note']
  const cells = rows.map((r) => [r.bench, r.name, formatValue(r.value), r.unit, r.note ?? ''])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]) =>
    c
      .map((s, i) => (i === 2 ? s.padStart(widths[i]!) : s.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')
}

/** Where the numbers came from: enough to tell two machines (or two commits) apart. */
export function machine(): Record<string, string> {
  const cpu = cpus()
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: 'pipe',
    }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: 'pipe',
    })
    if (dirty.trim() !== '') commit += ' (modified)'
  } catch {}
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: String(cpu.length),
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    os: `${platform()} ${arch()}`,
    node: process.version,
    commit,
  }
}

function isResult(r: unknown): r is BenchResult {
  const x = r as BenchResult
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.name === 'string' &&
    typeof x.value === 'number' &&
    typeof x.unit === 'string' &&
    (x.note === undefined || typeof x.note === 'string')
  )
}

/** Runs the chosen benches and returns the rows plus the benches that failed (with their error). */
export async function runBenches(
  modules: Map<string, string>,
  opts: BenchOptions,
  log: (line: string) => void = () => {},
): Promise<{ rows: Row[]; failed: { bench: string; error: string }[] }> {
  const rows: Row[] = []
  const failed: { bench: string; error: string }[] = []
  for (const [bench, file] of modules) {
    log(`running ${bench} ...`)
    const started = performance.now()
    try {
      const mod = (await import(pathToFileURL(file).href)) as Partial<BenchModule>
      if (typeof mod.run !== 'function') throw new Error(`${relative(repoRoot, file)} does not export run(opts)`)
      const results = await mod.run(opts)
      if (!Array.isArray(results) || !results.every(isResult)) {
        throw new Error('run() must resolve to an array of {name, value, unit, note?}')
      }
      for (const r of results) rows.push({ bench, ...r })
      log(`  ${results.length} result(s) in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err)
      failed.push({ bench, error })
      log(`  FAILED: ${error}`)
    }
  }
  return { rows, failed }
}

async function main(argv: string[]): Promise<number> {
  // Everything from the first option the runner does not know belongs to the modules (`npm run bench -- http --etcd
  // --members 1`): bench names come first.
  const runnerFlags = new Set(['--quick', '--json', '--help', '-h'])
  const cut = argv.findIndex((a) => a.startsWith('-') && !runnerFlags.has(a))
  const own = cut < 0 ? argv : argv.slice(0, cut)
  const moduleArgs = cut < 0 ? [] : argv.slice(cut)
  const { values, positionals } = parseArgs({
    args: own,
    options: { quick: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: false,
  })
  const available = discover(benchDir)
  if (values.help) {
    console.log(
      `usage: npm run bench -- [--quick] [--json] [name ...]\navailable: ${[...available.keys()].join(', ') || '(none yet)'}`,
    )
    return 0
  }
  const chosen = new Map<string, string>()
  const unknown: string[] = []
  for (const name of positionals) {
    const file = available.get(name)
    if (file) chosen.set(name, file)
    else unknown.push(name)
  }
  if (unknown.length > 0) {
    console.error(`bench: no bench module named ${unknown.join(', ')} (bench/<name>.ts)`)
    console.error(`available: ${[...available.keys()].join(', ') || '(none yet)'}`)
    return 2
  }
  const modules = positionals.length > 0 ? chosen : available
  const command = [process.argv0, ...process.execArgv, relative(process.cwd(), fileURLToPath(import.meta.url)), ...argv]
  const about = machine()
  const json = values.json === true || moduleArgs.includes('--json')
  const log = json ? (l: string) => console.error(l) : (l: string) => console.log(l)
  const opts: BenchOptions = { quick: values.quick === true || moduleArgs.includes('--quick'), args: moduleArgs }
  const { rows, failed } = await runBenches(modules, opts, log)

  if (json) {
    console.log(JSON.stringify({ command: command.join(' '), machine: about, rows, failed }, null, 2))
  } else {
    console.log('')
    if (modules.size === 0) console.log('No bench modules yet (bench/<name>.ts exporting run(opts)); nothing measured.')
    else if (rows.length > 0) console.log(formatTable(rows))
    console.log('')
    for (const [k, v] of Object.entries(about)) console.log(`${`${k}:`.padEnd(8)} ${v}`)
    console.log(`command: ${command.join(' ')}`)
    for (const f of failed) console.log(`FAILED:  ${f.bench}`)
  }
  return failed.length > 0 ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2))
}
