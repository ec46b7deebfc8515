/**
 * The contract between `bench/run.ts` and each bench module (`bench/raft.ts`, `bench/wal.ts`, ...): a module exports
 * `async function run(opts: BenchOptions): Promise<BenchResult[]>` and the runner prints every row in one table.
 */

/** One measured number. Units go in `unit` (e.g. 'ops/s', 'ms', 'MiB/s'), never in `name`. */
export interface BenchResult {
  /** What was measured, e.g. 'propose 3 nodes, 128 B entries'. */
  name: string
  value: number
  unit: string
  /** Conditions worth knowing when reading the number (batch size, p99, seed). */
  note?: string
}

export interface BenchOptions {
  /** Run a short version (CI smoke): fewer iterations, same code paths. */
  quick: boolean
  /** Arguments after the bench names that the runner did not use, for the module to read. */
  args: string[]
}

/** The shape every bench module has. */
export interface BenchModule {
  run(opts: BenchOptions): Promise<BenchResult[]>
}
