/**
 * The writer of the crash test: opens the Node file backend in argv[2], runs the seeded workload from whatever state
 * it finds, and prints `ack <n>` the moment save n has resolved. The parent kills it with SIGKILL at a random moment.
 * Not a test file itself (no .test.ts), so the runner never starts it alone.
 */
import { openNodeStorage } from '../../src/runtime/node/storage.js'
import { nextOp, rng, runOp } from './crash-workload.js'

const [dir, seedArg, stepsArg, segArg, fillArg] = process.argv.slice(2)
// Optional: the segment size and the zero fill's chunk (crash.test.ts runs a variant whose fill runs mid-segment).
const s = await openNodeStorage(dir!, {
  walSegmentBytesMax: Number(segArg ?? 16 * 1024),
  ...(fillArg ? { walPreallocateBytes: Number(fillArg) } : {}),
})
const r = rng(Number(seedArg))
const stepsMax = Number(stepsArg)
process.stdout.write('open\n')
for (let n = 1; n <= stepsMax; n++) {
  await runOp(s, nextOp(s, r))
  // Pipes are synchronous on Linux, so this line is out of the process before the next save starts.
  process.stdout.write(`ack ${n}\n`)
}
await s.close()
process.stdout.write('done\n')
