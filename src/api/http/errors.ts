import { EtcdError, etcdError, GrpcCode } from '../../kv/errors.js'

/** grpc-gateway v1's mapping from gRPC code to HTTP status, the one place it lives (etcd-api.md §4). */
const httpStatusOf: Record<number, number> = {
  [GrpcCode.OK]: 200,
  [GrpcCode.Canceled]: 408,
  [GrpcCode.Unknown]: 500,
  [GrpcCode.InvalidArgument]: 400,
  [GrpcCode.DeadlineExceeded]: 504,
  [GrpcCode.NotFound]: 404,
  [GrpcCode.AlreadyExists]: 409,
  [GrpcCode.PermissionDenied]: 403,
  [GrpcCode.ResourceExhausted]: 429,
  [GrpcCode.FailedPrecondition]: 412,
  [GrpcCode.Aborted]: 409,
  [GrpcCode.OutOfRange]: 400,
  [GrpcCode.Unimplemented]: 501,
  [GrpcCode.Internal]: 500,
  [GrpcCode.Unavailable]: 503,
  [GrpcCode.DataLoss]: 500,
  [GrpcCode.Unauthenticated]: 401,
}

export function httpStatus(code: GrpcCode): number {
  return httpStatusOf[code] ?? 500
}

/** Any thrown value as an EtcdError: unknown failures become code 13 without leaking internals. */
export function toEtcdError(err: unknown): EtcdError {
  if (err instanceof EtcdError) return err
  return etcdError(GrpcCode.Internal, 'etcdserver: internal error')
}

/** The gateway's error body: exactly these keys in this order, no details. */
export function errorBody(err: EtcdError): string {
  return `{"error":${JSON.stringify(err.message)},"message":${JSON.stringify(err.message)},"code":${err.grpcCode}}`
}
