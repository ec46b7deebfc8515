/**
 * A member on Deno (src/runtime/deno/serve.ts and main.ts). Under Deno (`npm run test:deno`, which grants loopback
 * networking, writes in a temp dir of its own and running openssl, node and deno) it runs the cases; under Node
 * (`npm test`) it runs itself through `npm run test:deno`, so the Deno member is tested on every `npm test` too.
 *
 * - put, range (a key and a range), the WebSocket watch over http, the client address reaching authenticate's
 *   limits; a restart on the same data dir keeps the data;
 *   the data dir refuses another cluster; a data dir written by a Node member opens on Deno and back;
 * - the same over https and wss:// with a throwaway CA (openssl at test time): a client without the CA and plain
 *   http are refused;
 * - --client-cert-auth and --peer-client-cert-auth are refused with the clear error, in process and by main.ts, and
 *   a missing file, a mismatched key or a CA file without a certificate stop the start naming the flag;
 * - main.ts serves, answers, and stops cleanly on SIGTERM (exit 0);
 * - a mixed cluster over https: this Deno member and two Node members (`edgecd serve` processes, which require a peer
 *   certificate on /raft) elect a leader over wss:// (the Deno member dials with --peer-trusted-ca-file and presents
 *   --peer-cert-file) and replicate writes made through either runtime; a
 *   lease keep-alive and time-to-live through the Deno member as a follower reach the Node leader over https.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import type { RunningDenoMember } from '../../src/runtime/deno/serve.js'
import { createTlsDir } from '../helpers/tls.js'
import {
  b64,
  denoMainArgs,
  type EdgecdProcess,
  eventually,
  freePort,
  silent,
  spawnEdgecd,
  unb64,
} from '../support/index.js'
import { requires } from '../support/requirements.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** The parts of Deno's API the cases use (this file also type-checks under tsc, which has no Deno types). */
interface DenoTestApi {
  createHttpClient(o: { caCerts: string[] }): { close(): void }
  execPath(): string
  Command: new (
    cmd: string,
    o: { args: string[]; cwd: string; stdin: 'null'; stdout: 'piped'; stderr: 'piped' },
  ) => {
    spawn(): {
      stdout: ReadableStream<Uint8Array>
      stderr: ReadableStream<Uint8Array>
      status: Promise<{ code: number }>
      kill(signal: string): void
    }
  }
}
const deno = (globalThis as unknown as { Deno?: DenoTestApi }).Deno

type Client = { close(): void }
type Json = Record<string, any>

/** POSTs JSON to a member (through a Deno.HttpClient for https); the status and the parsed answer. */
async function post(
  base: string,
  path: string,
  body: unknown,
  client?: Client,
): Promise<{ status: number; json: Json }> {
  const r = await fetch(base + path, {
    method: 'POST',
    body: JSON.stringify(body),
    ...(client ? { client } : {}),
  } as RequestInit)
  const text = await r.text()
  return { status: r.status, json: text ? (JSON.parse(text) as Json) : {} }
}

/** The value of a key on a member (serializable: that member's own state), undefined when absent. */
async function value(base: string, key: string, client?: Client): Promise<string | undefined> {
  const r = await post(base, '/v3/kv/range', { key: b64(key), serializable: true }, client)
  const kv = r.json.kvs?.[0]
  return kv ? unb64(kv.value) : undefined
}

/** A put that succeeds once the member has a leader. */
function put(base: string, key: string, v: string, client?: Client): Promise<Json> {
  return eventually(
    async () => {
      const r = await post(base, '/v3/kv/put', { key: b64(key), value: b64(v) }, client)
      return r.status === 200 ? r.json : undefined
    },
    15_000,
    `put ${key} through ${base}`,
  )
}

