/** The CLI entry: in-process through main(), and once end to end through bin/edgecd.js as `npx edgecd` runs it. */
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type CliIo, exitBadArgs, exitError, exitUsage, main, version } from '../../src/cli/main.js'
import { startTestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'

function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = []
  const stderr: string[] = []
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) }
}

async function run(...argv: string[]) {
  const io = capture()
  const code = await main(argv, io)
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') }
}

describe('edgecd CLI', () => {
  test('--help and help print usage listing the commands, exit 0', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await run(...argv)
      assert.equal(r.code, 0, argv.join(' '))
      assert.match(r.out, /Usage:\n {2}edgecd <command>/)
      assert.match(r.out, /serve/)
    }
  })

  test('--version prints the package.json version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    assert.equal(version(), pkg.version)
    assert.deepEqual(await run('--version'), { code: 0, out: pkg.version, err: '' })
    assert.equal((await run('-v')).out, pkg.version)
  })

  test('serve --help lists etcd flag names with defaults', async () => {
    const r = await run('serve', '--help')
    assert.equal(r.code, 0)
    for (const flag of [
      '--name',
      '--data-dir',
      '--listen-client-urls',
      '--initial-cluster',
      '--heartbeat-interval',
      '--election-timeout',
      '--snapshot-count',
      '--quota-backend-bytes',
      '--max-request-bytes',
      '--log-level',
    ])
      assert.ok(r.out.includes(flag), flag)
    assert.match(r.out, /EDGECD_DATA_DIR/)
  })

  test('serve refuses bad flags and bad values with a usage error, before touching any data dir', async () => {
    const unknown = await run('serve', '--bogus')
    assert.equal(unknown.code, exitUsage)
    assert.match(unknown.err, /--bogus/)
    const bad = await run('serve', '--heartbeat-interval', 'fast')
    assert.equal(bad.code, exitUsage)
    assert.match(bad.err, /--heartbeat-interval must be a non-negative integer/)
    const ratio = await run(
      'serve',
      '--heartbeat-interval',
      '500',
      '--election-timeout',
      '1000',
      '--data-dir',
      '/nonexistent/never',
    )
    assert.equal(ratio.code, exitUsage)
    assert.match(ratio.err, /at least 5 times/)
    const url = await run('serve', '--listen-client-urls', 'ftp://x:1', '--data-dir', '/nonexistent/never')
    assert.equal(url.code, exitUsage)
    assert.match(url.err, /scheme must be http or https/)
  })

  test("an unknown command or option fails as etcdctl's do (exit 1) with a hint", async () => {
    const cmd = await run('frobnicate')
    assert.equal(cmd.code, exitError)
    assert.match(cmd.err, /Error: unknown command "frobnicate" for "edgecd"/)
    assert.match(cmd.err, /edgecd --help/)
    const opt = await run('--frobnicate')
    assert.equal(opt.code, exitError)
    assert.match(opt.err, /--frobnicate/)
    assert.match(opt.err, /edgecd --help/)
  })

  test("bad arguments exit 128 and a bad output format 4, as etcdctl's ExitBadArgs and ExitBadFeature", async () => {
    const args = await run('get')
    assert.equal(args.code, exitBadArgs)
    assert.match(args.err, /get command needs one argument/)
    const ttl = await run('lease', 'grant', 'abc')
    assert.equal(ttl.code, exitBadArgs)
    assert.match(ttl.err, /bad TTL/)
    const format = await run('-w', 'yaml', 'get', 'a')
    assert.equal(format.code, 4)
    assert.match(format.err, /unsupported output format/)
    const group = await run('lease')
    assert.equal(group.code, 0, 'a command group without a subcommand prints its help, as etcdctl')
    assert.match(group.out, /lease grant/)
  })

  test('no command prints usage on stdout and succeeds, as etcdctl', async () => {
    const r = await run()
    assert.equal(r.code, 0)
    assert.match(r.out, /Usage:/)
  })

  test('bin/edgecd.js runs the CLI (compiled, or the sources through tsx) and passes the exit code on', () => {
    const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))
    assert.match(execFileSync(bin, ['--help'], { encoding: 'utf8' }), /edgecd <command>/)
    const bad = spawnSync(bin, ['frobnicate'], { encoding: 'utf8' })
    assert.equal(bad.status, exitError)
    assert.match(bad.stderr, /unknown command/)
  })

  test('a reader that goes away (get --prefix | head -1): exit quietly with 141, as etcdctl dies of SIGPIPE', async () => {
    const m = await startTestMember()
    try {
      const value = b64('v'.repeat(200))
      for (let i = 0; i < 1000; i++) await post(m.url, '/v3/kv/put', { key: b64(`epipe/${i}`), value })
      const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))
      const child = spawn(bin, ['--endpoints', m.url, 'get', '--prefix', 'epipe/'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stderr = ''
      child.stderr.on('data', (d) => {
        stderr += String(d)
      })
      // Read the first chunk, then close the pipe (what head does): ~400 KB follow it.
      child.stdout.once('data', () => child.stdout.destroy())
      const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)))
      assert.equal(stderr, '')
      assert.equal(code, 141)
    } finally {
      await m.stop()
    }
  })

  test("the launcher keeps NODE_EXTRA_CA_CERTS from Node's start, except for serve", () => {
    // Node 20 reads the file while it starts and warns when it cannot: through the launcher it must not have it (the
    // CLI reads it on its first https call: test/client/tls.test.ts), run by node itself it does.
    const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/extra-ca.pem' }
    const warning = /Ignoring extra certs from `\/nonexistent\/extra-ca\.pem`/
    for (const args of [
      ['--version'],
      ['--help'],
      ['--endpoints', 'http://127.0.0.1:1', '--command-timeout=1s', 'get', 'serve-not'],
    ]) {
      const r = spawnSync(bin, args, { encoding: 'utf8', env })
      assert.doesNotMatch(r.stderr, warning, args.join(' '))
    }
    assert.equal(spawnSync(bin, ['--version'], { encoding: 'utf8', env }).stdout, `${version()}\n`)
    if (process.versions.node.startsWith('20.')) {
      assert.match(spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env }).stderr, warning)
      // serve keeps it: the member's own TLS (peers, clients) trusts what Node loaded.
      assert.match(spawnSync(bin, ['serve', '--help'], { encoding: 'utf8', env }).stderr, warning)
    }
  })
})
