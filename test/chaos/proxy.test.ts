import assert from 'node:assert/strict'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { ChaosProxy } from './proxy.js'

/** An echo server: what the proxy forwards `in` comes back `out`. */
let echo: Server
let echoPort = 0
const sockets = new Set<Socket>()

before(async () => {
  echo = createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
  echoPort = (echo.address() as { port: number }).port
})
after(async () => {
  for (const s of sockets) s.destroy()
  await new Promise((r) => echo.close(r))
})

const head = (from: string) => `GET /raft HTTP/1.1\r\nhost: x\r\nx-edgecd-from: ${from}\r\n\r\n`

/** Connects, sends the head, and collects what comes back. */
async function open(port: number, from: string) {
  const s = connect(port, '127.0.0.1')
  let got = ''
  let closed = false
  s.on('data', (d) => {
    got += String(d)
  })
  s.on('error', () => {})
  let onClose: () => void = () => {}
  const closedNow = new Promise<void>((r) => {
    onClose = r
  })
  s.on('close', () => {
    closed = true
    onClose()
  })
  await new Promise<void>((r) => s.once('connect', () => r()))
  s.write(head(from))
  return {
    s,
    got: () => got,
    closed: () => closed,
    /** Waits for the socket's close event (a loaded machine may deliver it late), up to `ms`; true once closed. */
    async waitClosed(ms = 30_000) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([closedNow, new Promise((r) => (timer = setTimeout(r, ms)))])
      clearTimeout(timer)
      return closed
    },
    /** Waits until `text` came back (true), the socket closed or `ms` passed (false). */
    async waitFor(text: string, ms = 30_000) {
      const deadline = Date.now() + ms
      while (!got.includes(text) && Date.now() < deadline && !closed) await new Promise((r) => setTimeout(r, 5))
      return got.includes(text)
    },
  }
}

describe('chaos proxy', () => {
  test('passes bytes both ways, names sources, delays in order, blackholes and refuses per source, heals', async () => {
    const p = await ChaosProxy.start(
      echoPort,
      new Map([
        ['11', 'a'],
        ['22', 'b'],
      ]),
    )
    try {
      const a = await open(p.port, '11')
      const b = await open(p.port, '22')
      assert.ok(await a.waitFor('x-edgecd-from: 11'), 'the head went through and came back')
      a.s.write('ping1')
      assert.ok(await a.waitFor('ping1'))

      p.set('a', 'in', { delayMs: 150 })
      const t = performance.now()
      a.s.write('d1')
      a.s.write('d2')
      assert.ok(await a.waitFor('d1d2'), 'delayed chunks keep their order')
      assert.ok(performance.now() - t >= 140, `delayed by ${performance.now() - t} ms`)

      p.set('a', 'both', { mode: 'blackhole' })
      a.s.write('lost')
      b.s.write('other source passes')
      assert.ok(await b.waitFor('other source passes'))
      assert.equal(await a.waitFor('lost', 200), false, 'blackholed bytes are discarded')
      assert.equal(a.closed(), false, 'a blackhole keeps the connection up')
      p.heal()
      assert.equal(await a.waitClosed(), true, 'healing destroys a connection that lost bytes')
      assert.equal(b.closed(), false)

      p.cut('b')
      assert.equal(await b.waitClosed(), true, 'cut destroys existing connections from the source')
      const b2 = await open(p.port, '22')
      assert.equal(await b2.waitClosed(), true, 'and refuses new ones once they name the source')
      const a2 = await open(p.port, '11')
      assert.ok(await a2.waitFor('x-edgecd-from: 11'), 'other sources still connect')
      p.heal()
      const b3 = await open(p.port, '22')
      assert.ok(await b3.waitFor('x-edgecd-from: 22'), 'healed')
      for (const c of [a2, b3]) c.s.destroy()
    } finally {
      await p.close()
    }
  })
})