/** Opens a WebSocket watch on `key` and resolves with the values of the next `n` events. */
async function watchValues(
  wsUrl: string,
  key: string,
  n: number,
  client: Client | undefined,
  afterCreated: () => Promise<unknown>,
): Promise<string[]> {
  const ws = new (WebSocket as unknown as new (u: string, o: object) => WebSocket)(`${wsUrl}/v3/watch`, {
    ...(client ? { client } : {}),
  })
  const values: string[] = []
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watch on ${key}: ${values.length} of ${n} events`)), 15_000)
      ws.onerror = () => reject(new Error('watch socket failed'))
      ws.onopen = () => ws.send(JSON.stringify({ create_request: { key: b64(key) } }))
      ws.onmessage = (evt) => {
        const msg = JSON.parse(String(evt.data)) as Json
        if (msg.result?.created) afterCreated().catch(reject)
        for (const e of msg.result?.events ?? []) values.push(unb64(e.kv.value))
        if (values.length >= n) {
          clearTimeout(timer)
          resolve(values)
        }
      }
    })
  } finally {
    ws.close()
  }
}

/** A one-member configuration on a free port (fast timers). */
async function oneMember(dataDir: string, scheme = 'http', extra: Partial<ServerConfig> = {}): Promise<ServerConfig> {
  const url = `${scheme}://127.0.0.1:${await freePort()}`
  return {
    ...serverDefaults,
    name: 'd0',
    dataDir,
    listenClientUrls: [url],
    advertiseClientUrls: [url],
    initialAdvertisePeerUrls: [url],
    initialCluster: `d0=${url}`,
    initialClusterToken: 'deno-test',
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
    logLevel: 'error',
    ...extra,
  }
}

/** main.ts running under this Deno, with its stdout and stderr collected into `out`. */
interface MainProcess {
  out: { text: string }
  kill(signal: 'SIGTERM' | 'SIGKILL'): void
  /** The exit code (Deno.Command's: node:child_process under Deno reports a signal for a child that exited 0). */
  code(): Promise<number>
}

function runMain(args: string[]): MainProcess {
  const child = new deno!.Command(deno!.execPath(), {
    args: denoMainArgs(args),
    cwd: root,
    stdin: 'null',
    stdout: 'piped',
    stderr: 'piped',
  }).spawn()
  const out = { text: '' }
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.getReader()
    const decoder = new TextDecoder()
    for (let r = await reader.read(); !r.done; r = await reader.read())
      out.text += decoder.decode(r.value, { stream: true })
  }
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)])
  return {
    out,
    kill: (signal) => child.kill(signal),
    code: async () => {
      const { code } = await child.status
      await drained
      return code
    },
  }
}

