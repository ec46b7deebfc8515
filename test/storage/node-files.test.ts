/** The contract suite on the Node file backend, in a temp directory per case. */

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { openNodeStorage } from '../../src/runtime/node/storage.js'
import { contractCases } from './contract.js'

describe('storage contract: node files', () => {
  for (const c of contractCases) {
    test(c.name, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'edgecd-node-'))
      try {
        await c.run({ open: () => openNodeStorage(join(dir, 'data'), { walSegmentBytesMax: 4096 }) })
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

test('node files: a lone small durable write is done when the call returns; writes in the same turn all land', async () => {
  const { readFileSync } = await import('node:fs')
  const { NodeFileOps } = await import('../../src/runtime/node/file-ops.js')
  const dir = await mkdtemp(join(tmpdir(), 'edgecd-node-'))
  try {
    const ops = new NodeFileOps(dir)
    const f = await ops.openWrite('w')
    const a = new Uint8Array(300).fill(0x61)
    const b = new Uint8Array(300).fill(0x62)
    const big = new Uint8Array(5000).fill(0x63)
    // Small writes bring the moving average of write sizes (module-wide: the suite above wrote big ones) down and the
    // smallest recent size (the suite wrote tiny ones too; it forgets 2% a write) up to theirs.
    for (let i = 0; i < 200; i++) await f.writeDurable(b, 0)
    await new Promise((r) => setImmediate(r))
    const first = f.writeDurable(a, 0)
    // The first small write of an event-loop turn is one blocking write: on disk before the call returns.
    assert.deepEqual(readFileSync(join(dir, 'w')).subarray(0, 300), Buffer.from(a))
    const second = f.writeDurable(b, 300)
    const third = f.writeDurable(big, 600)
    await Promise.all([first, second, third])
    const all = readFileSync(join(dir, 'w'))
    assert.equal(all.length, 600 + 5000)
    assert.deepEqual(all.subarray(300, 600), Buffer.from(b))
    assert.deepEqual(all.subarray(600), Buffer.from(big))
    // The big write lifted the average above the smallest recent write: mixed sizes (batches) go through the pool
    // until small single writes bring it back down.
    for (let i = 0; i < 200; i++) await f.writeDurable(b, 0)
    await new Promise((r) => setImmediate(r))
    const again = f.writeDurable(b, 0)
    assert.deepEqual(readFileSync(join(dir, 'w')).subarray(0, 300), Buffer.from(b))
    await again
    await f.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('node files: a background write (the WAL zero fill) leaves the blocking-write gate as it was', async () => {
  const { readFileSync } = await import('node:fs')
  const { NodeFileOps } = await import('../../src/runtime/node/file-ops.js')
  const dir = await mkdtemp(join(tmpdir(), 'edgecd-node-'))
  try {
    const ops = new NodeFileOps(dir)
    const f = await ops.openWrite('w')
    const a = new Uint8Array(300).fill(0x61)
    const b = new Uint8Array(300).fill(0x62)
    for (let i = 0; i < 200; i++) await f.writeDurable(b, 0)
    await new Promise((r) => setImmediate(r))
    // A 1 MiB zero fill, as FileStorage.preallocate starts it.
    await f.writeDurable(new Uint8Array(1 << 20), 4096, true)
    await new Promise((r) => setImmediate(r))
    // The next lone small write is still one blocking write: counted in the size average, the fill would have sent
    // it (and about 24 after it) through the pool.
    // A blocking write's promise settles within microtasks; a pool write's only after an event-loop turn.
    let settled = false
    const next = f.writeDurable(a, 0).then(() => {
      settled = true
    })
    for (let i = 0; i < 5; i++) await Promise.resolve()
    assert.equal(settled, true, 'the small write after the fill went through the pool')
    assert.deepEqual(readFileSync(join(dir, 'w')).subarray(0, 300), Buffer.from(a))
    await next
    assert.equal(readFileSync(join(dir, 'w')).length, 4096 + (1 << 20))
    await f.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
