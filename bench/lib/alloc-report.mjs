/**
 * Bytes allocated per put by function, from bench/lib/alloc-profile.mjs's profile: `node bench/lib/alloc-report.mjs
 * <file.heapprofile> <puts in the window> [regex]`. Prints the total, the top functions by self bytes, and the
 * functions matching regex (default src/) by inclusive bytes (each once per stack).
 */
import { readFileSync } from 'node:fs'

const [file, putsArg, pattern] = process.argv.slice(2)
if (!file || !putsArg) throw new Error('usage: alloc-report.mjs <file.heapprofile> <puts> [regex]')
const puts = Number(putsArg)
const p = JSON.parse(readFileSync(file, 'utf8'))
const re = new RegExp(pattern ?? '/src/')
const short = (url) => url.replace(/.*\/(src|node_modules)\//, '$1/').replace(/^node:/, '')
const key = (cf) => `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}`
const self = new Map()
const incl = new Map()
let total = 0
function walk(n, stack) {
  const k = key(n.callFrame)
  self.set(k, (self.get(k) ?? 0) + n.selfSize)
  total += n.selfSize
  const here = re.test(n.callFrame.url) && !stack.has(k) ? new Set([...stack, k]) : stack
  for (const s of here) if (!stack.has(s) || s === k) void 0
  let sub = n.selfSize
  for (const c of n.children ?? []) sub += walk(c, here)
  if (here !== stack) incl.set(k, (incl.get(k) ?? 0) + sub)
  return sub
}
walk(p.head, new Set())
const per = (b) => (b / puts).toFixed(0).padStart(7)
console.log(`total ${per(total)} B/put (${(total / 1e6).toFixed(1)} MB over ${puts} puts)`)
console.log('\nself, B/put:')
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${per(v)}  ${k}`)
console.log(`\ninclusive (${re}), B/put:`)
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${per(v)}  ${k}`)
