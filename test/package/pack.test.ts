/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), the tarball installed into an
 * empty project with no dev dependencies, then every public import path and the CLI exercised from there:
 *   - `npx edgecd --version` and `edgecd serve` / `edgecd put` / `edgecd get` from the installed bin,
 *   - `import { Client } from 'edgecd'` on this Node (20: no global WebSocket) with a watch, passing no WebSocket,
 *   - `import { startMember } from 'edgecd/server'` (an embedded member on port 0),
 *   - the same client from Deno through the project's node_modules (`npm:`-style bare import),
 *   - the browser bundle `edgecd/browser/client.js`: self-contained (no bare imports),
 *   - the Worker `edgecd/worker` (only `cloudflare:*` imports), run by `edgecd serve --runtime workerd`,
 *   - the type declarations: a TypeScript file using the client and the embedding API type-checks,
 *   - on Node 22 too (scripts/setup-node22.mjs provides the binary where the system Node is 20): the client with a
 *     watch through Node 22's global WebSocket (no option passed, and not the `ws` package), the CLI, and an
 *     embedded member.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort } from '../support/ports.js'
import { node22Binary, requires } from '../support/requirements.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string }
const deno = join(root, 'node_modules/deno/deno')
/** Why the Node 22 tests cannot run here (see requirements.ts), or false. */
const node22Missing = requires('node22')
const node22 = node22Binary()

let dir: string
let project: string
let member: ChildProcess | undefined
let endpoint: string

