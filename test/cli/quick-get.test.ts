/**
 * The quick path of `edgecd get` (src/cli/quick-get.ts, its own bundle that bin/edgecd.js tries first): the command
 * lines it takes and the ones it leaves to the full CLI, and, for every one, the same stdout, stderr and exit status
 * as the full CLI (EDGECD_CLI_NO_QUICK=1) against a real member, through the bin as an installed package runs it
 * (bundles built into a temporary directory). A second layout whose full bundle throws shows which calls the quick
 * path answered alone.
 */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { buildCliBundles } from '../../scripts/build-cli.mjs'
import { parseQuickGet } from '../../src/cli/quick-get.js'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { post } from '../support/index.js'

const repo = fileURLToPath(new URL('../..', import.meta.url))

describe('quick get: the command lines it takes', () => {
  const ep = 'http://127.0.0.1:2379'
  test('plain reads over http IP endpoints, flags before or after the command as main.ts takes them', () => {
    assert.deepEqual(parseQuickGet(['get', 'foo'], {}), {
      endpoints: [ep],
      key: 'foo',
      prefix: false,
      keysOnly: false,
      valueOnly: false,
    })
    assert.deepEqual(
      parseQuickGet(
        ['--endpoints', 'http://10.0.0.1:2379,http://[::1]:2379', 'get', 'a/', '--prefix', '--keys-only'],
        {},
      ),
      {
        endpoints: ['http://10.0.0.1:2379', 'http://[::1]:2379'],
        key: 'a/',
        prefix: true,
        keysOnly: true,
        valueOnly: false,
      },
    )
    assert.equal(parseQuickGet(['get', 'k', '--endpoints=http://1.2.3.4:1', '--print-value-only'], {})?.valueOnly, true)
    assert.deepEqual(parseQuickGet(['get', 'k'], { ETCDCTL_ENDPOINTS: 'http://1.2.3.4:5' })?.endpoints, [
      'http://1.2.3.4:5',
    ])
  })

  test('everything else goes to the full CLI', () => {
    const full: [string[], NodeJS.ProcessEnv?][] = [
      [['put', 'k', 'v']],
      [['get']],
      [['get', 'a', 'b']],
      [['get', 'k', '-w', 'json']],
      [['get', 'k', '--limit', '1']],
      [['get', 'k', '--help']],
      [['get', 'k', '--prefix=true']],
      [['--prefix', 'get', 'k']],
      [['get', '--', 'k']],
      [['get', '-k']],
      [['--endpoints', '--prefix', 'get', 'k']],
      [['--endpoints', 'https://127.0.0.1:2379', 'get', 'k']],
      [['--endpoints', 'localhost:2379', 'get', 'k']],
      [['--endpoints', 'http://localhost:2379', 'get', 'k']],
      [['--endpoints', 'http://127.0.0.1:2379/', 'get', 'k']],
      [['--endpoints', 'http://127.0.0.1:2379,', 'get', 'k']],
      [['--cacert', 'ca.pem', 'get', 'k']],
      [['--user', 'root:pw', 'get', 'k']],
      [['get', 'k'], { EDGECD_USER: 'root:pw' }],
      [['get', 'k'], { ETCDCTL_CACERT: 'ca.pem' }],
      [['get', 'k'], { EDGECD_TOKEN: 't' }],
      [['get', 'k'], { EDGECD_WRITE_OUT: 'json' }],
      [['get', 'k'], { ETCDCTL_COMMAND_TIMEOUT: '1s' }],
      [['get', 'k'], { EDGECD_ENDPOINTS: 'https://127.0.0.1:2379' }],
    ]
    for (const [argv, env] of full) assert.equal(parseQuickGet(argv, env ?? {}), undefined, argv.join(' '))
  })
})

interface Run {
  code: number
  out: string
  err: string
}

function run(binPath: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const { EDGECD_CLI_NO_QUICK: _, ...base } = process.env
    execFile(
      process.execPath,
      [binPath, ...args],
      { timeout: 30_000, env: { ...base, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr })
      },
    )
  })
}

