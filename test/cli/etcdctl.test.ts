/**
 * The client commands as a user runs them (`node bin/edgecd.js ...` against a real member), compared with Debian's
 * etcdctl 3.4 against a real etcd for the same commands. The etcdctl side is skipped, with a message, when etcd is
 * not installed; the edgecd side still checks etcdctl's known output.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { type EtcdProcess, startEtcd } from '../support/index.js'
import { requires } from '../support/requirements.js'

const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))
const etcdSkip = requires('etcd')
const hasEtcd = etcdSkip === false
if (etcdSkip) console.log(`# etcdctl comparison skipped: ${etcdSkip}`)

interface Run {
  code: number
  out: string
  err: string
}

function run(cmd: string, args: string[], stdin?: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3', ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr })
      },
    )
    // A command that reads no stdin may exit before this write lands: EPIPE then, which is no failure.
    child.stdin?.on('error', () => {})
    child.stdin?.end(stdin ?? '')
  })
}

const edgecd = (url: string, args: string[], stdin?: string) =>
  run(process.execPath, [bin, `--endpoints=${url}`, ...args], stdin)
const etcdctl = (url: string, args: string[], stdin?: string) => run('etcdctl', [`--endpoints=${url}`, ...args], stdin)

/** Ids, terms and sizes differ between two clusters: blank them out. */
function normalize(s: string): string {
  return s
    .replace(/"(cluster_id|member_id|raft_term|ID|leader|id)":\d+/g, '"$1":N')
    .replace(/\b[0-9a-f]{8,16}\b/g, 'HEX')
    .replace(/http:\/\/127\.0\.0\.1:\d+/g, 'URL')
}

/** Runs the same command on both and returns edgecd's run after asserting both agree (normalized). */
async function compare(
  m: { url: string },
  etcd: EtcdProcess | undefined,
  args: string[],
  stdin?: string,
  norm = normalize,
): Promise<Run> {
  const [a, b] = await Promise.all([
    edgecd(m.url, args, stdin),
    etcd ? etcdctl(etcd.url, args, stdin) : Promise.resolve(undefined),
  ])
  if (b) {
    assert.equal(norm(a.out), norm(b.out), `stdout of ${args.join(' ')}`)
    assert.equal(
      a.code === 0,
      b.code === 0,
      `exit status of ${args.join(' ')}: edgecd ${a.code} (${a.err}), etcdctl ${b.code} (${b.err})`,
    )
    // etcdctl logs a JSON warning line before its Error: line; the Error: lines must match.
    const errorLine = (s: string) => s.split('\n').find((l) => l.startsWith('Error: '))
    assert.equal(errorLine(a.err), errorLine(b.err), `stderr of ${args.join(' ')}`)
  }
  return a
}

