/** The contract suite on the Node file backend, in a temp directory per case. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { openNodeStorage } from '../../src/runtime/node/storage.js'
import { contractCases } from './contract.js'

describe('storage contract: node files', () => {
  for (const c of contractCases) {
    test(c.name, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'edgecd-node-'))
      try {
        await c.run({ open: () => openNodeStorage(join(dir, 'data'), { walSegmentBytesMax: 4096 }) })
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})
