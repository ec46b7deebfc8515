/**
 * Restart tests with real member processes (`node --import tsx src/cli/main.ts serve`): what was acknowledged
 * before a SIGTERM or a kill -9 is there after the restart, at the same revisions, with no revision missing or
 * applied twice; leases survive with a remaining TTL.
 *
 * The kill -9 test is seeded (the seed is printed; replay with EDGECD_RESTART_SEED=N); more rounds with
 * EDGECD_RESTART_ROUNDS=N (default 2).
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { seededRand } from '../../src/raft/rand.js'
import { b64, type EdgecdProcess, eventually, freePort, post, startEdgecd, unb64 } from '../support/index.js'
import { LineStream } from './helpers.js'

const children = new Set<ChildProcess>()
const dirs: string[] = []
after(() => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

type Proc = EdgecdProcess

/** Starts `edgecd serve` on a data dir and waits (bounded) until /health answers. */
async function startProc(dataDir: string, port: number, extra: string[] = []): Promise<Proc> {
  const p = await startEdgecd({ dataDir, clientUrl: `http://127.0.0.1:${port}`, extra, timeoutMs: 60_000 })
  children.add(p.child)
  p.exited.then(() => children.delete(p.child))
  return p
}

async function waitExit(p: Proc, ms = 30_000): Promise<number | string> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const t = new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), ms)))
  const v = await Promise.race([p.exited, t])
  clearTimeout(timer)
  return v
}

const everything = { key: 'AA==', range_end: 'AA==' }

test('SIGTERM: puts, txns, deletes, leases and compaction survive a clean restart unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-restart-'))
  dirs.push(dir)
  const port = await freePort()
  let p = await startProc(dir, port)
  const u = p.url
  for (let i = 0; i < 20; i++) await post(u, '/v3/kv/put', { key: b64(`k/${i % 7}`), value: b64(`v${i}`) })
  await post(u, '/v3/kv/txn', {
    success: [
      { request_put: { key: b64('t/a'), value: b64('A') } },
      { request_put: { key: b64('t/b'), value: b64('B') } },
      { request_delete_range: { key: b64('k/0') } },
    ],
  })
  await post(u, '/v3/kv/deleterange', { key: b64('k/1'), range_end: b64('k/3') })
  const long = await post(u, '/v3/lease/grant', { TTL: 900, ID: 101 })
  // The short lease must outlive the requests up to each snapshot below (~15 before the SIGTERM, ~7 after the
  // restart, which renews it to its full TTL): 20 s leaves a loaded machine room; its expiry is still waited for.
  const shortTTL = 20
  const short = await post(u, '/v3/lease/grant', { TTL: shortTTL, ID: 102 })
  await post(u, '/v3/kv/put', { key: b64('l/long'), value: b64('x'), lease: 101 })
  await post(u, '/v3/kv/put', { key: b64('l/short'), value: b64('y'), lease: 102 })
  const mid = Number(
    (await post(u, '/v3/kv/put', { key: b64('k/5'), value: b64('before-compaction') })).json.header.revision,
  )
  for (let i = 0; i < 5; i++) await post(u, '/v3/kv/put', { key: b64('k/6'), value: b64(`after-${i}`) })
  await post(u, '/v3/kv/compaction', { revision: mid })
  assert.equal(long.json.TTL, '900')
  assert.equal(short.json.TTL, String(shortTTL))

  const snapshot = async (base: string) => {
    const all = await post(base, '/v3/kv/range', everything)
    const atMid = await post(base, '/v3/kv/range', { ...everything, revision: mid })
    const compacted = await post(base, '/v3/kv/range', { ...everything, revision: mid - 1 })
    const hash = await post(base, '/v3/maintenance/hashkv', {})
    const leases = await post(base, '/v3/lease/leases', {})
    return {
      revision: all.json.header.revision,
      kvs: all.json.kvs,
      atMid: atMid.json.kvs,
      compacted: compacted.json,
      hash: hash.json.hash,
      compactRevision: hash.json.compact_revision,
      // listed soonest expiry first (etcd's order): a restart renews every lease, so compare them as a set
      leases: (leases.json.leases as { ID: string }[]).map((l) => l.ID).sort(),
    }
  }
  const before = await snapshot(u)
  const ttlBefore = Number((await post(u, '/v3/lease/timetolive', { ID: 101 })).json.TTL)
  p.child.kill('SIGTERM')
  assert.equal(await waitExit(p), 0, `clean exit on SIGTERM; stderr: ${p.stderr()}`)

  const restartedAt = Date.now()
  p = await startProc(dir, port)
  const afterRestart = await snapshot(p.url)
  assert.deepEqual(afterRestart, before)
  assert.equal(afterRestart.compacted.code, 11, 'reads below the compaction revision still fail after restart')
  const t101 = await post(p.url, '/v3/lease/timetolive', { ID: 101, keys: true })
  assert.equal(t101.json.grantedTTL, '900')
  assert.ok(
    Number(t101.json.TTL) > 0 && Number(t101.json.TTL) <= ttlBefore,
    `long lease remaining ${t101.json.TTL} (was ${ttlBefore})`,
  )
  assert.deepEqual(t101.json.keys, [b64('l/long')])
  const t102 = await post(p.url, '/v3/lease/timetolive', { ID: 102 })
  assert.ok(Number(t102.json.TTL) > 0 && Number(t102.json.TTL) <= shortTTL, `short lease remaining ${t102.json.TTL}`)
  // The short lease still expires after the restart (its full TTL after the new leader's promotion, which
  // comes after restartedAt), and takes its key with it.
  await eventually(
    async () =>
      (await post(p.url, '/v3/kv/range', { key: b64('l/short') })).json.kvs === undefined ? true : undefined,
    shortTTL * 1000 + 30_000,
    'the short lease to expire after the restart',
    100,
  )
  const expiredAfter = Date.now() - restartedAt
  assert.ok(expiredAfter >= shortTTL * 1000 - 500, `not expired early: ${expiredAfter} ms after the restart`)
  assert.equal((await post(p.url, '/v3/kv/range', { key: b64('l/long') })).json.kvs?.length, 1)
  // And the member keeps working from the same revision.
  const next = await post(p.url, '/v3/kv/put', { key: b64('after'), value: b64('1') })
  assert.equal(
    Number(next.json.header.revision),
    Number(before.revision) + 2,
    'the expiry took one revision, this put the next',
  )
  p.child.kill('SIGTERM')
  assert.equal(await waitExit(p), 0)
})

