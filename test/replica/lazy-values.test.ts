/**
 * Live changes keep their value base64 until read (source.ts's LazyKv): the value decodes once and right, a spread
 * copies only StoredKv's fields, and the engine hands a storage or another tab lazy kvs only when they keep the
 * objects as given (the memory storage, no onCommitted): everything that clones or serializes gets plain objects
 * whose value survives a structured clone.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { followedSpan } from '../../src/replica/keys.js'
import type { StoredKv } from '../../src/replica/local-index.js'
import { ReplicaEngine } from '../../src/replica/replica.js'
import {
  LazyKv,
  lazyStoredKv,
  plainKv,
  type ReplicaSource,
  type SourceEvent,
  type WatchSink,
} from '../../src/replica/source.js'
import { MemoryReplicaStorage, type StorageOp } from '../../src/replica/storage.js'
import { rng, ScriptedServer } from './scripted-server.js'

const P = followedSpan({ prefix: 'p/' })
const tick = () => new Promise((r) => setImmediate(r))
const b64 = (s: string | Uint8Array) => Buffer.from(s as string).toString('base64')
const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** What the member sends, decoded as the client source decodes a watch event. */
function lazy(kv: StoredKv): StoredKv {
  return lazyStoredKv({
    key: Buffer.from(kv.key, 'latin1').toString('base64'),
    value: kv.value.length ? b64(kv.value) : undefined,
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
  })
}

/** The scripted server, its watch events decoded lazily (as ClientSource does). */
function lazySource(server: ScriptedServer): ReplicaSource {
  return {
    range: (r) => server.range(r),
    progress: () => server.progress(),
    close: () => server.close(),
    watch: (key, end, start, sink) =>
      server.watch(key, end, start, {
        ...sink,
        events: (evs: SourceEvent[], rev: number) =>
          sink.events(
            evs.map((e) => ({ type: e.type, kv: lazy(e.kv) })),
            rev,
          ),
      } satisfies WatchSink),
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 20_000; i++) {
    if (cond()) return
    await tick()
  }
  throw new Error(`never happened: ${what}`)
}

/** Copies `p/`, then applies a few live puts and a delete; answers the engine and every committed op. */
async function run(storage: MemoryReplicaStorage, onCommitted?: (ops: StorageOp[]) => void) {
  const server = new ScriptedServer(rng(3))
  server.put('p/a', 'first')
  const committed: StorageOp[] = []
  const e = new ReplicaEngine({
    storage,
    ranges: [P],
    source: lazySource(server),
    backoffMs: () => 1,
    ...(onCommitted ? { onCommitted } : {}),
  })
  storage.beforeCommit = (ops) => committed.push(...ops)
  await e.start()
  await e.ready(10_000)
  server.put('p/a', 'second ü')
  server.put('p/b', 'bee')
  const last = server.put('p/c', 'sea')
  server.delete('p/c')
  await until(() => e.status().revision >= last + 1, 'live changes applied')
  return { e, committed }
}

const livePuts = (ops: StorageOp[]) => ops.flatMap((op) => (op.kind === 'events' ? op.puts : []))

describe('replica: lazily decoded live values', () => {
  test('a LazyKv decodes its value once, and a spread copies only the StoredKv fields', () => {
    const kv = lazyStoredKv({
      key: b64('k'),
      value: b64('välue'),
      create_revision: '2',
      mod_revision: '5',
      version: '3',
    })
    assert.ok(kv instanceof LazyKv)
    assert.equal(text(kv.value), 'välue')
    assert.equal(kv.value, kv.value, 'decoded once, the same bytes after')
    assert.deepEqual(Object.keys({ ...kv, value: new Uint8Array(0) }).sort(), [
      'createRevision',
      'key',
      'lease',
      'modRevision',
      'value',
      'version',
    ])
    const plain = plainKv(kv)
    assert.equal(Object.getPrototypeOf(plain), Object.prototype)
    assert.deepEqual(structuredClone(plain), {
      key: 'k',
      value: new TextEncoder().encode('välue'),
      createRevision: 2,
      modRevision: 5,
      version: 3,
      lease: '0',
    })
    assert.equal(lazyStoredKv({ key: b64('k') }).value.length, 0, 'no value: empty')
  })

  test('the memory storage keeps live changes lazy; reads, subscribers and a reload see the right values', async () => {
    const storage = new MemoryReplicaStorage()
    const { e, committed } = await run(storage)
    assert.ok(
      livePuts(committed).some((kv) => kv instanceof LazyKv),
      'live puts reach the memory storage undecoded',
    )
    const a = await e.read({ key: P.key, end: P.end }, 'local')
    assert.deepEqual(
      a.kvs.map((kv) => `${kv.key}=${text(kv.value)}`),
      ['p/a=second ü', 'p/b=bee'],
    )
    await e.close()
    const again = new ReplicaEngine({ storage, ranges: [P] })
    await again.start()
    const b = await again.read({ key: P.key, end: P.end }, 'local')
    assert.deepEqual(
      b.kvs.map((kv) => `${kv.key}=${text(kv.value)}`),
      ['p/a=second ü', 'p/b=bee'],
    )
    await again.close()
  })

  test('a storage that clones or serializes, and other tabs, get plain kvs whose values survive a clone', async () => {
    class CloningStorage extends MemoryReplicaStorage {
      override readonly keepsObjects = false
    }
    const broadcast: StorageOp[] = []
    for (const [storage, onCommitted] of [
      [new CloningStorage(), undefined],
      [new MemoryReplicaStorage(), (ops: StorageOp[]) => broadcast.push(...structuredClone(ops))],
    ] as const) {
      const { e, committed } = await run(storage, onCommitted)
      const puts = livePuts(committed)
      assert.ok(puts.length >= 2, `live puts committed: ${puts.length}`)
      for (const kv of puts) {
        assert.equal(Object.getPrototypeOf(kv), Object.prototype, `${kv.key}: a plain object`)
        assert.equal(text(structuredClone(kv).value), text(kv.value))
      }
      assert.ok(
        puts.some((kv) => text(structuredClone(kv).value) === 'second ü'),
        'the value survives a structured clone',
      )
      await e.close()
    }
    assert.ok(
      livePuts(broadcast).some((kv) => text(kv.value) === 'bee'),
      'the broadcast ops carry the values',
    )
  })
})
