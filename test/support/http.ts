/** Calling a member's (or etcd's) JSON API from tests: whole answers, base64 helpers. */

export const b64 = (s: string): string => Buffer.from(s).toString('base64')
export const unb64 = (s: string): string => Buffer.from(s, 'base64').toString()
/** A logger that drops everything (in-process members in tests). */
export const silent = { debug() {}, info() {}, warn() {}, error() {} }

export interface Answer {
  status: number
  headers: Headers
  text: string
  /** The parsed body; for a `{"result":...}\n` stream its first line; undefined when the body is not JSON. */
  json: any
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {}
  try {
    return JSON.parse(text.split('\n')[0] || 'null')
  } catch {
    return undefined
  }
}

/** POSTs a body (an object is JSON-encoded, a string is sent as is) and reads the whole answer. */
export async function post(base: string, path: string, body: unknown = {}, init: RequestInit = {}): Promise<Answer> {
  const r = await fetch(base + path, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  })
  const text = await r.text()
  return { status: r.status, headers: r.headers, text, json: parse(text) }
}

export async function get(base: string, path: string, method = 'GET'): Promise<Answer> {
  const r = await fetch(base + path, { method })
  const text = await r.text()
  return { status: r.status, headers: r.headers, text, json: parse(text) }
}