if (deno) {
  const { startDenoMember } = await import('../../src/runtime/deno/serve.js')
  const { ConfigError } = await import('../../src/etcdserver/config.js')

  describe('a member on Deno', () => {
    test('put, range and the WebSocket watch over http, the client address for authenticate; a restart on the same data dir keeps the data', async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-member-'))
      let m: RunningDenoMember | undefined
      try {
        const config = await oneMember(join(tmp, 'data'))
        m = await startDenoMember(config, silent)
        const base = m.urls[0]!
        assert.equal(base, config.listenClientUrls[0])
        await put(base, 'a', '1')
        await put(base, 'b', '2')
        assert.equal(await value(base, 'a'), '1')
        const range = await post(base, '/v3/kv/range', { key: b64('a'), range_end: b64('c') })
        assert.deepEqual(
          range.json.kvs.map((kv: Json) => [unb64(kv.key), unb64(kv.value)]),
          [
            ['a', '1'],
            ['b', '2'],
          ],
        )
        assert.equal(range.json.count, '2')
        // authenticate's failure limits are per client address: Deno.serve's remoteAddr must reach them.
        const addresses: string[] = []
        const auth = m.member.auth
        const authenticate = auth.authenticate.bind(auth)
        auth.authenticate = (req, address) => {
          addresses.push(address)
          return authenticate(req, address)
        }
        await post(base, '/v3/auth/authenticate', { name: 'nobody', password: 'x' })
        assert.deepEqual(addresses, ['127.0.0.1'])
        const watched = await watchValues(base.replace('http:', 'ws:'), 'w', 2, undefined, async () => {
          await put(base, 'w', 'x')
          await put(base, 'w', 'y')
        })
        assert.deepEqual(watched, ['x', 'y'])
        await m.stop()
        m = undefined

        m = await startDenoMember(config, silent)
        assert.equal(await value(m.urls[0]!, 'a'), '1', 'the data survived the restart')
        assert.equal(await value(m.urls[0]!, 'w'), 'y')
        await m.stop()
        m = undefined
        // The data dir belongs to this cluster: other flags are refused, naming it.
        await assert.rejects(
          startDenoMember({ ...config, initialClusterToken: 'another-cluster' }, silent),
          (e) => e instanceof ConfigError && /belongs to cluster/.test(e.message),
        )
      } finally {
        await m?.stop()
        rmSync(tmp, { recursive: true, force: true })
      }
    })

    test('a data dir moves between runtimes: written on Node, read and written on Deno, read on Node again', async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-move-'))
      let m: RunningDenoMember | undefined
      let child: EdgecdProcess | undefined
      try {
        const config = await oneMember(join(tmp, 'data'), 'http', { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 })
        const url = config.listenClientUrls[0]!
        const onNode = async () => {
          child = spawnEdgecd({
            name: config.name,
            dataDir: config.dataDir,
            clientUrl: url,
            initialCluster: config.initialCluster,
            token: config.initialClusterToken,
            logLevel: 'warn',
            readyPath: '/version',
          })
          await child.waitReady(60_000)
        }
        const stopNode = async () => {
          const c = child!
          c.kill('SIGTERM')
          await c.exited
          child = undefined
        }
        await onNode()
        await put(url, 'on-node', 'n')
        await stopNode()

        m = await startDenoMember(config, silent)
        assert.equal(await value(url, 'on-node'), 'n', 'Deno reads what Node wrote')
        await put(url, 'on-deno', 'd')
        await m.stop()
        m = undefined

        await onNode()
        assert.equal(await value(url, 'on-deno'), 'd', 'Node reads what Deno wrote')
        assert.equal(await value(url, 'on-node'), 'n')
        await stopNode()
      } finally {
        await m?.stop()
        ;(child as EdgecdProcess | undefined)?.kill('SIGKILL')
        rmSync(tmp, { recursive: true, force: true })
      }
    })

    test('https and wss:// with a throwaway CA; plain http and a client without the CA are refused', async () => {
      const tls = createTlsDir()
      let m: RunningDenoMember | undefined
      let client: Client | undefined
      try {
        const ca = tls.ca('deno-test-ca')
        const leaf = ca.issue('d0')
        const config = await oneMember(join(tls.dir, 'data'), 'https', {
          certFile: leaf.certFile,
          keyFile: leaf.keyFile,
        })
        m = await startDenoMember(config, silent)
        const base = m.urls[0]!
        assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/)
        client = deno!.createHttpClient({ caCerts: [readFileSync(ca.certFile, 'utf8')] })
        await put(base, 'k', 'v', client)
        assert.equal(await value(base, 'k', client), 'v')
        await assert.rejects(post(base, '/v3/kv/range', { key: b64('k') }), 'a client that does not trust the CA')
        await assert.rejects(
          post(base.replace('https:', 'http:'), '/v3/kv/range', { key: b64('k') }),
          'plain http to an https listener',
        )
        const watched = await watchValues(base.replace('https:', 'wss:'), 'k', 1, client, () =>
          put(base, 'k', 'v2', client),
        )
        assert.deepEqual(watched, ['v2'])
      } finally {
        await m?.stop()
        client?.close()
        tls.remove()
      }
    })

    test('--client-cert-auth and --peer-client-cert-auth are refused with a clear error, as are unusable files, before the data dir is opened', async () => {
      const tls = createTlsDir()
      try {
        const ca = tls.ca('deno-test-ca')
        const leaf = ca.issue('d0')
        const files = { certFile: leaf.certFile, keyFile: leaf.keyFile }
        const dataDir = join(tls.dir, 'data')
        const client = await oneMember(dataDir, 'https', { ...files, trustedCaFile: ca.certFile, clientCertAuth: true })
        await assert.rejects(startDenoMember(client, silent), (e) => {
          assert.ok(e instanceof ConfigError)
          assert.equal(
            e.message,
            "--client-cert-auth: Deno's server (Deno.serve) cannot request client certificates; run this member on the Node runtime for mutual TLS",
          )
          return true
        })
        const peer = await oneMember(dataDir, 'https', {
          ...files,
          peerCertFile: leaf.certFile,
          peerKeyFile: leaf.keyFile,
          peerTrustedCaFile: ca.certFile,
          peerClientCertAuth: true,
        })
        await assert.rejects(startDenoMember(peer, silent), /^ConfigError: --peer-client-cert-auth: Deno's server/)
        // Files that cannot be used stop the start naming the flag and the file, never key material.
        const missing = join(tls.dir, 'missing.crt')
        await assert.rejects(
          startDenoMember(await oneMember(dataDir, 'https', { ...files, certFile: missing }), silent),
          (e) =>
            e instanceof ConfigError && e.message === `--cert-file: cannot read ${JSON.stringify(missing)} (ENOENT)`,
        )
        const other = ca.issue('other')
        await assert.rejects(
          startDenoMember(await oneMember(dataDir, 'https', { ...files, keyFile: other.keyFile }), silent),
          (e) =>
            e instanceof ConfigError &&
            /^--cert-file\/--key-file: cannot use the certificates \(.*KeyMismatch\)$/.test(e.message) &&
            !e.message.includes('PRIVATE KEY'),
        )
        await assert.rejects(
          startDenoMember(await oneMember(dataDir, 'https', { ...files, peerTrustedCaFile: leaf.keyFile }), silent),
          (e) => e instanceof ConfigError && e.message.startsWith('--peer-trusted-ca-file: no PEM certificate in'),
        )
        assert.equal(existsSync(dataDir), false, 'nothing was written')

        // The entry users run says it the etcd way and exits 2, as `edgecd serve` does for a configuration error.
        const url = client.listenClientUrls[0]!
        const main = runMain([
          'serve',
          '--data-dir',
          dataDir,
          '--listen-client-urls',
          url,
          '--cert-file',
          leaf.certFile,
          '--key-file',
          leaf.keyFile,
          '--trusted-ca-file',
          ca.certFile,
          '--client-cert-auth',
        ])
        assert.equal(await main.code(), 2, main.out.text)
        assert.match(
          main.out.text,
          /edgecd serve: --client-cert-auth: Deno's server \(Deno\.serve\) cannot request client certificates/,
        )
      } finally {
        tls.remove()
      }
    })

    test('main.ts serves with the flags of edgecd serve and stops cleanly on SIGTERM', async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-main-'))
      let main: MainProcess | undefined
      try {
        const url = `http://127.0.0.1:${await freePort()}`
        main = runMain(['serve', '--name', 'c0', '--data-dir', join(tmp, 'data'), '--listen-client-urls', url])
        const out = main.out
        await eventually(() => (out.text.includes('serving on') ? true : undefined), 60_000, `main.ts up: ${out.text}`)
        assert.match(out.text, new RegExp(`edgecd: member c0 serving on ${url} \\(data in .*\\) on Deno`))
        await put(url, 'x', 'y')
        assert.equal(await value(url, 'x'), 'y')
        // etcd's metrics with Deno's process figures, etcd 3.5's readiness, and the console, on Deno too.
        const metrics = await (await fetch(url + '/metrics')).text()
        assert.match(metrics, /^etcd_server_has_leader 1$/m)
        assert.ok(Number(/^process_resident_memory_bytes (\d+)$/m.exec(metrics)?.[1]) > 1e6, 'resident memory')
        assert.equal(await (await fetch(url + '/readyz')).text(), 'ok\n')
        const ui = await fetch(url + '/ui/')
        assert.equal(ui.status, 200)
        assert.match(await ui.text(), /<div id="app">/)
        main.kill('SIGTERM')
        assert.equal(await main.code(), 0, out.text)
        main = undefined
        assert.match(out.text, /"msg":"received signal","signal":"SIGTERM"/)
        assert.match(out.text, /"msg":"stopped","name":"c0"/)
      } finally {
        if (main) {
          main.kill('SIGKILL')
          await main.code()
        }
        rmSync(tmp, { recursive: true, force: true })
      }
    })

    test('a mixed cluster over https: one Deno and two Node members elect a leader and replicate both ways', async () => {
      const tls = createTlsDir()
      const procs: EdgecdProcess[] = []
      let m: RunningDenoMember | undefined
      let client: Client | undefined
      try {
        const ca = tls.ca('mixed-ca')
        const names = ['deno0', 'node1', 'node2']
        const urls = await Promise.all(names.map(async () => `https://127.0.0.1:${await freePort()}`))
        const certs = names.map((n) => ca.issue(n))
        const initialCluster = names.map((n, i) => `${n}=${urls[i]}`).join(',')
        for (const i of [1, 2]) {
          const child = spawnEdgecd({
            name: names[i]!,
            dataDir: join(tls.dir, `data-${i}`),
            clientUrl: urls[i]!,
            initialCluster,
            token: 'mixed',
            extra: [
              '--cert-file',
              certs[i]!.certFile,
              '--key-file',
              certs[i]!.keyFile,
              '--peer-trusted-ca-file',
              ca.certFile,
              // The Node members require a peer certificate on /raft: the Deno member presents its own.
              '--peer-cert-file',
              certs[i]!.certFile,
              '--peer-key-file',
              certs[i]!.keyFile,
              '--peer-client-cert-auth',
            ],
            logLevel: 'warn',
            readyPath: false,
            stderrMax: 4000,
          })
          procs.push(child)
        }
        m = await startDenoMember(
          {
            ...serverDefaults,
            name: names[0]!,
            dataDir: join(tls.dir, 'data-0'),
            listenClientUrls: [urls[0]!],
            advertiseClientUrls: [urls[0]!],
            initialAdvertisePeerUrls: [urls[0]!],
            initialCluster,
            initialClusterToken: 'mixed',
            // The launcher gives the Node members `${token}-peer-secret-for-tests`; peers must share it.
            peerSecret: 'mixed-peer-secret-for-tests',
            certFile: certs[0]!.certFile,
            keyFile: certs[0]!.keyFile,
            peerTrustedCaFile: ca.certFile,
            peerCertFile: certs[0]!.certFile,
            peerKeyFile: certs[0]!.keyFile,
            logLevel: 'error',
          },
          silent,
        )
        client = deno!.createHttpClient({ caCerts: [readFileSync(ca.certFile, 'utf8')] })
        const c = client
        const status = await eventually(
          async () => {
            const all = await Promise.all(urls.map((u) => post(u, '/v3/maintenance/status', {}, c)))
            const leaders = new Set(all.map((s) => s.json.leader))
            const [leader] = leaders
            return all.every((s) => s.status === 200) && leaders.size === 1 && leader && leader !== '0'
              ? all
              : undefined
          },
          30_000,
          `one leader on all three members (node logs: ${procs.map((p) => p.stderr()).join(' | ')})`,
        )
        assert.equal(status[0]!.json.header.cluster_id, status[1]!.json.header.cluster_id, 'one cluster')
        const list = await post(urls[0]!, '/v3/cluster/member/list', {}, c)
        assert.deepEqual(list.json.members.map((x: Json) => x.name).sort(), names)

        await put(urls[0]!, 'from-deno', 'd', c)
        await put(urls[1]!, 'from-node', 'n', c)
        for (const u of urls) {
          await eventually(
            async () => ((await value(u, 'from-deno', c)) === 'd' ? true : undefined),
            30_000,
            `from-deno on ${u}`,
          )
          await eventually(
            async () => ((await value(u, 'from-node', c)) === 'n' ? true : undefined),
            30_000,
            `from-node on ${u}`,
          )
        }

        // Lease keep-alive and time-to-live through a follower are forwarded to the leader's client URL over https
        // with the member's own client (--peer-trusted-ca-file): make the Deno member a follower and call it.
        const denoId = status[0]!.json.header.member_id as string
        if (status[0]!.json.leader === denoId) {
          const moved = await post(
            urls[0]!,
            '/v3/maintenance/transfer-leadership',
            {
              targetID: status[1]!.json.header.member_id,
            },
            c,
          )
          assert.equal(moved.status, 200, JSON.stringify(moved.json))
        }
        await eventually(
          async () => {
            const leader = (await post(urls[0]!, '/v3/maintenance/status', {}, c)).json.leader
            return leader && leader !== '0' && leader !== denoId ? true : undefined
          },
          30_000,
          'a Node member leads',
        )
        // Forwarding needs the leader's client URL, which every member publishes through the log (etcd's publish).
        await eventually(
          async () => {
            const list = await post(urls[0]!, '/v3/cluster/member/list', {}, c)
            return list.json.members?.every((x: Json) => x.clientURLs?.length === 1) ? true : undefined
          },
          30_000,
          'every member published its client URL',
        )
        const grant = await post(urls[0]!, '/v3/lease/grant', { TTL: 30 }, c)
        assert.equal(grant.status, 200, JSON.stringify(grant.json))
        const ka = await post(urls[0]!, '/v3/lease/keepalive', { ID: grant.json.ID }, c)
        assert.equal(ka.status, 200, JSON.stringify(ka.json))
        assert.equal(ka.json.result?.TTL, '30', JSON.stringify(ka.json))
        const ttl = await post(urls[0]!, '/v3/lease/timetolive', { ID: grant.json.ID }, c)
        assert.equal(ttl.json.grantedTTL, '30', JSON.stringify(ttl.json))
      } finally {
        await m?.stop()
        for (const p of procs) p.kill('SIGTERM')
        await Promise.all(procs.map((p) => p.exited))
        client?.close()
        tls.remove()
      }
    })
  })
} else {
  // Under Node: run this file under Deno with the permissions it needs.
  describe('a member on Deno (run under Deno)', () => {
    test('npm run test:deno -- test/deno/member.test.ts', {
      skip: requires('deno'),
    }, () => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/test-deno.mjs', 'test/deno/member.test.ts'], {
        cwd: root,
        env: { ...process.env, DENO_TEST_NO_CHECK: '1' },
        encoding: 'utf8',
        timeout: 240_000,
      })
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`)
      assert.match(r.stdout, /ok \| 1 passed \(6 steps\) \| 0 failed/)
    })
  })
}
