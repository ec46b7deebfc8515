/**
 * The Worker in front of the member objects (wrangler.toml `main`). Routes:
 *
 * - `/m/<name>/...` goes to member `<name>`'s object, with the path after the prefix (`/m/m2/v3/kv/range` is
 *   `/v3/kv/range` on m2). Only names of EDGECD_INITIAL_CLUSTER are served: any other name would create an empty
 *   object.
 * - Anything else (`/v3/*`, `/health`, `/metrics`, `/version`, the watch) goes to the front member:
 *   EDGECD_FRONT_MEMBER, or the first member of EDGECD_INITIAL_CLUSTER. Every member answers every request with
 *   etcd's semantics (writes and linearizable reads go through Raft wherever they arrive), so the choice is about
 *   consistency of what a client sees between requests and about latency, not correctness: one fixed member keeps a
 *   client's serializable reads monotonic and its watches on one revision stream, as an etcd client pinned to one
 *   endpoint; a Durable Object lives where it was first created, so place the front member near the clients
 *   (docs/workers.md).
 * - With EDGECD_MEMBER set (`edgecd serve --runtime workerd`: one member per Worker), every request goes to that
 *   member, paths unchanged.
 */
import type { DurableObjectNamespace } from './cf-api.js'
import { EdgecdMember, type MemberEnv, memberNameHeader } from './member-object.js'

export { EdgecdMember }

export interface WorkerEnv extends MemberEnv {
  MEMBER: DurableObjectNamespace
  /** Single-member mode: the one member this Worker serves. */
  EDGECD_MEMBER?: string
  /** The member that answers requests without a /m/<name> prefix. */
  EDGECD_FRONT_MEMBER?: string
  EDGECD_INITIAL_CLUSTER?: string
}

const text = (body: string, status: number) =>
  new Response(body, {
    status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
  })

/** The member names of EDGECD_INITIAL_CLUSTER, in order. */
function memberNames(env: WorkerEnv): string[] {
  const names: string[] = []
  for (const part of (env.EDGECD_INITIAL_CLUSTER ?? '').split(',')) {
    const name = part.slice(0, part.indexOf('=')).trim()
    if (name !== '' && !names.includes(name)) names.push(name)
  }
  return names
}

/** The endpoints whose response is a stream of messages: watch, lease keep-alive, snapshot. */
const streamPaths = /^\/v3(beta)?\/(watch|lease\/keepalive|maintenance\/snapshot)$/
/** gRPC-Web answers (every one carries its status in a last frame) and Connect streams. */
const rpcStreamType = /^application\/(grpc-web|connect\+)/i

async function toMember(env: WorkerEnv, name: string, req: Request, path: string): Promise<Response> {
  const url = new URL(req.url)
  const forwarded = new Request(`http://member${path}${url.search}`, req)
  forwarded.headers.set(memberNameHeader, name)
  const res = await env.MEMBER.get(env.MEMBER.idFromName(name)).fetch(forwarded)
  if (res.status === 101 || res.headers.has('content-encoding')) return res
  // gRPC-Web and Connect streams (src/api/grpc/fetch.ts) by their content type: `+json` ones could be gzipped.
  if (!streamPaths.test(path) && !rpcStreamType.test(res.headers.get('content-type') ?? '')) return res
  // The platform gzips a JSON response for a client that accepts it (Cloudflare's edge, and Miniflare copying it),
  // and a compressor holds a stream's messages back until it has a block: a watch would see nothing. A stream goes
  // out as is, as etcd's gateway sends it.
  const out = new Response(res.body, res)
  out.headers.set('Content-Encoding', 'identity')
  out.headers.set('Cache-Control', 'no-transform')
  return out
}

export default {
  async fetch(req: Request, env: WorkerEnv): Promise<Response> {
    const url = new URL(req.url)
    if (env.EDGECD_MEMBER) return toMember(env, env.EDGECD_MEMBER, req, url.pathname)
    const names = memberNames(env)
    const m = /^\/m\/([^/]+)(\/.*)?$/.exec(url.pathname)
    if (m) {
      const name = decodeURIComponent(m[1]!)
      if (!names.includes(name)) return text(`no member named ${JSON.stringify(name)} in this cluster\n`, 404)
      return toMember(env, name, req, m[2] ?? '/')
    }
    const front = env.EDGECD_FRONT_MEMBER || names[0]
    if (!front) return text('edgecd: EDGECD_INITIAL_CLUSTER is not set (see docs/workers.md)\n', 500)
    return toMember(env, front, req, url.pathname)
  },
}
