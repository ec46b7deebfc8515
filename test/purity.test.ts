/**
 * The portable layers must not touch a runtime: DESIGN.md says only `src/runtime/**` and the entry points may use
 * `node:*`, `Deno.*`, `cloudflare:*` or DOM-only APIs, and STYLE.md §1 says `src/raft` is a pure state machine (no
 * timers, no clock, no Math.random). The tools enforce it, and this test runs them:
 *
 * - TypeScript: tsconfig.portable.json (and a tsconfig.json in each portable folder, for editors) compiles the
 *   portable folders with `"types": []` and the ES2023 + WebWorker libraries: no Node types (`process`, `Buffer`,
 *   `node:*` modules do not resolve) and no DOM-only globals (`document`, `window`).
 * - Biome (biome.json's overrides on the portable folders): noRestrictedImports (node:*, Node built-ins, cloudflare:*,
 *   Deno/npm specifiers, Node-only packages, src/runtime and src/cli), noRestrictedGlobals (process, Buffer, Deno,
 *   require, __dirname, ...; in src/raft also Date, setTimeout, setInterval, performance) and
 *   noJsRestrictedProperties (globalThis.Deno/process/...; in src/raft Math.random).
 *
 * The self-tests prove each tool fails on a synthetic violation and passes a tricky good file.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name: string) => join(repoRoot, 'node_modules/.bin', name)

/** The folders that must run unchanged on Node, Deno, Workers and in a browser. */
const portableDirs = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.portable.json'), 'utf8')).include as string[]
/** The lint rules that carry the portability rule. */
const portabilityRules = new Set([
  'lint/style/noRestrictedImports',
  'lint/style/noRestrictedGlobals',
  'lint/nursery/noJsRestrictedProperties',
])

interface Diagnostic {
  category: string
  message: string
  location: { path: string; start: { line: number } }
}

/** Runs biome lint with `cwd`'s biome.json over `paths`; the portability diagnostics. */
function lint(cwd: string, paths: string[]): Diagnostic[] {
  const r = spawnSync(bin('biome'), ['lint', '--reporter=json', '--max-diagnostics=none', ...paths], {
    cwd,
    encoding: 'utf8',
  })
  const out = JSON.parse(r.stdout) as { diagnostics: Diagnostic[] }
  return out.diagnostics.filter((d) => portabilityRules.has(d.category))
}

/** Runs tsc on a project; its error lines (empty when it compiles). */
function typecheck(project: string): string[] {
  const r = spawnSync(bin('tsc'), ['--noEmit', '-p', project], { cwd: repoRoot, encoding: 'utf8' })
  return r.status === 0 ? [] : (r.stdout + r.stderr).split('\n').filter((l) => l.includes('error'))
}

const format = (ds: Diagnostic[]) =>
  ds.map((d) => `  ${d.location.path}:${d.location.start.line}  ${d.category}  ${d.message}`).join('\n')

describe('purity: portable layers use no runtime-specific API', () => {
  test(`${portableDirs.join(', ')} pass the portability lint rules`, () => {
    const found = lint(repoRoot, portableDirs)
    assert.equal(found.length, 0, `runtime-specific code outside src/runtime (inject it instead):\n${format(found)}`)
  })

  test('they compile without Node types and without the DOM library (tsconfig.portable.json)', () => {
    assert.deepEqual(typecheck(join(repoRoot, 'tsconfig.portable.json')), [])
  })
})

