/**
 * One cluster of three runtimes, each member started as users start it: `edgecd serve --runtime node`, `--runtime
 * deno` and `--runtime workerd` (a Durable Object in a local workerd through Miniflare), same flags, same peer
 * protocol and cluster credential. Checked: the cluster elects; a write on each member is read linearizably on every
 * member (replication in all directions); then each member in turn is killed with SIGKILL (its whole process group:
 * the launcher and the deno or workerd child at once) while a client keeps writing through the other two, restarted
 * with the same flags, and must rejoin and hold every write that was acknowledged, as must the others.
 *
 * Bounded: each write and read has a deadline, the writer runs a fixed time around each kill, and every wait ends
 * with an error naming what it waited for (plus the member's log tail). Loopback only.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { b64, eventually, freePort, post, serveFlags } from '../support/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
const runtimes = ['node', 'deno', 'workerd'] as const
/** Starting a member can take long on a loaded 2-core machine (workerd: bundle + runtime start, ~10 s there). */
const startMs = 90_000

interface Proc {
  name: string
  runtime: (typeof runtimes)[number]
  url: string
  dir: string
  child?: ChildProcess
  log: string
}

class MixedCluster {
  constructor(readonly members: Proc[]) {}

  static async start(): Promise<MixedCluster> {
    const members: Proc[] = []
    for (const runtime of runtimes)
      members.push({
        name: `${runtime}1`,
        runtime,
        url: `http://127.0.0.1:${await freePort()}`,
        dir: mkdtempSync(join(tmpdir(), `edgecd-mixed-${runtime}-`)),
        log: '',
      })
    const c = new MixedCluster(members)
    for (const m of members) c.spawn(m)
    await Promise.all(members.map((m) => c.waitUp(m)))
    return c
  }

  spawn(m: Proc): void {
    const initialCluster = this.members.map((x) => `${x.name}=${x.url}`).join(',')
    const args = [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'serve',
      ...serveFlags({
        name: m.name,
        dataDir: m.dir,
        clientUrl: m.url,
        initialCluster,
        token: 'mixed-test',
        extra: ['--runtime', m.runtime],
      }),
    ]
    m.child = spawn(process.execPath, args, {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
    })
    m.child.stderr!.on('data', (d) => {
      m.log = (m.log + String(d)).slice(-3000)
    })
  }

  async waitUp(m: Proc): Promise<void> {
    await eventually(
      async () => ((await fetch(`${m.url}/version`).catch(() => undefined))?.ok ? true : undefined),
      startMs,
      `${m.name} (${m.runtime}) to serve`,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n--- ${m.name} log ---\n${m.log}`)
    })
  }

  /** SIGKILL to the member's process group: the launcher and its deno or workerd child die together. */
  kill9(m: Proc): void {
    if (m.child?.pid !== undefined) {
      try {
        process.kill(-m.child.pid, 'SIGKILL')
      } catch {}
    }
    m.child = undefined
  }

  async close(): Promise<void> {
    for (const m of this.members) this.kill9(m)
    await new Promise((r) => setTimeout(r, 500))
    for (const m of this.members) rmSync(m.dir, { recursive: true, force: true })
  }
}

/** A put with a deadline; true only when the member acknowledged it. */
async function put(url: string, key: string, value: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({ key: b64(key), value: b64(value) }),
      signal: AbortSignal.timeout(10_000),
    })
    return r.status === 200
  } catch {
    return false
  }
}

/** The keys under `prefix` as a linearizable read on `url` sees them. */
async function keys(url: string, prefix: string): Promise<Set<string> | undefined> {
  const r = await post(url, '/v3/kv/range', {
    key: b64(prefix),
    range_end: b64(`${prefix.slice(0, -1)}0`),
    keys_only: true,
  })
  if (r.status !== 200) return undefined
  return new Set(((r.json.kvs ?? []) as { key: string }[]).map((kv) => Buffer.from(kv.key, 'base64').toString()))
}

describe('a mixed cluster: one Node, one Deno and one workerd member', { timeout: 600_000 }, () => {
  let c: MixedCluster
  before(async () => {
    c = await MixedCluster.start()
  })
  after(async () => {
    await c?.close()
  })

  test('elects, replicates every way, reads linearizably on every member', async () => {
    const ids = await Promise.all(
      c.members.map((m) =>
        eventually(
          async () => {
            const r = await post(m.url, '/v3/maintenance/status', {})
            return r.status === 200 && r.json.leader && r.json.leader !== '0' ? r.json.leader : undefined
          },
          60_000,
          `${m.name} to know a leader`,
        ),
      ),
    )
    assert.equal(new Set(ids).size, 1, 'every member names the same leader')
    for (const m of c.members) assert.ok(await put(m.url, `r/${m.runtime}`, m.name), `put through ${m.name}`)
    for (const m of c.members) {
      const seen = await keys(m.url, 'r/')
      assert.deepEqual([...(seen ?? [])].sort(), ['r/deno', 'r/node', 'r/workerd'], `linearizable read on ${m.name}`)
    }
  })

  for (const victim of runtimes) {
    test(`kill -9 of the ${victim} member: no acknowledged write lost, it rejoins`, async () => {
      const v = c.members.find((m) => m.runtime === victim)!
      const others = c.members.filter((m) => m !== v)
      const acked: string[] = []
      let stop = false
      let n = 0
      // A client writing through the two survivors, one write at a time, before, during and after the kill.
      const writer = (async () => {
        while (!stop) {
          const m = others[n % others.length]!
          const key = `k/${victim}/${String(n++).padStart(4, '0')}`
          if (await put(m.url, key, 'v')) acked.push(key)
          else await new Promise((r) => setTimeout(r, 50))
        }
      })()
      // Counted, not timed: a loaded machine may acknowledge few writes in a fixed second.
      await eventually(() => (acked.length >= 3 ? true : undefined), 60_000, 'writes acknowledged before the kill')
      c.kill9(v)
      const atKill = acked.length
      await eventually(
        () => (acked.length >= atKill + 3 ? true : undefined),
        60_000,
        'writes acknowledged by the survivors after the kill',
      ).finally(() => {
        stop = true
      })
      await writer
      c.spawn(v)
      await c.waitUp(v)
      for (const m of c.members) {
        const seen = await eventually(
          async () => {
            const s = await keys(m.url, `k/${victim}/`).catch(() => undefined)
            return s && acked.every((k) => s.has(k)) ? s : undefined
          },
          60_000,
          `${m.name} to hold all ${acked.length} acknowledged writes`,
        ).catch((err) => {
          throw new Error(`${(err as Error).message}\n--- ${m.name} log ---\n${m.log}`)
        })
        assert.ok(seen.size >= acked.length)
      }
      // The restarted member takes writes again.
      assert.ok(await put(v.url, `k/${victim}/after`, 'v'), `a write through the restarted ${victim} member`)
    })
  }
})
