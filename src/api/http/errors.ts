/** Writing EtcdErrors as etcd's gateway does (the registry and the HTTP status live in src/protocol/errors.ts). */
import { EtcdError } from '../../protocol/errors.js'

/** Any thrown value as an EtcdError: unknown failures become code 13 without leaking internals. */
export function toEtcdError(err: unknown): EtcdError {
  if (err instanceof EtcdError) return err
  return new EtcdError('ErrInternal')
}

/** The gateway's error body: exactly these keys in this order, no details. */
export function errorBody(err: EtcdError): string {
  return `{"error":${JSON.stringify(err.message)},"message":${JSON.stringify(err.message)},"code":${err.grpcCode}}`
}
