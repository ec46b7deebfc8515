/**
 * Real processes, default timeouts (heartbeat 100 ms, election 1000 ms): kill -9 the leader under a write load, a
 * surviving member accepts writes again, and no acknowledged write is lost on any member after the killed one
 * restarts. Then the same for a follower. The fail-over time itself is a benchmark (bench/failover.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, eventually, post } from '../support/index.js'
import { ProcessCluster } from './process.js'

describe('kill -9 of real members (default timeouts)', () => {
  let c: ProcessCluster
  before(async () => {
    c = await ProcessCluster.start(3)
  })
  after(async () => {
    await c?.close()
  })

  /** Writes keys prefix0.. through the given members until stopped; returns the acknowledged keys. */
  function writer(prefix: string, members: () => number[]) {
    const acked: string[] = []
    let stop = false
    const done = (async () => {
      for (let n = 0; !stop && n < 5000; n++) {
        const ms = members()
        const i = ms[n % ms.length]!
        const key = `${prefix}${n}`
        const r = await post(c.urls[i]!, '/v3/kv/put', { key: b64(key), value: b64('v') }).catch(() => undefined)
        if (r?.status === 200) acked.push(key)
        else await new Promise((res) => setTimeout(res, 10))
      }
    })()
    return {
      acked,
      stop: async () => {
        stop = true
        await done
      },
    }
  }

  async function allHave(keys: string[], prefix: string) {
    for (let i = 0; i < 3; i++) {
      await eventually(
        async () => {
          const r = await post(c.urls[i]!, '/v3/kv/range', {
            key: b64(prefix),
            range_end: b64(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)),
            keys_only: true,
          })
          if (r.status !== 200) return undefined
          const have = new Set((r.json.kvs ?? []).map((kv: any) => Buffer.from(kv.key, 'base64').toString()))
          return keys.every((k) => have.has(k)) ? true : undefined
        },
        15_000,
        `member ${i} to have every acknowledged ${prefix} key`,
      )
    }
  }

  test('kill -9 the leader: a survivor takes writes again, nothing acknowledged lost', async () => {
    const li = await eventually(() => c.leader(), 10_000, 'a leader')
    const survivors = [0, 1, 2].filter((i) => i !== li)
    const w = writer('L', () => [0, 1, 2].filter((i) => c.procs[i]))
    // Counted, not timed: a loaded machine (a full test run beside other work) may ack only a few writes in 500 ms.
    await eventually(() => (w.acked.length >= 5 ? true : undefined), 15_000, 'writes acknowledged before the kill')
    const t0 = Date.now()
    c.kill9(li)
    // Wait longer than the bound asserted below, so that a slow fail-over is reported as what it took (the bound
    // must be able to fail: waiting only as long as the bound made it always hold).
    const failoverMs = await c.timeToFirstWrite(survivors, t0, 30_000)
    console.log(`# fail-over: ${failoverMs} ms from kill -9 of the leader to a successful write`)
    // The 3 s target is measured by `npm run bench -- failover`; here, under a loaded test run, only a loose bound.
    assert.ok(failoverMs <= 10_000, `fail-over took ${failoverMs} ms`)
    const atFailover = w.acked.length
    await eventually(() => (w.acked.length >= atFailover + 6 ? true : undefined), 15_000, 'writes after the fail-over')
    await w.stop()
    assert.ok(w.acked.length > 10, `only ${w.acked.length} writes acknowledged`)
    c.spawn(li)
    await c.waitHealthy(li)
    await allHave(w.acked, 'L')
  })

  test('kill -9 a follower: writes go on; it restarts and catches up', async () => {
    const li = await eventually(() => c.leader(), 10_000, 'a leader')
    const fi = (li + 1) % 3
    const w = writer('F', () => [li])
    await new Promise((r) => setTimeout(r, 300))
    c.kill9(fi)
    await new Promise((r) => setTimeout(r, 700))
    await w.stop()
    c.spawn(fi)
    await c.waitHealthy(fi)
    await allHave(w.acked, 'F')
  })
})
