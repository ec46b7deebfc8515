// Which test files `npm test` runs one at a time and which two at a time (scripts/run-tests.mjs; docs/testing.md,
// "How npm test spends its time"). On this project's 2-core CI machine node's default --test-concurrency is
// availableParallelism() - 1 = 1, yet most files spend their time waiting (child processes: etcd, etcdctl, edgecd,
// Deno, workerd, Chromium, Python clients; timers; the network) and every file pays ~1.5 s (quiet) to ~4 s (loaded)
// of node + tsx start-up. So files run two at a time, except those below.

/**
 * Files run alone before the rest: those that assert wall-clock bounds a second CPU-bound file could break on 2
 * cores, and those that change files other tests read. A file goes here for what it asserts about time or what it
 * writes, not because it is merely slow.
 */
export const serialFiles = [
  'test/cluster/cluster.test.ts', // fail-over under 3 s after the leader is killed
  'test/cluster/kill9.test.ts', // fail-over within 10 s after kill -9, several rounds
  'test/kv/watch-catchup.test.ts', // a watch on a large history created in under 2 s
  // Deno and two Node members (tsx) starting at once must elect a leader within 30 s: next to the 200-seed member
  // simulation it did not, once, in the first two-at-a-time full run.
  'test/deno/member.test.ts',
  // Not a time bound: `npm pack` rebuilds the checkout's dist/ (scripts/build.mjs empties it first), which
  // bin/edgecd.js of any concurrent CLI test may be loading.
  'test/package/pack.test.ts',
]

/**
 * Files started first in the parallel group (longest first, from the TAP durations of full runs): a long file
 * started last would leave the other slot idle at the end. The rest follow in path order.
 */
export const longFirst = [
  'test/grpc/check-perf.test.ts', // etcdctl check perf: a fixed 60 s load, mostly waiting
  'test/cli/etcdctl.test.ts',
  'test/chaos/chaos.test.ts',
  'test/workers/mixed-chaos.test.ts',
  'test/workers/mixed-cluster.test.ts',
  'test/security/watch-fanout.test.ts',
  'test/diff/python-clients.test.ts',
  'test/api/prometheus.test.ts',
  'test/cluster/snapshot-catchup.test.ts',
  'test/grpc/etcdctl-diff.test.ts',
  'test/server/api.test.ts',
  'test/client/tls.test.ts',
  'test/server/restart.test.ts',
  'test/sim/member/member-sim.test.ts',
  'test/console/console.test.ts',
  'test/security/watch-memory.test.ts',
  'test/storage/chromium.test.ts',
]

/** The default number of files the parallel group runs at once (`--test-concurrency=N` overrides it). */
export const parallelConcurrency = 2

/** Splits `files` (paths relative to the project root, forward slashes) into the two groups, in run order. */
export function splitGroups(files) {
  const set = new Set(files)
  const serial = serialFiles.filter((f) => set.has(f))
  const rest = files.filter((f) => !serialFiles.includes(f))
  const first = longFirst.filter((f) => set.has(f))
  const parallel = [...first, ...rest.filter((f) => !longFirst.includes(f))]
  return { serial, parallel }
}
