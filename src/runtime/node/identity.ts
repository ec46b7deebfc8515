import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { checkMemberIdentity, type MemberIdentity } from '../../embed/bootstrap.js'
import { identityFileName } from '../../storage/file-names.js'

export type { MemberIdentity } from '../../embed/bootstrap.js'

/** Checks (on the first start: records) which member of which cluster a data dir belongs to; see checkMemberIdentity. */
export function checkIdentity(dataDir: string, want: MemberIdentity): Promise<void> {
  return checkMemberIdentity(
    {
      async readText(path) {
        try {
          return await readFile(path, 'utf8')
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
          return undefined
        }
      },
      async writeText(path, text) {
        const tmp = `${path}.tmp-${process.pid}`
        await writeFile(tmp, text, { flush: true })
        await rename(tmp, path)
      },
    },
    join(dataDir, identityFileName),
    dataDir,
    want,
  )
}