/** bin/, package.json and the CLI bundles, laid out as an installed package (no src/: no staleness walk). */
function layout(dir: string, dist: string, fullThrows: boolean): string {
  mkdirSync(join(dir, 'bin'), { recursive: true })
  copyFileSync(join(repo, 'bin/edgecd.js'), join(dir, 'bin/edgecd.js'))
  copyFileSync(join(repo, 'bin/package.json'), join(dir, 'bin/package.json'))
  copyFileSync(join(repo, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'))
  mkdirSync(join(dir, 'dist/cli'), { recursive: true })
  copyFileSync(join(dist, 'cli/quick-get.cjs'), join(dir, 'dist/cli/quick-get.cjs'))
  if (fullThrows) writeFileSync(join(dir, 'dist/cli/edgecd.cjs'), 'throw new Error("the full CLI was loaded")\n')
  else copyFileSync(join(dist, 'cli/edgecd.cjs'), join(dir, 'dist/cli/edgecd.cjs'))
  writeFileSync(join(dir, 'dist/.build-stamp'), 'test\n')
  return join(dir, 'bin/edgecd.js')
}

describe('quick get against a member: the full CLI’s output, exit status and errors', () => {
  let m: TestMember
  let dir: string
  let bin: string
  let quickOnly: string
  const env = () => ({ EDGECD_CACHE_DIR: join(dir, 'cache') })

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgecd-quick-get-'))
    await buildCliBundles(join(dir, 'dist'))
    bin = layout(join(dir, 'pkg'), join(dir, 'dist'), false)
    quickOnly = layout(join(dir, 'quick-only'), join(dir, 'dist'), true)
    m = await startTestMember()
    for (const [k, v] of [
      ['q/a', '1'],
      ['q/b', 'two words'],
      ['q/c', 'é ünïcode ✓'],
      ['q/empty', ''],
      ['solo', 'x'],
    ] as const) {
      const r = await run(bin, [`--endpoints=${m.url}`, 'put', k, v], env())
      assert.equal(r.code, 0, r.err)
    }
  })
  after(async () => {
    await m?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('the same stdout, stderr and exit status as the full CLI, with and without the code cache', async () => {
    const down = 'http://127.0.0.1:1'
    const cases: { args: string[]; quick: boolean }[] = [
      { args: ['--endpoints', m.url, 'get', 'solo'], quick: true },
      { args: ['--endpoints', m.url, 'get', 'missing'], quick: true },
      { args: [`--endpoints=${m.url}`, 'get', 'q/', '--prefix'], quick: true },
      { args: ['get', 'q/', '--prefix', '--keys-only', '--endpoints', m.url], quick: true },
      { args: ['get', 'q/', '--prefix', '--print-value-only', `--endpoints=${m.url}`], quick: true },
      { args: ['get', 'q/c', '--print-value-only', '--keys-only', `--endpoints=${m.url}`], quick: true },
      { args: ['--endpoints', `${down},${m.url}`, 'get', 'solo'], quick: true },
      { args: ['--endpoints', down, 'get', 'solo'], quick: true },
      { args: ['--endpoints', m.url, 'get', 'q/', '--prefix', '--limit', '2'], quick: false },
      { args: ['--endpoints', m.url, 'get', 'solo', '-w', 'json'], quick: false },
      { args: ['--endpoints', m.url, 'get', 'solo', '-w', 'table'], quick: false },
      { args: ['--endpoints', m.url, 'get'], quick: false },
      { args: ['--endpoints', m.url, 'get', '--bogus', 'k'], quick: false },
    ]
    for (const c of cases) {
      const full = await run(bin, c.args, { ...env(), EDGECD_CLI_NO_QUICK: '1' })
      for (let i = 0; i < 2; i++) {
        // The first call makes the quick bundle's code cache, the second runs from it.
        const quick = await run(bin, c.args, env())
        assert.deepEqual(quick, full, `${c.args.join(' ')} (call ${i + 1})`)
      }
      const alone = await run(quickOnly, c.args, env())
      if (c.quick) assert.deepEqual(alone, full, `answered by the quick path alone: ${c.args.join(' ')}`)
      else assert.match(alone.err, /the full CLI was loaded/, `left to the full CLI: ${c.args.join(' ')}`)
    }
  })

  test('a reader that goes away (get --prefix | head -1): exit 141 quietly, as the full CLI', async () => {
    const value = Buffer.from('v'.repeat(200)).toString('base64')
    for (let i = 0; i < 1000; i++)
      await post(m.url, '/v3/kv/put', { key: Buffer.from(`epipe/${i}`).toString('base64'), value })
    for (const [b, extra] of [
      [quickOnly, {}],
      [bin, { EDGECD_CLI_NO_QUICK: '1' }],
    ] as const) {
      const child = spawn(process.execPath, [b, '--endpoints', m.url, 'get', '--prefix', 'epipe/'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env(), ...extra },
      })
      let stderr = ''
      child.stderr.on('data', (d) => {
        stderr += String(d)
      })
      // Read the first chunk, then close the pipe (what head does): ~400 KB follow it.
      child.stdout.once('data', () => child.stdout.destroy())
      const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)))
      assert.equal(stderr, '')
      assert.equal(code, 141, b)
    }
  })
})
