import assert from 'node:assert/strict'
import { test } from 'node:test'
import { computeClusterId, computeMemberId, idToHex } from '../../src/etcdserver/ids.js'

test("member and cluster ids equal etcd's for the same peer URLs and token", async () => {
  // etcd's default single member: --initial-advertise-peer-urls http://localhost:2380, token etcd-cluster.
  const id = await computeMemberId(['http://localhost:2380'], 'etcd-cluster')
  assert.equal(idToHex(id), '8e9e05c52164694d')
  assert.equal(id, '10276657743932975437')
  assert.equal(idToHex(await computeClusterId([id])), 'cdf818194e3a8c32')
})
