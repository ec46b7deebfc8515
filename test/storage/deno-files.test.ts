/**
 * The contract suite on the Deno file backend. Under Deno (`deno test`) it runs the cases; under Node (`npm test`) it
 * runs itself under the Deno binary from node_modules with the permissions it needs (read and write in one temp
 * directory, read in the repo), so the Deno backend is tested on every `npm test`. No tsx-only features here:
 * Deno reads this file itself.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { openDenoStorage } from '../../src/runtime/deno/storage.js'
import { isStorageError } from '../../src/storage/errors.js'
import { contractCases } from './contract.js'

interface DenoTestApi {
  makeTempDir(o: { prefix: string }): Promise<string>
  remove(p: string, o: { recursive: boolean }): Promise<void>
}
const deno = (globalThis as unknown as { Deno?: DenoTestApi }).Deno

if (deno) {
  describe('storage contract: deno files', () => {
    for (const c of contractCases) {
      test(c.name, async () => {
        const dir = await deno.makeTempDir({ prefix: 'edgecd-deno-' })
        try {
          await c.run({ open: () => openDenoStorage(`${dir}/data`, { walSegmentBytesMax: 4096 }) })
        } finally {
          await deno.remove(dir, { recursive: true })
        }
      })
    }
    test('a second open of a data dir fails with ErrLocked naming it and the holder; close releases', async () => {
      const dir = await deno.makeTempDir({ prefix: 'edgecd-deno-lock-' })
      try {
        const s = await openDenoStorage(`${dir}/data`)
        await assert.rejects(
          openDenoStorage(`${dir}/data`),
          (e) => isStorageError(e, 'ErrLocked') && e.message.includes(`${dir}/data is locked by this process (pid `),
        )
        await s.close()
        const again = await openDenoStorage(`${dir}/data`)
        await again.close()
      } finally {
        await deno.remove(dir, { recursive: true })
      }
    })
    test('a directory Deno may not write is refused with ErrReadOnly', async () => {
      // The repo is readable but not writable under the permissions this file runs with.
      const dir = new URL('../../.deno-storage-probe/data', import.meta.url).pathname
      await assert.rejects(openDenoStorage(dir), (e) => isStorageError(e, 'ErrReadOnly') && e.message.includes(dir))
    })
  })
} else {
  test('storage contract: deno files (run under the Deno binary)', async (t) => {
    const { runUnderDeno } = await import('../support/deno.js')
    const result = await runUnderDeno(new URL(import.meta.url).pathname)
    if (result.skipped) {
      t.skip(result.skipped)
      return
    }
    if (result.status !== 0) throw new Error(`deno test failed (exit ${result.status}):\n${result.output}`)
  })
}
