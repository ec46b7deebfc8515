#!/usr/bin/env node
// `npm run cluster`: a local three-member cluster on 2379, 22379 and 32379 (data under ./data-cluster/<name>, apart
// from `npm start`'s ./data; EDGECD_CLUSTER_DATA_DIR moves it), in the foreground with prefixed logs. Ctrl-C (or
// SIGTERM) stops every member cleanly. `--dry-run` prints each member's command and exits; any other argument is
// passed to every member's `edgecd serve`.
import { spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createInterface } from 'node:readline'

const members = [
  ['infra0', 2379],
  ['infra1', 22379],
  ['infra2', 32379],
]
const url = (port) => `http://127.0.0.1:${port}`
const initialCluster = members.map(([n, p]) => `${n}=${url(p)}`).join(',')
const dataRoot = process.env.EDGECD_CLUSTER_DATA_DIR || './data-cluster'
const dryRun = process.argv.includes('--dry-run')
const extra = process.argv.slice(2).filter((a) => a !== '--dry-run')
const peerSecret = process.env.EDGECD_PEER_SECRET ?? `local-${Date.now()}-${Math.random().toString(36).slice(2)}`
const colors = ['\x1b[36m', '\x1b[35m', '\x1b[33m']
const children = []

for (const [i, [name, port]] of members.entries()) {
  const dataDir = `${dataRoot}/${name}`
  const args = [
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
    '--name',
    name,
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    url(port),
    '--initial-cluster',
    initialCluster,
    '--initial-cluster-token',
    'edgecd-local-cluster',
    // The peers' secret (docs/security.md): a fresh one per run of this local cluster.
    '--peer-secret',
    peerSecret,
    ...extra,
  ]
  if (dryRun) {
    process.stdout.write(`${name}: node ${args.join(' ')}\n`)
    continue
  }
  mkdirSync(dataDir, { recursive: true })
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const prefix = `${process.stdout.isTTY ? colors[i] : ''}${name.padEnd(7)}|${process.stdout.isTTY ? '\x1b[0m' : ''} `
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on('line', (l) => process.stdout.write(prefix + l + '\n'))
  child.on('exit', (code, signal) => process.stdout.write(`${prefix}exited (${signal ?? code})\n`))
  children.push(child)
}

let stopping = false
function stop() {
  if (stopping) return
  stopping = true
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.on('exit', r)))))
