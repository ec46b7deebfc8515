/**
 * The IndexedDB backend in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * - the whole shared contract suite (contract.ts), one test line per case, run inside one page on fresh databases,
 *   plus the Web Lock (a second open of a database fails with ErrLocked);
 * - write a log, reload the page and read it back, close the browser, relaunch it on the same profile and read it
 *   back again.
 * The pages are bundled by esbuild (node:assert/strict becomes the npm `assert` port) and served by a tiny HTTP server
 * on 127.0.0.1 (IndexedDB is per origin, so the server keeps its port across the relaunch). Skips with a message when
 * Chromium is not installed: `scripts/setup-chromium.sh`.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chromiumArgs, chromiumPath } from '../support/chromium.js'
import { requires } from '../support/requirements.js'
import { contractCases } from './contract.js'

const here = dirname(fileURLToPath(import.meta.url))
const skip = requires('chromium')

async function bundle(page: string): Promise<string> {
  const { build } = await import('esbuild')
  const out = await build({
    entryPoints: [join(here, 'browser', page)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    // The contract suite asserts with node:assert/strict; in the page that is the npm port of it, whose util
    // dependency reads process.env.NODE_DEBUG when it loads.
    alias: { 'node:assert/strict': join(here, 'browser/assert-strict.ts') },
    define: { 'process.env.NODE_DEBUG': 'false', 'process.env.NODE_ENV': '"production"' },
  })
  return out.outputFiles[0]!.text
}

function serve(js: string): Promise<{ server: Server; url: string }> {
  const html =
    '<!doctype html><meta charset="utf-8"><title>edgecd storage</title><script type="module" src="/page.js"></script>'
  const server = createServer((req, res) => {
    if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(js)
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(html)
    } else {
      res.writeHead(404).end()
    }
  })
  return new Promise((res) =>
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address() as { port: number }
      res({ server, url: `http://127.0.0.1:${addr.port}/` })
    }),
  )
}

describe('storage contract: indexeddb in Chromium', () => {
  type ContractApi = {
    runCase(name: string): Promise<string | undefined>
    lockCase(): Promise<string | undefined>
  }
  let browser: import('playwright-core').Browser | undefined
  let page: import('playwright-core').Page | undefined
  let server: Server | undefined
  const pageErrors: string[] = []

  before(async () => {
    if (skip) return
    const { chromium } = await import('playwright-core')
    const served = await serve(await bundle('contract-page.ts'))
    server = served.server
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    page = await browser.newPage()
    page.on('pageerror', (e) => pageErrors.push(String(e)))
    await page.goto(served.url)
    await page.waitForFunction(() => 'edgecdContract' in globalThis, undefined, { timeout: 30_000 })
  })

  after(async () => {
    await browser?.close().catch(() => {})
    server?.close()
  })

  for (const c of contractCases) {
    test(c.name, { skip, timeout: 60_000 }, async () => {
      const failure = await page!.evaluate(
        (name) => (globalThis as unknown as { edgecdContract: ContractApi }).edgecdContract.runCase(name),
        c.name,
      )
      assert.equal(failure, undefined, failure ?? '')
      assert.deepEqual(pageErrors, [])
    })
  }

  test('a second open of a database fails with ErrLocked (Web Locks); read-only opens and close release', {
    skip,
    timeout: 60_000,
  }, async () => {
    const failure = await page!.evaluate(() =>
      (globalThis as unknown as { edgecdContract: ContractApi }).edgecdContract.lockCase(),
    )
    assert.equal(failure, undefined, failure ?? '')
  })
})

test('IndexedDB storage survives a page reload and a browser restart in Chromium', {
  skip,
  timeout: 120_000,
}, async () => {
  const { chromium } = await import('playwright-core')
  const profile = await mkdtemp(join(tmpdir(), 'edgecd-chromium-'))
  const { server, url } = await serve(await bundle('page.ts'))
  const launch = () =>
    chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args: chromiumArgs })
  type Api = { read(): Promise<any>; writeInitial(): Promise<void>; writeMore(): Promise<void> }
  const call = async (page: import('playwright-core').Page, fn: keyof Api) => {
    await page.waitForFunction(() => 'edgecdStorage' in globalThis, undefined, { timeout: 30_000 })
    return page.evaluate((f) => (globalThis as unknown as { edgecdStorage: Api }).edgecdStorage[f](), fn)
  }
  let ctx: import('playwright-core').BrowserContext | undefined
  try {
    ctx = await launch()
    let page = ctx.pages()[0] ?? (await ctx.newPage())
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(String(e)))
    await page.goto(url)
    await call(page, 'writeInitial')
    const first = await call(page, 'read')
    assert.deepEqual(first.hardState, { term: 2, vote: '2', commit: 45 })
    assert.equal(first.snapshot.index, 30)
    assert.equal(first.firstIndex, 31, 'after a reopen the log starts after the snapshot')
    assert.equal(first.lastIndex, 47, 'the new leader cut the tail at 46')
    assert.deepEqual(first.entries.map((e: any) => [e.index, e.term]).slice(-3), [
      [45, 1],
      [46, 2],
      [47, 2],
    ])
    assert.equal(first.dataIsUint8Array, true)

    await page.reload()
    assert.deepEqual(await call(page, 'read'), first, 'after a reload')
    await ctx.close()

    ctx = await launch()
    page = ctx.pages()[0] ?? (await ctx.newPage())
    await page.goto(url)
    assert.deepEqual(await call(page, 'read'), first, 'after a browser restart')
    await call(page, 'writeMore')
    await ctx.close()

    ctx = await launch()
    page = ctx.pages()[0] ?? (await ctx.newPage())
    await page.goto(url)
    const second = await call(page, 'read')
    assert.deepEqual(second.hardState, { term: 3, vote: '', commit: 61 })
    assert.deepEqual(second.snapshot, {
      index: 60,
      term: 3,
      confState: { voters: ['1', '2'], learners: ['3'] },
      data: [9, 9],
    })
    assert.deepEqual(
      second.entries.map((e: any) => [e.index, e.term]),
      [
        [61, 3],
        [62, 3],
      ],
    )
    await ctx.close()
    assert.deepEqual(errors, [])
  } finally {
    // A failed assertion must not leave a Chromium running (closing twice is harmless).
    await ctx?.close().catch(() => {})
    server.close()
    await rm(profile, { recursive: true, force: true })
  }
})
