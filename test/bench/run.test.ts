/** The bench runner: discovery, running modules (good, broken, missing run()), and the table it prints. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { arch, cpus, platform, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { discover, formatTable, formatValue, machine, runBenches } from '../../bench/run.js'

describe('bench runner', () => {
  test('discovers bench/<name>.ts modules, runs them, and reports failures without stopping', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-bench-'))
    try {
      writeFileSync(
        join(dir, 'fast.ts'),
        "export async function run(opts: { quick: boolean }) { return [{ name: 'noop', value: opts.quick ? 1 : 2, unit: 'ops/s' }] }\n",
      )
      writeFileSync(join(dir, 'broken.ts'), "export async function run() { throw new Error('boom') }\n")
      writeFileSync(join(dir, 'norun.ts'), 'export const x = 1\n')
      writeFileSync(join(dir, 'run.ts'), 'throw new Error("the runner itself is not a bench")\n')
      writeFileSync(join(dir, 'types.ts'), 'export {}\n')
      const found = discover(dir)
      assert.deepEqual([...found.keys()], ['broken', 'fast', 'norun'])
      const { rows, failed } = await runBenches(found, { quick: true, args: [] })
      assert.deepEqual(rows, [{ bench: 'fast', name: 'noop', value: 1, unit: 'ops/s' }])
      assert.deepEqual(
        failed.map((f) => f.bench),
        ['broken', 'norun'],
      )
      assert.match(failed[0]!.error, /boom/)
      assert.match(failed[1]!.error, /does not export run/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('formats one aligned table', () => {
    const table = formatTable([
      { bench: 'raft', name: 'propose', value: 123456.789, unit: 'ops/s', note: '3 nodes' },
      { bench: 'wal', name: 'fsync', value: 0.51234, unit: 'ms' },
    ])
    const lines = table.split('\n')
    assert.equal(lines.length, 4)
    assert.match(lines[0]!, /^bench\s+name\s+value\s+unit\s+note$/)
    assert.match(lines[2]!, /^raft\s+propose\s+123,457\s+ops\/s\s+3 nodes$/)
    assert.match(lines[3]!, /^wal\s+fsync\s+0\.512\s+ms$/)
    assert.equal(formatValue(42), '42')
  })

  test('describes the machine', () => {
    const m = machine()
    // Each field checked against a source of its own (it used to compare process.version with itself).
    assert.equal(m.node, execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim())
    assert.equal(Number(m.cores), cpus().length)
    assert.ok(Number(m.cores) >= 1)
    assert.equal(m.cpu, cpus()[0]!.model.trim())
    assert.match(m.memory!, /^\d+ GiB$/)
    assert.equal(m.os, `${platform()} ${arch()}`)
    assert.match(m.commit!, /^([0-9a-f]{7,}( \(modified\))?|unknown)$/)
  })
})
