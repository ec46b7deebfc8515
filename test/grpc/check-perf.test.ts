/**
 * `etcdctl check perf` (etcdctl 3.4) against a member: its fixed 60-second small load (150 puts/s of 1 KiB values
 * under random binary 256-byte keys from 50 clients, a prefix read first, a prefix delete at the end) runs without
 * one failed request and leaves no key behind. The load cannot be shortened (etcdctl has no duration flag), so this
 * file takes about 70 s. The verdicts (throughput at least 135 writes/s, slowest request under 0.5 s, stddev under
 * 0.1 s) need a quiet machine and are required only when EDGECD_CHECK_PERF_STRICT=1; elsewhere the output must only
 * hold them and the throughput be at least 100 writes/s.
 * Skipped when etcdctl is not installed (scripts/setup-etcd.sh).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { startTestMember, type TestMember } from '../server/helpers.js'

function etcdctlAvailable(): boolean {
  try {
    execFileSync('etcdctl', ['version'], { stdio: 'pipe' })
    return true
  } catch {
    return false
  }
}

function etcdctl(endpoint: string, args: string[], boundMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', [`--endpoints=${endpoint}`, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += String(d)
    })
    child.stderr.on('data', (d) => {
      out += String(d)
    })
    child.on('error', reject)
    const bound = setTimeout(() => child.kill('SIGKILL'), boundMs)
    child.on('close', (code) => {
      clearTimeout(bound)
      resolve({ code, out })
    })
  })
}

describe('etcdctl check perf against edgecd', { skip: etcdctlAvailable() ? false : 'etcdctl not installed' }, () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('a prefix that holds keys is refused as etcd refuses it', async () => {
    await etcdctl(m.url, ['put', '/etcdctl-check-perf/x', 'y'], 20_000)
    const r = await etcdctl(m.url, ['check', 'perf', '--load', 's'], 20_000)
    assert.match(r.out, /prefix "\/etcdctl-check-perf\/" has keys\. Delete with etcdctl del --prefix/)
    assert.notEqual(r.code, 0)
    await etcdctl(m.url, ['del', '--prefix', '/etcdctl-check-perf/'], 20_000)
  })

  test('the small load: every request answered, the keys deleted', { timeout: 120_000 }, async () => {
    const r = await etcdctl(m.url, ['check', 'perf', '--load', 's'], 100_000)
    // etcdctl's verdict lines (its progress bar redraws with \r, the verdicts follow it)
    const verdicts = (r.out.match(/(PASS|FAIL|Slowest|Stddev)[^\r\n]*/g) ?? []).join('\n')
    assert.doesNotMatch(r.out, /too many errors|ERROR\(/, verdicts)
    // 150 writes/s asked. etcdctl's own bar is 90% of it (135), which a machine loaded by other work can miss (a
    // full test run beside five engineers' builds gave 130): two thirds of it here, etcdctl's PASS under STRICT.
    const rate = Number(/Throughput (?:is|too low:) (\d+) writes\/s/.exec(verdicts)?.[1] ?? 0)
    assert.ok(rate >= 100, `throughput ${rate} writes/s\n${verdicts}`)
    assert.match(verdicts, /(PASS: Slowest request took|Slowest request took too long)/, verdicts)
    if (process.env.EDGECD_CHECK_PERF_STRICT === '1') {
      assert.equal(r.code, 0, verdicts)
      assert.match(verdicts, /^PASS$/m, verdicts)
      assert.match(verdicts, /PASS: Throughput is \d+ writes\/s/, verdicts)
    }
    const left = await etcdctl(m.url, ['get', '--prefix', '/etcdctl-check-perf/', '--keys-only'], 20_000)
    assert.deepEqual(left, { code: 0, out: '' })
  })
})
