/**
 * A test that needs a program that is missing fails loudly with the command that installs it, unless a developer
 * opted out with EDGECD_ALLOW_MISSING=1, which CI=true overrides (test/support/requirements.ts).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'

function runWithoutEtcd(env: Record<string, string>) {
  const clean = { ...process.env }
  delete clean.CI
  delete clean.EDGECD_ALLOW_MISSING
  delete clean.NODE_TEST_CONTEXT // else the child reports to this runner instead of printing TAP
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/support/fixtures/needs-etcd.ts'],
    { env: { ...clean, PATH: '/nonexistent', ...env }, encoding: 'utf8' },
  )
  return { status: r.status, out: r.stdout + r.stderr }
}

test('etcd missing: a failing test names scripts/setup-etcd.sh', () => {
  const r = runWithoutEtcd({})
  assert.notEqual(r.status, 0, r.out)
  assert.match(r.out, /not ok .* etcd is installed/)
  assert.match(r.out, /bash scripts\/setup-etcd\.sh/)
})

test('EDGECD_ALLOW_MISSING=1 skips instead, but not under CI=true', () => {
  const allowed = runWithoutEtcd({ EDGECD_ALLOW_MISSING: '1' })
  assert.equal(allowed.status, 0, allowed.out)
  assert.match(allowed.out, /# SKIP etcd is missing, skipped/)
  const ci = runWithoutEtcd({ EDGECD_ALLOW_MISSING: '1', CI: 'true' })
  assert.notEqual(ci.status, 0, ci.out)
})
