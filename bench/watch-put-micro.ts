/**
 * In process, no store and no socket: the member's per-put cost of matching a put against 10,000 watchers and sending
 * the matched one its message, in the shape of the put rows of `npm run bench -- watch` (100 streams x 100 watchers,
 * watcher i on its own key i, range [dir/i/a, dir/i/z) or prefix dir/i/; each put changes key i in turn, so it
 * reaches one watcher), with the member's apply batches (`--batch` puts per WatchHub.beginBatch/endBatch).
 *
 *   node --import tsx bench/watch-put-micro.ts [--shapes none,keys,ranges,prefixes,lengths:16] [--part match|json]
 *       [--puts 200000] [--batch 20] [--rounds 3]
 *
 * `--part match` (default): WatchHub.notify and the batch's messages, the sink only counts them; `--part json`: the
 * sink also builds each message's text as the WebSocket watch does (codec/watch-json.ts). `lengths:L` is the
 * prefixes shape with the 10,000 prefixes spread over L lengths (dir/i/, dir/i/x/, dir/i/x/x/, ...), each put's key
 * under the longest (the hub looked prefixes up once per length present before they went into the interval index).
 * Prints µs of CPU per put (process.cpuUsage over the puts, after one unmeasured round), the median of the rounds.
 */
import { parseArgs } from 'node:util'
import { watchResultJson } from '../src/api/http/codec/watch-json.js'
import { keyString } from '../src/kv/bytes.js'
import { defaultKvConfig } from '../src/kv/config.js'
import type { Change } from '../src/kv/key-index.js'
import { WatchHub } from '../src/kv/watch.js'
import type { KeyValue, ResponseHeader, WatchCreateRequest } from '../src/protocol/types.js'

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'none,keys,ranges,prefixes' },
    part: { type: 'string', default: 'match' },
    puts: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
  },
})
const puts = Number(values.puts)
const batch = Number(values.batch)
const rounds = Number(values.rounds)
const json = values.part === 'json'
const enc = new TextEncoder()
const N = 10_000
const streams = 100
const dir = (i: number) => `bench/watch/${String(i).padStart(6, '0')}/`

function createReq(key: string, rangeEnd: string): WatchCreateRequest {
  return {
    key: enc.encode(key),
    range_end: enc.encode(rangeEnd),
    start_revision: 0,
    progress_notify: false,
    filters: [],
    prev_kv: false,
    watch_id: 0,
    fragment: false,
  }
}

/** etcd's prefix end of an ASCII prefix. */
const prefixEnd = (p: string) => p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1)

function measure(shape: string): number {
  let revision = 1
  const hub = new WatchHub(
    { ...defaultKvConfig, maxWatchers: 1e6, maxWatchersPerStream: 1e6 },
    {
      get revision() {
        return revision
      },
      compactRevision: 0,
      changesFrom: () => [],
    },
  )
  const lengths = shape.startsWith('lengths:') ? Number(shape.slice(8)) : 1
  // The key of put i: under every prefix of watcher i.
  const keyOf = (i: number) => `${dir(i)}${'x/'.repeat(lengths - 1)}k`
  const header: ResponseHeader = {
    cluster_id: '14841639068965178418',
    member_id: '10276657743932975437',
    revision: 0,
    raft_term: 2,
  }
  let h = header
  let messages = 0
  let chars = 0
  if (shape !== 'none') {
    for (let s = 0; s < streams; s++) {
      const stream = hub.openStream({
        send: (r) => {
          messages++
          if (json) {
            // As the member: one header object per revision.
            const rev = r.header?.revision ?? 0
            if (rev !== h.revision) h = { ...header, revision: rev }
            r.header = h
            chars += watchResultJson(r).length
          }
          return true
        },
      })
      for (let j = 0; j < N / streams; j++) {
        const i = s * (N / streams) + j
        const d = dir(i)
        if (shape === 'keys') stream.create(createReq(keyOf(i), ''))
        else if (shape === 'ranges') stream.create(createReq(`${d}a`, `${d}z`))
        else {
          // lengths:L: watcher i's prefix has depth i % L (dir/i/, dir/i/x/, ...); prefixes: depth 0.
          const p = d + 'x/'.repeat(i % lengths)
          stream.create(createReq(p, prefixEnd(p)))
        }
      }
    }
  }
  const value = enc.encode('x'.repeat(64))
  const kvs: KeyValue[] = Array.from({ length: N }, (_, i) => ({
    key: enc.encode(keyOf(i)),
    create_revision: 2,
    mod_revision: 2,
    version: 1,
    value,
    lease: 0n,
  }))
  const keys = kvs.map((kv) => keyString(kv.key))
  let k = 0
  const run = () => {
    for (let i = 0; i < puts; i += batch) {
      hub.beginBatch()
      for (let j = 0; j < batch; j++) {
        const n = k++ % N
        revision++
        // A fresh KeyValue per put, as the store makes one.
        const kv: KeyValue = { ...kvs[n]!, mod_revision: revision, version: 2 }
        const c: Change = { key: keys[n]!, main: revision, sub: 0, kv, tombstone: false, prev: kvs[n] }
        hub.notify(revision, [c])
      }
      hub.endBatch()
    }
  }
  run()
  const got: number[] = []
  for (let r = 0; r < rounds; r++) {
    const m0 = messages
    const t0 = process.cpuUsage()
    run()
    const cpu = process.cpuUsage(t0)
    got.push((cpu.user + cpu.system) / puts)
    if (shape !== 'none' && messages - m0 < puts / batch) throw new Error(`${shape}: ${messages - m0} messages`)
  }
  void chars
  return got.sort((a, b) => a - b)[Math.floor(got.length / 2)]!
}

for (const shape of values.shapes.split(',')) {
  console.log(
    `${shape.padEnd(12)} ${measure(shape).toFixed(2).padStart(6)} µs cpu/put (${values.part}, batch ${batch})`,
  )
}
