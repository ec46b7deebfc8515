/**
 * Seeded random differential test over the JSON gateway: the same generated sequence of KV, lease and maintenance
 * requests (good and bad: test/diff/random-ops.ts) goes to a fresh etcd 3.4 and a fresh edgecd member through etcd's
 * JSON gateway, some bodies made bad in one place (a wrong JSON type, an unknown enum, a fraction where an integer
 * goes, bad base64, a duplicated or unknown field), and every answer must be the same: HTTP status and body (ids and
 * terms normalised). Each seed starts from empty servers, so a failure reruns alone: EDGECD_DIFF_SEED=N.
 * EDGECD_DIFF_SOAK=1 runs 40 seeds of 500 steps.
 */
import { randomDiffSuite } from './random-ops.js'

randomDiffSuite(
  'json',
  'random differential over the JSON gateway: etcd 3.4 and edgecd answer the same generated requests alike',
)
