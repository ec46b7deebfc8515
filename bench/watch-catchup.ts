/**
 * In-process (issue 17): what a watch created at `--rev 1` costs the event loop. A bare store with N revisions (puts
 * to 100 keys of a prefix), then watchers of that prefix created at start_revision 1 on one stream, whose sink encodes
 * each message as the WebSocket watch does (watchResultJson). Measured until every watcher is synced: the create
 * call, the replay turns (each WatchHub.defer callback, timed: the longest, p50 and p99 in the note), the event loop's longest delay
 * (perf_hooks.monitorEventLoopDelay) and the total time.
 *
 *   npm run bench -- watch-catchup [--revisions 200000]      (--quick: 20,000)
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { watchResultJson } from '../src/api/http/codec/watch-json.js'
import { KvStore } from '../src/kv/store.js'
import { defaultPutRequest } from '../src/protocol/types.js'
import type { BenchOptions, BenchResult } from './types.js'

const enc = new TextEncoder()

async function scenario(revisions: number, watchers: number): Promise<BenchResult[]> {
  const s = new KvStore({ maxWatchers: 1e6, maxWatchersPerStream: 1e6 })
  const value = enc.encode('x'.repeat(100))
  for (let i = 0; i < revisions; i++) s.apply({ put: defaultPutRequest({ key: enc.encode(`w/${i % 100}`), value }) })
  await new Promise((r) => setTimeout(r, 10))
  const hub = s.watchHub
  const defer = hub.defer
  const spans: number[] = []
  hub.defer = (fn) =>
    defer(() => {
      const t = performance.now()
      fn()
      spans.push(performance.now() - t)
    })
  let events = 0
  let bytes = 0
  const stream = hub.openStream({
    send(resp) {
      events += resp.events.length
      bytes += watchResultJson(resp).length
      return true
    },
  })
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  const t0 = performance.now()
  for (let i = 0; i < watchers; i++) {
    stream.create({
      key: enc.encode('w/'),
      range_end: enc.encode('w0'),
      start_revision: 1,
      progress_notify: false,
      filters: [],
      prev_kv: false,
      watch_id: 0,
      fragment: false,
    })
  }
  const createMs = performance.now() - t0
  const want = revisions * watchers
  const deadline = Date.now() + 600_000
  while (events < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1))
  const totalMs = performance.now() - t0
  h.disable()
  const what = `${watchers} watcher${watchers > 1 ? 's' : ''} at rev 1 over ${revisions} revisions`
  spans.push(createMs)
  spans.sort((a, b) => a - b)
  const at = (q: number) => spans[Math.min(spans.length - 1, Math.floor(q * spans.length))]!.toFixed(1)
  const note = `${events} events, ${(bytes / 2 ** 20).toFixed(0)} MiB of JSON, ${spans.length} turns (the create's included), p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`
  return [
    { name: `${what}: create call${watchers > 1 ? 's' : ''}`, value: +createMs.toFixed(1), unit: 'ms' },
    { name: `${what}: longest replay turn`, value: +spans[spans.length - 1]!.toFixed(1), unit: 'ms', note },
    { name: `${what}: event loop max delay`, value: +(h.max / 1e6).toFixed(1), unit: 'ms' },
    { name: `${what}: until synced`, value: +totalMs.toFixed(0), unit: 'ms' },
  ]
}

export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  const { values } = parseArgs({
    args: opts.args,
    options: { revisions: { type: 'string' } },
    strict: false,
  })
  const revisions = Number(values.revisions ?? (opts.quick ? 20_000 : 200_000))
  // Warm-up (not reported): the encoder and the hub's paths compiled.
  for (let i = 0; i < 3; i++) await scenario(20_000, 1)
  return [...(await scenario(revisions, 1)), ...(await scenario(Math.floor(revisions / 100), 100))]
}
