/**
 * Seeded random differential test over the JSON gateway: the same generated sequence of KV, lease and maintenance
 * requests (good and bad: test/diff/random-ops.ts) goes to a fresh etcd 3.4 and a fresh edgecd member through etcd's
 * JSON gateway, some bodies made bad in one place (a wrong JSON type, an unknown enum, a fraction where an integer
 * goes, bad base64, a duplicated or unknown field), and every answer must be the same: HTTP status and body (ids and
 * terms normalised). Each seed starts from empty servers, so a failure reruns alone: EDGECD_DIFF_SEED=N.
 * EDGECD_DIFF_SOAK=1 runs 40 seeds of 500 steps.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startDiffPair } from '../support/diff.js'
import { requires } from '../support/requirements.js'
import { diffRunPlan, formatMismatch, runSeed } from './random-ops.js'

const plan = diffRunPlan()

describe('random differential over the JSON gateway: etcd 3.4 and edgecd answer the same generated requests alike', {
  skip: requires('etcd'),
}, () => {
  for (const seed of plan.seeds)
    test(`seed ${seed}: ${plan.steps} steps`, { timeout: 600_000 }, async () => {
      const pair = await startDiffPair()
      try {
        const m = await runSeed(pair.etcd.url, pair.edgeUrl, 'json', seed, plan.steps)
        if (m) assert.fail(formatMismatch(m))
      } finally {
        await pair.stop()
      }
    })
})
