/**
 * Seeded random differential test of auth, LeaseKeepAlive streams and maintenance: the same generated user and role
 * management, auth enable/disable, Authenticate, and KV/txn/lease/watch calls with the tokens of users with partial
 * permissions (or none, or a bad one), keep-alive streams and Status/Alarm/HashKV/MemberList go to a fresh etcd 3.4
 * (JWT tokens) and a fresh edgecd member, over gRPC and over the JSON gateway: codes, messages, statuses and bodies
 * must be the same (test/diff/random-admin.ts says what is normalised). EDGECD_DIFF_SEED=N reruns one seed;
 * EDGECD_DIFF_SOAK=1 runs 40 seeds of 500 steps per door.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startDiffPair } from '../support/diff.js'
import { requires } from '../support/requirements.js'
import { etcdJwtFlags, runAdminSeed } from './random-admin.js'
import { type DoorKind, diffRunPlan, formatMismatch } from './random-ops.js'

const plan = diffRunPlan({ steps: 150, seeds: 1 })

for (const door of ['grpc', 'json'] as DoorKind[])
  describe(`random differential auth, keep-alive and maintenance over ${door === 'grpc' ? 'gRPC' : 'the JSON gateway'}`, {
    skip: requires('etcd'),
  }, () => {
    for (const seed of plan.seeds)
      test(`seed ${seed}: ${plan.steps} steps`, { timeout: 600_000 }, async () => {
        const pair = await startDiffPair({ authPasswordIterations: 1000 }, { etcdExtra: etcdJwtFlags() })
        try {
          const m = await runAdminSeed(pair.etcd.url, pair.edgeUrl, door, seed, plan.steps)
          if (m) assert.fail(formatMismatch(m))
        } finally {
          await pair.stop()
        }
      })
  })