describe('purity self-test: the tools flag violations', () => {
  const bad = [
    "import { readFileSync } from 'node:fs'",
    "import path from 'path'",
    "import { promisify } from 'util'",
    "import * as fsp from 'fs/promises'",
    "import type { Socket } from 'net'",
    "import 'child_process'",
    "import { env } from 'cloudflare:workers'",
    "import { x } from 'npm:hono'",
    "import { serve } from '@hono/node-server'",
    "import { startNodeMember } from '../runtime/node/serve.js'",
    "const http = require('http')",
    'const home = process.env.HOME',
    'const b = Buffer.from([1])',
    "const f = Deno.readTextFileSync('x')",
    'const d = globalThis.Deno',
    'const here = __dirname',
    'export const now = () => Date.now()',
    'export const r = Math.random()',
    'setTimeout(() => {}, 10)',
  ]

  const good = [
    '// import fs from "node:fs" in a comment is fine, and so is process.env and Deno.open',
    "/* require('http') and Buffer in a block comment */",
    "import { encode } from 'cbor-x'",
    "import type { Entry } from './types.js'",
    'const msg = \'cannot import "fs" here; process.exit is not called\'',
    'const buf = new ArrayBuffer(8)',
    'const o = { process: 1, Buffer: 2 }',
    'export function proc(m: number) { return m + o.process + buf.byteLength + msg.length }',
    'export const bytes = crypto.getRandomValues(new Uint8Array(8))',
    'export { encode, type Entry }',
  ]

  test('biome flags every kind of runtime-specific import and global, and nothing in a good file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-purity-'))
    try {
      const config = JSON.parse(readFileSync(join(repoRoot, 'biome.json'), 'utf8'))
      delete config.vcs
      delete config.$schema
      writeFileSync(join(dir, 'biome.json'), JSON.stringify(config))
      for (const d of ['src/raft', 'src/kv', 'src/runtime/node']) mkdirSync(join(dir, d), { recursive: true })
      writeFileSync(join(dir, 'src/raft/bad.ts'), bad.join('\n'))
      writeFileSync(join(dir, 'src/kv/good.ts'), good.join('\n'))
      writeFileSync(join(dir, 'src/kv/clock.ts'), 'export const t = () => Date.now() + Math.random()\n')
      // Runtime adapters may use anything.
      writeFileSync(join(dir, 'src/runtime/node/files.ts'), "import { open } from 'node:fs/promises'\nvoid open\n")
      const found = lint(dir, ['src'])
      const elsewhere = found.filter((d) => d.location.path !== 'src/raft/bad.ts')
      assert.deepEqual(elsewhere, [], `false positives:\n${format(elsewhere)}`)
      const flagged = new Set(found.map((d) => d.location.start.line))
      for (let k = 0; k < bad.length; k++) assert.ok(flagged.has(k + 1), `line ${k + 1} not flagged: ${bad[k]}`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('tsc refuses Node globals, node: modules and DOM-only globals under tsconfig.portable.json', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-purity-tsc-'))
    try {
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}')
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({ extends: join(repoRoot, 'tsconfig.portable.json'), include: ['bad.ts', 'good.ts'] }),
      )
      writeFileSync(
        join(dir, 'bad.ts'),
        [
          "import { readFileSync } from 'node:fs'",
          'export const a = process.env.HOME',
          "export const b = Buffer.from('x')",
          'export const c = document.title',
          'export const d = readFileSync',
        ].join('\n'),
      )
      writeFileSync(
        join(dir, 'good.ts'),
        'export const g = [fetch, WebSocket, crypto.subtle, new TextEncoder(), setTimeout, performance.now()]\n',
      )
      const errors = typecheck(join(dir, 'tsconfig.json'))
      for (const [line, what] of [
        [1, 'node:fs'],
        [2, 'process'],
        [3, 'Buffer'],
        [4, 'document'],
      ] as const)
        assert.ok(
          errors.some((e) => e.includes(`bad.ts(${line},`)),
          `${what} (line ${line}) not refused:\n${errors.join('\n')}`,
        )
      assert.deepEqual(
        errors.filter((e) => e.includes('good.ts')),
        [],
        'Web-standard globals must compile',
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the per-folder tsconfigs (for editors) are the portable settings', () => {
    for (const d of portableDirs) {
      const c = JSON.parse(readFileSync(join(repoRoot, d, 'tsconfig.json'), 'utf8'))
      assert.equal(resolve(repoRoot, d, c.extends), join(repoRoot, 'tsconfig.portable.json'), d)
    }
  })
})