describe('edgecd CLI vs etcdctl', () => {
  let m: TestMember
  let etcd: EtcdProcess | undefined
  before(async () => {
    m = await startTestMember()
    if (hasEtcd) etcd = await startEtcd()
  })
  after(async () => {
    await m?.stop()
    await etcd?.stop()
  })

  const same = (args: string[], stdin?: string, norm = normalize) => compare(m, etcd, args, stdin, norm)

  test('put, get (with options), del', async () => {
    assert.equal((await same(['put', 'foo', 'bar'])).out, 'OK\n')
    await same(['put', 'foo2', 'baz'])
    await same(['put', 'zed', 'last'])
    assert.equal((await same(['get', 'foo'])).out, 'foo\nbar\n')
    assert.equal((await same(['get', 'foo', '--prefix', '--keys-only'])).out, 'foo\n\nfoo2\n\n')
    assert.equal((await same(['get', 'foo', '--print-value-only'])).out, 'bar\n')
    assert.equal(
      (await same(['get', 'foo', '--prefix', '--limit', '1', '--sort-by', 'KEY', '--order', 'DESCEND'])).out,
      'foo2\nbaz\n',
    )
    assert.equal((await same(['get', 'foo2', '--from-key'])).out, 'foo2\nbaz\nzed\nlast\n')
    assert.equal((await same(['get', 'missing'])).out, '')
    await same(['get', 'foo', '-w', 'json'])
    await same(['put', 'foo', 'bar2', '-w', 'json'])
    assert.equal((await same(['put', 'foo', 'bar3', '--prev-kv'])).out, 'OK\nfoo\nbar2\n')
    assert.equal((await same(['del', 'foo2', '--prev-kv'])).out, '1\nfoo2\nbaz\n')
    assert.equal((await same(['del', 'nothing'])).out, '0\n')
    // edgecd only (etcdctl 3.4 has no --count-only): the count alone.
    assert.equal((await edgecd(m.url, ['get', '', '--prefix', '--count-only'])).out, '2\n')
  })

  test('errors: Error: lines on stderr, non-zero exit; unknown flags and commands', async () => {
    const r = await same(['get', 'foo', '--rev', '999'])
    assert.equal(r.code, 1)
    assert.match(r.err, /^Error: etcdserver: mvcc: required revision is a future revision$/m)
    const flag = await edgecd(m.url, ['get', 'foo', '--bogus'])
    assert.notEqual(flag.code, 0)
    assert.match(flag.err, /Error: unknown flag: --bogus/)
    const cmd = await edgecd(m.url, ['bogus'])
    assert.notEqual(cmd.code, 0)
    assert.match(cmd.err, /unknown command "bogus"/)
    const user = await edgecd(m.url, ['get', 'foo', '--user', 'root'])
    assert.equal(user.code, 1, 'no password and no terminal to ask on')
    assert.match(user.err, /^Error: no password for user root: give --user root:<password>/m)
    const help = await edgecd(m.url, ['get', '--help'])
    assert.equal(help.code, 0)
    assert.match(help.out, /--print-value-only/)
  })

  test('txn from stdin (etcdctl syntax)', async () => {
    await same(['put', 't', '1'])
    const ok = await same(['txn'], 'value("t") = "1"\n\nput t 2\nget t\n\nput t 3\n\n')
    assert.equal(ok.out, 'SUCCESS\n\nOK\n\nt\n2\n')
    const no = await same(['txn'], 'version("t") > "5"\nmod("t") > "0"\n\ndel t\n\nget t\ndel x\n\n')
    assert.equal(no.out, 'FAILURE\n\nt\n2\n\n0\n')
    await same(['txn', '-w', 'json'], 'c("t") > "0"\n\nput u 1\n\n\n')
    const eof = await same(['txn'], 'value("t") = "1"\n')
    assert.match(eof.err, /Error: EOF/)
  })

  test('lease grant/timetolive/list/revoke patterns', async () => {
    const g = await edgecd(m.url, ['lease', 'grant', '60'])
    assert.match(g.out, /^lease [0-9a-f]{16} granted with TTL\(60s\)\n$/)
    if (etcd)
      assert.match(
        (await etcdctl(etcd.url, ['lease', 'grant', '60'])).out,
        /^lease [0-9a-f]{16} granted with TTL\(60s\)\n$/,
      )
    const id = g.out.split(' ')[1]!
    await edgecd(m.url, ['put', 'lk', 'v', `--lease=${id}`])
    assert.match(
      (await edgecd(m.url, ['lease', 'timetolive', id, '--keys'])).out,
      new RegExp(`^lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[lk\\]\\)\\n$`),
    )
    assert.match((await edgecd(m.url, ['lease', 'list'])).out, new RegExp(`^found 1 leases\\n${id}\\n$`))
    assert.equal(
      (await edgecd(m.url, ['lease', 'keep-alive', '--once', id])).out,
      `lease ${id} keepalived with TTL(60)\n`,
    )
    assert.equal((await edgecd(m.url, ['lease', 'revoke', id])).out, `lease ${id} revoked\n`)
    assert.equal((await edgecd(m.url, ['lease', 'timetolive', id])).out, `lease ${id} already expired\n`)
    const again = await edgecd(m.url, ['lease', 'revoke', id])
    assert.equal(again.code, 1)
    assert.match(again.err, /^Error: failed to revoke lease \(etcdserver: requested lease not found\)$/m)
  })

  test('member list and endpoint status tables have etcdctl shape', async () => {
    const shape = (s: string) => normalize(s).replace(/ +/g, ' ').replace(/-+/g, '-')
    await same(['member', 'list', '-w', 'table'], undefined, shape)
    await same(['member', 'list'])
    await same(['member', 'list', '-w', 'json'])
    const st = await edgecd(m.url, ['endpoint', 'status', '-w', 'table'])
    assert.match(
      st.out,
      /\| +ENDPOINT +\| +ID +\| VERSION \| DB SIZE \| IS LEADER \| IS LEARNER \| RAFT TERM \| RAFT INDEX \| RAFT APPLIED INDEX \| ERRORS \|/,
    )
    const h = await edgecd(m.url, ['endpoint', 'health'])
    assert.match(
      h.out,
      /^http:\/\/127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = [\d.]+(ms|µs|s)\n$/,
    )
  })

  test('watch prints PUT/DELETE lines until interrupted', async () => {
    const watchOn = async (cmd: string, args: string[], write: (args: string[]) => Promise<Run>) => {
      const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout!.on('data', (d) => (out += String(d)))
      // The watcher is up once it prints a write to w/0 (a loaded machine may take seconds to start it: a fixed
      // sleep let the writes below go out before the watch existed). What it printed until then is cut off.
      const deadline = Date.now() + 60_000
      for (let i = 0; !out.includes('\nw/0\n') && Date.now() < deadline; i++) {
        await write(['put', 'w/0', `ready${i}`])
        for (const until = Date.now() + 1000; !out.includes('\nw/0\n') && Date.now() < until; )
          await new Promise((r) => setTimeout(r, 50))
      }
      assert.ok(out.includes('\nw/0\n'), `the watcher printed no write of w/0: ${out}`)
      await write(['put', 'w/1', 'a'])
      await write(['put', 'w/1', 'b'])
      await write(['del', 'w/1'])
      const tail = () => out.slice(Math.max(0, out.indexOf('PUT\nw/1\n')))
      while (tail().split('\n').length < 11 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      child.kill('SIGINT')
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)))
      return tail()
    }
    const a = await watchOn(
      process.execPath,
      [bin, `--endpoints=${m.url}`, 'watch', 'w/', '--prefix', '--prev-kv'],
      (args) => edgecd(m.url, args),
    )
    assert.equal(a, 'PUT\nw/1\na\nPUT\nw/1\na\nw/1\nb\nDELETE\nw/1\nb\nw/1\n\n')
    if (etcd) {
      const e = etcd
      const b = await watchOn('etcdctl', [`--endpoints=${e.url}`, 'watch', 'w/', '--prefix', '--prev-kv'], (args) =>
        etcdctl(e.url, args),
      )
      assert.equal(a, b)
    }
  })

  test('lock and elect', async () => {
    const l = await edgecd(m.url, ['lock', 'mylock', 'sh', '-c', 'echo "$ETCD_LOCK_KEY"'])
    assert.equal(l.code, 0)
    assert.match(l.out, /^mylock\/[0-9a-f]+\n$/)
    const child = spawn(process.execPath, [bin, `--endpoints=${m.url}`, 'elect', 'myelection', 'p1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += String(d)))
    const deadline = Date.now() + 30_000
    while (!out.includes('p1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.match(out, /^myelection\/[0-9a-f]+\np1\n$/)
    const obs = spawn(process.execPath, [bin, `--endpoints=${m.url}`, 'elect', '-l', 'myelection'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let seen = ''
    obs.stdout.on('data', (d) => (seen += String(d)))
    const d2 = Date.now() + 30_000
    while (!seen.includes('p1') && Date.now() < d2) await new Promise((r) => setTimeout(r, 50))
    assert.match(seen, /p1/)
    for (const c of [child, obs]) {
      c.kill('SIGINT')
      await new Promise((r) => (c.exitCode !== null ? r(undefined) : c.once('exit', r)))
    }
    assert.equal((await edgecd(m.url, ['get', 'myelection/', '--prefix'])).out, '', 'resigned on Ctrl-C')
  })
})

describe('user, role and auth commands vs etcdctl', () => {
  let m: TestMember
  let etcd: EtcdProcess | undefined
  before(async () => {
    m = await startTestMember({ authPasswordIterations: 1000 })
    if (hasEtcd) etcd = await startEtcd()
  })
  after(async () => {
    await m?.stop()
    await etcd?.stop()
  })
  const same = (args: string[], stdin?: string) => compare(m, etcd, args, stdin)
  const root = ['--user', 'root:rootpw']

  test('users, roles, permissions, enable and disable: same output as etcdctl 3.4', async () => {
    assert.equal((await same(['user', 'add', 'root:rootpw'])).out, 'User root created\n')
    assert.equal((await same(['user', 'add', 'alice', '--new-user-password=pw'])).out, 'User alice created\n')
    // Without a terminal, --interactive=false reads the password from stdin; interactive mode asks twice.
    assert.equal((await same(['user', 'add', 'bob', '--interactive=false'], 'bobpw\n')).out, 'User bob created\n')
    const twice = await same(['user', 'add', 'carol'], 'x\nx\n')
    assert.equal(
      twice.out,
      'Password of carol: \nType password of carol again for confirmation: \nUser carol created\n',
    )
    const differ = await same(['user', 'add', 'dave'], 'x\ny\n')
    assert.match(differ.err, /^Error: given passwords are different$/m)
    assert.equal((await same(['user', 'list'])).out, 'alice\nbob\ncarol\nroot\n')
    assert.equal((await same(['user', 'get', 'root'])).out, 'User: root\nRoles:\n')
    await same(['role', 'add', 'app'])
    assert.match((await same(['role', 'add', 'app'])).err, /^Error: etcdserver: role name already exists$/m)
    await same(['role', 'grant-permission', 'app', 'readwrite', 'app/', '--prefix'])
    await same(['role', 'grant-permission', 'app', 'read', 'shared'])
    await same(['role', 'grant-permission', 'app', 'write', 'z', '--from-key'])
    assert.equal((await same(['role', 'grant-permission', 'app', 'read', 'a', 'c'])).out, 'Role app updated\n')
    assert.match((await same(['role', 'grant-permission', 'app', 'bogus', 'k'])).err, /invalid permission type/)
    assert.equal(
      (await same(['role', 'get', 'app'])).out,
      'Role app\nKV Read:\n\t[a, c)\n\t[app/, app0) (prefix app/)\n\tshared\nKV Write:\n\t[app/, app0) (prefix app/)\n\t[z, <open ended>\n',
    )
    await same(['role', 'get', 'app', '-w', 'json'])
    await same(['role', 'add', 'empty'])
    assert.equal((await same(['role', 'get', 'empty'])).out, 'Role empty\nKV Read:\nKV Write:\n')
    assert.equal((await same(['user', 'grant-role', 'alice', 'app'])).out, 'Role app is granted to user alice\n')
    await same(['user', 'grant-role', 'alice', 'empty'])
    assert.equal((await same(['user', 'get', 'alice'])).out, 'User: alice\nRoles: app empty\n')
    await same(['user', 'get', 'alice', '--detail'])
    await same(['user', 'get', 'alice', '-w', 'json'])
    await same(['user', 'revoke-role', 'alice', 'empty'])
    await same(['role', 'delete', 'empty'])
    await same(['role', 'list'])
    await same(['role', 'list', '-w', 'json'])
    assert.equal(
      (await same(['role', 'revoke-permission', 'app', 'shared'])).out,
      'Permission of key shared is revoked from role app\n',
    )
    assert.equal(
      (await same(['role', 'revoke-permission', 'app', 'a', 'c'])).out,
      'Permission of range [a, c) is revoked from role app\n',
    )
    await same(['role', 'revoke-permission', 'app', 'z', '--from-key'])
    assert.match(
      (await same(['role', 'revoke-permission', 'app', 'nope'])).err,
      /^Error: etcdserver: permission is not granted to the role$/m,
    )
    await same(['user', 'get', 'nobody'])
    await same(['user', 'grant-role', 'root', 'root'])
    assert.equal((await same(['auth', 'enable'])).out, 'Authentication Enabled\n')
    assert.match((await same(['user', 'list'])).err, /^Error: etcdserver: user name is empty$/m)
    assert.match((await same([...root.slice(0, 1), 'root:bad', 'user', 'list'])).err, /authentication failed/)
    assert.equal((await same([...root, 'user', 'list'])).out, 'alice\nbob\ncarol\nroot\n')
    assert.equal((await same(['--user', 'root', '--password', 'rootpw', 'user', 'list'])).code, 0)
    await same([...root, 'user', 'list', '-w', 'json'])
    // alice may use app/ only; a changed password takes effect at once.
    assert.equal((await same(['--user', 'alice:pw', 'put', 'app/x', '1'])).out, 'OK\n')
    assert.match((await same(['--user', 'alice:pw', 'put', 'other', '1'])).err, /permission denied/)
    assert.equal(
      (await same([...root, 'user', 'passwd', 'alice', '--interactive=false'], 'pw2\n')).out,
      'Password updated\n',
    )
    assert.equal((await same(['--user', 'alice:pw2', 'get', 'app/x'])).out, 'app/x\n1\n')
    assert.equal((await same([...root, 'user', 'delete', 'bob'])).out, 'User bob deleted\n')
    // Environment variables, as ETCDCTL_USER.
    const env = await run(process.execPath, [bin, `--endpoints=${m.url}`, 'user', 'list'], '', {
      EDGECD_USER: 'root',
      EDGECD_PASSWORD: 'rootpw',
    })
    assert.equal(env.out, 'alice\ncarol\nroot\n')
    // edgecd only (etcd 3.5's command): auth status.
    assert.match((await edgecd(m.url, ['auth', 'status'])).out, /^Authentication Status: true\nAuthRevision: \d+\n$/)
    assert.equal((await same([...root, 'auth', 'disable'])).out, 'Authentication Disabled\n')
    assert.match(
      (await edgecd(m.url, ['auth', 'status', '-w', 'json'])).out,
      /"enabled":false|^\{"header":[^}]*\},"authRevision":\d+\}/,
    )
    for (const group of ['user', 'role', 'auth']) {
      const h = await edgecd(m.url, [group, '--help'])
      assert.equal(h.code, 0)
      assert.match(h.out, /COMMANDS:/)
    }
    const h = await edgecd(m.url, ['role', 'grant-permission', '--help'])
    assert.match(h.out, /--from-key/)
  })

  test('on a terminal, --user without a password and user add ask for it without echo', async () => {
    // script(1) gives the CLI a pseudo-terminal; each answer is typed once its prompt is on screen.
    const onTty = (args: string[], answers: string[]) =>
      new Promise<string>((resolve) => {
        const cmd = [process.execPath, bin, `--endpoints=${m.url}`, ...args].map((a) => `'${a}'`).join(' ')
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
        let out = ''
        let asked = 0
        child.stdout.on('data', (d) => {
          out += String(d)
          const prompts = out.split(/[Pp]assword[^:]*: /).length - 1
          while (asked < prompts && asked < answers.length) child.stdin.write(`${answers[asked++]}\n`)
        })
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        child.once('exit', () => {
          clearTimeout(timer)
          resolve(out)
        })
      })
    const added = await onTty(['--user', 'root:rootpw', 'user', 'add', 'tty'], ['ttypw', 'ttypw'])
    assert.match(added, /Password of tty: .*Type password of tty again for confirmation: .*User tty created/s)
    assert.doesNotMatch(added, /ttypw/, 'no echo')
    const listed = await onTty(['--user', 'tty', 'user', 'get', 'tty'], ['ttypw'])
    assert.match(listed, /Password: .*User: tty/s)
    assert.doesNotMatch(listed, /ttypw/, 'no echo')
  })
})
