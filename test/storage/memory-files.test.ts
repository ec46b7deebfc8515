/** The contract suite on FileStorage over the in-memory file system, with a power cut before every reopen. */
import { describe, test } from 'node:test'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { contractCases } from './contract.js'

describe('storage contract: memory files (power cut on reopen)', () => {
  for (const c of contractCases) {
    test(c.name, async () => {
      const ops = new MemoryFileOps()
      await c.run({
        open: async () => {
          ops.crash()
          return openFileStorage(ops, { walSegmentBytesMax: 4096 })
        },
      })
    })
  }
})
