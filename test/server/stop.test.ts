/**
 * stop() ends every connection, streaming ones included. Regression: the HTTP/1.1 server behind the front listener
 * (which tells HTTP/1.1 from gRPC) never listens itself, so Node did not track its connections and
 * closeAllConnections() left an open `POST /v3/watch` stream holding stop() (and with it every test's `after`).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startTestMember } from './helpers.js'

test('stop() returns promptly while a POST /v3/watch stream is open', {
  skip: process.env.EDGECD_TEST_RUNTIME === 'workerd',
}, async () => {
  const m = await startTestMember()
  const r = await fetch(`${m.url}/v3/watch`, {
    method: 'POST',
    body: JSON.stringify({ create_request: { key: Buffer.from('a').toString('base64') } }),
  })
  const reader = r.body!.getReader()
  await reader.read()
  const stopped = m.stop().then(() => 'stopped')
  const timeout = new Promise((resolve) => setTimeout(() => resolve('still running after 10 s'), 10_000).unref())
  assert.equal(await Promise.race([stopped, timeout]), 'stopped')
  await reader.read().catch(() => {})
})
