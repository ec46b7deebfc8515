/**
 * Member and cluster ids derived as etcd derives them (etcdserver/api/membership): a member's id is the first 8
 * bytes (big-endian) of SHA-1 over its sorted peer URLs joined, followed by the cluster token; the cluster id is
 * the first 8 bytes of SHA-1 over the sorted member ids, each as 8 big-endian bytes. Stable across restarts, and
 * equal to etcd's for the same URLs and token. Ids are decimal strings of the uint64 (Raft's NodeId).
 */
async function sha1First8(bytes: Uint8Array): Promise<bigint> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', bytes as Uint8Array<ArrayBuffer>))
  let v = 0n
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(digest[i]!)
  return v
}

export async function computeMemberId(peerUrls: string[], clusterToken: string): Promise<string> {
  const joined = [...peerUrls].sort().join('') + clusterToken
  return (await sha1First8(new TextEncoder().encode(joined))).toString()
}

export async function computeClusterId(memberIds: string[]): Promise<string> {
  const ids = memberIds.map((s) => BigInt(s)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const buf = new Uint8Array(8 * ids.length)
  const view = new DataView(buf.buffer)
  for (let i = 0; i < ids.length; i++) view.setBigUint64(8 * i, ids[i]!)
  return (await sha1First8(buf)).toString()
}

/** etcd prints ids in hex (etcdctl member list): 8e9e05c52164694d. */
export function idToHex(id: string): string {
  return BigInt(id).toString(16)
}
