/**
 * A bookmark bug the chaos harness's watch checker looks for (etcd issue #15220, fixed in etcd 3.4.24 / 3.5.8 by
 * deferring the progress response until every watcher of the stream is synced): a progress_request answered with the
 * current revision while some of the stream's events are still queued (congested transport) or not yet replayed
 * (unsynced watcher) promises the client it has seen everything up to that revision, and then the older events
 * arrive. A client that resumes from a progress revision + 1 loses them.
 *
 * edgecd's WatchStream.requestProgress (src/kv/watch.ts) defers its answer until the stream has caught up.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { newStore, put, RecordingSink, watchReq } from '../kv/helpers.js'

test('progress_request is not answered ahead of queued events (etcd #15220)', () => {
  const s = newStore()
  const sink = new RecordingSink()
  const stream = s.watchHub.openStream(sink)
  stream.create(watchReq('k'))
  sink.congested = true
  put(s, 'k', '1') // delivered, then the sink reports congestion
  put(s, 'k', '2') // queued
  put(s, 'k', '3') // queued
  stream.requestProgress()
  sink.congested = false
  stream.resume()
  let progress = 0
  for (const m of sink.messages) {
    if (m.watch_id === -1) progress = Math.max(progress, m.header!.revision)
    for (const e of m.events)
      assert.ok(
        e.kv.mod_revision > progress,
        `event at ${e.kv.mod_revision} after a progress notification at ${progress}`,
      )
  }
  assert.ok(progress > 0, 'the progress request was answered once the stream caught up')
})
