/** Helpers shared by the TLS tests: a logger that records, JSON calls through a TLS fetch, a /raft dial. */
import WebSocket from 'ws'
import type { Logger } from '../../src/runtime/node/log.js'
import { tlsOptions } from '../helpers/tls.js'

export const b64 = (s: string): string => Buffer.from(s).toString('base64')

export interface Logged {
  level: string
  msg: string
  fields?: Record<string, unknown>
}

/** A member logger that keeps every line in `lines`. */
export function recordingLogger(): Logger & { lines: Logged[] } {
  const lines: Logged[] = []
  const rec =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, msg, ...(fields ? { fields } : {}) })
    }
  return { lines, debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') } as Logger & {
    lines: Logged[]
  }
}

type Fetch = (
  url: string,
  init?: { method?: string; body?: string; headers?: Record<string, string> },
) => Promise<Response>

/** POSTs JSON with `f`; the status, the parsed body (undefined when not JSON) and the text. */
export async function call(
  f: Fetch,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any; text: string }> {
  const r = await f(url, { method: 'POST', body: JSON.stringify(body), headers })
  const text = await r.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: r.status, json, text }
}

/**
 * Opens a WebSocket to `<https url>/raft` with the given headers and TLS files: 'open', `status N` when the upgrade
 * is answered with N, or `error <message>` when the connection fails (a refused handshake).
 */
export function dialRaft(
  httpsUrl: string,
  headers: Record<string, string>,
  files: { ca?: string; cert?: string; key?: string },
): Promise<string> {
  return new Promise<string>((resolve) => {
    const ws = new WebSocket(`${httpsUrl.replace('https:', 'wss:')}/raft`, { headers, ...tlsOptions(files) })
    ws.on('open', () => {
      ws.close()
      resolve('open')
    })
    ws.on('unexpected-response', (_req, res) => {
      resolve(`status ${res.statusCode}`)
      ws.terminate()
    })
    ws.on('error', (err) => resolve(`error ${err.message}`))
  })
}
