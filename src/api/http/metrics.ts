/**
 * Request counts and latency histograms by method, in Prometheus' text format (exposition 0.0.4). Hand-written
 * because the usual client (prom-client) is Node-only and this layer runs on every runtime; it is a few counters.
 */
const bucketsMs = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]

interface MethodStats {
  counts: Map<number, number>
  buckets: number[]
  sumMs: number
  n: number
}

export class HttpMetrics {
  private readonly byMethod = new Map<string, MethodStats>()

  observe(method: string, ms: number, grpcCode: number): void {
    let s = this.byMethod.get(method)
    if (!s) {
      s = { counts: new Map(), buckets: new Array(bucketsMs.length).fill(0), sumMs: 0, n: 0 }
      this.byMethod.set(method, s)
    }
    s.counts.set(grpcCode, (s.counts.get(grpcCode) ?? 0) + 1)
    for (let i = 0; i < bucketsMs.length; i++) if (ms <= bucketsMs[i]!) s.buckets[i]!++
    s.sumMs += ms
    s.n++
  }

  render(): string {
    const lines: string[] = [
      '# HELP edgecd_requests_total Requests handled, by gRPC method and gRPC code.',
      '# TYPE edgecd_requests_total counter',
    ]
    for (const [m, s] of this.byMethod)
      for (const [code, n] of s.counts) lines.push(`edgecd_requests_total{method="${m}",grpc_code="${code}"} ${n}`)
    lines.push(
      '# HELP edgecd_request_duration_seconds Request latency, by gRPC method.',
      '# TYPE edgecd_request_duration_seconds histogram',
    )
    for (const [m, s] of this.byMethod) {
      for (let i = 0; i < bucketsMs.length; i++)
        lines.push(`edgecd_request_duration_seconds_bucket{method="${m}",le="${bucketsMs[i]! / 1000}"} ${s.buckets[i]}`)
      lines.push(`edgecd_request_duration_seconds_bucket{method="${m}",le="+Inf"} ${s.n}`)
      lines.push(`edgecd_request_duration_seconds_sum{method="${m}"} ${s.sumMs / 1000}`)
      lines.push(`edgecd_request_duration_seconds_count{method="${m}"} ${s.n}`)
    }
    return lines.join('\n') + '\n'
  }
}
