/**
 * Differential test of the gRPC front door: Debian's etcdctl 3.4 runs the same command sequence against a real
 * etcd 3.4 and against edgecd, and every command must print the same output (stdout, stderr, exit status), with
 * only what legitimately differs normalised: member, cluster and lease ids, raft terms and indexes, sizes, times,
 * peer URLs and client log lines. Skipped when etcd or etcdctl is not installed (scripts/setup-etcd.sh).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type DiffPair, startDiffPair } from '../support/diff.js'
import { etcdAvailable, etcdMissing, freePort } from '../support/index.js'

function etcdctlAvailable(): boolean {
  try {
    execFileSync('etcdctl', ['version'], { stdio: 'pipe' })
    return true
  } catch {
    return false
  }
}

interface Out {
  code: number | null
  stdout: string
  stderr: string
}

interface RunOpts {
  stdin?: string
  killAfterMs?: number
  killWhen?: RegExp
}

/**
 * Runs etcdctl against one endpoint. A command that runs until stopped (watch, elect) is ended (SIGTERM) once its
 * output matches `killWhen`, or after `killAfterMs` (where nothing is expected to come: that wait is the point), or
 * after 20 s. A fixed delay before the kill cut the output short on a loaded machine.
 */
function etcdctl(endpoint: string, args: string[], opts: RunOpts = {}): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', [`--endpoints=${endpoint}`, '--command-timeout=10s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += String(d)
      if (opts.killWhen?.test(stdout)) child.kill('SIGTERM')
    })
    child.stderr.on('data', (d) => {
      stderr += String(d)
    })
    child.on('error', reject)
    const killAfterMs = opts.killAfterMs ?? (opts.killWhen ? 20_000 : undefined)
    const killer = killAfterMs ? setTimeout(() => child.kill('SIGTERM'), killAfterMs) : undefined
    const bound = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('close', (code) => {
      if (killer) clearTimeout(killer)
      clearTimeout(bound)
      resolve({ code: killAfterMs ? 0 : code, stdout, stderr })
    })
    child.stdin.end(opts.stdin ?? '')
  })
}

/** What legitimately differs between two servers answering the same commands. */
function normalize(o: Out): Out {
  const n = (s: string) =>
    s
      // client-side retry logs carry times and generated client names
      .split('\n')
      .filter((l) => !l.startsWith('{"level":'))
      .join('\n')
      .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
      // decimal ids first: a decimal id of 14-16 digits (random ids can be that short) also looks like a hex id
      .replace(/"(cluster_id|member_id|leader|ID|id)":\d+/g, '"$1":ID')
      .replace(/"raft_term":\d+/g, '"raft_term":T')
      .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+/g, '"$1" : N')
      .replace(/\b[0-9a-f]{14,16}\b/g, 'HEXID')
      // a random id under 2^52 has fewer hex digits (1 in 4,096): taken when it has a letter, as no decimal number has
      .replace(/\b(?=[0-9]*[a-f])[0-9a-f]{8,13}\b/g, 'HEXID')
      .replace(/"(raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse)":\d+/g, '"$1":N')
      .replace(/took = [\d.]+[µm]?s/g, 'took = X')
      // etcd prints ids with %16x: a shorter id is padded with spaces
      .replace(/ +HEXID/g, ' HEXID')
      .replace(/\/(etcd|edge)\/save\.snap/g, '/X/save.snap')
      // members come in id order, and the ids are random
      .replace(
        /ETCD_INITIAL_CLUSTER="([^"]*)"/,
        (_, l: string) => `ETCD_INITIAL_CLUSTER="${l.split(',').sort().join(',')}"`,
      )
      // read a moment apart
      .replace(/remaining\(\d+s\)/g, 'remaining(Ns)')
      // endpoint status: raft term, index and applied index (edgecd's log has other entries than etcd's)
      .replace(/, \d+, \d+, \d+, \n/g, ', T, I, I, \n')
      // endpoint hashkv: edgecd hashes its own store, not a bolt file
      .replace(/(127\.0\.0\.1:PORT), \d+\n/g, '$1, HASH\n')
      .replace(/\b\d+(\.\d+)? ?[kMG]?B\b/g, 'SIZE')
      .replace(/\| +\d+ \| +\d+ \|( +\d+ \|)?/g, '| N | N |')
  return { code: o.code, stdout: n(o.stdout), stderr: n(o.stderr) }
}

const available = etcdAvailable() && etcdctlAvailable()

