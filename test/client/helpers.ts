/** Helpers for the client tests: an in-process member that can be stopped and restarted on the same port and dir. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { Client, type ClientOptions } from '../../src/client/index.js'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { type RunningMember, startNodeMember } from '../../src/runtime/node/serve.js'
import { freePort, silent } from '../support/index.js'

export interface RestartableMember {
  url: string
  running: RunningMember | undefined
  start(): Promise<void>
  stop(): Promise<void>
  close(): Promise<void>
}

/** A single member on a fixed free port with its own temp dir; stop()/start() keep the data, close() removes it. */
export async function startMember(overrides: Partial<ServerConfig> = {}): Promise<RestartableMember> {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-client-'))
  const url = `http://127.0.0.1:${await freePort()}`
  const config: ServerConfig = {
    ...serverDefaults,
    dataDir: dir,
    listenClientUrls: [url],
    advertiseClientUrls: [url],
    initialAdvertisePeerUrls: [url],
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
    logLevel: 'error',
    ...overrides,
  }
  const m: RestartableMember = {
    url,
    running: undefined,
    async start() {
      m.running = await startNodeMember(config, silent)
    },
    async stop() {
      await m.running?.stop()
      m.running = undefined
    },
    async close() {
      await m.stop().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await m.start()
  return m
}

/**
 * A client for tests: `ws` as WebSocket, short backoff, generous timeouts (a loaded machine can take seconds over a
 * WebSocket dial or a write: a test that means a timeout sets its own).
 */
export function testClient(endpoints: string[], extra: Partial<ClientOptions> = {}): Client {
  return new Client({
    endpoints,
    WebSocket,
    dialTimeoutMs: 10_000,
    commandTimeoutMs: 30_000,
    backoffMinMs: 10,
    backoffMaxMs: 200,
    ...extra,
  })
}

/** Resolves after ms. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Races a promise against a deadline. */
export async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>(
        (_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)),
      ),
    ])
  } finally {
    clearTimeout(timer)
  }
}
