/**
 * Micro-bench (issue 13, session 8): the writer's CPU per WebSocket frame to N loopback sockets, node:net's
 * socket.write (corked for the tick, as src/runtime/node/split-wss.ts writes the shared frame) against libuv's
 * handle.writeBuffer with a WriteWrap (what node:net does inside, `process.binding('stream_wrap')`), one frame per
 * socket per tick, rounds alternated, medians. The readers are a child process. Not a product path: it measured what
 * a direct write would save (about 1 µs of 9 per frame on the shared 2-core machine; the rest is the syscall).
 *
 *   N=1000 ROUNDS=8 PER=20 node bench/socket-write-micro.mjs
 */

import { spawn } from 'node:child_process'
import net from 'node:net'

const N = Number(process.env.N ?? 1000),
  ROUNDS = Number(process.env.ROUNDS ?? 8),
  PER = Number(process.env.PER ?? 20)
const stream = process.binding('stream_wrap')
const frame = Buffer.alloc(520, 120)
frame[0] = 0x81
const server = net.createServer()
const socks = []
server.on('connection', (s) => {
  s.setNoDelay(true)
  socks.push(s)
})
await new Promise((r) => server.listen(0, '127.0.0.1', r))
const port = server.address().port
const child = spawn(
  process.execPath,
  [
    '-e',
    `
  const net = require('node:net'); let n = 0, bytes = 0
  for (let i = 0; i < ${N}; i++) { const c = net.connect(${port}, '127.0.0.1'); c.on('data', (d) => { bytes += d.length }) }
  setInterval(() => process.stdout.write(bytes + '\\n'), 50)
`,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
)
let got = 0
child.stdout.on('data', (d) => {
  const l = String(d).trim().split('\n').pop()
  got = Number(l)
})
while (socks.length < N) await new Promise((r) => setTimeout(r, 20))
const viaStream = () => {
  for (const s of socks) {
    s.cork()
    s.write(frame)
    process.nextTick(() => s.uncork())
  }
}
const viaHandle = () => {
  for (const s of socks) {
    const h = s._handle
    const req = new stream.WriteWrap()
    req.handle = h
    req.oncomplete = () => {}
    req.async = false
    const err = h.writeBuffer(req, frame)
    if (err !== 0) throw new Error('write ' + err)
  }
}
const res = { stream: [], handle: [] }
let sent = 0
for (let r = 0; r < ROUNDS; r++)
  for (const [name, f] of [
    ['stream', viaStream],
    ['handle', viaHandle],
  ]) {
    const c0 = process.cpuUsage()
    for (let i = 0; i < PER; i++) {
      f()
      sent += N * frame.length
      await new Promise((r) => setImmediate(r))
    }
    const c = process.cpuUsage(c0)
    res[name].push((c.user + c.system) / (N * PER))
    while (got < sent) await new Promise((r) => setTimeout(r, 5))
  }
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
console.log(
  `N=${N}: µs of the writer's CPU per frame, median of ${ROUNDS} alternated rounds: socket.write ${med(res.stream).toFixed(2)} (${res.stream.map((x) => x.toFixed(1)).join(' ')}), handle.writeBuffer ${med(res.handle).toFixed(2)} (${res.handle.map((x) => x.toFixed(1)).join(' ')})`,
)
child.kill()
server.close()
for (const s of socks) s.destroy()
process.exit(0)
