/**
 * The portable layers must not touch a runtime: DESIGN.md says only `src/runtime/**` and the entry points may use
 * `node:*`, `Deno.*`, `cloudflare:*` or DOM APIs, and STYLE.md §1 says `src/raft` is a pure state machine (no
 * timers, no clock, no Math.random). This test reads every source file under the portable folders and fails with
 * file:line for each runtime-specific import or global it finds.
 *
 * The check is textual, not a full parse: a small scanner first blanks comments (so prose may mention `node:fs`) and
 * string, template and regex literal contents (so an error message may say "process."), keeping line breaks so
 * positions stay right. Import specifiers are then read from the comment-free text, and globals are matched on the
 * blanked text. The self-tests at the bottom prove it flags a synthetic bad file and passes a tricky good one.
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** The folders that must run unchanged on Node, Deno, Workers and in a browser. */
const portableDirs = [
  'src/raft',
  'src/storage',
  'src/kv',
  'src/auth',
  'src/etcdserver',
  'src/raftnode',
  'src/rafthttp',
  'src/embed',
  'src/api',
  'src/protocol',
]
/** Folders that must also be deterministic: time arrives through tick() and randomness through an injected PRNG. */
const deterministicDirs = ['src/raft']
const sourceExtensions = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs', '.cjs']

interface Finding {
  file: string
  line: number
  rule: string
  text: string
}

interface Scanned {
  /** The source with comments blanked; string literals intact (import specifiers are read from this). */
  noComments: string
  /** The source with comments and the contents of string, template and regex literals blanked. */
  codeOnly: string
}

/** Keywords after which a `/` starts a regex literal rather than a division. */
const regexAfterWords = new Set([
  'return',
  'typeof',
  'case',
  'do',
  'else',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'instanceof',
  'yield',
  'await',
])

/** Blanks comments and literal contents, keeping every newline and the length of the text. */
function scan(src: string): Scanned {
  const nc = src.split('')
  const co = src.split('')
  const blank = (arr: string[], from: number, to: number) => {
    for (let k = from; k < to && k < arr.length; k++) if (arr[k] !== '\n') arr[k] = ' '
  }
  const n = src.length
  /** Brace depth at which each open template `${` started, innermost last. */
  const templates: number[] = []
  let depth = 0
  let lastSig = '' // the last significant code character ('w' for the end of a word)
  let lastWord = ''
  let i = 0

  // Scans template text from i (just after ` or the closing } of a ${...}) to the closing ` or the next ${.
  const templateText = (start: number): number => {
    let j = start
    while (j < n) {
      if (src[j] === '\\') {
        j += 2
        continue
      }
      if (src[j] === '`') {
        blank(co, start, j)
        lastSig = 'w'
        return j + 1
      }
      if (src[j] === '$' && src[j + 1] === '{') {
        blank(co, start, j)
        templates.push(depth)
        depth++
        lastSig = '{'
        return j + 2
      }
      j++
    }
    blank(co, start, n)
    return n
  }

  while (i < n) {
    const c = src[i]!
    if (c === '/' && src[i + 1] === '/') {
      let j = src.indexOf('\n', i)
      if (j < 0) j = n
      blank(nc, i, j)
      blank(co, i, j)
      i = j
      continue
    }
    if (c === '/' && src[i + 1] === '*') {
      let j = src.indexOf('*/', i + 2)
      j = j < 0 ? n : j + 2
      blank(nc, i, j)
      blank(co, i, j)
      i = j
      continue
    }
    if (c === '"' || c === "'") {
      let j = i + 1
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1
      blank(co, i + 1, j)
      lastSig = 'w'
      i = j + 1
      continue
    }
    if (c === '`') {
      i = templateText(i + 1)
      continue
    }
    if (c === '/') {
      const regexAllowed = lastSig === '' || (lastSig === 'w' ? regexAfterWords.has(lastWord) : !/[)\]}]/.test(lastSig))
      if (regexAllowed) {
        let j = i + 1
        let inClass = false
        while (j < n && src[j] !== '\n') {
          if (src[j] === '\\') {
            j += 2
            continue
          }
          if (src[j] === '[') inClass = true
          else if (src[j] === ']') inClass = false
          else if (src[j] === '/' && !inClass) break
          j++
        }
        blank(co, i + 1, j)
        lastSig = 'w'
        lastWord = ''
        i = j + 1
        continue
      }
    }
    if (/[\w$]/.test(c)) {
      let j = i
      while (j < n && /[\w$]/.test(src[j]!)) j++
      lastWord = src.slice(i, j)
      lastSig = 'w'
      i = j
      continue
    }
    if (c === '{') depth++
    if (c === '}') {
      depth--
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop()
        i = templateText(i + 1)
        continue
      }
    }
    if (!/\s/.test(c)) lastSig = c
    i++
  }
  return { noComments: nc.join(''), codeOnly: co.join('') }
}

