/**
 * Issue 17, finding 2: a watch client that never reads must not take the member down. 10,000 watches on one
 * WebSocket whose socket is then never read, and a burst of 5,000 puts of 1 KiB that every watch matches: the member
 * (a child process, so its RSS is its own) stays up, every put is acknowledged, and its RSS grows by less than
 * 256 MiB (before: past 4 GiB, "JS heap out of memory", ~1,000 puts acknowledged). The watchers of the congested
 * stream become unsynced instead of queueing events (watchStreamQueueBytesMax / watchQueueBytesMax).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { b64, type EdgecdProcess, post, startEdgecd } from '../support/index.js'

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

describe('watch memory stays bounded under a client that never reads (issue 17, finding 2)', () => {
  let m: EdgecdProcess
  before(async () => {
    m = await startEdgecd({ logLevel: 'error', timeoutMs: 60_000 })
  })
  after(async () => {
    await m.stop()
  })

  test('10,000 watches on a never-read socket, 5,000 puts: up, all acknowledged, RSS growth < 256 MiB', async () => {
    const watches = 10_000
    const ws = new WebSocket(`${m.url.replace('http:', 'ws:')}/v3/watch`)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    let created = 0
    ws.on('message', () => created++)
    const key = b64('w/')
    const end = b64('w0')
    for (let i = 0; i < watches; i++) ws.send(JSON.stringify({ create_request: { key, range_end: end } }))
    const deadline = Date.now() + 60_000
    while (created < watches && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.equal(created, watches, 'every watch was created')
    // From now on the client reads nothing: the member's socket buffer fills and its stream is congested.
    ;(ws as unknown as { _socket: Socket })._socket.pause()
    const rss0 = rssBytes(m.pid)

    const value = b64('v'.repeat(1024))
    let acked = 0
    let next = 0
    const puts = 5000
    let peak = rss0
    const worker = async () => {
      while (next < puts) {
        const i = next++
        const r = await post(m.url, '/v3/kv/put', { key: b64(`w/${i % 100}`), value })
        if (r.status === 200) acked++
        if (i % 250 === 0) peak = Math.max(peak, rssBytes(m.pid))
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    peak = Math.max(peak, rssBytes(m.pid))
    assert.equal(acked, puts, 'every put was acknowledged')
    assert.ok(m.running(), 'the member is up')
    const health = await fetch(`${m.url}/health`)
    assert.equal(health.status, 200)
    const grew = peak - rss0
    assert.ok(grew < 256 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(0)} MiB`)
    ws.terminate()
  })
})
