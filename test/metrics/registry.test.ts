/**
 * src/metrics/registry.ts against the exposition format: cumulative histogram buckets with +Inf, _sum and _count;
 * label values escaped; families with labels and no series not written; gauges read at scrape time; label arity
 * checked. test/api/metrics.test.ts runs promtool over a whole member's output.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { exponentialBuckets, Registry } from '../../src/metrics/registry.js'

describe('metrics registry', () => {
  test('counters, gauges and histograms in the text format', () => {
    const r = new Registry()
    const c = r.counter('x_total', 'Things.\nTwo lines.', ['kind'])
    r.counter('empty_total', 'No series yet.', ['a'])
    const h = r.histogram('lat_seconds', 'Latency.', [0.1, 1])
    let g = 3
    r.gauge('live', 'Read at scrape.', [], () => g)
    c.inc(1, 'a"b\\c\nd')
    c.labels('plain').inc(2)
    h.observe(0.05)
    h.observe(0.5)
    h.observe(5)
    g = 4
    assert.equal(
      r.render(),
      [
        '# HELP x_total Things.\\nTwo lines.',
        '# TYPE x_total counter',
        'x_total{kind="a\\"b\\\\c\\nd"} 1',
        'x_total{kind="plain"} 2',
        '# HELP lat_seconds Latency.',
        '# TYPE lat_seconds histogram',
        'lat_seconds_bucket{le="0.1"} 1',
        'lat_seconds_bucket{le="1"} 2',
        'lat_seconds_bucket{le="+Inf"} 3',
        'lat_seconds_sum 5.55',
        'lat_seconds_count 3',
        '# HELP live Read at scrape.',
        '# TYPE live gauge',
        'live 4',
        '',
      ].join('\n'),
    )
  })

  test('label arity, counters only go up, names are checked, a name is registered once', () => {
    const r = new Registry()
    const c = r.counter('a_total', 'A.', ['x', 'y'])
    assert.throws(() => c.inc(1, 'only-one'), /2 label values expected, got 1/)
    assert.throws(() => c.inc(-1, 'a', 'b'), /cannot decrease/)
    assert.throws(() => r.counter('bad-name', 'B.'), /invalid metric name/)
    assert.throws(() => r.counter('a_total', 'again'), /registered twice/)
  })

  test("exponentialBuckets is the Go client's", () => {
    assert.deepEqual(exponentialBuckets(0.001, 2, 4), [0.001, 0.002, 0.004, 0.008])
  })
})
