/**
 * The CLI's fetch over plain http (src/cli/http-fetch.ts: a connection per request from src/cli/tcp-connection.ts,
 * the answer parsed by http-parser-js) against a node:http server: what the client's transport reads behaves as
 * undici's fetch would, over libuv's TCP handle (tcp_wrap) and over node:net (EDGECD_CLI_NODE_NET, and names).
 */
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { nodeFetch } from '../../src/cli/http-fetch.js'
import { connect, connectionKind } from '../../src/cli/tcp-connection.js'

for (const kind of ['tcp_wrap', 'node:net'] as const)
  describe(`nodeFetch over http:// (${kind})`, () => {
    let server: Server
    let base: string
    const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string }[] = []
    const routes: Record<string, (req: IncomingMessage, res: ServerResponse, body: string) => void> = {
      '/sized': (_req, res, body) => {
        res.setHeader('content-type', 'application/json')
        res.setHeader('x-two', ['a', 'b'])
        res.end(JSON.stringify({ echo: body }))
      },
      '/chunked': (_req, res) => {
        res.write('one,')
        setTimeout(() => res.end('two'), 20)
      },
      '/status': (_req, res) => {
        res.statusCode = 503
        res.end('{"error":"down"}')
      },
      '/empty': (_req, res) => {
        res.statusCode = 204
        res.end()
      },
      '/cut': (_req, res) => {
        res.setHeader('content-length', '100')
        res.write('only part')
        setTimeout(() => res.socket?.destroy(), 20)
      },
      '/slow': () => {},
    }

    before(async () => {
      if (kind === 'node:net') process.env.EDGECD_CLI_NODE_NET = '1'
      assert.equal(connectionKind('127.0.0.1'), kind)
      server = createServer((req, res) => {
        let body = ''
        req.on('data', (c) => {
          body += c
        })
        req.on('end', () => {
          seen.push({ method: req.method, url: req.url, headers: req.headers, body })
          routes[new URL(req.url!, 'http://x').pathname]!(req, res, body)
        })
      })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    })
    after(() => {
      delete process.env.EDGECD_CLI_NODE_NET
      server.closeAllConnections()
      server.close()
    })

    const fetch = nodeFetch()

    test('a POST with headers and a body; status, headers and JSON of a sized answer', async () => {
      const r = await fetch(`${base}/sized?q=1`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer t' },
        body: '{"key":"é"}',
      })
      assert.equal(r.status, 200)
      assert.equal(r.ok, true)
      assert.equal(r.headers.get('Content-Type'), 'application/json')
      assert.equal(r.headers.get('x-two'), 'a, b')
      assert.deepEqual(await r.json(), { echo: '{"key":"é"}' })
      const s = seen.at(-1)!
      assert.equal(s.method, 'POST')
      assert.equal(s.url, '/sized?q=1')
      assert.equal(s.headers.authorization, 'Bearer t')
      assert.equal(s.headers['content-length'], String(Buffer.byteLength('{"key":"é"}')))
    })

    test('a chunked answer, read as text and as a stream', async () => {
      assert.equal(await (await fetch(`${base}/chunked`)).text(), 'one,two')
      const r = await fetch(`${base}/chunked`)
      const parts: string[] = []
      for await (const c of r.body!) parts.push(Buffer.from(c).toString())
      assert.equal(parts.join(''), 'one,two')
    })

    test('non-2xx and bodiless answers', async () => {
      const r = await fetch(`${base}/status`, { method: 'POST', body: '{}' })
      assert.equal(r.status, 503)
      assert.equal(r.ok, false)
      assert.deepEqual(await r.json(), { error: 'down' })
      const e = await fetch(`${base}/empty`, { method: 'POST', body: '{}' })
      assert.equal(e.status, 204)
      assert.equal(await e.text(), '')
    })

    test("errors as undici's: fetch failed with the socket error as cause, terminated, AbortError", async () => {
      const refused = await fetch('http://127.0.0.1:1/x').catch((e: unknown) => e)
      assert.ok(refused instanceof TypeError)
      assert.equal(refused.message, 'fetch failed')
      assert.equal((refused.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED')

      const cut = await fetch(`${base}/cut`)
      const t = await cut.text().catch((e: unknown) => e)
      assert.ok(t instanceof TypeError)
      assert.equal(t.message, 'terminated')

      const ac = new AbortController()
      const pending = fetch(`${base}/slow`, { signal: ac.signal })
      setTimeout(() => ac.abort(), 20)
      const aborted = await pending.catch((e: unknown) => e)
      assert.equal((aborted as Error).name, 'AbortError')
      const already = await fetch(`${base}/sized`, { signal: AbortSignal.abort() }).catch((e: unknown) => e)
      assert.equal((already as Error).name, 'AbortError')

      const smuggled = await fetch(`${base}/sized`, { headers: { 'x-a': 'b\r\nx-evil: 1' } }).catch((e: unknown) => e)
      assert.ok(smuggled instanceof TypeError)
    })
  })

