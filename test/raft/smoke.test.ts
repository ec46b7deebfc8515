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
