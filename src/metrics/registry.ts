/**
 * Layer: src/metrics, Prometheus metric families and their text exposition (format 0.0.4), used by every layer that
 * counts something (rafthttp, raftnode, etcdserver, api/http). Imports nothing of the project. Web-standard only.
 *
 * Hand-written on purpose: the well-kept JavaScript client (prom-client) is Node-only (it reads process, cluster and
 * perf_hooks at import), and this code runs on Node, Deno, Workers and in a browser. It is the Go client's model cut
 * to what edgecd uses: counters, gauges and histograms with label values given in order (WithLabelValues), gauges
 * whose value is read at scrape time, and the text format that `promtool check metrics` accepts
 * (test/api/metrics.test.ts runs it over a live member's /metrics).
 */

type Kind = 'counter' | 'gauge' | 'histogram'

/** The Go client's prometheus.ExponentialBuckets: `count` upper bounds from `start`, each `factor` times the last. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = []
  let v = start
  for (let i = 0; i < count; i++) {
    out.push(v)
    v *= factor
  }
  return out
}

/** The Go client's prometheus.DefBuckets (what go-grpc-prometheus' handling-time histogram uses). */
export const defBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** A sample value as Go's client writes it: integers plain, +Inf/-Inf/NaN spelled out. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Number.POSITIVE_INFINITY) return '+Inf'
  if (v === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(v)
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`)
  if (extra) parts.push(extra)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

abstract class Family<S> {
  /** Each label combination's values, its `{...}` text (made once: a scrape writes hundreds), and its state. */
  protected readonly series = new Map<string, { values: string[]; text: string; s: S }>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly labelNames: readonly string[],
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name ${name}`)
  }

  protected abstract fresh(): S

  /** The series of a family without labels, once made: the Ready loop observes two of them per Ready. */
  private unlabeled: S | undefined

  protected child(values: readonly string[]): S {
    if (values.length === 0 && this.unlabeled !== undefined) return this.unlabeled
    if (values.length !== this.labelNames.length)
      throw new Error(`${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`)
    const key = values.join('\u0000')
    let e = this.series.get(key)
    if (!e) {
      e = { values: [...values], text: labelText(this.labelNames, values), s: this.fresh() }
      this.series.set(key, e)
    }
    if (values.length === 0) this.unlabeled = e.s
    return e.s
  }

  /** Creates the series of these label values at zero, so it is exported before its first event. */
  init(...values: string[]): void {
    this.child(values)
  }

  /** Drops a label combination (a removed peer), as the Go client's DeleteLabelValues. */
  remove(...values: string[]): void {
    this.series.delete(values.join('\u0000'))
    if (values.length === 0) this.unlabeled = undefined
  }

  abstract samples(out: string[]): void

  render(out: string[]): void {
    const start = out.length
    this.samples(out)
    // A family with labels and no series yet writes nothing, as the Go client does.
    if (out.length === start) return
    out.splice(start, 0, `# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`)
  }
}

export class Counter extends Family<{ v: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames)
    if (labelNames.length === 0) this.child([])
  }
  protected fresh() {
    return { v: 0 }
  }
  inc(n = 1, ...values: string[]): void {
    if (n < 0) throw new Error(`${this.name}: a counter cannot decrease`)
    this.child(values).v += n
  }
  /** Label values in order, then inc(). */
  labels(...values: string[]): { inc(n?: number): void } {
    const s = this.child(values)
    return {
      inc: (n = 1) => {
        s.v += n
      },
    }
  }
  get(...values: string[]): number {
    return this.series.get(values.join('\u0000'))?.s.v ?? 0
  }
  samples(out: string[]): void {
    for (const { text, s } of this.series.values()) out.push(`${this.name}${text} ${formatValue(s.v)}`)
  }
}

/**
 * A gauge whose value is set, or (with `read`) computed at scrape time. With kind 'counter' it is the Go client's
 * CounterFunc: a counter read at scrape time (the runtime's CPU seconds).
 */
export class Gauge extends Family<{ v: number }> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    private readonly read?: () => number | Iterable<[string[], number]>,
    kind: 'gauge' | 'counter' = 'gauge',
  ) {
    super(name, help, kind, labelNames)
    if (labelNames.length === 0 && !read) this.child([])
  }
  protected fresh() {
    return { v: 0 }
  }
  set(v: number, ...values: string[]): void {
    this.child(values).v = v
  }
  inc(n = 1, ...values: string[]): void {
    this.child(values).v += n
  }
  dec(n = 1, ...values: string[]): void {
    this.child(values).v -= n
  }
  samples(out: string[]): void {
    if (this.read) {
      const r = this.read()
      if (typeof r === 'number') out.push(`${this.name} ${formatValue(r)}`)
      else for (const [values, v] of r) out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(v)}`)
      return
    }
    for (const { text, s } of this.series.values()) out.push(`${this.name}${text} ${formatValue(s.v)}`)
  }
}

interface HistogramSeries {
  counts: number[]
  sum: number
  count: number
}

export class Histogram extends Family<HistogramSeries> {
  readonly buckets: readonly number[]
  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []) {
    super(name, help, 'histogram', labelNames)
    this.buckets = [...buckets].sort((a, b) => a - b)
    if (labelNames.length === 0) this.child([])
  }
  protected fresh(): HistogramSeries {
    return { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }
  }
  /** Records one observation, in the histogram's unit (seconds for *_seconds). */
  observe(v: number, ...values: string[]): void {
    const s = this.child(values)
    // Cumulative counts are made at render time; here each observation lands in its smallest bucket.
    for (let i = 0; i < this.buckets.length; i++)
      if (v <= this.buckets[i]!) {
        s.counts[i]!++
        break
      }
    s.sum += v
    s.count++
  }
  /** Label values in order, then observe() (a hot path's handle: the series is looked up once). */
  labels(...values: string[]): { observe(v: number): void } {
    const s = this.child(values)
    const buckets = this.buckets
    return {
      observe: (v: number) => {
        for (let i = 0; i < buckets.length; i++)
          if (v <= buckets[i]!) {
            s.counts[i]!++
            break
          }
        s.sum += v
        s.count++
      },
    }
  }
  /** Number of observations so far for these label values. */
  count(...values: string[]): number {
    return this.series.get(values.join('\u0000'))?.s.count ?? 0
  }
  samples(out: string[]): void {
    for (const { values, s } of this.series.values()) {
      let cum = 0
      for (let i = 0; i < this.buckets.length; i++) {
        cum += s.counts[i]!
        out.push(
          `${this.name}_bucket${labelText(this.labelNames, values, `le="${formatValue(this.buckets[i]!)}"`)} ${cum}`,
        )
      }
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${s.count}`)
      out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatValue(s.sum)}`)
      out.push(`${this.name}_count${labelText(this.labelNames, values)} ${s.count}`)
    }
  }
}

/** Families in registration order; render() writes them all. A name may be registered once. */
export class Registry {
  private readonly families = new Map<string, Family<unknown>>()

  register<F extends Family<any>>(f: F): F {
    if (this.families.has(f.name)) throw new Error(`metric ${f.name} registered twice`)
    this.families.set(f.name, f)
    return f
  }
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames))
  }
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    read?: () => number | Iterable<[string[], number]>,
  ): Gauge {
    return this.register(new Gauge(name, help, labelNames, read))
  }
  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.register(new Histogram(name, help, buckets, labelNames))
  }

  render(): string {
    const out: string[] = []
    for (const f of this.families.values()) f.render(out)
    return out.length === 0 ? '' : out.join('\n') + '\n'
  }
}
