/**
 * A do-nothing etcd KV service (Range and Put answer an empty response) for `npm run bench -- grpc --trivial`: the
 * ceiling of the load generator and of a gRPC library, without a member behind it. Run as a child process:
 *
 *   node --import tsx bench/lib/grpc-trivial.ts connect|grpc-js PORT
 *
 * `connect`: ConnectRPC's Node adapter on node:http2 (edgecd's stack); `grpc-js`: @grpc/grpc-js's server with the
 * same generated (protobuf-es) messages.
 */
import { createServer } from 'node:http2'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { connectNodeAdapter } from '@connectrpc/connect-node'
import * as grpc from '@grpc/grpc-js'
import {
  KV,
  PutRequestSchema,
  PutResponseSchema,
  RangeRequestSchema,
  RangeResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'

const [kind, portText] = process.argv.slice(2)
const port = Number(portText)
const header = { clusterId: 1n, memberId: 2n, revision: 3n, raftTerm: 4n }

if (kind === 'connect') {
  const handler = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    routes: (r) =>
      r.service(KV, {
        async range() {
          return { header }
        },
        async put() {
          return { header }
        },
      }),
  })
  createServer(handler).listen(port, '127.0.0.1')
} else if (kind === 'grpc-js') {
  const server = new grpc.Server()
  const method = <I, O>(path: string, reqS: never, resS: never, answer: O) => ({
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: I) => Buffer.from(toBinary(reqS, m as never)),
    requestDeserialize: (b: Buffer) => fromBinary(reqS, b) as I,
    responseSerialize: (m: O) => Buffer.from(toBinary(resS, m as never)),
    responseDeserialize: (b: Buffer) => fromBinary(resS, b) as O,
    answer,
  })
  const range = method(
    '/etcdserverpb.KV/Range',
    RangeRequestSchema as never,
    RangeResponseSchema as never,
    create(RangeResponseSchema, { header }),
  )
  const put = method(
    '/etcdserverpb.KV/Put',
    PutRequestSchema as never,
    PutResponseSchema as never,
    create(PutResponseSchema, { header }),
  )
  server.addService({ Range: range, Put: put } as never, {
    Range: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, range.answer),
    Put: (_c: unknown, cb: (e: null, r: unknown) => void) => cb(null, put.answer),
  })
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), () => undefined)
} else {
  throw new Error(`usage: grpc-trivial.ts connect|grpc-js PORT, got ${kind}`)
}
process.on('SIGTERM', () => process.exit(0))
