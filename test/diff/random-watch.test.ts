/**
 * Seeded random differential test of the Watch stream: the same generated creates, cancels and progress requests,
 * interleaved with generated writes, go to a fresh etcd 3.4 and a fresh edgecd member over one gRPC Watch stream and
 * over one WebSocket watch (`GET /v3/watch`, etcd's grpc-websocket-proxy); each watch id's responses and events must
 * be the same (test/diff/random-watch.ts says what is normalised). EDGECD_DIFF_SEED=N reruns one seed;
 * EDGECD_DIFF_SOAK=1 runs 40 seeds of 500 steps per door.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startDiffPair } from '../support/diff.js'
import { requires } from '../support/requirements.js'
import { diffRunPlan, formatMismatch } from './random-ops.js'
import { runWatchSeed, type WatchDoor } from './random-watch.js'

const plan = diffRunPlan({ steps: 150, seeds: 1 })

for (const door of ['grpc', 'ws'] as WatchDoor[])
  describe(`random differential Watch over ${door === 'grpc' ? 'gRPC' : 'the WebSocket'}: etcd 3.4 and edgecd stream alike`, {
    skip: requires('etcd'),
  }, () => {
    for (const seed of plan.seeds)
      test(`seed ${seed}: ${plan.steps} steps`, { timeout: 600_000 }, async () => {
        const pair = await startDiffPair()
        try {
          const m = await runWatchSeed(pair.etcd.url, pair.edgeUrl, { seed, steps: plan.steps, door })
          if (m) assert.fail(formatMismatch(m))
        } finally {
          await pair.stop()
        }
      })
  })
