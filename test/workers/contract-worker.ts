/**
 * Runs inside workerd (bundled by esbuild in storage.test.ts): a Durable Object that runs one case of the shared
 * storage contract suite (../storage/contract.ts) on the SQLite backend of its own storage, plus the cases that only
 * this backend has (chunking past the platform's row limit, a transaction that fails half-way). Each case runs in a
 * fresh object (named by the test); the response is 'ok' or the error with its stack.
 */
import type { DurableObjectNamespace, DurableObjectState } from '../../src/runtime/workers/cf-api.js'
import { openSqlStorage } from '../../src/runtime/workers/sql-storage.js'
import { isStorageError } from '../../src/storage/errors.js'
import { assertLog, contractCases, ent, ents, snap } from '../storage/contract.js'

function fail(what: string): never {
  throw new Error(what)
}

/** Cases of this backend alone, run like contract cases. */
const extraCases: { name: string; run(ctx: DurableObjectState): Promise<void> }[] = [
  {
    name: 'entries and snapshots past the 2 MB row limit are chunked and survive a reopen',
    async run(ctx) {
      let s = await openSqlStorage(ctx.storage)
      const big = { index: 1, term: 1, type: 0 as const, data: new Uint8Array(5 * 1024 * 1024 + 3).fill(7) }
      big.data[big.data.length - 1] = 9
      await s.save({ term: 1, vote: '1', commit: 1 }, [big, ent(2, 1)])
      await s.close()
      s = await openSqlStorage(ctx.storage)
      assertLog(s, [big, ent(2, 1)], { term: 1, vote: '1', commit: 1 })
      const snapData = new Uint8Array(4 * 1024 * 1024 + 1).fill(3)
      await s.saveSnapshot({
        data: snapData,
        metadata: { index: 2, term: 1, confState: { voters: ['1'], learners: [] } },
      })
      await s.save(undefined, [ent(3, 1)])
      await s.close()
      s = await openSqlStorage(ctx.storage)
      if (s.snapshot().data.byteLength !== snapData.byteLength)
        fail(`snapshot came back with ${s.snapshot().data.byteLength} bytes`)
      if (s.snapshot().data.some((b) => b !== 3)) fail('snapshot bytes differ')
      assertLog(s, [ent(3, 1)])
      await s.close()
    },
  },
  {
    name: 'a save whose transaction fails leaves the previous state and refuses later writes',
    async run(ctx) {
      let failNext = false
      const open = () =>
        openSqlStorage(ctx.storage, {
          chunkBytes: 50,
          beforeCommit: () => {
            if (failNext) throw new Error('injected crash before commit')
          },
        })
      let s = await open()
      await s.save({ term: 1, vote: '1', commit: 2 }, ents(1, 3, 1, 120))
      failNext = true
      // A new leader's overwrite of 2..3 plus a new hard state: none of it may land.
      const err = await s.save({ term: 2, vote: '2', commit: 3 }, ents(2, 4, 2, 120)).then(
        () => fail('the failing save resolved'),
        (e: unknown) => e,
      )
      if (!isStorageError(err, 'ErrIO') || !/injected crash/.test((err as Error).message))
        fail(`wrong error: ${String(err)}`)
      failNext = false
      // After a failed write the storage refuses every later write, as after a failed fsync.
      const again = await s.save(undefined, [ent(4, 1)]).then(
        () => undefined,
        (e: unknown) => e,
      )
      if (again !== err) fail(`a write after the failure was not refused with the same error: ${String(again)}`)
      await s.close()
      s = await open()
      assertLog(s, ents(1, 3, 1, 120), { term: 1, vote: '1', commit: 2 })
      // A failing snapshot transaction keeps the old snapshot and the entries it would have released.
      await s.saveSnapshot(snap(1, 1))
      failNext = true
      await s.saveSnapshot(snap(2, 1)).then(
        () => fail('the failing snapshot resolved'),
        () => {},
      )
      failNext = false
      await s.close()
      s = await open()
      if (s.snapshot().metadata.index !== 1) fail(`snapshot ${s.snapshot().metadata.index} after a failed one`)
      assertLog(s, ents(2, 3, 1, 120), { term: 1, vote: '1', commit: 2 })
      await s.close()
    },
  },
]

export class ContractHarness {
  constructor(private readonly ctx: DurableObjectState) {}

  async fetch(req: Request): Promise<Response> {
    const name = new URL(req.url).searchParams.get('case') ?? ''
    try {
      const c = contractCases.find((x) => x.name === name)
      if (c) {
        // Small chunks, so that every case also exercises entries and snapshots split over several rows.
        await c.run({ open: () => openSqlStorage(this.ctx.storage, { chunkBytes: 50 }) })
      } else {
        const x = extraCases.find((e) => e.name === name)
        if (!x) return new Response(`no case named ${JSON.stringify(name)}`, { status: 404 })
        await x.run(this.ctx)
      }
      return new Response('ok')
    } catch (err) {
      const e = err as Error
      return new Response(`${e?.message ?? String(err)}\n${e?.stack ?? ''}`, { status: 500 })
    }
  }
}

export const extraCaseNames = extraCases.map((c) => c.name)

export default {
  async fetch(req: Request, env: { HARNESS: DurableObjectNamespace }): Promise<Response> {
    const url = new URL(req.url)
    if (url.pathname === '/cases')
      return Response.json({ contract: contractCases.map((c) => c.name), extra: extraCaseNames })
    const object = url.searchParams.get('object') ?? 'default'
    return env.HARNESS.get(env.HARNESS.idFromName(object)).fetch(req)
  },
}
