/**
 * etcd's flags as people type them: single-dash flags, --listen-peer-urls with its own port (peers are served on
 * every listener), and a suggestion for a mistyped flag.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { serveConfig, serveUsage, suggestFlag } from '../../src/cli/serve-flags.js'
import { ConfigError, validateServerConfig } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { b64, eventually, freePort, post, silent } from '../support/index.js'

test('single-dash flags as Go takes them: -data-dir x, -name=y, -h', () => {
  const c = serveConfig(['-data-dir', '/tmp/x', '-name=y', '-listen-client-urls', 'http://127.0.0.1:1234'], {})
  assert.ok(c !== 'help')
  assert.equal(c.dataDir, '/tmp/x')
  assert.equal(c.name, 'y')
  assert.deepEqual(c.listenClientUrls, ['http://127.0.0.1:1234'])
  assert.deepEqual(c.initialAdvertisePeerUrls, ['http://127.0.0.1:1234'])
  assert.equal(serveConfig(['-h'], {}), 'help')
  assert.equal(serveConfig(['-help'], {}), 'help')
  const b = serveConfig(['-client-cert-auth'], {})
  assert.ok(b !== 'help' && b.clientCertAuth === true)
})

test('a mistyped flag is refused with a suggestion', () => {
  assert.throws(
    () => serveConfig(['--data-dri', 'x'], {}),
    (e: Error) => e instanceof ConfigError && e.message === 'unknown flag --data-dri (did you mean --data-dir?)',
  )
  assert.throws(() => serveConfig(['-inital-cluster=a=http://x:1'], {}), /did you mean --initial-cluster\?/)
  assert.throws(() => serveConfig(['--listen-peer-url', 'x'], {}), /did you mean --listen-peer-urls\?/)
  assert.equal(suggestFlag('--zzzzzzzz'), undefined)
  assert.throws(
    () => serveConfig(['--zzzzzzzz'], {}),
    (e: Error) => e.message === 'unknown flag --zzzzzzzz',
  )
})

test('--listen-peer-urls is validated like the other URL flags', () => {
  const c = serveConfig(['--listen-peer-urls', 'ftp://127.0.0.1:2380'], {})
  assert.ok(c !== 'help')
  assert.throws(() => validateServerConfig(c), /--listen-peer-urls: URL scheme must be http or https/)
})

test('--watch-batch-interval: ms, default 10, 0 turns it off, at most 1000; EDGECD_WATCH_BATCH_INTERVAL too', () => {
  const d = serveConfig([], {})
  assert.ok(d !== 'help' && d.watchBatchIntervalMs === 10)
  const z = serveConfig(['--watch-batch-interval', '0'], {})
  assert.ok(z !== 'help' && z.watchBatchIntervalMs === 0)
  validateServerConfig(z)
  const e = serveConfig([], { EDGECD_WATCH_BATCH_INTERVAL: '10' })
  assert.ok(e !== 'help' && e.watchBatchIntervalMs === 10)
  assert.throws(() => serveConfig(['--watch-batch-interval=5ms'], {}), /non-negative integer/)
  const big = serveConfig(['--watch-batch-interval', '1001'], {})
  assert.ok(big !== 'help')
  assert.throws(() => validateServerConfig(big), /--watch-batch-interval must be between 0 and 1000/)
})

test('--watch-batch-interval-max: ms, default 100, 0 is no growth, at most 1000; EDGECD_WATCH_BATCH_INTERVAL_MAX too', () => {
  const d = serveConfig([], {})
  assert.ok(d !== 'help' && d.watchBatchIntervalMaxMs === 100)
  const z = serveConfig(['--watch-batch-interval-max', '0'], {})
  assert.ok(z !== 'help' && z.watchBatchIntervalMaxMs === 0)
  validateServerConfig(z)
  const e = serveConfig([], { EDGECD_WATCH_BATCH_INTERVAL_MAX: '40' })
  assert.ok(e !== 'help' && e.watchBatchIntervalMaxMs === 40)
  const big = serveConfig(['--watch-batch-interval-max', '1001'], {})
  assert.ok(big !== 'help')
  assert.throws(() => validateServerConfig(big), /--watch-batch-interval-max must be between 0 and 1000/)
})

test('--listen-peer-urls on their own ports with --initial-advertise-peer-urls: peers talk there', async () => {
  const names = ['a', 'b']
  const clientPorts = [await freePort(), await freePort()]
  const peerPorts = [await freePort(), await freePort()]
  const peer = (i: number) => `http://127.0.0.1:${peerPorts[i]}`
  const client = (i: number) => `http://127.0.0.1:${clientPorts[i]}`
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',')
  const dirs = names.map(() => mkdtempSync(join(tmpdir(), 'edgecd-peerurls-')))
  const running: RunningMember[] = []
  try {
    await Promise.all(
      names.map(async (name, i) => {
        const c = serveConfig(
          [
            '--name',
            name,
            '--data-dir',
            dirs[i]!,
            '--listen-client-urls',
            client(i),
            '--listen-peer-urls',
            peer(i),
            '--initial-advertise-peer-urls',
            peer(i),
            '--initial-cluster',
            initialCluster,
            '--heartbeat-interval',
            '20',
            '--election-timeout',
            '200',
            '--log-level',
            'error',
          ],
          {},
        )
        assert.ok(c !== 'help')
        running[i] = await startNodeMember(c, silent)
      }),
    )
    // A leader is elected over the peer listeners and both members serve clients on theirs.
    for (let i = 0; i < 2; i++)
      await eventually(
        async () =>
          (await post(client(i), '/v3/kv/put', { key: b64(`k${i}`), value: b64('v') })).status === 200
            ? true
            : undefined,
        10_000,
        `a put through ${names[i]}`,
      )
    const list = await post(client(0), '/v3/cluster/member/list', {})
    assert.deepEqual(
      list.json.members.map((m: { peerURLs: string[] }) => m.peerURLs[0]).sort(),
      [peer(0), peer(1)].sort(),
    )
  } finally {
    for (const r of running) await r?.stop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
})

test("--help prints a duration flag's default as the flag takes it (a Go duration), and that value parses back", () => {
  const usage = serveUsage().split('\n')
  const cases = [
    ['grpc-keepalive-min-time', '5s', 'grpcKeepaliveMinTimeMs', 5000],
    ['grpc-keepalive-interval', '2h0m0s', 'grpcKeepaliveIntervalMs', 7_200_000],
    ['grpc-keepalive-timeout', '20s', 'grpcKeepaliveTimeoutMs', 20_000],
  ] as const
  for (const [flag, shown, field, ms] of cases) {
    const line = usage.find((l) => l.trimStart().startsWith(`--${flag} `)) ?? ''
    assert.ok(line.endsWith(`(default "${shown}")`), line)
    const c = serveConfig([`--${flag}`, shown], {})
    assert.ok(c !== 'help')
    assert.equal(c[field], ms)
  }
})
