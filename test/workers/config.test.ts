/** How a member object reads its configuration, and how `edgecd serve` picks its runtime (no workerd needed). */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { splitRuntime } from '../../src/cli/serve.js'
import { ConfigError, serverDefaults } from '../../src/etcdserver/config.js'
import { memberConfig } from '../../src/runtime/workers/member-object.js'

const cluster =
  'm1=https://edgecd.example.workers.dev:443/m/m1,m2=https://edgecd.example.workers.dev:443/m/m2,m3=https://edgecd.example.workers.dev:443/m/m3'

describe('member object configuration', () => {
  test('one Worker, many members: URLs from EDGECD_INITIAL_CLUSTER, flags from EDGECD_* variables', () => {
    const c = memberConfig(
      { EDGECD_INITIAL_CLUSTER: cluster, EDGECD_INITIAL_CLUSTER_TOKEN: 'secret', EDGECD_HEARTBEAT_INTERVAL: '200' },
      'm2',
    )
    assert.equal(c.name, 'm2')
    assert.deepEqual(c.advertiseClientUrls, ['https://edgecd.example.workers.dev:443/m/m2'])
    assert.deepEqual(c.initialAdvertisePeerUrls, c.advertiseClientUrls)
    assert.equal(c.initialClusterToken, 'secret')
    assert.equal(c.heartbeatIntervalMs, 200)
    assert.equal(c.electionTimeoutMs, serverDefaults.electionTimeoutMs)
  })

  test('a name outside the cluster, a wrong name, TLS flags and bad JSON are ConfigErrors', () => {
    assert.throws(() => memberConfig({ EDGECD_INITIAL_CLUSTER: cluster }, 'm9'), ConfigError)
    const whole = JSON.stringify({ ...serverDefaults, name: 'w1' })
    assert.equal(memberConfig({ EDGECD_CONFIG: whole }, 'w1').name, 'w1')
    assert.throws(() => memberConfig({ EDGECD_CONFIG: whole }, 'w2'), /names "w1"/)
    assert.throws(
      () => memberConfig({ EDGECD_INITIAL_CLUSTER: cluster, EDGECD_CERT_FILE: 'a.pem' }, 'm1'),
      /TLS flags do not apply/,
    )
    assert.throws(() => memberConfig({ EDGECD_CONFIG: '{' }, 'w1'), /EDGECD_CONFIG is not valid JSON/)
    // URLs still need an explicit port, as etcd's do.
    assert.throws(
      () => memberConfig({ EDGECD_INITIAL_CLUSTER: 'm1=https://edgecd.example.workers.dev/m/m1' }, 'm1'),
      /must have a port/,
    )
  })
})

describe('edgecd serve --runtime', () => {
  test('flag forms, the variable, the default and bad values', () => {
    assert.deepEqual(splitRuntime(['--name', 'a', '--runtime', 'deno'], {}), { runtime: 'deno', rest: ['--name', 'a'] })
    assert.deepEqual(splitRuntime(['--runtime=workerd'], {}), { runtime: 'workerd', rest: [] })
    assert.deepEqual(splitRuntime([], { EDGECD_RUNTIME: 'workerd' }), { runtime: 'workerd', rest: [] })
    assert.deepEqual(splitRuntime(['--runtime', 'node'], { EDGECD_RUNTIME: 'deno' }), { runtime: 'node', rest: [] })
    assert.deepEqual(splitRuntime([], {}), { runtime: 'node', rest: [] })
    assert.throws(() => splitRuntime(['--runtime', 'bun'], {}), /node, deno or workerd/)
    assert.throws(() => splitRuntime(['--runtime'], {}), /needs a value/)
  })
})