const builtins = new Set(builtinModules.map((m) => m.replace(/^node:/, '')))

/** Why an import specifier is runtime-specific, or undefined when it is portable. */
function specifierProblem(spec: string): string | undefined {
  if (spec.startsWith('node:')) return 'node-import'
  if (spec.startsWith('cloudflare:')) return 'cloudflare-import'
  if (spec.startsWith('bun:')) return 'bun-import'
  if (/^(npm|jsr|https?):/.test(spec)) return 'deno-specifier'
  if (builtins.has(spec) || builtins.has(spec.split('/')[0]!)) return 'node-builtin-import'
  return undefined
}

const importPatterns: RegExp[] = [
  // import x from 'a' / import type { A } from 'a' / export * from 'a' / export { a } from 'a'
  /\b(?:import|export)\s+(?:type\s+)?(?:[\w$\s,*]|\{[^}]*\})*?\bfrom\s*(['"])([^'"\n]*)\1/g,
  // import 'a'
  /\bimport\s*(['"])([^'"\n]*)\1/g,
  // import('a'), require('a')
  /\b(?:import|require)\s*\(\s*(['"`])([^'"`\n]*)\1/g,
]

const globalRules: { rule: string; re: RegExp }[] = [
  { rule: 'deno-global', re: /(?<![\w$.])Deno\b/g },
  { rule: 'process-global', re: /(?<![\w$.])process\s*[.[]/g },
  // `Buffer: 1` is an object key, not the global.
  { rule: 'buffer-global', re: /(?<![\w$.])Buffer\b(?!\s*:)/g },
  { rule: 'require-call', re: /(?<![\w$.])require\s*\(/g },
  { rule: 'node-module-global', re: /(?<![\w$.])(?:__dirname|__filename)\b/g },
  { rule: 'runtime-global', re: /\bglobalThis\s*\.\s*(?:Deno|process|Buffer|require)\b/g },
]

const determinismRules: { rule: string; re: RegExp }[] = [
  { rule: 'nondeterministic-random', re: /(?<![\w$.])Math\s*\.\s*random\b/g },
  { rule: 'nondeterministic-clock', re: /(?<![\w$.])(?:Date\s*\.\s*now\b|new\s+Date\b|performance\s*\.\s*now\b)/g },
  { rule: 'nondeterministic-timer', re: /(?<![\w$.])(?:setTimeout|setInterval|setImmediate)\b/g },
]

function lineOf(text: string, index: number): number {
  let line = 1
  for (let k = 0; k < index; k++) if (text.charCodeAt(k) === 10) line++
  return line
}

/** Every runtime-specific import or global in one source text. */
function checkSource(src: string, file: string, opts: { deterministic?: boolean } = {}): Finding[] {
  const { noComments, codeOnly } = scan(src)
  const lines = src.split('\n')
  const findings: Finding[] = []
  const add = (index: number, rule: string) => {
    const line = lineOf(src, index)
    findings.push({ file, line, rule, text: lines[line - 1]!.trim() })
  }
  for (const pattern of importPatterns) {
    for (const m of noComments.matchAll(pattern)) {
      // The keyword must be code, not the inside of a string literal that happens to read "import 'fs'".
      if (codeOnly.slice(m.index, m.index + 6) !== m[0].slice(0, 6)) continue
      const problem = specifierProblem(m[2]!)
      if (problem) add(m.index, problem)
    }
  }
  const rules = opts.deterministic ? [...globalRules, ...determinismRules] : globalRules
  for (const { rule, re } of rules) for (const m of codeOnly.matchAll(re)) add(m.index, rule)
  return findings.sort((a, b) => a.line - b.line || a.rule.localeCompare(b.rule))
}

function sourceFiles(dir: string): string[] {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(dir)
  } catch {
    return [] // a layer not written yet
  }
  if (!st.isDirectory()) return []
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(full))
    else if (sourceExtensions.some((ext) => entry.name.endsWith(ext)) && !entry.name.endsWith('.d.ts')) out.push(full)
  }
  return out
}

/** Checks every source file under the portable folders of the tree at root. */
function checkTree(root: string): { files: number; findings: Finding[] } {
  let files = 0
  const findings: Finding[] = []
  for (const dir of portableDirs) {
    const deterministic = deterministicDirs.includes(dir)
    for (const full of sourceFiles(join(root, dir))) {
      files++
      const rel = relative(root, full).split(sep).join('/')
      findings.push(...checkSource(readFileSync(full, 'utf8'), rel, { deterministic }))
    }
  }
  return { files, findings }
}

function report(findings: Finding[]): string {
  return findings.map((f) => `  ${f.file}:${f.line}  ${f.rule}  ${f.text}`).join('\n')
}

describe('purity: portable layers use no runtime-specific API', () => {
  test(`${portableDirs.join(', ')} import no node:/Deno/cloudflare API`, () => {
    const { findings } = checkTree(repoRoot)
    assert.equal(
      findings.length,
      0,
      `runtime-specific code outside src/runtime (move it to src/runtime/<runtime>/ and inject it):\n${report(findings)}`,
    )
  })
})

describe('purity checker self-test', () => {
  const bad = [
    "import { readFileSync } from 'node:fs'",
    "import path from 'path'",
    "import { promisify } from 'util'",
    "import * as fsp from 'fs/promises'",
    "import type { Socket } from 'net'",
    "export { createHash } from 'crypto'",
    "import 'child_process'",
    "import { env } from 'cloudflare:workers'",
    "import { x } from 'npm:hono'",
    "const os = await import('os')",
    "const http = require('http')",
    'const home = process.env.HOME',
    'const b = Buffer.from([1])',
    "const f = Deno.readTextFileSync('x')",
    'const d = globalThis.Deno',
    'const here = __dirname',
    'export function now() { return Date.now() + Math.random() }',
    'setTimeout(() => {}, 10)',
  ].join('\n')

  const good = [
    '// import fs from "node:fs" in a comment is fine, and so is process.env and Deno.open',
    "/* require('http') and Buffer in a block comment */",
    "import { encode } from 'cbor-x'",
    "import { uniformInt } from 'pure-rand/distribution/uniformInt'",
    "import type { Entry } from './types.js'",
    'const msg = \'cannot import "fs" here; process.exit is not called\'',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: this is source text for the scanner, not a template
    'const t = `process.env is ${1 + 1} and Buffer ${`nested ${"Deno."}`}`',
    'const re = /process\\.env|\\/\\*/g',
    'const ratio = a / b / c // a division, not a regex',
    'const buf = new ArrayBuffer(8) as SharedArrayBuffer | ArrayBuffer',
    'const o = { process: 1, Buffer: 2 }',
    'o.process.x = this.require(1); worker.Deno = 2',
    'function process(m: number) { return m }',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: this is source text for the scanner, not a template
    'const x = { a: { b: `${{ c: 1 }.c}` } }',
    'const bytes = crypto.getRandomValues(new Uint8Array(8))',
  ].join('\n')

  test('flags every kind of runtime-specific import and global in a synthetic bad file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-purity-'))
    try {
      mkdirSync(join(dir, 'src/raft'), { recursive: true })
      mkdirSync(join(dir, 'src/kv'), { recursive: true })
      mkdirSync(join(dir, 'src/runtime/node'), { recursive: true })
      writeFileSync(join(dir, 'src/raft/bad.ts'), bad)
      writeFileSync(join(dir, 'src/kv/good.ts'), good)
      // Runtime adapters may use anything: not scanned.
      writeFileSync(join(dir, 'src/runtime/node/files.ts'), "import { open } from 'node:fs/promises'\n")
      const { files, findings } = checkTree(dir)
      assert.equal(files, 2)
      assert.deepEqual(
        findings.filter((f) => f.file !== 'src/raft/bad.ts'),
        [],
        'false positives in the good file',
      )
      const flaggedLines = new Set(findings.map((f) => f.line))
      const badLines = bad.split('\n')
      for (let k = 0; k < badLines.length; k++) {
        assert.ok(flaggedLines.has(k + 1), `line ${k + 1} not flagged: ${badLines[k]}`)
      }
      const rules = new Set(findings.map((f) => f.rule))
      for (const rule of [
        'node-import',
        'node-builtin-import',
        'cloudflare-import',
        'deno-specifier',
        'require-call',
        'process-global',
        'buffer-global',
        'deno-global',
        'runtime-global',
        'node-module-global',
        'nondeterministic-clock',
        'nondeterministic-random',
        'nondeterministic-timer',
      ]) {
        assert.ok(rules.has(rule), `rule ${rule} never fired`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('only src/raft is held to determinism', () => {
    const src = 'export const t = () => Date.now()'
    assert.deepEqual(checkSource(src, 'src/kv/x.ts'), [])
    assert.equal(checkSource(src, 'src/raft/x.ts', { deterministic: true })[0]?.rule, 'nondeterministic-clock')
  })

  test('the scanner keeps positions: findings carry the right line', () => {
    const src = "/* line 1\n line 2 */\nconst s = `a\nb`\nimport fs from 'fs'\n"
    assert.deepEqual(
      checkSource(src, 'x.ts').map((f) => [f.line, f.rule]),
      [[5, 'node-builtin-import']],
    )
  })
})
