/** `edgecd snapshot save|restore`, as etcdctl 3.4 (save streams from a member; restore writes a new data dir). */
import { createHash } from 'node:crypto'
import { appendFile, rename, rm, writeFile } from 'node:fs/promises'
import { Presets, SingleBar } from 'cli-progress'
import { ConfigError, serverDefaults } from '../etcdserver/config.js'
import { restoreSnapshot } from '../runtime/node/snapshot-restore.js'
import { type ClientCommandSpec, hex, needArgs, noTable, runGroup, UsageError } from './client-command.js'
import type { CliIo } from './main.js'

/**
 * The snapshot save progress bar (cli-progress) on stderr, only when stderr is a terminal: piped or captured output
 * stays exactly etcdctl's.
 */
function progressBar(): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} }
  const bar = new SingleBar(
    { stream: process.stderr, format: '{bar} {percentage}% | {value}/{total} bytes', hideCursor: true },
    Presets.shades_classic,
  )
  let started = false
  return {
    update(done, total) {
      if (!started) bar.start(total, 0)
      started = true
      bar.setTotal(total)
      bar.update(done)
    },
    stop: () => bar.stop(),
  }
}

const snapshotSave: ClientCommandSpec = {
  name: 'snapshot save',
  args: '<filename>',
  summary: "Stores an edgecd node's backend snapshot to a given file (with its SHA-256 appended, as etcd's)",
  flags: {},
  async run(ctx, args) {
    needArgs(args, 1, 1, 'snapshot save expects one argument')
    const file = args[0]!
    const part = `${file}.part`
    await writeFile(part, new Uint8Array(0))
    const hash = createHash('sha256')
    const bar = progressBar()
    let done = 0
    try {
      for await (const chunk of ctx.client().snapshot()) {
        await appendFile(part, chunk.blob)
        hash.update(chunk.blob)
        done += chunk.blob.length
        bar.update(done, chunk.totalBytes)
        if (ctx.signal.aborted) throw new Error('interrupted')
      }
      bar.stop()
      // The hash lets restore refuse a corrupt or truncated file (etcd appends the same to its snapshot stream).
      await appendFile(part, hash.digest())
      await rename(part, file)
    } catch (err) {
      bar.stop()
      await rm(part, { force: true })
      throw err
    }
    ctx.io.out(`Snapshot saved at ${file}`)
    return 0
  },
}

const snapshotRestore: ClientCommandSpec = {
  name: 'snapshot restore',
  args: '<filename> [options]',
  summary: 'Restores a snapshot saved by snapshot save into a new data dir (new member and cluster ids)',
  flags: {
    'data-dir': {
      type: 'string',
      help: 'path to the data directory (must not exist or be empty)',
      default: '<name>.etcd',
    },
    name: { type: 'string', help: 'human-readable name for this member', default: serverDefaults.name },
    'initial-cluster': {
      type: 'string',
      help: 'initial cluster configuration for restore bootstrap, name=url,... (default: this member at its peer URLs)',
    },
    'initial-cluster-token': {
      type: 'string',
      help: 'initial cluster token for the cluster during restore bootstrap',
      default: serverDefaults.initialClusterToken,
    },
    'initial-advertise-peer-urls': {
      type: 'string',
      help: "list of this member's peer URLs to advertise to the rest of the cluster",
      default: serverDefaults.initialAdvertisePeerUrls.join(','),
    },
    'skip-hash-check': {
      type: 'boolean',
      help: 'ignore the snapshot integrity hash (for a file saved without one)',
    },
  },
  async run(ctx, args, f) {
    noTable(ctx)
    needArgs(args, 1, 1, 'snapshot restore requires exactly one argument')
    const name = typeof f.name === 'string' ? f.name : serverDefaults.name
    const dataDir = typeof f['data-dir'] === 'string' ? f['data-dir'] : `${name}.etcd`
    const peerUrls =
      typeof f['initial-advertise-peer-urls'] === 'string'
        ? f['initial-advertise-peer-urls'].split(',').map((u) => u.trim())
        : serverDefaults.initialAdvertisePeerUrls
    let r: Awaited<ReturnType<typeof restoreSnapshot>>
    try {
      r = await restoreSnapshot({
        snapshotFile: args[0]!,
        dataDir,
        name,
        initialCluster: typeof f['initial-cluster'] === 'string' ? f['initial-cluster'] : '',
        initialClusterToken:
          typeof f['initial-cluster-token'] === 'string'
            ? f['initial-cluster-token']
            : serverDefaults.initialClusterToken,
        initialAdvertisePeerUrls: peerUrls,
        skipHashCheck: f['skip-hash-check'] === true,
      })
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    // etcdctl writes nothing on stdout here (its zap log lines go to stderr): a summary on stderr.
    ctx.io.err(
      `restored snapshot ${args[0]} to ${dataDir}: revision ${r.revision}, member ${hex(r.memberId)}, cluster ${hex(r.clusterId)}, members ${r.members.map((m) => `${m.name}=${m.peerURLs.join(',')}`).join(' ')}`,
    )
    return 0
  },
}

/** `edgecd snapshot ...`. */
export function runSnapshot(argv: string[], io: CliIo): Promise<number> {
  return runGroup(
    'snapshot',
    "Manages edgecd node snapshots (save, restore; the format is edgecd's own, not bbolt)",
    [snapshotSave, snapshotRestore],
    argv,
    io,
  )
}
