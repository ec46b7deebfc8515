/**
 * Where a member's allocations come from (issue 12, docs/benchmarks.md gRPC "Session 10"): an `--import` preload that
 * runs V8's sampling heap profiler over a window, keeping the samples of objects a scavenge or a full GC freed (what a
 * put allocates and drops is what the young generation copies and scans), and writes the profile as JSON.
 * The window is put-driver's measured one (its PUT_DRIVER_SIGNAL sends SIGUSR2 at the start and at the end):
 *
 *   ALLOC_PROFILE_OUT=/tmp/a.heapprofile PUT_DRIVER_SIGNAL=1 \
 *     PUT_DRIVER_NODE_ARGS="--import $PWD/bench/lib/alloc-profile.mjs" node --import tsx bench/lib/put-driver.ts 1 4
 *   node bench/lib/alloc-report.mjs /tmp/a.heapprofile <puts>      # bytes per put by function (self and src/ total)
 *
 * The profile also opens in Chrome DevTools (Memory tab, "Load", renamed to .heapprofile). Sampling interval 1 KiB
 * (ALLOC_PROFILE_INTERVAL): V8 scales each sample to an estimate of the bytes allocated there.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

const out = process.env.ALLOC_PROFILE_OUT ?? `/tmp/alloc-${process.pid}.heapprofile`
const interval = Number(process.env.ALLOC_PROFILE_INTERVAL ?? 1024)
const session = new Session()
session.connect()
let on = false
process.on('SIGUSR2', () => {
  if (!on) {
    on = true
    session.post('HeapProfiler.enable')
    session.post('HeapProfiler.startSampling', {
      samplingInterval: interval,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    })
    return
  }
  on = false
  session.post('HeapProfiler.stopSampling', (err, r) => {
    if (err) process.stderr.write(`alloc-profile: ${err.message}\n`)
    else writeFileSync(out, JSON.stringify(r.profile))
  })
})
