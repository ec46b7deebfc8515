/**
 * The HTTP layer's metrics under etcd's names: the JSON gateway's calls counted as the gRPC calls they map to
 * (go-grpc-prometheus' grpc_server_* families with grpc_type, grpc_service and grpc_method, as etcd labels its own
 * gateway traffic), client bytes (etcd_network_client_grpc_*), the health endpoints' counters, and the process
 * metrics the runtime reports. The families are src/metrics' (hand-written: prom-client is Node-only).
 */
import { type Counter, defBuckets, Gauge, type Histogram, Registry } from '../../metrics/registry.js'

export type GrpcType = 'unary' | 'server_stream' | 'client_stream' | 'bidi_stream'

/** gRPC status codes by number, as go-grpc-prometheus labels them (codes.Code.String()). */
export const grpcCodeNames = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
] as const

/** etcd's gRPC services and their methods (api/etcdserverpb/rpc.proto), as the gateway maps its paths to them. */
const services: Record<string, { unary: string[]; streams?: Record<string, GrpcType> }> = {
  'etcdserverpb.KV': { unary: ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact'] },
  'etcdserverpb.Watch': { unary: [], streams: { Watch: 'bidi_stream' } },
  'etcdserverpb.Lease': {
    unary: ['LeaseGrant', 'LeaseRevoke', 'LeaseTimeToLive', 'LeaseLeases'],
    streams: { LeaseKeepAlive: 'bidi_stream' },
  },
  'etcdserverpb.Cluster': { unary: ['MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberList', 'MemberPromote'] },
  'etcdserverpb.Maintenance': {
    unary: ['Alarm', 'Status', 'Defragment', 'Hash', 'HashKV', 'MoveLeader'],
    streams: { Snapshot: 'server_stream' },
  },
  'etcdserverpb.Auth': {
    unary: [
      'AuthEnable',
      'AuthDisable',
      'AuthStatus',
      'Authenticate',
      'UserAdd',
      'UserGet',
      'UserList',
      'UserDelete',
      'UserChangePassword',
      'UserGrantRole',
      'UserRevokeRole',
      'RoleAdd',
      'RoleGet',
      'RoleList',
      'RoleDelete',
      'RoleGrantPermission',
      'RoleRevokePermission',
    ],
  },
}

/**
 * v3lock and v3election: etcd serves them on the same gRPC server, so its interceptors count their calls, but they
 * are registered after go-grpc-prometheus' InitializeMetrics: their series appear with the first call.
 */
const lateServices: typeof services = {
  'v3lockpb.Lock': { unary: ['Lock', 'Unlock'] },
  'v3electionpb.Election': {
    unary: ['Campaign', 'Proclaim', 'Leader', 'Resign'],
    streams: { Observe: 'server_stream' },
  },
}

/** method -> [service, type], for every method above. */
const methodIndex = new Map<string, [string, GrpcType]>()
for (const [service, d] of Object.entries(services)) {
  for (const m of d.unary) methodIndex.set(m, [service, 'unary'])
  for (const [m, t] of Object.entries(d.streams ?? {})) methodIndex.set(m, [service, t])
}

const lateIndex = new Map<string, [string, GrpcType]>()
for (const [service, d] of Object.entries(lateServices)) {
  for (const m of d.unary) lateIndex.set(m, [service, 'unary'])
  for (const [m, t] of Object.entries(d.streams ?? {})) lateIndex.set(m, [service, t])
}

/** The gRPC service and call type of a method name ('Range' -> etcdserverpb.KV, unary). */
export function grpcServiceOf(method: string): [string, GrpcType] {
  return methodIndex.get(method) ?? lateIndex.get(method) ?? ['etcdserverpb.Unknown', 'unary']
}

/** What the runtime knows about its process (Node: process.memoryUsage, Deno: Deno.memoryUsage), for process_*. */
export interface ProcessStats {
  residentMemoryBytes?: number
  cpuSecondsTotal?: number
  startTimeSeconds?: number
  heapBytes?: number
  openFds?: number
  maxFds?: number
}

/** One call in flight: its labels and start time; `end` records it once. */
export interface CallTimer {
  /** A message received from the client on a stream (counted once per request body on unary calls). */
  received(bytes: number): void
  /** A message sent to the client. */
  sent(bytes: number): void
  end(code: number): void
}

interface MethodSeries {
  started: { inc(n?: number): void }
  received: { inc(n?: number): void }
  sent: { inc(n?: number): void }
  handling: { observe(v: number): void }
  handled(code: number): { inc(n?: number): void }
  clientReceived: { inc(n?: number): void }
  clientSent: { inc(n?: number): void }
}

class Call implements CallTimer {
  private done = false
  constructor(
    private readonly m: MethodSeries,
    private readonly t0: number,
  ) {}
  received(bytes: number): void {
    this.m.received.inc()
    this.m.clientReceived.inc(bytes)
  }
  sent(bytes: number): void {
    this.m.sent.inc()
    this.m.clientSent.inc(bytes)
  }
  end(code: number): void {
    if (this.done) return
    this.done = true
    this.m.handled(code).inc()
    this.m.handling.observe((performance.now() - this.t0) / 1000)
  }
}

export class HttpMetrics {
  readonly registry = new Registry()
  private readonly started: Counter
  private readonly handled: Counter
  private readonly msgReceived: Counter
  private readonly msgSent: Counter
  private readonly handling: Histogram
  private readonly clientSent: Counter
  private readonly clientReceived: Counter
  readonly healthSuccess: Counter
  readonly healthFailures: Counter
  private readonly healthcheck: Gauge
  private readonly healthchecks: Counter

  constructor(processStats?: () => ProcessStats) {
    const r = this.registry
    const labels = ['grpc_type', 'grpc_service', 'grpc_method']
    this.started = r.counter('grpc_server_started_total', 'Total number of RPCs started on the server.', labels)
    this.handled = r.counter(
      'grpc_server_handled_total',
      'Total number of RPCs completed on the server, regardless of success or failure.',
      [...labels, 'grpc_code'],
    )
    this.msgReceived = r.counter(
      'grpc_server_msg_received_total',
      'Total number of RPC stream messages received on the server.',
      labels,
    )
    this.msgSent = r.counter(
      'grpc_server_msg_sent_total',
      'Total number of gRPC stream messages sent by the server.',
      labels,
    )
    this.handling = r.histogram(
      'grpc_server_handling_seconds',
      'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      defBuckets,
      labels,
    )
    this.clientSent = r.counter(
      'etcd_network_client_grpc_sent_bytes_total',
      'The total number of bytes sent to grpc clients.',
    )
    this.clientReceived = r.counter(
      'etcd_network_client_grpc_received_bytes_total',
      'The total number of bytes received from grpc clients.',
    )
    this.healthSuccess = r.counter('etcd_server_health_success', 'The total number of successful health checks')
    this.healthFailures = r.counter('etcd_server_health_failures', 'The total number of failed health checks')
    this.healthcheck = r.gauge('etcd_server_healthcheck', 'The result of each kind of healthcheck.', ['type', 'name'])
    this.healthchecks = r.counter('etcd_server_healthchecks_total', 'The total number of each kind of healthcheck.', [
      'type',
      'name',
      'status',
    ])
    // As go-grpc-prometheus' InitializeMetrics (etcd calls it): every method's counters exist from the start at 0.
    for (const [method, [service, type]] of methodIndex) {
      this.started.init(type, service, method)
      this.msgReceived.init(type, service, method)
      this.msgSent.init(type, service, method)
      for (const code of grpcCodeNames) this.handled.init(type, service, method, code)
    }
    if (processStats) {
      // Each is written only when the runtime reports it.
      const optional = (name: string, help: string, k: keyof ProcessStats, kind: 'gauge' | 'counter' = 'gauge') =>
        r.register(
          new Gauge(
            name,
            help,
            [],
            () => {
              const v = processStats()[k]
              return v === undefined ? [] : v
            },
            kind,
          ),
        )
      optional('process_resident_memory_bytes', 'Resident memory size in bytes.', 'residentMemoryBytes')
      optional(
        'process_cpu_seconds_total',
        'Total user and system CPU time spent in seconds.',
        'cpuSecondsTotal',
        'counter',
      )
      optional(
        'process_start_time_seconds',
        'Start time of the process since unix epoch in seconds.',
        'startTimeSeconds',
      )
      optional('process_open_fds', 'Number of open file descriptors.', 'openFds')
      optional('process_max_fds', 'Maximum number of open file descriptors.', 'maxFds')
      optional(
        'edgecd_runtime_heap_used_bytes',
        'JavaScript heap in use, in bytes, as the runtime reports it.',
        'heapBytes',
      )
    }
  }

  /**
   * Bytes of gRPC messages (their 5-byte envelopes included, as unary calls count them) that a transport read from or
   * wrote to a client outside a CallTimer: the gRPC front door's streams, whose messages ConnectRPC (de)serialises.
   */
  clientBytes(received: number, sent: number): void {
    if (received > 0) this.clientReceived.inc(received)
    if (sent > 0) this.clientSent.inc(sent)
  }

  /** Starts counting one call of `method` (etcd's gRPC method name). */
  start(method: string): CallTimer {
    const m = this.seriesOf(method)
    m.started.inc()
    return new Call(m, performance.now())
  }

  /** Each method's series, looked up once (every call of a method counts into the same ones). */
  private readonly perMethod = new Map<string, MethodSeries>()
  private seriesOf(method: string): MethodSeries {
    let m = this.perMethod.get(method)
    if (m) return m
    const [service, type] = grpcServiceOf(method)
    const labels = [type, service, method] as const
    const handled = new Map<number, { inc(n?: number): void }>()
    m = {
      started: this.started.labels(...labels),
      received: this.msgReceived.labels(...labels),
      sent: this.msgSent.labels(...labels),
      handling: this.handling.labels(...labels),
      handled: (code) => {
        let h = handled.get(code)
        if (!h) {
          h = this.handled.labels(...labels, grpcCodeNames[code] ?? 'Unknown')
          handled.set(code, h)
        }
        return h
      },
      clientReceived: this.clientReceived.labels(),
      clientSent: this.clientSent.labels(),
    }
    this.perMethod.set(method, m)
    return m
  }

  /** Records one /livez or /readyz check's result, as etcd 3.6's etcd_server_healthcheck{,s_total}. */
  healthChecked(type: string, name: string, ok: boolean): void {
    this.healthcheck.set(ok ? 1 : 0, type, name)
    this.healthchecks.inc(1, type, name, ok ? 'success' : 'error')
  }

  render(): string {
    return this.registry.render()
  }
}
