/**
 * The browser replica in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core), against a real
 * member. The page comes from its own static server on 127.0.0.1 (so it reloads while the member is down) and loads
 * the module the member serves at GET /ui/replica.js (fetched once here and served by the static server, as a site
 * would bundle or cache it). It syncs a prefix, sees live changes, survives the member being stopped and the page
 * reloaded (reads answer from IndexedDB with stale: true), catches up when the member returns and after a
 * compaction while it was away, shares one sync between two tabs and hands over when the leading tab closes, and a
 * quota error puts it in a clear error state. Skips when Chromium is not installed (scripts/setup-chromium.sh).
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, before, describe, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import type { Client } from '../../src/client/index.js'
import { type RestartableMember, startMember, testClient } from '../client/helpers.js'
import { chromiumArgs, chromiumPath, chromiumSkip } from '../support/chromium.js'

const skip = chromiumSkip

const html = `<!doctype html><meta charset="utf-8"><title>replica</title>
<script type="module">
  import * as R from '/replica.js'
  window.R = R
  window.changes = []
  window.progress = 0
  window.open1 = async (opts) => {
    window.r = await R.openReplica(opts)
    window.r.watch({ prefix: 'app/' }, (c) => { for (const e of c.events) window.changes.push(e.type + ' ' + e.kv.key + '=' + e.kv.value) })
    window.r.onProgress(() => { window.progress++ })
    return window.r.status.state
  }
  window.loaded = true
</script>`

function serveStatic(js: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/replica.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    else if (req.url === '/' || req.url?.startsWith('/?')) res.writeHead(200, { 'content-type': 'text/html' }).end(html)
    else res.writeHead(404).end()
  })
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () =>
      ok({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` }),
    ),
  )
}

type W = {
  open1(o: unknown): Promise<string>
  r: {
    get(k: string, o?: unknown): Promise<{ value?: string; revision: number; stale: boolean; lastContact?: number }>
    status: { state: string; revision: number; leader: boolean; error?: { code: string; message: string } }
    leader: boolean
    close(): Promise<void>
  }
  changes: string[]
  progress: number
  loaded: boolean
}

describe('browser replica in Chromium', { skip }, () => {
  let m: RestartableMember
  let c: Client
  let browser: Browser
  let ctx: BrowserContext
  let site: { server: Server; url: string }
  let opts: { endpoint: string; prefix: string }

  before(async () => {
    m = await startMember()
    c = testClient([m.url])
    const res = await fetch(`${m.url}/ui/replica.js`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /javascript/)
    const js = await res.text()
    assert.doesNotMatch(js, /\bfrom\s*["'][^./"']/, 'no bare imports')
    site = await serveStatic(js)
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    ctx = await browser.newContext()
    opts = { endpoint: m.url, prefix: 'app/' }
  })

  after(async () => {
    await browser?.close().catch(() => {})
    site?.server.close()
    c?.close()
    await m?.close()
  })

  async function openPage(): Promise<Page> {
    const page = await ctx.newPage()
    page.on('pageerror', (e) => console.error('page error:', e))
    await page.goto(site.url)
    await page.waitForFunction(() => (globalThis as unknown as W).loaded === true, undefined, { timeout: 30_000 })
    return page
  }
  const get = (p: Page, k: string, o?: unknown) =>
    p.evaluate(([k, o]) => (globalThis as unknown as W).r.get(k as string, o), [k, o] as const)

  test('openReplica + get, live changes, offline reload from IndexedDB (stale), catch-up, compaction while away', async () => {
    for (let i = 0; i < 50; i++) await c.put(`app/${i}`, `v${i}`)
    await c.put('other/x', 'not followed')
    let page = await openPage()
    assert.equal(await page.evaluate((o) => (globalThis as unknown as W).open1(o), opts), 'live')
    const g = await get(page, 'app/7')
    assert.deepEqual([g.value, g.stale], ['v7', false])
    assert.equal((await get(page, 'app/none')).value, undefined)

    // Live change, seen by a subscription and a linearizable read.
    await c.put('app/7', 'seven')
    await page.waitForFunction(() => (globalThis as unknown as W).changes.includes('PUT app/7=seven'), undefined, {
      timeout: 30_000,
    })
    assert.equal((await get(page, 'app/7')).value, 'seven')

    // The member goes down; the page reloads and answers from IndexedDB.
    await m.stop()
    await page.reload()
    await page.waitForFunction(() => (globalThis as unknown as W).loaded === true)
    await page.evaluate((o) => (globalThis as unknown as W).open1(o), opts)
    await page.waitForFunction(() => (globalThis as unknown as W).r.status.state === 'offline', undefined, {
      timeout: 30_000,
    })
    const off = await get(page, 'app/7')
    assert.deepEqual([off.value, off.stale], ['seven', true])
    assert.ok(typeof off.lastContact === 'number' && off.lastContact > 0)
    const strict = await page.evaluate(() =>
      (globalThis as unknown as W).r.get('app/7', { consistency: 'linearizable-only' }).then(
        () => 'answered',
        (e: { code: string }) => e.code,
      ),
    )
    assert.equal(strict, 'ERR_OFFLINE')

    // The member returns: the page catches up.
    await m.start()
    const c2 = testClient([m.url])
    await c2.put('app/new', 'back')
    await page.waitForFunction(
      () => (globalThis as unknown as W).r.get('app/new').then((x) => x.value === 'back' && !x.stale),
      undefined,
      { timeout: 30_000, polling: 200 },
    )

    // Away (page closed) while keys change and the history is compacted: the next page re-copies and catches up.
    await page.close()
    for (let i = 0; i < 10; i++) await c2.put(`app/${i}`, `w${i}`)
    await c2.delete('app/9')
    const last = await c2.put('app/7', 'final')
    await c2.compact(last.header.revision)
    page = await openPage()
    await page.evaluate((o) => (globalThis as unknown as W).open1(o), opts)
    await page.waitForFunction(
      () => (globalThis as unknown as W).r.get('app/7').then((x) => x.value === 'final' && !x.stale),
      undefined,
      { timeout: 30_000, polling: 200 },
    )
    await page.waitForFunction(() => (globalThis as unknown as W).r.status.state === 'live', undefined, {
      timeout: 30_000,
    })
    const fin = await get(page, 'app/7')
    assert.deepEqual([fin.value, fin.stale], ['final', false])
    assert.equal((await get(page, 'app/9')).value, undefined)
    assert.ok(fin.revision >= last.header.revision)
    await page.evaluate(() => (globalThis as unknown as W).r.close())
    await page.close()
    c2.close()
  })

  test('two tabs share one sync (Web Locks leader, BroadcastChannel); the other takes over when the leader closes', async () => {
    const a = await openPage()
    await a.evaluate((o) => (globalThis as unknown as W).open1(o), opts)
    const b = await openPage()
    await b.evaluate((o) => (globalThis as unknown as W).open1(o), opts)
    const isLeader = () => (globalThis as unknown as W).r.leader
    const deadline = Date.now() + 30_000
    while (!(await a.evaluate(isLeader)) && !(await b.evaluate(isLeader)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100))
    const leaders = [
      await a.evaluate(() => (globalThis as unknown as W).r.leader),
      await b.evaluate(() => (globalThis as unknown as W).r.leader),
    ]
    assert.deepEqual(leaders.sort(), [false, true], 'exactly one tab leads')
    const [lead, follow] = (await a.evaluate(() => (globalThis as unknown as W).r.leader)) ? [a, b] : [b, a]
    await c.put('app/shared', 'one')
    await follow.waitForFunction(() => (globalThis as unknown as W).changes.includes('PUT app/shared=one'), undefined, {
      timeout: 30_000,
    })
    // The follower's linearizable read: its own quorum read, the leader's progress.
    const fr = await get(follow, 'app/shared')
    assert.deepEqual([fr.value, fr.stale], ['one', false])
    await c.put('other/elsewhere', 'x')
    const fr2 = await get(follow, 'app/shared')
    assert.equal(fr2.stale, false)

    const progressBefore = await follow.evaluate(() => (globalThis as unknown as W).progress)
    await lead.close()
    await follow.waitForFunction(() => (globalThis as unknown as W).r.leader === true, undefined, { timeout: 30_000 })
    await c.put('app/shared', 'two')
    await follow.waitForFunction(() => (globalThis as unknown as W).changes.includes('PUT app/shared=two'), undefined, {
      timeout: 30_000,
    })
    assert.equal(
      await follow.evaluate(() => (globalThis as unknown as W).progress),
      progressBefore,
      'the new leader resumed from the stored revision: no copy pages',
    )
    await follow.evaluate(() => (globalThis as unknown as W).r.close())
    await follow.close()
  })

  test('a page on another origin imports the module straight from the member (the example page does)', async () => {
    const page = await openPage()
    const g = (await page.evaluate(`(async () => {
      const R = await import(${JSON.stringify(`${m.url}/ui/replica.js`)})
      const r = await R.openReplica({ endpoint: ${JSON.stringify(m.url)}, prefix: 'app/', name: 'direct-import' })
      const g = await r.get('app/7')
      await r.close()
      return { value: g.value, stale: g.stale, revision: g.revision }
    })()`)) as { value: string; stale: boolean; revision: number }
    assert.equal(g.stale, false)
    assert.equal(g.value, (await c.get('app/7'))?.value)
    await page.close()
  })

  test('persistent storage is requested; a quota error is a clear error state', async () => {
    const page = await openPage()
    // A string, not a function: tsx would wrap named functions with a helper the page does not have.
    await page.evaluate(`(async () => {
      const inner = await R.IndexedDbReplicaStorage.open('quota-test')
      let full = false
      window.fill = () => { full = true }
      const storage = {
        name: inner.name,
        load: () => inner.load(),
        close: () => inner.close(),
        commit: (ops) => full
          ? Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'))
          : inner.commit(ops),
      }
      window.q = await R.openReplica({ endpoint: ${JSON.stringify(opts.endpoint)}, prefix: 'app/', storage, shareTabs: false })
    })()`)
    assert.equal(await page.evaluate('window.q.status.state'), 'live')
    assert.equal(await page.evaluate('typeof window.q.persisted'), 'boolean')
    await page.evaluate('window.fill()')
    await c.put('app/quota', 'x')
    await page.waitForFunction('window.q.status.state === "error"', undefined, { timeout: 30_000 })
    const st = (await page.evaluate('({ code: q.status.error.code, message: q.status.error.message })')) as {
      code: string
      message: string
    }
    assert.equal(st.code, 'ERR_QUOTA')
    assert.match(st.message, /quota/)
    // Reads still answer what it has, marked stale; linearizable-only refuses.
    assert.equal(await page.evaluate('q.get("app/7").then((x) => x.stale)'), true)
    assert.equal(
      await page.evaluate('q.get("app/7", { consistency: "linearizable-only" }).then(() => "answered", (e) => e.code)'),
      'ERR_QUOTA',
    )
    await page.evaluate('q.close()')
    await page.close()
  })

  test('a copy that would not fit the quota (navigator.storage.estimate) is not started: ERR_QUOTA', async () => {
    for (let i = 0; i < 3; i++) await c.put(`app/big-${i}`, 'x'.repeat(2000))
    const page = await openPage()
    // The origin's estimate, stubbed: 1 kB free, less than the prefix needs.
    const err = (await page.evaluate(`(async () => {
      navigator.storage.estimate = async () => ({ usage: 99000, quota: 100000 })
      try {
        await R.openReplica({ endpoint: ${JSON.stringify(opts.endpoint)}, prefix: 'app/', name: 'quota-ahead', shareTabs: false, persist: false })
        return 'opened'
      } catch (e) {
        return { code: e.code, message: e.message }
      }
    })()`)) as { code: string; message: string } | string
    assert.equal(typeof err, 'object', String(err))
    const e = err as { code: string; message: string }
    assert.equal(e.code, 'ERR_QUOTA')
    assert.match(
      e.message,
      /needs about .* but the storage has 1 kB free of its 100 kB quota; the copy was not started/,
    )
    // Nothing was copied into IndexedDB.
    const pages = await page.evaluate(`(async () => {
      const s = await R.IndexedDbReplicaStorage.open('quota-ahead')
      const l = await s.load()
      await s.close()
      return l.reduce((n, x) => n + x.kvs.length + x.staged.length, 0)
    })()`)
    assert.equal(pages, 0)
    await page.close()
  })
})
