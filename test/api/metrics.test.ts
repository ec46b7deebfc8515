/**
 * /metrics under etcd's names (docs/metrics.md), checked on a live three-member cluster: every series the etcd
 * mixin's alerts and dashboard read is there with etcd's type and labels, values follow what the member does (a put
 * moves grpc_server_handled_total, client bytes, proposals; peers count bytes; a leader was seen), and the whole text
 * passes `promtool check metrics`. Also etcd 3.5's /livez and /readyz (?verbose, ?exclude=, per-check paths, 503
 * with the failed check when there is no leader).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { leaderIndex, startCluster, type TestCluster } from '../cluster/helpers.js'
import { b64, eventually, post, startEdgecd } from '../support/index.js'
import { prometheusMissing, promtoolCheckMetrics } from '../support/prometheus.js'

let c: TestCluster

function etcdctlMissing(): string | false {
  try {
    execFileSync('etcdctl', ['version'], { stdio: 'pipe', env: { ...process.env, ETCDCTL_API: '3' } })
    return false
  } catch {
    return 'etcdctl is not installed (scripts/setup-etcd.sh)'
  }
}

before(async () => {
  c = await startCluster(3)
  await eventually(() => leaderIndex(c), 10_000, 'a leader')
})
after(async () => {
  await c?.close()
})

const metricsText = async (i: number) => (await fetch(c.urls[i]! + '/metrics')).text()

/** The value of one sample (`name{labels}` exactly as written, or a bare name), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1))
  }
  return undefined
}

function typeOf(text: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1]
}

describe('/metrics', () => {
  test("every series the etcd mixin reads, with etcd's type", async () => {
    const text = await metricsText(0)
    const want: [string, string][] = [
      ['etcd_server_has_leader', 'gauge'],
      ['etcd_server_is_leader', 'gauge'],
      ['etcd_server_leader_changes_seen_total', 'counter'],
      ['etcd_server_proposals_committed_total', 'gauge'],
      ['etcd_server_proposals_applied_total', 'gauge'],
      ['etcd_server_proposals_pending', 'gauge'],
      ['etcd_server_proposals_failed_total', 'counter'],
      ['etcd_server_quota_backend_bytes', 'gauge'],
      ['etcd_disk_wal_fsync_duration_seconds', 'histogram'],
      ['etcd_disk_backend_commit_duration_seconds', 'histogram'],
      ['etcd_mvcc_db_total_size_in_bytes', 'gauge'],
      ['etcd_mvcc_db_total_size_in_use_in_bytes', 'gauge'],
      ['etcd_network_peer_round_trip_time_seconds', 'histogram'],
      ['etcd_network_peer_sent_bytes_total', 'counter'],
      ['etcd_network_peer_received_bytes_total', 'counter'],
      ['etcd_network_peer_sent_failures_total', 'counter'],
      ['etcd_network_client_grpc_sent_bytes_total', 'counter'],
      ['etcd_network_client_grpc_received_bytes_total', 'counter'],
      ['grpc_server_started_total', 'counter'],
      ['grpc_server_handled_total', 'counter'],
      ['grpc_server_msg_received_total', 'counter'],
      ['grpc_server_msg_sent_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['process_cpu_seconds_total', 'counter'],
      ['process_start_time_seconds', 'gauge'],
      ['edgecd_raft_term', 'gauge'],
    ]
    for (const [name, type] of want) assert.equal(typeOf(text, name), type, name)
    assert.equal(sample(text, 'etcd_server_has_leader'), 1)
    assert.equal(sample(text, 'etcd_server_quota_backend_bytes'), 2 * 1024 * 1024 * 1024)
    assert.ok(sample(text, 'etcd_server_leader_changes_seen_total')! >= 1)
    assert.ok(sample(text, 'process_resident_memory_bytes')! > 1e6)
    // go-grpc-prometheus initialises every method and code at zero.
    assert.match(
      text,
      /^grpc_server_handled_total\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Range",grpc_code="Unavailable"\} \d+$/m,
    )
    // Peers are labelled with their hex member id, as etcd's types.ID prints it.
    const peers = [...text.matchAll(/^etcd_network_peer_sent_bytes_total\{To="([0-9a-f]+)"\} (\d+)$/gm)]
    assert.equal(peers.length, 2)
    // A follower talks to the leader only; something went each way.
    assert.ok(
      peers.some((p) => Number(p[2]) > 0),
      'bytes sent to a peer',
    )
    assert.ok(
      [...text.matchAll(/^etcd_network_peer_received_bytes_total\{From="[0-9a-f]+"\} (\d+)$/gm)].some(
        (p) => Number(p[1]) > 0,
      ),
    )
    assert.match(text, /^etcd_server_id\{server_id="[0-9a-f]+"\} 1$/m)
  })

  test('a put moves the gRPC counters, client bytes, proposals and the WAL histogram on the member that served it', async () => {
    const handled =
      'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}'
    const invalid =
      'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="InvalidArgument"}'
    const started = 'grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"}'
    const before = await metricsText(1)
    const body = { key: b64('metrics-key'), value: b64('v'.repeat(100)) }
    assert.equal((await post(c.urls[1]!, '/v3/kv/put', body)).status, 200)
    assert.equal((await post(c.urls[1]!, '/v3/kv/put', body)).status, 200)
    assert.equal((await post(c.urls[1]!, '/v3/kv/put', { value: b64('no key') })).status, 400)
    const after = await metricsText(1)
    const d = (s: string) => sample(after, s)! - sample(before, s)!
    assert.equal(d(handled), 2)
    assert.equal(d(invalid), 1)
    assert.equal(d(started), 3)
    assert.ok(d('etcd_network_client_grpc_received_bytes_total') >= 2 * JSON.stringify(body).length)
    assert.ok(d('etcd_network_client_grpc_sent_bytes_total') > 0)
    assert.ok(d('etcd_server_proposals_applied_total') >= 2)
    assert.ok(d('etcd_disk_wal_fsync_duration_seconds_count') >= 1)
    assert.ok(
      sample(after, 'etcd_server_proposals_committed_total')! >= sample(after, 'etcd_server_proposals_applied_total')!,
    )
    assert.match(
      after,
      /^grpc_server_handling_seconds_count\{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"\} \d+$/m,
    )
    const status = await post(c.urls[1]!, '/v3/maintenance/status', {})
    assert.equal(sample(after, 'edgecd_raft_term'), Number(status.json.raftTerm ?? status.json.header.raft_term))
  })

  test('calls on the gRPC front door (etcdctl) count in the same grpc_server_* series', {
    skip: etcdctlMissing(),
  }, async () => {
    // A member process (as users run it): etcdctl's gRPC against it, then its /metrics.
    const m = await startEdgecd()
    try {
      const ok =
        'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}'
      const text = async () => (await fetch(m.url + '/metrics')).text()
      const before = sample(await text(), ok)!
      execFileSync('etcdctl', ['--endpoints', m.url, '--command-timeout=20s', 'put', 'grpc-metrics', 'v'], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: 'pipe',
        timeout: 30_000,
      })
      assert.equal(sample(await text(), ok), before + 1)
    } finally {
      await m.stop()
    }
  })

  test('a watch stream counts as a gRPC bidi stream of etcdserverpb.Watch while it is open', async () => {
    const series =
      'grpc_server_started_total{grpc_type="bidi_stream",grpc_service="etcdserverpb.Watch",grpc_method="Watch"}'
    const before = sample(await metricsText(2), series)!
    const ac = new AbortController()
    const r = await fetch(c.urls[2]! + '/v3/watch', {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: b64('w') } }),
      signal: ac.signal,
    })
    const reader = r.body!.getReader()
    await reader.read()
    assert.equal(sample(await metricsText(2), series), before + 1)
    ac.abort()
    await reader.cancel().catch(() => {})
  })

  test('passes promtool check metrics (its lint flags only names etcd itself uses)', {
    skip: prometheusMissing(),
  }, async () => {
    // etcd's own /metrics draws the same lint findings: these names are etcd's, kept as they are for its dashboards.
    const etcdsOwn = [
      'etcd_debugging_mvcc_keys_total non-counter metrics should not have "_total" suffix',
      'etcd_debugging_mvcc_watch_stream_total non-counter metrics should not have "_total" suffix',
      'etcd_debugging_mvcc_watcher_total non-counter metrics should not have "_total" suffix',
      'etcd_server_health_failures counter metrics should have "_total" suffix',
      'etcd_server_health_success counter metrics should have "_total" suffix',
      'etcd_server_proposals_applied_total non-counter metrics should not have "_total" suffix',
      'etcd_server_proposals_committed_total non-counter metrics should not have "_total" suffix',
    ]
    for (let i = 0; i < 3; i++) {
      const { status, output } = promtoolCheckMetrics(await metricsText(i))
      // Exit 1 is a parse error of the exposition format; 3 is lint findings only.
      assert.ok(status === 0 || status === 3, output)
      assert.deepEqual(output.split('\n').filter(Boolean).sort(), etcdsOwn)
    }
    // And it does catch a broken exposition.
    assert.equal(promtoolCheckMetrics('foo{a="1"} 1\nfoo{a="1"} x\n').status, 1)
  })
})

describe('/livez and /readyz (etcd 3.5)', () => {
  const get = async (i: number, path: string) => {
    const r = await fetch(c.urls[i]! + path)
    return { status: r.status, text: await r.text(), type: r.headers.get('content-type') }
  }

  test('ok, verbose, exclude, one check, 405 for other methods', async () => {
    assert.deepEqual(await get(0, '/livez'), { status: 200, text: 'ok\n', type: 'text/plain; charset=utf-8' })
    assert.equal((await get(0, '/livez?verbose')).text, '[+]serializable_read ok\nok\n')
    assert.equal(
      (await get(0, '/readyz?verbose')).text,
      '[+]data_corruption ok\n[+]linearizable_read ok\n[+]serializable_read ok\nok\n',
    )
    assert.equal(
      (await get(0, '/readyz?verbose&exclude=linearizable_read&exclude=nonexistent')).text,
      '[+]data_corruption ok\n[+]serializable_read ok\nok\n',
    )
    assert.equal((await get(0, '/readyz/linearizable_read?verbose')).text, '[+]linearizable_read ok\nok\n')
    const r = await fetch(c.urls[0]! + '/readyz', { method: 'POST' })
    assert.equal(r.status, 405)
    assert.equal(r.headers.get('allow'), 'GET')
    const m = await metricsText(0)
    assert.ok(
      sample(m, 'etcd_server_healthchecks_total{type="readyz",name="linearizable_read",status="success"}')! >= 1,
    )
  })

  test('without a quorum: livez stays ok, readyz fails the linearizable read with 503', async () => {
    const survivor = 0
    await c.stop(1)
    await c.stop(2)
    await eventually(async () => ((await get(survivor, '/health')).status === 503 ? true : undefined), 30_000)
    assert.equal((await get(survivor, '/livez')).status, 200)
    const r = await get(survivor, '/readyz?verbose')
    assert.equal(r.status, 503)
    assert.match(
      r.text,
      /^\[\+\]data_corruption ok\n\[-\]linearizable_read failed: etcdserver: .+\n\[\+\]serializable_read ok\n\n$/,
    )
    assert.equal((await get(survivor, '/readyz?exclude=linearizable_read')).status, 200)
    const m = await metricsText(survivor)
    assert.equal(sample(m, 'etcd_server_has_leader'), 0)
  })
})
