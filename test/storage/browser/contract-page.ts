/**
 * Runs inside Chromium (bundled by esbuild in chromium.test.ts): the shared contract suite (../contract.ts) on the
 * IndexedDB backend, one case per call, each on a fresh database, plus the Web Lock check. Exposed on `window`; each
 * call returns undefined when the case passed, else the error with its stack, for the Node side to report.
 */
import { openIndexedDbStorage } from '../../../src/runtime/browser/indexeddb-storage.js'
import { isStorageError } from '../../../src/storage/errors.js'
import { contractCases } from '../contract.js'

let dbCounter = 0

function describe(err: unknown): string {
  return err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err)
}

async function runCase(name: string): Promise<string | undefined> {
  const c = contractCases.find((x) => x.name === name)
  if (!c) return `no contract case named ${JSON.stringify(name)}`
  const dbName = `edgecd-contract-${++dbCounter}`
  try {
    await c.run({ open: () => openIndexedDbStorage(dbName) })
    return undefined
  } catch (err) {
    return describe(err)
  } finally {
    indexedDB.deleteDatabase(dbName)
  }
}

/** A second open of the same database while the first is open fails with ErrLocked; close releases the lock. */
async function lockCase(): Promise<string | undefined> {
  const dbName = `edgecd-lock-${++dbCounter}`
  try {
    const s = await openIndexedDbStorage(dbName)
    const second = await openIndexedDbStorage(dbName).then(
      async (t) => {
        await t.close()
        return 'a second open succeeded'
      },
      (err) =>
        isStorageError(err, 'ErrLocked') && err.message.includes(dbName) ? undefined : `wrong error: ${describe(err)}`,
    )
    if (second) return second
    const ro = await openIndexedDbStorage(dbName, { readOnly: true })
    await ro.close()
    await s.close()
    const again = await openIndexedDbStorage(dbName)
    await again.close()
    return undefined
  } catch (err) {
    return describe(err)
  } finally {
    indexedDB.deleteDatabase(dbName)
  }
}

;(globalThis as unknown as { edgecdContract: unknown }).edgecdContract = {
  names: contractCases.map((c) => c.name),
  runCase,
  lockCase,
}