/** Runs a command in the project and returns its stdout; a failure shows its stderr. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}) {
  try {
    return execFileSync(cmd, args, {
      cwd: opts.cwd ?? project,
      env: { ...process.env, ...opts.env },
      encoding: 'utf8',
      input: opts.input,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 120_000,
    })
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string }
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
  }
}

describe('the packed package in an empty project', { timeout: 600_000 }, () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgecd-pack-'))
    project = join(dir, 'app')
    // npm pack runs `prepare` (the build) first, so the tarball holds dist/ as built from these sources.
    const packOut = run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root })
    const packed = JSON.parse(packOut.slice(packOut.indexOf('['))) as {
      filename: string
      files: { path: string }[]
    }[]
    const files = packed[0]!.files.map((f) => f.path)
    assert.ok(files.includes('dist/client/index.js'), 'the tarball holds the compiled client')
    assert.ok(files.includes('dist/client/index.d.ts'), 'and its type declarations')
    assert.ok(files.includes('dist/cli/edgecd.cjs'), 'the bundled CLI bin/edgecd.js runs')
    assert.ok(files.includes('bin/package.json'), 'which says bin/edgecd.js is CommonJS')
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'and no sources or tests')
    run('mkdir', ['-p', project], { cwd: dir })
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
    // Production dependencies only, as a user's `npm install edgecd` gets them (from the local npm cache when it can).
    run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed[0]!.filename)])
    const port = await freePort()
    endpoint = `http://127.0.0.1:${port}`
    member = spawn(
      join(project, 'node_modules/.bin/edgecd'),
      ['serve', '--data-dir', join(dir, 'data'), '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint],
      { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    member.stdout!.on('data', (d) => {
      out += d
    })
    member.stderr!.on('data', (d) => {
      out += d
    })
    const started = Date.now()
    while (!out.includes('serving on')) {
      if (member.exitCode !== null) throw new Error(`edgecd serve exited ${member.exitCode}:\n${out}`)
      if (Date.now() - started > 60_000) throw new Error(`edgecd serve did not start:\n${out}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  })

  after(() => {
    member?.kill('SIGTERM')
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test('npx edgecd --version prints the package version', () => {
    assert.equal(run('npx', ['--no-install', 'edgecd', '--version']).trim(), pkg.version)
  })

  test('the installed CLI puts and gets with etcdctl output, and exits as etcdctl does', () => {
    const bin = join(project, 'node_modules/.bin/edgecd')
    assert.equal(run(bin, ['--endpoints', endpoint, 'put', 'cli/k', 'v1']).trim(), 'OK')
    assert.equal(run(bin, ['--endpoints', endpoint, 'get', 'cli/k']).trim(), 'cli/k\nv1')
    assert.throws(() => run(bin, ['--endpoints', endpoint, 'no-such-command']), /failed/)
  })

  test("the installed CLI keeps V8's code cache in EDGECD_CACHE_DIR, and survives a bad one", () => {
    const bin = join(project, 'node_modules/.bin/edgecd')
    // Strict mode, as the ES modules it is built from: a "use strict" after the banner would be no directive.
    const bundle = readFileSync(join(project, 'node_modules/edgecd/dist/cli/edgecd.cjs'), 'utf8')
    assert.ok(bundle.startsWith('"use strict";\n'), 'dist/cli/edgecd.cjs runs in strict mode')
    const env = { EDGECD_CACHE_DIR: join(dir, 'cache') }
    const cacheFiles = () => {
      try {
        return readdirSync(join(dir, 'cache/v8')).filter((f) => f.endsWith('.v8'))
      } catch {
        return []
      }
    }
    assert.equal(run(bin, ['--endpoints', endpoint, 'get', 'cli/k'], { env }).trim(), 'cli/k\nv1')
    const [file, ...more] = cacheFiles()
    assert.ok(file !== undefined && more.length === 0, `one cache file after the first call: ${cacheFiles()}`)
    const made = readFileSync(join(dir, 'cache/v8', file))
    assert.equal(run(bin, ['--endpoints', endpoint, 'get', 'cli/k'], { env }).trim(), 'cli/k\nv1')
    assert.deepEqual(readFileSync(join(dir, 'cache/v8', file)), made, 'a cache V8 takes is kept as it is')
    // A cache V8 rejects (here: garbage) is not fatal, and is replaced.
    writeFileSync(join(dir, 'cache/v8', file), 'not a code cache')
    assert.equal(run(bin, ['--endpoints', endpoint, 'get', 'cli/k'], { env }).trim(), 'cli/k\nv1')
    assert.notEqual(readFileSync(join(dir, 'cache/v8', file), 'utf8'), 'not a code cache')
    // NODE_DISABLE_COMPILE_CACHE: no cache read or written.
    rmSync(join(dir, 'cache'), { recursive: true })
    run(bin, ['--endpoints', endpoint, 'get', 'cli/k'], { env: { ...env, NODE_DISABLE_COMPILE_CACHE: '1' } })
    assert.deepEqual(cacheFiles(), [])
  })

  test('an installed `get` loads none of the modules it has no use for (start-up time, docs/cli.md#start-up)', () => {
    const bin = join(project, 'node_modules/edgecd/bin/edgecd.js')
    const preload = join(dir, 'modules.cjs')
    const list = join(dir, 'modules.txt')
    writeFileSync(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')))`,
    )
    // The code cache under $HOME/.cache (no node:os needed), stdout to a file (process.stdout would be a
    // SyncWriteStream there), stderr to a pipe.
    const env = { ...process.env, HOME: join(dir, 'home'), EDGECD_CACHE_DIR: '', XDG_CACHE_HOME: '' }
    const out = join(dir, 'get.out')
    for (let i = 0; i < 2; i++) {
      const fd = openSync(out, 'w')
      const r = spawnSync(process.execPath, ['--require', preload, bin, '--endpoints', endpoint, 'get', 'cli/k'], {
        cwd: project,
        env,
        stdio: ['ignore', fd, 'pipe'],
        encoding: 'utf8',
        timeout: 60_000,
      })
      closeSync(fd)
      assert.equal(r.status, 0, r.stderr)
      assert.equal(readFileSync(out, 'utf8'), 'cli/k\nv1\n')
    }
    const loaded = readFileSync(list, 'utf8').split('\n')
    // The quick path (src/cli/quick-get.ts) on libuv's TCP handle: no node:net and its streams, no parseArgs.
    for (const m of [
      'module',
      'internal/modules/esm/loader',
      'os',
      'internal/fs/sync_write_stream',
      'net',
      'internal/streams/duplex',
      'internal/util/parse_args/parse_args',
    ])
      assert.ok(!loaded.includes(`NativeModule ${m}`), `a get loaded node:${m}`)
    assert.ok(loaded.includes('Internal Binding tcp_wrap'), "the list is the call's")
  })

  test("import { Client } from 'edgecd' watches on Node without being given a WebSocket", () => {
    writeFileSync(
      join(project, 'client.mjs'),
      `import { Client } from 'edgecd'
const client = new Client({ endpoints: [${JSON.stringify(endpoint)}] })
const w = client.watch({ prefix: 'node/' })
await w.ready
await client.put('node/a', '1')
for await (const resp of w) { const ev = resp.events[0]; console.log(JSON.stringify({ type: ev.type, key: ev.kv.key, value: ev.kv.value })); break }
console.log((await client.get('node/a')).value)
client.close()
`,
    )
    const out = run(process.execPath, ['client.mjs']).trim().split('\n')
    assert.deepEqual(JSON.parse(out[0]!), { type: 'PUT', key: 'node/a', value: '1' })
    assert.equal(out[1], '1')
  })

  test("on Node 22, import { Client } from 'edgecd' watches through the global WebSocket, passing none", {
    skip: node22Missing,
  }, () => {
    // The script counts the WebSocket connections made through Node 22's global constructor: the watch must use it
    // (chosen by the package's Node entry because it exists), not the ws package that Node 20 needs.
    writeFileSync(
      join(project, 'client22.mjs'),
      `const Global = globalThis.WebSocket
let opened = 0
globalThis.WebSocket = class extends Global { constructor(...a) { super(...a); opened++ } }
const { Client } = await import('edgecd')
const client = new Client({ endpoints: [${JSON.stringify(endpoint)}] })
const w = client.watch({ prefix: 'node22/' })
await w.ready
await client.put('node22/a', '22')
for await (const resp of w) { const ev = resp.events[0]; console.log(JSON.stringify({ type: ev.type, key: ev.kv.key, value: ev.kv.value })); break }
console.log(process.versions.node.split('.')[0], opened, (await client.get('node22/a')).value)
client.close()
`,
    )
    const out = run(node22!, ['client22.mjs']).trim().split('\n')
    assert.deepEqual(JSON.parse(out[0]!), { type: 'PUT', key: 'node22/a', value: '22' })
    assert.equal(out[1], '22 1 22', 'Node 22, one WebSocket through the global constructor, the value')
  })

  test('on Node 22, the installed CLI and an embedded member work', { skip: node22Missing }, () => {
    const bin = join(project, 'node_modules/.bin/edgecd')
    assert.equal(run(node22!, [bin, '--version']).trim(), pkg.version)
    assert.equal(run(node22!, [bin, '--endpoints', endpoint, 'put', 'cli22/k', 'v22']).trim(), 'OK')
    assert.equal(run(node22!, [bin, '--endpoints', endpoint, 'get', 'cli22/k']).trim(), 'cli22/k\nv22')
    assert.equal(
      run(node22!, [bin, '--endpoints', endpoint, '-w', 'json', 'del', 'cli22/k']).includes('"deleted":1'),
      true,
    )
    writeFileSync(
      join(project, 'embed22.mjs'),
      `import { startMember } from 'edgecd/server'
import { Client } from 'edgecd'
const m = await startMember({ name: 'embedded22', dataDir: ${JSON.stringify(join(dir, 'embedded22'))}, listenClientUrls: ['http://127.0.0.1:0'], log: 'silent' })
const client = new Client({ endpoints: [m.url] })
await client.put('e', '22')
console.log(process.versions.node.split('.')[0], m.name, (await client.get('e')).value)
client.close()
await m.stop()
`,
    )
    assert.equal(run(node22!, ['embed22.mjs']).trim(), '22 embedded22 22')
  })

  test("import { startMember } from 'edgecd/server' runs a member in-process", () => {
    writeFileSync(
      join(project, 'embed.mjs'),
      `import { startMember } from 'edgecd/server'
import { Client } from 'edgecd'
const m = await startMember({ name: 'embedded', dataDir: ${JSON.stringify(join(dir, 'embedded'))}, listenClientUrls: ['http://127.0.0.1:0'], log: 'silent' })
const client = new Client({ endpoints: [m.url] })
await client.put('e', 'mbedded')
console.log(m.name, (await client.get('e')).value, m.url.startsWith('http://127.0.0.1:'))
client.close()
await m.stop()
`,
    )
    assert.equal(run(process.execPath, ['embed.mjs']).trim(), 'embedded mbedded true')
  })

  test('Deno imports the client from the installed package', () => {
    writeFileSync(join(project, 'deno.json'), JSON.stringify({ nodeModulesDir: 'manual', lock: false }))
    writeFileSync(
      join(project, 'deno-client.ts'),
      `import { Client } from 'edgecd'
const client = new Client({ endpoints: [${JSON.stringify(endpoint)}] })
await client.put('deno/k', 'from deno')
console.log((await client.get('deno/k'))?.value)
client.close()
`,
    )
    const out = run(
      deno,
      ['run', '--quiet', '--cached-only', '--allow-net=127.0.0.1', '--allow-env', '--allow-read', 'deno-client.ts'],
      {
        env: { DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(dir, '.deno') },
      },
    )
    assert.equal(out.trim(), 'from deno')
  })

  test('the browser bundle is one self-contained ES module that talks to a member', () => {
    const file = join(project, 'node_modules/edgecd/dist/browser/edgecd-client.js')
    const code = readFileSync(file, 'utf8')
    assert.doesNotMatch(code, /\bfrom\s*["'][^./"'][^"']*["']/, 'no bare imports')
    assert.doesNotMatch(code, /\brequire\(/, 'no require')
    writeFileSync(
      join(project, 'bundle.mjs'),
      `import { Client } from 'edgecd/browser/client.js'
const client = new Client({ endpoints: [${JSON.stringify(endpoint)}] })
await client.put('browser/k', 'bundled')
console.log((await client.get('browser/k')).value)
`,
    )
    assert.equal(run(process.execPath, ['bundle.mjs']).trim(), 'bundled')
  })

  test('edgecd/worker is one workerd module, and `edgecd serve --runtime workerd` runs it from the package', async () => {
    const file = join(project, 'node_modules/edgecd/dist/worker/worker.js')
    const code = readFileSync(file, 'utf8')
    assert.doesNotMatch(code, /^import\s[^\n]*?["'](?!cloudflare:)[^./"'][^"']*["'];?$/m, 'only cloudflare:* imports')
    assert.match(code, /export \{[^}]*\bEdgecdMember\b/)
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const child = spawn(
      join(project, 'node_modules/.bin/edgecd'),
      ['serve', '--runtime', 'workerd', '--data-dir', join(dir, 'workerd'), '--listen-client-urls', url],
      {
        cwd: project,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
      },
    )
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
    })
    child.stderr!.on('data', (d) => {
      out += d
    })
    try {
      const started = Date.now()
      while (!out.includes('serving on')) {
        if (child.exitCode !== null) throw new Error(`edgecd serve --runtime workerd exited ${child.exitCode}:\n${out}`)
        if (Date.now() - started > 90_000) throw new Error(`edgecd serve --runtime workerd did not start:\n${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      const bin = join(project, 'node_modules/.bin/edgecd')
      assert.equal(run(bin, ['--endpoints', url, 'put', 'w', 'orkerd']).trim(), 'OK')
      assert.equal(run(bin, ['--endpoints', url, 'get', 'w']).trim(), 'w\norkerd')
    } finally {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
  })

  test('the type declarations describe the public API', () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: [],
          lib: ['ES2022', 'DOM'],
        },
        include: ['typed.ts'],
      }),
    )
    writeFileSync(
      join(project, 'typed.ts'),
      `import { Client, type KeyValue } from 'edgecd'
import { startMember, type MemberHandle } from 'edgecd/server'
const client: Client = new Client({ endpoints: ['http://127.0.0.1:2379'] })
export async function f(): Promise<string | undefined> { const kv: KeyValue | undefined = await client.get('k'); return kv?.value }
export const start: (o: { name: string }) => Promise<MemberHandle> = startMember
`,
    )
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { edgecd: '*' } }),
    )
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(project, 'tsconfig.json')])
  })
})
