/**
 * Fail-over time: three real `edgecd serve` processes with default timeouts (heartbeat 100 ms, election 1000 ms);
 * kill -9 the leader under a light write load and time until a write through a survivor succeeds (a client firing
 * a fresh write every 50 ms). Repeated `rounds` times (the killed member restarts between rounds).
 *
 *   npm run bench -- failover                 (5 rounds; target: at most 3 s; etcd's own election timeout is 1 s)
 *   npm run bench -- failover --rounds 20     (more rounds: the worst case is what the target is about)
 */
import { ProcessCluster } from '../test/cluster/process.js'
import { b64, eventually, post } from '../test/support/index.js'
import type { BenchOptions, BenchResult } from './types.js'

async function failoverOnce(c: ProcessCluster): Promise<number> {
  const li = await eventually(() => c.leader(), 15_000, 'a leader')
  const survivors = [0, 1, 2].filter((i) => i !== li)
  // Warm the survivors' connections and let the cluster settle.
  for (const i of survivors) await post(c.urls[i]!, '/v3/kv/put', { key: b64('warm'), value: b64('x') })
  const t0 = Date.now()
  c.kill9(li)
  const ms = await c.timeToFirstWrite(survivors, t0)
  c.spawn(li)
  await c.waitHealthy(li)
  return ms
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const i = opts.args.indexOf('--rounds')
  const rounds = opts.quick ? 1 : i >= 0 ? Number(opts.args[i + 1]) : 5
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer')
  const c = await ProcessCluster.start(3)
  const times: number[] = []
  try {
    for (let r = 0; r < rounds; r++) times.push(await failoverOnce(c))
  } finally {
    await c.close()
  }
  times.sort((a, b) => a - b)
  return [
    {
      name: 'leader kill -9 to first successful write, median',
      value: times[Math.floor(times.length / 2)]!,
      unit: 'ms',
      note: `${rounds} rounds: ${times.join(', ')} ms (target <= 3000)`,
    },
    { name: 'leader kill -9 to first successful write, worst', value: times[times.length - 1]!, unit: 'ms' },
  ]
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run({ quick: process.argv.includes('--quick'), args: process.argv.slice(2) }))
    console.log(`${r.name}: ${r.value} ${r.unit}${r.note ? ` (${r.note})` : ''}`)
}
