import assert from 'node:assert/strict'
import { test } from 'node:test'
import { StateType } from '../../src/raft/index.js'
import { Network } from './network.js'

test('three nodes elect a leader and replicate a proposal', () => {
  const nw = new Network(['1', '2', '3'])
  nw.campaign('1')
  assert.equal(nw.state('1'), StateType.StateLeader)
  nw.propose('1', 'hello')
  for (const id of ['1', '2', '3']) assert.deepEqual(nw.appliedData(id), ['hello'])
})

test('Network.drop(from, to, perc) drops about that share of the messages, seeded; 0 drops none', () => {
  const run = (perc: number, seed: number) => {
    const nw = new Network(['1', '2', '3'], {}, seed)
    nw.campaign('1')
    nw.drop('1', '2', perc)
    nw.recordTraffic = true
    for (let i = 0; i < 200; i++) {
      nw.propose('1', `v${i}`)
      nw.tick(1)
    }
    const link = (ms: { from: string; to: string }[]) => ms.filter((m) => m.from === '1' && m.to === '2').length
    return { delivered: link(nw.delivered), lost: link(nw.lost) }
  }
  assert.equal(run(0, 7).lost, 0)
  const half = run(0.5, 7)
  const share = half.lost / (half.lost + half.delivered)
  assert.ok(share > 0.35 && share < 0.65, `drop 0.5 lost ${half.lost} of ${half.lost + half.delivered}`)
  assert.deepEqual(run(0.5, 7), half, 'the same seed drops the same messages')
  assert.equal(run(1, 7).delivered, 0)
})
