/**
 * The console at /ui (src/console, docs/console.md) in real Chromium (playwright-core with Debian's chromium) against
 * a three-member cluster: every view loads without console errors and shows what the gateway answers on the same
 * member (members, leader, term; keys with revisions; leases; auth status), the keys and watch views update live
 * when a key changes, and after the member goes away a reload still shows the last known keys, marked stale with
 * their revision (the service worker serves the shell). Screenshots of each view go to docs/console/.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { leaderIndex, startCluster, type TestCluster } from '../cluster/helpers.js'
import { chromiumArgs, chromiumPath, chromiumSkip } from '../support/chromium.js'
import { b64, eventually, post, unb64 } from '../support/index.js'
import { repoRoot } from '../support/prometheus.js'

const skip = chromiumSkip
const shots = process.env.EDGECD_CONSOLE_SHOTS === '1'
const shot = (name: string) => join(repoRoot, 'docs/console', `${name}.png`)

type Page = import('playwright-core').Page

test('the committed console build (src/console/assets.gen.ts) is fresh and under 100 KB gzipped', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts/build-console.mjs'), '--check'], {
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

describe('console in Chromium against a three-member cluster', { skip, timeout: 240_000 }, () => {
  let c: TestCluster
  let ctx: import('playwright-core').BrowserContext
  let page: Page
  let profile: string
  const errors: string[] = []
  let leaseId = ''

  before(async () => {
    c = await startCluster(3)
    await eventually(() => leaderIndex(c), 10_000, 'a leader')
    for (const [k, v] of [
      ['app/config', '{"replicas":3,"region":"eu-west"}'],
      ['app/feature/dark-mode', 'on'],
      ['app/feature/beta', 'off'],
      ['app/binary', '\u0000\u0001\u0002binary'],
    ])
      assert.equal((await post(c.urls[0]!, '/v3/kv/put', { key: b64(k), value: b64(v) })).status, 200)
    await post(c.urls[0]!, '/v3/kv/put', { key: b64('app/config'), value: b64('{"replicas":5,"region":"eu-west"}') })
    const g = await post(c.urls[0]!, '/v3/lease/grant', { TTL: 600 })
    leaseId = g.json.ID
    await post(c.urls[0]!, '/v3/kv/put', { key: b64('app/session/alice'), value: b64('token-1'), lease: leaseId })
    const { chromium } = await import('playwright-core')
    profile = await mkdtemp(join(tmpdir(), 'edgecd-console-'))
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: chromiumArgs,
      viewport: { width: 1200, height: 760 },
    })
    page = ctx.pages()[0] ?? (await ctx.newPage())
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text())
    })
    page.on('pageerror', (e) => errors.push(String(e)))
    page.on('dialog', (d) => void d.accept())
  })

  after(async () => {
    await ctx?.close().catch(() => {})
    await c?.close()
    if (profile) await rm(profile, { recursive: true, force: true })
  })

  test('the page is served by every member, under 100 KB gzipped', async () => {
    for (const u of c.urls) {
      const r = await fetch(u + '/ui/')
      assert.equal(r.status, 200)
      assert.match(await r.text(), /<div id="app">/)
    }
    const redirect = await fetch(c.urls[0] + '/ui', { redirect: 'manual' })
    assert.equal(redirect.status, 301)
    assert.equal(redirect.headers.get('location'), '/ui/')
    const { gzipSync } = await import('node:zlib')
    let total = 0
    for (const p of ['/ui/', '/ui/app.js', '/ui/app.css'])
      total += gzipSync(await (await fetch(c.urls[1] + p)).text()).length
    assert.ok(total < 100 * 1024, `page ${total} bytes gzipped`)
  })

  test('cluster view: members, roles, terms and the leader as status says', async () => {
    const url = c.urls[0]!
    await page.goto(url + '/ui/#/cluster')
    await page.waitForSelector('[data-testid=members] tbody tr[data-member] >> nth=2')
    await page.waitForFunction(() => document.querySelector('[data-testid=leader]')?.textContent !== 'none')
    const status = await post(url, '/v3/maintenance/status', {})
    const members = (await post(url, '/v3/cluster/member/list', {})).json.members as { ID: string; name: string }[]
    const leaderName = members.find((m) => m.ID === status.json.leader)!.name
    assert.equal(await page.textContent('[data-testid=leader]'), leaderName)
    assert.equal(await page.textContent('[data-testid=alarms]'), 'none')
    const rows = await page.$$eval('[data-testid=members] tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim())),
    )
    assert.deepEqual(rows.map((r) => r[0]).sort(), ['m0', 'm1', 'm2'])
    for (const r of rows) {
      const m = members.find((x) => x.name === r[0])!
      assert.equal(r[1], m.ID)
      assert.equal(r[2], m.ID === status.json.leader ? 'leader' : 'follower')
      assert.equal(r[3], status.json.raftTerm ?? status.json.header.raft_term)
      assert.equal(r[7], 'healthy')
    }
    // The chart draws proposals per second while some writes go on.
    await page.waitForSelector('.chart canvas')
    for (let i = 0; i < 30; i++) {
      await post(url, '/v3/kv/put', { key: b64(`load/${i % 5}`), value: b64('x') })
      await page.waitForTimeout(100)
    }
    await page.waitForTimeout(1200)
    if (shots) await page.screenshot({ path: shot('cluster'), fullPage: true })
    assert.deepEqual(errors, [])
  })

  test('keys view: the listing, values as text/JSON/hex, history; updates live when a key changes', async () => {
    const url = c.urls[1]!
    await page.goto(url + '/ui/#/keys')
    await page.fill('[data-testid=prefix]', 'app/')
    await page.waitForSelector('[data-testid=keys] tbody tr[data-key="app/session/alice"]')
    const range = await post(url, '/v3/kv/range', { key: b64('app/'), range_end: b64('app0') })
    const want = (
      range.json.kvs as { key: string; create_revision: string; mod_revision: string; version: string }[]
    ).map((k) => [unb64(k.key), k.create_revision, k.mod_revision, k.version])
    // The rows of the previous listing (the overview's load/ keys) may still be on the page when app/session/alice
    // appears: on a busy machine the filtered listing replaces them a moment later. It must then equal the range.
    await eventually(
      async () => {
        const got = await page.$$eval('[data-testid=keys] tbody tr', (trs) =>
          trs.map((tr) => [
            tr.getAttribute('data-key'),
            ...[...tr.querySelectorAll('td')].slice(1, 4).map((td) => td.textContent?.trim()),
          ]),
        )
        assert.deepEqual(got, want)
        return true
      },
      10_000,
      'the keys listing of app/ equal to the range',
    )
    // Read through the browser replica (the member serves /ui/replica.js), linearizably: the revision is current.
    await page.waitForFunction(
      (r) => document.querySelector('[data-testid=listing-state]')?.textContent?.includes(`revision ${r} `),
      range.json.header.revision,
    )
    assert.match((await page.textContent('[data-testid=listing-state]')) ?? '', /· browser replica$/)
    const lease = await page.textContent('[data-testid=keys] tbody tr[data-key="app/session/alice"] td:nth-child(5)')
    assert.equal(lease?.trim(), leaseId)
    // A JSON value, pretty-printed, and its history (two versions).
    await page.click('[data-testid=keys] tr[data-key="app/config"] button')
    await page.click('[role=tab]:has-text("JSON")')
    assert.equal(
      await page.textContent('[data-testid=value]'),
      JSON.stringify({ replicas: 5, region: 'eu-west' }, null, 2),
    )
    await page.waitForSelector('[data-testid=history] tbody tr >> nth=1')
    assert.equal(await page.locator('[data-testid=history] tbody tr').count(), 2)
    if (shots) await page.screenshot({ path: shot('keys'), fullPage: true })
    await page.click('[data-testid=keys] tr[data-key="app/binary"] button')
    await page.click('[role=tab]:has-text("HEX")')
    assert.match((await page.textContent('[data-testid=value]')) ?? '', /^00 01 02 62 69 6e/)
    // Live: a put on another member shows up, a delete disappears.
    await post(c.urls[2]!, '/v3/kv/put', { key: b64('app/feature/new'), value: b64('yes') })
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/feature/new"]', { timeout: 30_000 })
    await post(c.urls[2]!, '/v3/kv/deleterange', { key: b64('app/feature/new') })
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/feature/new"]', {
      state: 'detached',
      timeout: 30_000,
    })
    // Put and delete from the page (the confirmation is accepted).
    await page.fill('[data-testid=put-key]', 'app/from-ui')
    await page.fill('[data-testid=put-value]', 'hello')
    await page.click('button:has-text("Put…")')
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/from-ui"]')
    assert.equal(unb64((await post(url, '/v3/kv/range', { key: b64('app/from-ui') })).json.kvs[0].value), 'hello')
    await page.click('button:has-text("Delete…")')
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/from-ui"]', { state: 'detached' })
    assert.equal((await post(url, '/v3/kv/range', { key: b64('app/from-ui') })).json.kvs, undefined)
    assert.deepEqual(errors, [])
  })

  test('watch view: events of a prefix as they happen', async () => {
    await page.goto(c.urls[2] + '/ui/#/watch')
    await page.fill('[data-testid=watch-prefix]', 'app/feature/')
    await page.click('button:has-text("Watch")')
    await page.waitForFunction(() =>
      document.querySelector('[data-testid=watch-state]')?.textContent?.startsWith('watching'),
    )
    await post(c.urls[0]!, '/v3/kv/put', { key: b64('app/feature/dark-mode'), value: b64('off') })
    await post(c.urls[0]!, '/v3/kv/deleterange', { key: b64('app/feature/beta') })
    await page.waitForSelector('[data-testid=events] tbody tr >> nth=1', { timeout: 30_000 })
    const rows = await page.$$eval('[data-testid=events] tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 3).map((td) => td.textContent)),
    )
    assert.deepEqual(rows, [
      ['DELETE', 'app/feature/beta', ''],
      ['PUT', 'app/feature/dark-mode', 'off'],
    ])
    if (shots) await page.screenshot({ path: shot('watch'), fullPage: true })
    assert.deepEqual(errors, [])
  })

  test('leases view: TTL counting down and the keys attached', async () => {
    await page.goto(c.urls[0] + '/ui/#/leases')
    const row = `[data-testid=leases] tr[data-lease="${leaseId}"]`
    await page.waitForSelector(row)
    assert.match((await page.textContent(`${row} td:nth-child(4)`)) ?? '', /app\/session\/alice/)
    const ttl = async () => Number(((await page.textContent(`${row} [data-testid=ttl]`)) ?? '').replace(' s', ''))
    const t1 = await ttl()
    assert.ok(t1 > 500 && t1 <= 600, String(t1))
    await page.waitForFunction(
      ([sel, t]) => Number(document.querySelector(sel as string)?.textContent?.replace(' s', '')) < (t as number),
      [`${row} [data-testid=ttl]`, t1] as const,
      { timeout: 30_000 },
    )
    if (shots) await page.screenshot({ path: shot('leases'), fullPage: true })
    assert.deepEqual(errors, [])
  })

  test('users and roles view: auth disabled, as auth/status says', async () => {
    await page.goto(c.urls[0] + '/ui/#/auth')
    await page.waitForFunction(() => document.querySelector('[data-testid=auth-enabled]')?.textContent !== '…')
    assert.equal(await page.textContent('[data-testid=auth-enabled]'), 'disabled')
    assert.deepEqual(errors, [])
  })

  test('keyboard: digit keys switch views, arrow keys move through the keys', async () => {
    await page.goto(c.urls[0] + '/ui/#/cluster')
    await page.waitForSelector('#h-cluster')
    await page.keyboard.press('2')
    await page.waitForSelector('#h-keys')
    await page.fill('[data-testid=prefix]', 'app/')
    await page.waitForSelector('[data-testid=keys] tbody tr >> nth=1')
    await page.focus('[data-testid=keys] tbody tr:first-child button')
    await page.keyboard.press('ArrowDown')
    const second = await page.getAttribute('[data-testid=keys] tbody tr:nth-child(2)', 'data-key')
    assert.equal(await page.textContent('[data-testid=selected]'), second)
    await page.click('h2')
    await page.keyboard.press('4')
    await page.waitForSelector('#h-leases')
  })

  test('offline: with the member gone, a reload shows the last known keys, marked stale with their revision', async () => {
    const url = c.urls[1]!
    await page.goto(url + '/ui/#/keys')
    await page.evaluate(() => navigator.serviceWorker.ready)
    await page.reload()
    await page.waitForFunction(() => !!navigator.serviceWorker.controller)
    await page.fill('[data-testid=prefix]', 'app/')
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/config"]')
    const revision = (await post(url, '/v3/kv/range', { key: b64('app/'), range_end: b64('app0') })).json.header
      .revision
    await page.waitForFunction(
      (r) => document.querySelector('[data-testid=listing-state]')?.textContent?.includes(`revision ${r}`),
      revision,
    )
    const before = await page.$$eval('[data-testid=keys] tbody tr', (trs) =>
      trs.map((tr) => tr.getAttribute('data-key')),
    )
    await c.stop(1)
    const r = await page.reload()
    assert.ok(r?.fromServiceWorker(), 'the shell came from the service worker')
    await page.waitForSelector('[data-testid=listing-state].stale', { timeout: 30_000 })
    assert.equal(
      await page.textContent('[data-testid=listing-state]'),
      `stale: last known at revision ${revision} (browser replica)`,
    )
    assert.deepEqual(
      await page.$$eval('[data-testid=keys] tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-key'))),
      before,
    )
    if (shots) await page.screenshot({ path: shot('offline'), fullPage: true })
  })
})

describe('console in Chromium against a single member with auth on', { skip, timeout: 180_000 }, () => {
  let c: TestCluster
  let browser: import('playwright-core').Browser
  let page: Page
  const errors: string[] = []
  const password = 'console-root-pw'

  before(async () => {
    c = await startCluster(1, { authPasswordIterations: 1000 })
    await eventually(() => leaderIndex(c), 10_000, 'a leader')
    const url = c.urls[0]!
    const must = async (path: string, body: unknown) => assert.equal((await post(url, path, body)).status, 200, path)
    await must('/v3/auth/user/add', { name: 'root', password })
    await must('/v3/auth/user/grant', { user: 'root', role: 'root' })
    await must('/v3/auth/role/add', { name: 'app' })
    await must('/v3/auth/role/grant', {
      name: 'app',
      perm: { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') },
    })
    await must('/v3/auth/user/add', { name: 'alice', password: 'alice-pw' })
    await must('/v3/auth/user/grant', { user: 'alice', role: 'app' })
    await must('/v3/auth/enable', {})
    const { chromium } = await import('playwright-core')
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    page = await browser.newPage({ viewport: { width: 1200, height: 700 } })
    page.on('pageerror', (e) => errors.push(String(e)))
    page.on('dialog', (d) => void d.accept())
  })

  after(async () => {
    await browser?.close().catch(() => {})
    await c?.close()
  })

  test('a call refused for want of a token opens the login form; the password is kept nowhere', async () => {
    await page.goto(c.urls[0] + '/ui/#/keys')
    await page.waitForSelector('#h-login')
    if (shots) await page.screenshot({ path: shot('login') })
    await page.fill('[data-testid=login-user]', 'root')
    await page.fill('[data-testid=login-password]', password)
    await page.click('button:has-text("Log in") >> nth=1')
    await page.waitForSelector('#h-keys')
    const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage, ...localStorage }))
    assert.ok(!stored.includes(password), 'the password is not stored')
    assert.match(stored, /edgecd-console-token/)
    // Root writes through the page; the key is there for curl with a root token.
    await page.fill('[data-testid=prefix]', 'app/')
    await page.fill('[data-testid=put-key]', 'app/secret')
    await page.fill('[data-testid=put-value]', 's3cr3t')
    await page.click('button:has-text("Put…")')
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/secret"]')
    const token = (await post(c.urls[0]!, '/v3/auth/authenticate', { name: 'root', password })).json.token
    const r = await post(c.urls[0]!, '/v3/kv/range', { key: b64('app/secret') }, { headers: { Authorization: token } })
    assert.equal(unb64(r.json.kvs[0].value), 's3cr3t')
  })

  test('users and roles as root: the same users, roles and permissions as the gateway lists', async () => {
    await page.goto(c.urls[0] + '/ui/#/auth')
    await page.waitForSelector('[data-testid=users] tbody tr >> nth=1')
    assert.equal(await page.textContent('[data-testid=auth-enabled]'), 'enabled')
    const users = await page.$$eval('[data-testid=users] tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    )
    assert.deepEqual(users, [
      ['alice', 'app'],
      ['root', 'root'],
    ])
    // etcd lists only roles that were added: root's role is implicit.
    await page.waitForSelector('[data-testid=roles] tbody tr')
    const roles = await page.$$eval('[data-testid=roles] tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    )
    assert.deepEqual(roles, [['app', 'READWRITE app/ .. app0']])
    if (shots) await page.screenshot({ path: shot('users'), fullPage: true })
    // The cluster view of a single member.
    await page.goto(c.urls[0] + '/ui/#/cluster')
    await page.waitForSelector('[data-testid=members] tbody tr[data-member=m0]')
    await page.waitForFunction(() => document.querySelector('[data-testid=leader]')?.textContent === 'm0')
    assert.deepEqual(errors, [])
  })

  test('log out, then a user without root: the keys it may read, and permission denied for users', async () => {
    await page.click('button:has-text("Log out")')
    await page.goto(c.urls[0] + '/ui/#/keys')
    await page.waitForSelector('#h-login')
    await page.fill('[data-testid=login-user]', 'alice')
    await page.fill('[data-testid=login-password]', 'alice-pw')
    await page.click('button:has-text("Log in") >> nth=1')
    await page.waitForSelector('#h-keys')
    await page.fill('[data-testid=prefix]', 'app/')
    await page.waitForSelector('[data-testid=keys] tr[data-key="app/secret"]')
    await page.goto(c.urls[0] + '/ui/#/auth')
    await page.waitForSelector('.error')
    assert.match((await page.textContent('.error')) ?? '', /permission denied/)
  })
})
