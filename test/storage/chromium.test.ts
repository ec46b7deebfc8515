/**
 * The IndexedDB backend in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core): write a log, reload
 * the page and read it back, close the browser, relaunch it on the same profile and read it back again. The page is
 * the backend bundled by esbuild, served by a tiny HTTP server on 127.0.0.1 (IndexedDB is per origin, so the server
 * keeps its port across the relaunch). Skips with a message when Chromium is not installed: `scripts/setup-chromium.sh`.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const here = dirname(fileURLToPath(import.meta.url))
/** RUNTIMES.md §4, plus a resolver rule that keeps Chromium from looking up any host but our loopback server. */
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
]
const skip = existsSync(chromiumPath)
  ? false
  : `no Chromium at ${chromiumPath}: run scripts/setup-chromium.sh (apt-get install chromium) to run this test`

async function bundle(): Promise<string> {
  const { build } = await import('esbuild')
  const out = await build({
    entryPoints: [join(here, 'browser/page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
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

test('IndexedDB storage survives a page reload and a browser restart in Chromium', {
  skip,
  timeout: 120_000,
}, async () => {
  const { chromium } = await import('playwright-core')
  const profile = await mkdtemp(join(tmpdir(), 'edgecd-chromium-'))
  const { server, url } = await serve(await bundle())
  const launch = () =>
    chromium.launchPersistentContext(profile, { executablePath: chromiumPath, headless: true, args: chromiumArgs })
  type Api = { read(): Promise<any>; writeInitial(): Promise<void>; writeMore(): Promise<void> }
  const call = async (page: import('playwright-core').Page, fn: keyof Api) => {
    await page.waitForFunction(() => 'edgecdStorage' in globalThis, undefined, { timeout: 20_000 })
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
