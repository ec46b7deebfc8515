/**
 * The storage contract suite inside workerd: the Durable Object SQLite backend (src/runtime/workers/sql-storage.ts)
 * bundled with esbuild as RUNTIMES.md §3/§5 say (cbor-x's no-eval build, node:assert/strict as the npm port) and run
 * by Miniflare's local workerd, one fresh object per case, plus the backend's own cases (chunking past the 2 MB row
 * limit, a failing transaction). Nothing leaves 127.0.0.1: Miniflare gets `cf: false` and no outbound network.
 */
import assert from 'node:assert/strict'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Miniflare } from 'miniflare'
import { contractCases } from '../storage/contract.js'
import { bundleWorker } from './support.js'

const here = dirname(fileURLToPath(import.meta.url))

describe('storage contract: Durable Object SQLite in workerd (miniflare)', () => {
  let mf: Miniflare
  let extra: string[] = []
  before(async () => {
    const script = await bundleWorker(join(here, 'contract-worker.ts'), {
      'node:assert/strict': join(here, '../storage/browser/assert-strict.ts'),
    })
    const { Miniflare } = await import('miniflare')
    mf = new Miniflare({
      modules: true,
      script,
      compatibilityDate: '2026-04-20',
      durableObjects: { HARNESS: { className: 'ContractHarness', useSQLite: true } },
      cf: false,
      durableObjectsPersist: false,
    })
    const r = await mf.dispatchFetch('http://localhost/cases')
    extra = ((await r.json()) as { extra: string[] }).extra
  })
  after(async () => {
    await mf?.dispose()
  })

  let n = 0
  const run = async (name: string) => {
    const r = await mf.dispatchFetch(
      `http://localhost/run?case=${encodeURIComponent(name)}&object=${encodeURIComponent(`${name}#${++n}`)}`,
    )
    const text = await r.text()
    assert.equal(r.status, 200, text)
  }
  for (const c of contractCases) test(c.name, () => run(c.name))
  test('backend cases (chunking past the row limit, a failing transaction)', async () => {
    assert.equal(extra.length, 2)
    for (const name of extra) await run(name)
  })
})