describe('tcp-connection: libuv TCP handle and node:net alike', () => {
  /** The error of connecting to a closed port, through one kind. */
  async function refusedError(kind: 'tcp_wrap' | 'node:net'): Promise<NodeJS.ErrnoException & { address?: string }> {
    if (kind === 'node:net') process.env.EDGECD_CLI_NODE_NET = '1'
    try {
      assert.equal(connectionKind('127.0.0.1'), kind)
      return await new Promise((resolve, reject) => {
        let err: Error | undefined
        connect('127.0.0.1', 1, {
          data: () => reject(new Error('data')),
          end: () => reject(new Error('end')),
          error: (e) => {
            err = e
          },
          close: () => (err ? resolve(err as NodeJS.ErrnoException) : reject(new Error('closed without error'))),
        })
      })
    } finally {
      delete process.env.EDGECD_CLI_NODE_NET
    }
  }

  test("a refused connection is node:net's error: message, code, errno, syscall, address, port", async () => {
    const raw = await refusedError('tcp_wrap')
    const net = await refusedError('node:net')
    assert.equal(raw.message, 'connect ECONNREFUSED 127.0.0.1:1')
    for (const k of ['message', 'code', 'errno', 'syscall', 'address', 'port'] as const)
      assert.equal((raw as unknown as Record<string, unknown>)[k], (net as unknown as Record<string, unknown>)[k], k)
  })

  test('names go through node:net; IP literals through the handle', () => {
    assert.equal(connectionKind('localhost'), 'node:net')
    assert.equal(connectionKind('127.0.0.1'), 'tcp_wrap')
    assert.equal(connectionKind('::1'), 'tcp_wrap')
    assert.equal(connectionKind('256.0.0.1'), 'node:net')
  })

  test('a large answer in many reads, and writes queued before the connection is up (IPv4 and IPv6)', async (t) => {
    const big = 'x'.repeat(300_000)
    const server = createServer((_req, res) => res.end(big))
    for (const host of ['127.0.0.1', '::1']) {
      const listening = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false))
        server.listen(0, host, () => resolve(true))
      })
      if (!listening) {
        t.diagnostic(`no ${host} here`)
        continue
      }
      const port = (server.address() as AddressInfo).port
      const chunks: Buffer[] = []
      await new Promise<void>((resolve, reject) => {
        const c = connect(host, port, {
          data: (d) => chunks.push(d),
          end: () => {},
          error: reject,
          close: () => resolve(),
        })
        c.write('GET / HTTP/1.1\r\nhost: x\r\n')
        c.write('connection: close\r\n\r\n')
      })
      const text = Buffer.concat(chunks).toString()
      assert.ok(chunks.length > 1, 'several reads')
      assert.ok(text.startsWith('HTTP/1.1 200 OK'))
      assert.ok(text.endsWith(big))
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })
})
