/**
 * `npm run cluster` keeps its data apart from `npm start`'s: following the README in order (npm start, then npm run
 * cluster) must not put the cluster's members inside the single member's data dir.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { test } from 'node:test'
import { serverDefaults } from '../../src/etcdserver/config.js'

test("npm run cluster's data dirs are not inside npm start's default --data-dir", () => {
  const out = execFileSync(process.execPath, ['scripts/cluster.mjs', '--dry-run'], {
    encoding: 'utf8',
    env: { ...process.env, EDGECD_CLUSTER_DATA_DIR: '' },
  })
  const dirs = [...out.matchAll(/--data-dir (\S+)/g)].map((m) => resolve(m[1]!))
  assert.equal(dirs.length, 3, out)
  const single = resolve(serverDefaults.dataDir)
  for (const d of dirs) {
    assert.ok(d !== single && !d.startsWith(single + '/'), `${d} is inside npm start's ${single}`)
    assert.match(d, /data-cluster\/infra[012]$/)
  }
  assert.match(
    execFileSync(process.execPath, ['scripts/cluster.mjs', '--dry-run'], {
      encoding: 'utf8',
      env: { ...process.env, EDGECD_CLUSTER_DATA_DIR: '/tmp/elsewhere' },
    }),
    /--data-dir \/tmp\/elsewhere\/infra0 /,
  )
})
