/**
 * The minimal repro behind docs/workers.md's "HTTP watch whose client goes away": what workerd (the installed one,
 * through Miniflare as `edgecd serve --runtime workerd` runs it) lets a Durable Object see of a client that closes
 * its connection while the object streams a response. A Worker forwards each request to one object, which answers
 * with a stream that writes one line and then, depending on the path, nothing more, an empty chunk every 200 ms, or
 * a newline every 200 ms; it records its request `signal`'s abort, its response body's `cancel()` and the end or
 * failure of its request body. With `enable_request_signal` (edgecd's flag):
 *
 * - a stream that writes nothing after the client left sees nothing (no abort, no cancel), nor with empty chunks;
 * - a stream that writes sees the abort at its first write and `cancel()` at its second;
 * - a request body still open when the client leaves fails at once, with no write.
 *
 * If a later workerd sees an idle closed connection, the first check fails: then edgecd's watch is released at once
 * in every case, and docs/workers.md should say so.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, test } from 'node:test'
import type { Miniflare } from 'miniflare'
import { workerdCompatibilityDate, workerdCompatibilityFlags } from '../../src/runtime/node/workerd-member.js'
import { eventually } from '../support/index.js'

const script = `
const log = []
export class Obj {
  async fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/log') return Response.json(log)
    const tag = url.pathname.slice(1)
    req.signal.addEventListener('abort', () => log.push(tag + ' signal'))
    ;(async () => {
      try {
        const r = req.body.getReader()
        while (!(await r.read()).done) {}
        log.push(tag + ' body-end')
      } catch {
        log.push(tag + ' body-error')
      }
    })()
    const chunk = tag === 'empty' ? new Uint8Array(0) : new TextEncoder().encode('\\n')
    let timer
    return new Response(new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{}\\n'))
        if (tag !== 'idle' && tag !== 'open-body') timer = setInterval(() => { c.enqueue(chunk); log.push(tag + ' write') }, 200)
      },
      cancel() { clearInterval(timer); log.push(tag + ' cancel') },
    }))
  }
}
export default {
  fetch(req, env) {
    const url = new URL(req.url)
    return env.OBJ.get(env.OBJ.idFromName('o')).fetch(new Request('http://o' + url.pathname, req))
  },
}
`

/** POSTs to `path`, reads the first line, closes the connection; the body is left open when `openBody`. */
function openAndLeave(base: URL, path: string, openBody: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = http.request(new URL(path, base), {
      method: 'POST',
      headers: openBody ? { 'transfer-encoding': 'chunked' } : { 'content-length': '2' },
    })
    r.on('response', (res) =>
      res.once('data', () => {
        r.destroy()
        resolve()
      }),
    )
    r.on('error', (err) => (r.destroyed ? undefined : reject(err)))
    if (openBody) r.write('{}')
    else r.end('{}')
  })
}

describe('workerd: what a Durable Object sees of a client that leaves its streaming response', {
  timeout: 120_000,
}, () => {
  let mf: Miniflare
  let base: URL
  before(async () => {
    const { Miniflare } = await import('miniflare')
    mf = new Miniflare({
      modules: true,
      script,
      compatibilityDate: workerdCompatibilityDate,
      compatibilityFlags: workerdCompatibilityFlags,
      durableObjects: { OBJ: { className: 'Obj', useSQLite: true } },
      cf: false,
      host: '127.0.0.1',
      port: 0,
    })
    base = await mf.ready
  })
  after(async () => {
    await mf?.dispose()
  })
  const events = async (tag: string): Promise<string[]> =>
    ((await (await fetch(new URL('/log', base))).json()) as string[])
      .filter((e) => e.startsWith(`${tag} `))
      .map((e) => e.slice(tag.length + 1))

  test('a request body still open fails at once, with no write', async () => {
    await openAndLeave(base, '/open-body', true)
    await eventually(async () => ((await events('open-body')).includes('body-error') ? true : undefined), 30_000)
  })

  test('a stream that writes sees the abort at its first write, cancel() at its second', async () => {
    await openAndLeave(base, '/writing', false)
    const seen = await eventually(async () => {
      const e = await events('writing')
      return e.includes('cancel') ? e : undefined
    }, 30_000)
    // However many lines went out before the close arrived, the last four events are these.
    assert.deepEqual(seen.slice(-4), ['write', 'signal', 'write', 'cancel'], seen.join(', '))
  })

  test('a stream that writes nothing, or only empty chunks, sees nothing of the client leaving (2 s)', async () => {
    await openAndLeave(base, '/idle', false)
    await openAndLeave(base, '/empty', false)
    await new Promise((r) => setTimeout(r, 2000)) // nothing to wait for: the point is that nothing comes
    assert.deepEqual(await events('idle'), ['body-end'])
    assert.deepEqual(
      (await events('empty')).filter((e) => e !== 'write'),
      ['body-end'],
    )
  })
})
