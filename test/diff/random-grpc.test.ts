/**
 * Seeded random differential test over gRPC: the same generated sequence of KV, lease and maintenance requests (good
 * and bad: test/diff/random-ops.ts) goes to a fresh etcd 3.4 and a fresh edgecd member through etcd's gRPC API, and
 * every answer must be the same (status code and exact message, or the normalised response). Each seed starts from
 * empty servers, so a failure reruns alone: EDGECD_DIFF_SEED=N. EDGECD_DIFF_SOAK=1 runs 40 seeds of 500 steps.
 */
import { randomDiffSuite } from './random-ops.js'

randomDiffSuite('grpc', 'random differential over gRPC: etcd 3.4 and edgecd answer the same generated requests alike')
