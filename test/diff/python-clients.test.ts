/**
 * Differential test with two real Python clients written by others, Debian's python3-etcd3 (0.12, gRPC) and
 * python3-etcd3gw (2.0, the JSON gateway client OpenStack uses): one script of operations (test/diff/python/) runs
 * against a fresh etcd 3.4 and against a fresh edgecd member, and both must print the same lines once what differs
 * by design is normalised (member, cluster and lease ids, raft terms, ports, sizes). Each script prints one JSON line
 * per step, with the exception's class name (and the gRPC code and message) when a step fails.
 *
 * Needs etcd (scripts/setup-etcd.sh) and the two Python libraries (scripts/setup-python-clients.sh); `npm test`
 * installs both when it can, as .ci/run does.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type DiffPair, normalizeServerIds, startDiffPair } from '../support/diff.js'
import { pythonPath, requires } from '../support/requirements.js'

const here = join(dirname(fileURLToPath(import.meta.url)), 'python')

interface Run {
  code: number | null
  lines: string[]
  stderr: string
}

/** Runs `script` against the server at `url` for the given sections; at most 50 s. */
function runScript(script: string, url: string, sections: string[]): Promise<Run> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const child = spawn(pythonPath, [join(here, script), hostname, port, ...sections], {
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONPATH: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += String(d)
    })
    child.stderr.on('data', (d) => {
      stderr += String(d)
    })
    child.on('error', reject)
    const bound = setTimeout(() => child.kill('SIGKILL'), 50_000)
    child.on('close', (code) => {
      clearTimeout(bound)
      resolve({ code, lines: stdout.split('\n').filter(Boolean), stderr })
    })
  })
}

/** What differs between two servers by design, in one printed line. */
export function normalizeLine(line: string): string {
  return (
    normalizeServerIds(line)
      .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
      // protobuf-JSON member ids and the member id of an alarm
      .replace(/"(ID|memberID|member_id|leader|id)":"?\d{12,}"?/g, '"$1":"ID"')
  )
}

/** Runs `sections` of `script` against both servers and fails on the first differing lines. */
async function same(pair: DiffPair, script: string, sections: string[]): Promise<string[]> {
  const a = await runScript(script, pair.etcd.url, sections)
  const b = await runScript(script, pair.edgeUrl, sections)
  assert.equal(a.code, 0, `${script} against etcd failed:\n${a.stderr}`)
  const na = a.lines.map(normalizeLine)
  const nb = b.lines.map(normalizeLine)
  const diffs: string[] = []
  for (let i = 0; i < Math.max(na.length, nb.length); i++)
    if (na[i] !== nb[i]) diffs.push(`  etcd:   ${na[i]}\n  edgecd: ${nb[i]}`)
  assert.equal(b.code, 0, `${script} against edgecd failed:\n${b.stderr}\n${diffs.join('\n')}`)
  assert.equal(diffs.length, 0, `${script} ${sections.join(' ')}: output differs:\n${diffs.join('\n')}`)
  return nb
}

const skip = requires('etcd') || requires('python-etcd')

describe('python3-etcd3 (gRPC) against etcd 3.4 and edgecd: same calls, same answers', { skip }, () => {
  let pair: DiffPair
  before(async () => {
    pair = await startDiffPair({ authPasswordIterations: 1000 })
  })
  after(async () => {
    await pair?.stop()
  })
  for (const section of ['kv', 'txn', 'lease', 'lock', 'watch', 'compaction', 'cluster', 'auth', 'quorum_loss'])
    test(section, async () => {
      await same(pair, 'etcd3_ops.py', [section])
    })
})

describe('python3-etcd3gw (JSON gateway) against etcd 3.4 and edgecd: same calls, same answers', { skip }, () => {
  let pair: DiffPair
  before(async () => {
    pair = await startDiffPair()
  })
  after(async () => {
    await pair?.stop()
  })
  for (const section of ['paths', 'kv', 'txn', 'lease', 'lock', 'watch', 'compaction', 'cluster', 'auth'])
    test(section, async () => {
      await same(pair, 'etcd3gw_ops.py', [section])
    })
})
