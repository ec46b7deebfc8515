/**
 * A window of a member's `--cpu-prof` profile (`npm run bench -- watch --cpu-prof <dir>`): the bench's scenarios run
 * one after another in one member, so a row's cost is read off the seconds it ran.
 *
 *   node bench/lib/cpuprofile-window.mjs <file.cpuprofile>                 # busy share per 0.5 s, to find the rows
 *   node bench/lib/cpuprofile-window.mjs <file.cpuprofile> <from s> <to s> [regex]
 *
 * With a window: its non-idle samples, the top functions by self samples, then the functions (of src/ and ws, or
 * matching `regex`) by inclusive samples, each with its share of the window's non-idle samples. The profiler samples
 * the JS thread at wall-clock intervals, so a syscall that loses the core (a write waking its reader) counts too.
 * Issue 17 (docs/benchmarks.md, Watch, "Session 9").
 */
import fs from 'node:fs'

const [file, from, to, pattern] = process.argv.slice(2)
if (!file) throw new Error('usage: cpuprofile-window.mjs <file.cpuprofile> [<from s> <to s> [regex]]')
const p = JSON.parse(fs.readFileSync(file, 'utf8'))
const byId = new Map(p.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const short = (url) => url.replace(/.*\/(src|node_modules)\//, '$1/')
const name = (cf) => `${cf.functionName || '(anonymous)'} ${short(cf.url)}`
const re = new RegExp(pattern ?? 'src/|ws/lib')

let t = p.startTime
if (from === undefined) {
  const buckets = new Map()
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]
    const b = Math.floor(((t - p.startTime) / 1e6) * 2) / 2
    const e = buckets.get(b) ?? [0, 0]
    e[0]++
    if (byId.get(p.samples[i]).callFrame.functionName !== '(idle)') e[1]++
    buckets.set(b, e)
  }
  for (const [b, [all, busy]] of [...buckets].sort((x, y) => x[0] - y[0]))
    console.log(
      `${b.toFixed(1).padStart(6)} s  ${String(all).padStart(5)} samples  ${((busy / all) * 100).toFixed(0)}% busy`,
    )
} else {
  let total = 0
  const self = new Map()
  const incl = new Map()
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]
    const s = (t - p.startTime) / 1e6
    if (s < Number(from) || s >= Number(to)) continue
    const leaf = byId.get(p.samples[i]).callFrame
    if (leaf.functionName === '(idle)') continue
    total++
    self.set(name(leaf), (self.get(name(leaf)) ?? 0) + 1)
    const seen = new Set()
    for (let id = p.samples[i]; id !== undefined; id = parent.get(id)) {
      const k = name(byId.get(id).callFrame)
      if (seen.has(k) || !re.test(k)) continue
      seen.add(k)
      incl.set(k, (incl.get(k) ?? 0) + 1)
    }
  }
  const pct = (v) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${String(v).padStart(5)}`
  console.log(
    `${total} non-idle samples in ${from}-${to} s (mean interval ${((p.endTime - p.startTime) / p.samples.length / 1000).toFixed(2)} ms)`,
  )
  console.log('-- self')
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${pct(v)}  ${k}`)
  console.log(`-- inclusive (${re.source})`)
  for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${pct(v)}  ${k}`)
}
