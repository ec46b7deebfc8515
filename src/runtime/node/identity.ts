import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../server/config.js'
import { identityFileName } from '../../storage/file-names.js'

export interface MemberIdentity {
  name: string
  memberId: string
  clusterId: string
}

/**
 * A data dir belongs to one member of one cluster (etcd records both in its WAL metadata): the first start writes
 * them, every later start must match, so a member never joins another cluster with this cluster's data, and a data
 * dir copied to another member is refused instead of corrupting both.
 */
export async function checkIdentity(dataDir: string, want: MemberIdentity): Promise<void> {
  const path = join(dataDir, identityFileName)
  let text: string | undefined
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (text === undefined) {
    const tmp = `${path}.tmp-${process.pid}`
    await writeFile(tmp, JSON.stringify(want) + '\n', { flush: true })
    await rename(tmp, path)
    return
  }
  let have: MemberIdentity
  try {
    have = JSON.parse(text) as MemberIdentity
  } catch {
    throw new ConfigError(`${path} is not a valid identity file; refusing to start`)
  }
  if (have.clusterId !== want.clusterId)
    throw new ConfigError(
      `--data-dir ${dataDir} belongs to cluster ${have.clusterId}, but the flags describe cluster ${want.clusterId} (check --initial-cluster and --initial-cluster-token)`,
    )
  if (have.memberId !== want.memberId)
    throw new ConfigError(
      `--data-dir ${dataDir} belongs to member ${have.name} (${have.memberId}), not ${want.name} (${want.memberId})`,
    )
}