describe('etcdctl 3.4 against etcd 3.4 and edgecd: same commands, same output', {
  skip: available ? false : etcdMissing,
}, () => {
  let pair: DiffPair
  let etcd: DiffPair['etcd']
  let edge: DiffPair['edge']
  /** Where the snapshot commands save their files. */
  let dir: string
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgecd-grpc-diff-'))
    pair = await startDiffPair({ authPasswordIterations: 1000 })
    ;({ etcd, edge } = pair)
  })
  after(async () => {
    await pair?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const mismatches: string[] = []
  /** Runs one command on both (etcd first) and records a difference; returns both raw outputs. */
  async function same(
    args: string[] | ((target: 'etcd' | 'edge') => string[]),
    opts: RunOpts & { sortLines?: boolean } = {},
  ): Promise<{ etcd: Out; edge: Out }> {
    const argsOf = (t: 'etcd' | 'edge') => (typeof args === 'function' ? args(t) : args)
    const a = await etcdctl(etcd.url, argsOf('etcd'), opts)
    const b = await etcdctl(edge.urls[0]!, argsOf('edge'), opts)
    const sorted = (o: Out) => (opts.sortLines ? { ...o, stdout: o.stdout.split('\n').sort().join('\n') } : o)
    const na = sorted(normalize(a))
    const nb = sorted(normalize(b))
    try {
      assert.deepEqual(nb, na)
    } catch {
      mismatches.push(
        `etcdctl ${argsOf('edge').join(' ')}\n  etcd:   ${JSON.stringify(na)}\n  edgecd: ${JSON.stringify(nb)}`,
      )
    }
    return { etcd: a, edge: b }
  }
  const check = () => {
    const found = mismatches.splice(0)
    assert.equal(found.length, 0, `etcdctl output differs:\n${found.join('\n')}`)
  }

  test('put, get (prefix, range, sort, limit, rev, count-only, keys-only, from-key, -w json), del', async () => {
    for (const [k, v] of [
      ['foo', 'bar'],
      ['foo2', 'bar2'],
      ['foo3', 'bar3'],
      ['zoo', 'z'],
      ['foo', 'bar1'],
    ])
      await same(['put', k!, v!])
    await same(['put', 'foo', 'bar2', '--prev-kv'])
    await same(['get', 'foo'])
    await same(['get', 'nothing'])
    await same(['get', 'foo', '--prefix'])
    await same(['get', 'foo', 'foo3'])
    await same(['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=DESCEND'])
    await same(['get', 'foo', '--prefix', '--sort-by=VALUE', '--order=ASCEND', '--limit=2'])
    await same(['get', 'foo', '--rev=2'])
    await same(['get', 'foo', '--prefix', '--count-only', '-w', 'json'])
    await same(['get', 'foo', '--prefix', '--keys-only'])
    await same(['get', 'foo', '-w', 'json'])
    await same(['get', 'foo', '-w', 'fields'])
    await same(['get', '--from-key', 'foo2'])
    await same(['get', 'foo', '--rev=100'])
    await same(['del', 'foo3'])
    await same(['del', 'foo', '--prefix', '--prev-kv'])
    await same(['del', 'nothing'])
    await same(['put', ''])
    check()
  })

  test('txn (interactive syntax on stdin), success and failure branches', async () => {
    await same(['put', 't', '1'])
    await same(['txn'], { stdin: 'value("t") = "1"\n\nput t 2\nget t\n\nput t 3\n\n' })
    await same(['txn'], { stdin: 'value("t") = "1"\n\nput t 2\n\nget t\ndel t\n\n' })
    await same(['txn', '-w', 'json'], { stdin: 'mod("t") > "0"\n\nput t 4\n\n\n' })
    check()
  })

  test('watch from a revision, with prev-kv, on a prefix', async () => {
    await same(['put', 'w1', 'a'])
    await same(['put', 'w1', 'b'])
    await same(['put', 'w2', 'c'])
    await same(['del', 'w1'])
    // Each ends once the last event (the delete) is printed whole.
    await same(['watch', 'w1', '--rev=1'], { killWhen: /DELETE\nw1\n\n$/ })
    await same(['watch', 'w', '--prefix', '--rev=1', '--prev-kv'], { killWhen: /DELETE\nw1\nb\nw1\n\n$/ })
    await same(['watch', 'w1', '--rev=1', '-w', 'json'], { killWhen: /"type":1.*\n$/ })
    check()
  })

  test('lease grant, put with lease, timetolive, keep-alive, list, revoke', async () => {
    const g = await same(['lease', 'grant', '100'])
    const id = (t: 'etcd' | 'edge') => (t === 'etcd' ? g.etcd : g.edge).stdout.split(' ')[1]!
    await same((t) => ['put', 'lk', 'v', `--lease=${id(t)}`])
    await same((t) => ['lease', 'timetolive', id(t)])
    await same((t) => ['lease', 'timetolive', id(t), '--keys'])
    await same((t) => ['lease', 'keep-alive', '--once', id(t)])
    await same(['lease', 'list'])
    await same((t) => ['lease', 'revoke', id(t)])
    await same((t) => ['lease', 'timetolive', id(t)])
    await same((t) => ['lease', 'revoke', id(t)])
    await same(['get', 'lk'])
    await same(['lease', 'grant', '0'])
    check()
  })

  test('member list / add (learner) / promote / remove', async () => {
    await same(['member', 'list'])
    await same(['member', 'list', '-w', 'json'])
    const peer = `http://127.0.0.1:${await freePort()}`
    const add = await same(['member', 'add', 'learner1', '--learner', `--peer-urls=${peer}`])
    const id = (t: 'etcd' | 'edge') =>
      /Member\s+([0-9a-f]+) added/.exec((t === 'etcd' ? add.etcd : add.edge).stdout)?.[1] ?? '0'
    // etcd lists members by id, and the ids are random: the order of the two lines may differ.
    await same(['member', 'list'], { sortLines: true })
    await same((t) => ['member', 'promote', id(t)])
    await same((t) => ['member', 'remove', id(t)])
    await same((t) => ['member', 'remove', id(t)])
    await same(['member', 'list'])
    check()
  })

  test('endpoint health / status / hashkv, compaction, defrag, alarm, move-leader', async () => {
    await same(['endpoint', 'health'])
    await same(['endpoint', 'status'])
    await same(['endpoint', 'status', '-w', 'json'])
    await same(['endpoint', 'hashkv'])
    await same(['compaction', '3'])
    await same(['get', 'foo', '--rev=2'])
    await same(['compaction', '2'])
    await same(['compaction', '100000'])
    await same(['defrag'])
    await same(['alarm', 'list'])
    await same(['alarm', 'disarm'])
    await same(['move-leader', '1234'])
    check()
  })

  test('snapshot save', async () => {
    // The same file name in two folders: etcdctl prints the path.
    mkdirSync(join(dir, 'etcd'))
    mkdirSync(join(dir, 'edge'))
    const files = { etcd: join(dir, 'etcd', 'save.snap'), edge: join(dir, 'edge', 'save.snap') }
    await same((t) => ['snapshot', 'save', files[t]])
    assert.ok(statSync(files.edge).size > 32)
    check()
  })

  test('lock and elect', async () => {
    await same(['lock', 'l1', 'echo', 'held'])
    await same(['elect', 'e1', 'p1'], { killWhen: /\np1\n$/ })
    // The candidate resigned when stopped: no leader to print (etcd prints nothing either).
    await same(['elect', '-l', 'e1'], { killAfterMs: 1500 })
    check()
  })

  test('user, role, auth enable / disable, with and without credentials', async () => {
    await same(['user', 'add', 'root:rootpw'])
    await same(['user', 'add', 'root:rootpw'])
    await same(['role', 'add', 'r1'])
    await same(['role', 'grant-permission', 'r1', 'readwrite', 'a', 'b'])
    await same(['role', 'grant-permission', 'r1', 'read', 'p', '--prefix'])
    await same(['role', 'get', 'r1'])
    await same(['user', 'add', 'u1:u1pw'])
    await same(['user', 'grant-role', 'u1', 'r1'])
    await same(['user', 'get', 'u1'])
    await same(['user', 'list'])
    await same(['role', 'list'])
    await same(['auth', 'enable'])
    await same(['get', 'a'])
    await same(['--user=u1:u1pw', 'put', 'a', '1'])
    await same(['--user=u1:u1pw', 'get', 'a'])
    await same(['--user=u1:u1pw', 'put', 'z', '1'])
    await same(['--user=u1:wrong', 'get', 'a'])
    await same(['--user=root:rootpw', 'user', 'list'])
    await same(['--user=u1:u1pw', 'user', 'list'])
    await same(['--user=root:rootpw', 'role', 'revoke-permission', 'r1', 'a', 'b'])
    await same(['--user=root:rootpw', 'user', 'revoke-role', 'u1', 'r1'])
    await same(['--user=root:rootpw', 'auth', 'disable'])
    await same(['user', 'delete', 'u1'])
    await same(['role', 'delete', 'r1'])
    check()
  })
})