interface Ack {
  revision: number
  puts: [string, string][]
  deletes: string[]
}

test('kill -9 during a concurrent write load: every acknowledged write survives at its revision, no gaps, no duplicates', async () => {
  const seed = Number(process.env.EDGECD_RESTART_SEED ?? Math.floor(Math.random() * 2 ** 31))
  const rounds = Number(process.env.EDGECD_RESTART_ROUNDS ?? 2)
  console.log(`# restart kill -9 test: seed ${seed}, rounds ${rounds} (replay: EDGECD_RESTART_SEED=${seed})`)
  const rnd = seededRand(seed)
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-kill-'))
  dirs.push(dir)
  const port = await freePort()
  const acks: Ack[] = []
  const leases: { ID: string; TTL: number }[] = []
  let seq = 0
  for (let round = 0; round < rounds; round++) {
    const p = await startProc(dir, port)
    const u = p.url
    // A lease granted (and acknowledged) before the crash must exist afterwards.
    const g = await post(u, '/v3/lease/grant', { TTL: 600 })
    assert.equal(g.status, 200)
    leases.push({ ID: g.json.ID, TTL: 600 })
    await post(u, '/v3/kv/put', { key: b64(`lease/${round}`), value: b64('l'), lease: g.json.ID })
    let killed = false
    const client = async (c: number) => {
      while (!killed) {
        const kind = rnd.intn(10)
        const v = `r${round}c${c}s${seq++}`
        const k = () => `k/${rnd.intn(40)}`
        let body: unknown
        let path: string
        let expect: Omit<Ack, 'revision'>
        if (kind < 6) {
          const key = k()
          path = '/v3/kv/put'
          body = { key: b64(key), value: b64(v) }
          expect = { puts: [[key, v]], deletes: [] }
        } else if (kind < 9) {
          const a = `t/${rnd.intn(20)}`
          const b = `t/${20 + rnd.intn(20)}`
          path = '/v3/kv/txn'
          body = {
            success: [
              { request_put: { key: b64(a), value: b64(`${v}a`) } },
              { request_put: { key: b64(b), value: b64(`${v}b`) } },
            ],
          }
          expect = {
            puts: [
              [a, `${v}a`],
              [b, `${v}b`],
            ],
            deletes: [],
          }
        } else {
          const key = k()
          path = '/v3/kv/deleterange'
          body = { key: b64(key) }
          expect = { puts: [], deletes: [key] }
        }
        try {
          const a = await post(u, path, body)
          if (a.status !== 200) continue
          if (path === '/v3/kv/deleterange' && a.json.deleted === undefined) continue // no-op delete: no revision
          acks.push({ revision: Number(a.json.header.revision), ...expect })
        } catch {
          // Connection refused or reset by the kill: not acknowledged, may or may not be applied.
        }
      }
    }
    const killAfterMs = 300 + rnd.intn(1200)
    const load = Promise.all([0, 1, 2, 3, 4, 5].map(client))
    await new Promise((r) => setTimeout(r, killAfterMs))
    p.child.kill('SIGKILL')
    killed = true
    assert.equal(await waitExit(p), 'SIGKILL')
    await load
    console.log(`# round ${round}: killed after ${killAfterMs} ms, ${acks.length} acknowledged writes so far`)
  }

  const p = await startProc(dir, port)
  const u = p.url
  const current = Number((await post(u, '/v3/kv/range', { key: b64('x') })).json.header.revision)
  // Replay every revision from 2 through the watch: the whole history, batched.
  const w = await LineStream.open(
    u,
    '/v3/watch',
    JSON.stringify({ create_request: { ...everything, start_revision: 2 } }),
  )
  assert.equal((await w.next()).result.created, true)
  const byRev = new Map<number, { type?: string; kv: { key: string; value?: string; mod_revision: string } }[]>()
  let last = 1
  while (last < current) {
    const msg = (await w.next(10_000)).result
    for (const e of msg.events) {
      const r = Number(e.kv.mod_revision)
      assert.ok(r >= last, 'events arrive in revision order')
      last = r
      byRev.set(r, [...(byRev.get(r) ?? []), e])
    }
  }
  w.close()
  // No missing revision: every revision 2..current carries events.
  for (let r = 2; r <= current; r++)
    assert.ok(byRev.has(r), `revision ${r} is missing from the history (current ${current}, seed ${seed})`)
  // No write applied twice: every value written by the load appears at one revision only.
  const valueAt = new Map<string, number>()
  for (const [r, evs] of byRev)
    for (const e of evs) {
      if (e.type === 'DELETE' || !e.kv.value) continue
      const v = unb64(e.kv.value)
      if (v === 'l') continue
      assert.equal(
        valueAt.get(v),
        undefined,
        `value ${v} written at revisions ${valueAt.get(v)} and ${r} (seed ${seed})`,
      )
      valueAt.set(v, r)
    }
  // Every acknowledged write is there, at the revision it was acknowledged with, and nothing else shares it.
  const ackedRevs = new Set<number>()
  for (const a of acks) {
    assert.ok(!ackedRevs.has(a.revision), `two acknowledged writes at revision ${a.revision} (seed ${seed})`)
    ackedRevs.add(a.revision)
    const evs = byRev.get(a.revision)
    assert.ok(evs, `acknowledged revision ${a.revision} lost (seed ${seed})`)
    const got = evs
      .map((e) => (e.type === 'DELETE' ? `D ${unb64(e.kv.key)}` : `P ${unb64(e.kv.key)}=${unb64(e.kv.value ?? '')}`))
      .sort()
    const want = [...a.puts.map(([k, v]) => `P ${k}=${v}`), ...a.deletes.map((k) => `D ${k}`)].sort()
    assert.deepEqual(got, want, `revision ${a.revision} (seed ${seed})`)
  }
  // The current state agrees with the history (mod_revision, create_revision, version of every key).
  const all = await post(u, '/v3/kv/range', everything)
  for (const kv of all.json.kvs ?? []) {
    const key = unb64(kv.key)
    const hist = [...byRev.entries()]
      .sort((x, y) => x[0] - y[0])
      .flatMap(([r, evs]) => evs.filter((e) => unb64(e.kv.key) === key).map((e) => ({ r, del: e.type === 'DELETE' })))
    const lastDel = hist.findLastIndex((h) => h.del)
    const gen = hist.slice(lastDel + 1)
    assert.equal(kv.mod_revision, String(gen.at(-1)!.r), key)
    assert.equal(kv.create_revision, String(gen[0]!.r), key)
    assert.equal(kv.version, String(gen.length), key)
  }
  // Leases granted before each crash are still there, with a remaining TTL, and keep their keys.
  for (const [i, l] of leases.entries()) {
    const t = await post(u, '/v3/lease/timetolive', { ID: l.ID, keys: true })
    assert.ok(Number(t.json.TTL) > 0 && Number(t.json.TTL) <= l.TTL, `lease ${l.ID}: TTL ${t.json.TTL}`)
    assert.deepEqual(t.json.keys, [b64(`lease/${i}`)])
  }
  console.log(`# kill -9: ${acks.length} acknowledged writes checked over ${current - 1} revisions (seed ${seed})`)
  p.child.kill('SIGTERM')
  assert.equal(await waitExit(p), 0)
})
