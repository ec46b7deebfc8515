/**
 * A start-up failure ends the `edgecd serve` process with a non-zero status and a message naming the cause, and
 * releases everything it took: its listeners, the data dir's lock, its timers (the process exits by itself). Real
 * processes, as an operator runs them.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { freePort } from '../support/index.js'

const dirs: string[] = []
const procs: ChildProcess[] = []
after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'edgecd-startfail-'))
  dirs.push(d)
  return d
}

/** Starts `edgecd serve`; `exited` resolves with its status and stderr (or rejects after 90 s: it hangs; generous for a loaded machine). */
function serve(dataDir: string, url: string) {
  const p = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'serve',
      '--name',
      'solo',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--initial-advertise-peer-urls',
      url,
      '--initial-cluster',
      `solo=${url}`,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  procs.push(p)
  let stderr = ''
  let stdout = ''
  p.stderr!.on('data', (d) => (stderr += d))
  p.stdout!.on('data', (d) => (stdout += d))
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running after 90 s; stderr: ${stderr}`)), 90_000)
    p.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr })
    })
  })
  exited.catch(() => {})
  const serving = async () => {
    for (let i = 0; i < 900 && !stdout.includes('serving on'); i++) await new Promise((r) => setTimeout(r, 100))
    assert.match(stdout, /serving on/, stderr)
  }
  return { p, exited, serving }
}

test('a taken client port: exit 1 at once naming the URL, the data dir left unlocked', {
  timeout: 200_000,
}, async () => {
  const port = await freePort()
  const holder: Server = createServer()
  await new Promise<void>((r) => holder.listen(port, '127.0.0.1', () => r()))
  try {
    const dir = tempDir()
    const url = `http://127.0.0.1:${port}`
    const { code, stderr } = await serve(dir, url).exited
    assert.equal(code, 1, stderr)
    assert.match(stderr, new RegExp(`cannot start: cannot listen on ${url}.*EADDRINUSE`))
    assert.equal(existsSync(join(dir, 'edgecd.lock')), false, 'the lock was not released')
  } finally {
    holder.close()
  }
})

test('a data dir locked by a running member: exit 1 naming the holder, the port released', {
  timeout: 200_000,
}, async () => {
  const dir = tempDir()
  const first = serve(dir, `http://127.0.0.1:${await freePort()}`)
  await first.serving()
  const port = await freePort()
  const { code, stderr } = await serve(dir, `http://127.0.0.1:${port}`).exited
  assert.equal(code, 1, stderr)
  assert.match(stderr, /cannot start: .*lock/i)
  // The second process bound its port before it found the lock: it must have let it go.
  const again = createServer()
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject)
    again.listen(port, '127.0.0.1', () => resolve())
  })
  again.close()
  first.p.kill('SIGTERM')
  assert.equal((await first.exited).code, 0)
})
