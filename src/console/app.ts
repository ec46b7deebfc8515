/**
 * The operator's console at /ui on every member (docs/console.md): cluster, keys, watch, leases, users and roles.
 * Preact + htm (no build step for templates), uPlot for the live chart; esbuild bundles it into one script
 * (scripts/build-console.mjs) that the member serves with the shell and the service worker.
 */
import { html } from 'htm/preact'
import { render } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import uPlot from 'uplot'
import {
  ApiError,
  b64,
  call,
  gatewaySource,
  getToken,
  type KeySource,
  type KeyValue,
  parseMetrics,
  prefixEnd,
  replicaSource,
  setToken,
  text,
  unb64,
} from './api.js'

const views = ['cluster', 'keys', 'watch', 'leases', 'auth'] as const
type View = (typeof views)[number]
const titles: Record<View, string> = {
  cluster: 'Cluster',
  keys: 'Keys',
  watch: 'Watch',
  leases: 'Leases',
  auth: 'Users & roles',
}

const currentView = (): View => {
  const v = location.hash.replace(/^#\/?/, '').split('?')[0] as View
  return views.includes(v) ? v : 'cluster'
}

/**
 * Where the keys view reads: the browser replica that the member serves at /ui/replica.js (src/replica), or, when
 * that module is not there, the gateway with its last-known copy per prefix.
 */
let keySource: KeySource = gatewaySource

function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '?'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

/** A key or value shown as text when printable, else with \xNN escapes. */
function printable(bytes: Uint8Array): string {
  let s = ''
  const t = new TextDecoder('utf-8', { fatal: false }).decode(bytes)
  for (const ch of t) {
    const c = ch.codePointAt(0)!
    s += c < 0x20 || c === 0xfffd ? `\\x${c.toString(16).padStart(2, '0')}` : ch
  }
  return s
}

const hex = (bytes: Uint8Array): string =>
  [...bytes].map((b, i) => b.toString(16).padStart(2, '0') + ((i + 1) % 16 === 0 ? '\n' : ' ')).join('')

function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null
  return html`<p class="error" role="alert">${(error as Error).message ?? String(error)}</p>`
}

// ---- cluster ----

interface MemberRow {
  id: string
  name: string
  url: string
  role: string
  term?: string
  commit?: string
  applied?: string
  dbSize?: number
  health?: string
  errors?: string[]
  leader?: string
}

function Cluster({ onAuthError }: { onAuthError: (e: unknown) => void }) {
  const [rows, setRows] = useState<MemberRow[]>([])
  const [alarms, setAlarms] = useState<{ memberID?: string; alarm?: string }[]>([])
  const [error, setError] = useState<unknown>()
  const chartEl = useRef<HTMLDivElement>(null)

  useEffect(() => {
    let stop = false
    const load = async () => {
      try {
        const list = await call<{
          members: { ID: string; name: string; clientURLs?: string[]; isLearner?: boolean }[]
        }>('/v3/cluster/member/list')
        const out = await Promise.all(
          list.members.map(async (m): Promise<MemberRow> => {
            const url = m.clientURLs?.[0] ?? ''
            const row: MemberRow = { id: m.ID, name: m.name || '(unstarted)', url, role: m.isLearner ? 'learner' : '?' }
            if (!url) return { ...row, health: 'unstarted' }
            try {
              const s = await call('/v3/maintenance/status', {}, url)
              const health = await fetch(url + '/health')
                .then((r) => r.json())
                .then((j) => (j.health === 'true' ? 'healthy' : 'unhealthy'))
                .catch(() => 'unreachable')
              return {
                ...row,
                role: m.isLearner ? 'learner' : s.leader === m.ID ? 'leader' : 'follower',
                term: s.raftTerm ?? s.header?.raft_term,
                commit: s.raftIndex,
                applied: s.raftAppliedIndex ?? s.raftIndex,
                dbSize: Number(s.dbSize ?? 0),
                leader: s.leader,
                errors: s.errors,
                health,
              }
            } catch (err) {
              if (err instanceof ApiError && err.needsLogin) throw err
              return { ...row, health: 'unreachable' }
            }
          }),
        )
        const a = await call<{ alarms?: { memberID?: string; alarm?: string }[] }>('/v3/maintenance/alarm', {
          action: 'GET',
        })
        if (stop) return
        setRows(out)
        setAlarms(a.alarms ?? [])
        setError(undefined)
      } catch (err) {
        if (stop) return
        setError(err)
        onAuthError(err)
      }
    }
    void load()
    const t = setInterval(load, 2000)
    return () => {
      stop = true
      clearInterval(t)
    }
  }, [])

  // Live chart from this member's /metrics: proposals committed and applied per second, and the apply lag.
  useEffect(() => {
    if (!chartEl.current) return
    const n = 60
    const data: number[][] = [[], [], [], []]
    const plot = new uPlot(
      {
        width: Math.min(860, chartEl.current.clientWidth || 860),
        height: 220,
        series: [
          {},
          { label: 'committed/s', stroke: '#1f5fbf', width: 2 },
          { label: 'applied/s', stroke: '#1a7f37', width: 2, dash: [6, 4] },
          { label: 'apply lag', stroke: '#b3261e', width: 2, scale: 'lag' },
        ],
        axes: [{}, { label: 'per second' }, { side: 1, scale: 'lag', label: 'entries', grid: { show: false } }],
      },
      data as uPlot.AlignedData,
      chartEl.current,
    )
    let last: { t: number; c: number; a: number } | undefined
    let stop = false
    const tick = async () => {
      try {
        const m = parseMetrics(await (await fetch('/metrics')).text())
        const c = m.get('etcd_server_proposals_committed_total') ?? 0
        const a = m.get('etcd_server_proposals_applied_total') ?? 0
        const t = Date.now() / 1000
        if (last && !stop) {
          const dt = Math.max(0.001, t - last.t)
          data[0]!.push(t)
          data[1]!.push((c - last.c) / dt)
          data[2]!.push((a - last.a) / dt)
          data[3]!.push(Math.max(0, c - a))
          for (const d of data) if (d.length > n) d.shift()
          plot.setData(data as uPlot.AlignedData)
        }
        last = { t, c, a }
      } catch {}
    }
    void tick()
    const timer = setInterval(tick, 1000)
    return () => {
      stop = true
      clearInterval(timer)
      plot.destroy()
    }
  }, [])

  return html`<section aria-labelledby="h-cluster">
    <h2 id="h-cluster">Cluster</h2>
    <${ErrorLine} error=${error} />
    <table class="grid" data-testid="members">
      <thead>
        <tr>
          <th>Name</th><th>ID</th><th>Role</th><th>Term</th><th>Commit</th><th>Applied</th><th>DB size</th><th>Health</th
          ><th>Client URL</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (r) => html`<tr data-member=${r.name}>
            <td>${r.name}</td>
            <td class="mono">${r.id}</td>
            <td><span class=${'badge ' + r.role}>${r.role}</span></td>
            <td class="num">${r.term ?? '–'}</td>
            <td class="num">${r.commit ?? '–'}</td>
            <td class="num">${r.applied ?? '–'}</td>
            <td class="num">${r.dbSize === undefined ? '–' : fmtBytes(r.dbSize)}</td>
            <td><span class=${'badge ' + (r.health ?? '')}>${r.health ?? '…'}</span></td>
            <td class="mono">${r.url}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <p>
      Leader: <strong data-testid="leader">${rows.find((r) => r.role === 'leader')?.name ?? 'none'}</strong> · Alarms:${' '}
      <strong data-testid="alarms"
        >${alarms.length === 0 ? 'none' : alarms.map((a) => `${a.alarm ?? 'NONE'} (member ${a.memberID ?? '0'})`).join(', ')}</strong
      >
    </p>
    <h3>Proposals per second and apply lag (this member)</h3>
    <div ref=${chartEl} class="chart" aria-label="proposals and applies per second, apply lag"></div>
  </section>`
}

// ---- keys ----

function ValueView({ kv }: { kv: KeyValue }) {
  const [mode, setMode] = useState<'text' | 'json' | 'hex'>('text')
  const bytes = unb64(kv.value)
  let body: string
  if (mode === 'hex') body = hex(bytes)
  else if (mode === 'json') {
    try {
      body = JSON.stringify(JSON.parse(text(kv.value)), null, 2)
    } catch (err) {
      body = `not JSON: ${(err as Error).message}`
    }
  } else body = printable(bytes)
  return html`<div>
    <div role="tablist" aria-label="value format">
      ${(['text', 'json', 'hex'] as const).map(
        (m) =>
          html`<button role="tab" aria-selected=${mode === m} class=${mode === m ? 'on' : ''} onClick=${() => setMode(m)}>
            ${m.toUpperCase()}
          </button>`,
      )}
    </div>
    <pre class="value" data-testid="value">${body}</pre>
  </div>`
}

function History({ kv }: { kv: KeyValue }) {
  const [items, setItems] = useState<KeyValue[]>([])
  const [note, setNote] = useState('')
  useEffect(() => {
    let stop = false
    void (async () => {
      // Walk back one version at a time: the key as of the revision before each modification.
      const out: KeyValue[] = [kv]
      let cur = kv
      try {
        while (out.length < 20 && Number(cur.version) > 1) {
          const r = await call<{ kvs?: KeyValue[] }>('/v3/kv/range', {
            key: kv.key,
            revision: Number(cur.mod_revision) - 1,
          })
          const prev = r.kvs?.[0]
          if (!prev) break
          out.push(prev)
          cur = prev
        }
        if (!stop) setNote(Number(cur.version) > 1 ? 'older versions not shown' : '')
      } catch (err) {
        if (!stop) setNote(/compacted/.test((err as Error).message) ? 'older versions are compacted' : String(err))
      }
      if (!stop) setItems(out)
    })()
    return () => {
      stop = true
    }
  }, [kv.key, kv.mod_revision])
  return html`<div>
    <h4>History</h4>
    <table class="grid" data-testid="history">
      <thead><tr><th>Version</th><th>Mod rev</th><th>Value</th></tr></thead>
      <tbody>
        ${items.map(
          (i) =>
            html`<tr><td class="num">${i.version}</td><td class="num">${i.mod_revision}</td><td class="mono">${printable(unb64(i.value)).slice(0, 80)}</td></tr>`,
        )}
      </tbody>
    </table>
    ${note && html`<p class="muted">${note}</p>`}
  </div>`
}

/** A WebSocket watch of a prefix on this member; onEvents gets the events of each response. */
function watchPrefix(
  prefix: string,
  onEvents: (events: any[], revision: number) => void,
  onState?: (s: string) => void,
) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
  const token = getToken()
  const ws = new WebSocket(`${proto}//${location.host}/v3/watch`, token ? ['edgecd', `bearer.${token}`] : undefined)
  ws.onopen = () => {
    onState?.('watching')
    ws.send(
      JSON.stringify({
        create_request: {
          key: b64(prefix === '' ? '\0' : prefix),
          range_end: prefix === '' ? b64('\0') : prefixEnd(prefix),
          prev_kv: true,
        },
      }),
    )
  }
  ws.onmessage = (e) => {
    try {
      const m = JSON.parse(String(e.data))
      if (m.error) onState?.(`error: ${m.error.message}`)
      const r = m.result
      if (r?.events?.length) onEvents(r.events, Number(r.header?.revision ?? 0))
      if (r?.canceled) onState?.(`canceled: ${r.cancel_reason ?? ''}`)
    } catch {}
  }
  ws.onclose = () => onState?.('closed')
  return () => ws.close()
}

function Keys({ onAuthError }: { onAuthError: (e: unknown) => void }) {
  const [prefix, setPrefix] = useState(() => sessionStorage.getItem('edgecd-console-prefix') ?? '')
  const [listing, setListing] = useState<Awaited<ReturnType<KeySource['list']>>>()
  const [selected, setSelected] = useState<string>()
  const [error, setError] = useState<unknown>()
  const [newKey, setNewKey] = useState('')
  const [newValue, setNewValue] = useState('')
  const [lease, setLease] = useState('')
  const [message, setMessage] = useState('')

  const load = useCallback(async () => {
    try {
      const l = await keySource.list(prefix, 500)
      setListing(l)
      setError(undefined)
    } catch (err) {
      setError(err)
      onAuthError(err)
    }
  }, [prefix])

  useEffect(() => {
    sessionStorage.setItem('edgecd-console-prefix', prefix)
    void load()
    let timer: ReturnType<typeof setTimeout> | undefined
    const stop = watchPrefix(prefix, () => {
      clearTimeout(timer)
      timer = setTimeout(load, 50)
    })
    return () => {
      clearTimeout(timer)
      stop()
    }
  }, [prefix])

  const kv = listing?.kvs.find((k) => k.key === selected)

  const put = async (e: Event) => {
    e.preventDefault()
    if (!newKey) return
    if (!confirm(`Put ${newKey} = ${newValue.slice(0, 60)}?`)) return
    try {
      await call('/v3/kv/put', { key: b64(newKey), value: b64(newValue), ...(lease ? { lease } : {}) })
      setMessage(`put ${newKey}`)
      setSelected(b64(newKey))
      await load()
    } catch (err) {
      setMessage(`put failed: ${(err as Error).message}`)
      onAuthError(err)
    }
  }

  const del = async (k: KeyValue) => {
    if (!confirm(`Delete ${text(k.key)}?`)) return
    try {
      await call('/v3/kv/deleterange', { key: k.key })
      setMessage(`deleted ${text(k.key)}`)
      setSelected(undefined)
      await load()
    } catch (err) {
      setMessage(`delete failed: ${(err as Error).message}`)
      onAuthError(err)
    }
  }

  const onListKey = (e: KeyboardEvent) => {
    if (!listing || (e.key !== 'ArrowDown' && e.key !== 'ArrowUp')) return
    e.preventDefault()
    // From the focused row if any (Tab moves focus without selecting), else from the selected one.
    const focused = (document.activeElement as HTMLElement | null)?.id
    const from = focused?.startsWith('k-') ? focused.slice(2) : selected
    const i = listing.kvs.findIndex((k) => k.key === from)
    const next = listing.kvs[Math.max(0, Math.min(listing.kvs.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)))]
    if (next) {
      setSelected(next.key)
      document.getElementById(`k-${next.key}`)?.focus()
    }
  }

  return html`<section aria-labelledby="h-keys">
    <h2 id="h-keys">Keys</h2>
    <form class="row" onSubmit=${(e: Event) => e.preventDefault()}>
      <label>Prefix <input value=${prefix} onInput=${(e: any) => setPrefix(e.currentTarget.value)} data-testid="prefix" /></label>
      ${
        listing &&
        html`<span class=${listing.stale ? 'badge stale' : 'muted'} data-testid="listing-state">
          ${listing.stale ? `stale: last known at revision ${listing.revision} (${listing.source})` : `revision ${listing.revision} · ${listing.count} keys · ${listing.source}`}
        </span>`
      }
    </form>
    <${ErrorLine} error=${error} />
    <div class="split">
      <div class="keylist" onKeyDown=${onListKey}>
        <table class="grid" data-testid="keys">
          <thead><tr><th>Key</th><th>Create</th><th>Mod</th><th>Ver</th><th>Lease</th><th>Size</th></tr></thead>
          <tbody>
            ${(listing?.kvs ?? []).map(
              (k) => html`<tr class=${k.key === selected ? 'sel' : ''} data-key=${text(k.key)}>
                <td>
                  <button id=${'k-' + k.key} class="link" onClick=${() => setSelected(k.key)} aria-pressed=${k.key === selected}>
                    ${printable(unb64(k.key))}
                  </button>
                </td>
                <td class="num">${k.create_revision}</td>
                <td class="num">${k.mod_revision}</td>
                <td class="num">${k.version}</td>
                <td class="num">${k.lease ?? ''}</td>
                <td class="num">${unb64(k.value).length}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
      <div class="detail">
        ${
          kv
            ? html`<h3 class="mono" data-testid="selected">${printable(unb64(kv.key))}</h3>
                <p class="muted">
                  create ${kv.create_revision} · mod ${kv.mod_revision} · version ${kv.version}${kv.lease ? ` · lease ${kv.lease}` : ''}
                </p>
                <${ValueView} kv=${kv} />
                <button class="danger" onClick=${() => del(kv)} disabled=${listing?.stale}>Delete…</button>
                ${!listing?.stale && html`<${History} kv=${kv} />`}`
            : html`<p class="muted">Select a key (arrow keys move through the list).</p>`
        }
        <h3>Put</h3>
        <form onSubmit=${put} class="stack">
          <label>Key <input value=${newKey} onInput=${(e: any) => setNewKey(e.currentTarget.value)} data-testid="put-key" /></label>
          <label>Value <textarea rows="3" value=${newValue} onInput=${(e: any) => setNewValue(e.currentTarget.value)} data-testid="put-value"></textarea></label>
          <label>Lease ID (optional) <input value=${lease} onInput=${(e: any) => setLease(e.currentTarget.value)} /></label>
          <button type="submit" disabled=${listing?.stale}>Put…</button>
        </form>
        ${message && html`<p role="status">${message}</p>`}
      </div>
    </div>
  </section>`
}

// ---- watch ----

function Watch() {
  const [prefix, setPrefix] = useState('')
  const [active, setActive] = useState<string>()
  const [state, setState] = useState('')
  const [events, setEvents] = useState<{ type: string; key: string; value: string; rev: string }[]>([])
  useEffect(() => {
    if (active === undefined) return
    setEvents([])
    return watchPrefix(
      active,
      (evs) =>
        setEvents((old) =>
          [
            ...evs.map((e) => ({
              type: e.type ?? 'PUT',
              key: printable(unb64(e.kv?.key)),
              value: printable(unb64(e.kv?.value)).slice(0, 120),
              rev: e.kv?.mod_revision ?? '',
            })),
            ...old,
          ].slice(0, 200),
        ),
      setState,
    )
  }, [active])
  return html`<section aria-labelledby="h-watch">
    <h2 id="h-watch">Watch</h2>
    <form class="row" onSubmit=${(e: Event) => {
      e.preventDefault()
      setActive(prefix)
    }}>
      <label>Prefix <input value=${prefix} onInput=${(e: any) => setPrefix(e.currentTarget.value)} data-testid="watch-prefix" /></label>
      <button type="submit">Watch</button>
      <span class="muted" data-testid="watch-state">${active === undefined ? '' : `${state} “${active}”`}</span>
    </form>
    <table class="grid" data-testid="events">
      <thead><tr><th>Type</th><th>Key</th><th>Value</th><th>Mod rev</th></tr></thead>
      <tbody>
        ${events.map((e) => html`<tr><td>${e.type}</td><td class="mono">${e.key}</td><td class="mono">${e.value}</td><td class="num">${e.rev}</td></tr>`)}
      </tbody>
    </table>
  </section>`
}

// ---- leases ----

function Leases({ onAuthError }: { onAuthError: (e: unknown) => void }) {
  const [leases, setLeases] = useState<{ id: string; ttl: number; granted: number; keys: string[]; at: number }[]>([])
  const [now, setNow] = useState(Date.now())
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    let stop = false
    const load = async () => {
      try {
        const l = await call<{ leases?: { ID: string }[] }>('/v3/lease/leases')
        const out = await Promise.all(
          (l.leases ?? []).map(async ({ ID }) => {
            const t = await call<{ TTL: string; grantedTTL: string; keys?: string[] }>('/v3/lease/timetolive', {
              ID,
              keys: true,
            })
            return {
              id: ID,
              ttl: Number(t.TTL),
              granted: Number(t.grantedTTL),
              keys: (t.keys ?? []).map(text),
              at: Date.now(),
            }
          }),
        )
        if (!stop) {
          setLeases(out)
          setError(undefined)
        }
      } catch (err) {
        if (!stop) {
          setError(err)
          onAuthError(err)
        }
      }
    }
    void load()
    const t = setInterval(load, 5000)
    const c = setInterval(() => setNow(Date.now()), 1000)
    return () => {
      stop = true
      clearInterval(t)
      clearInterval(c)
    }
  }, [])
  return html`<section aria-labelledby="h-leases">
    <h2 id="h-leases">Leases</h2>
    <${ErrorLine} error=${error} />
    <table class="grid" data-testid="leases">
      <thead><tr><th>ID</th><th>TTL left</th><th>Granted TTL</th><th>Keys</th></tr></thead>
      <tbody>
        ${leases.map(
          (l) =>
            html`<tr data-lease=${l.id}><td class="mono">${l.id}</td><td class="num" data-testid="ttl">${Math.max(0, l.ttl - Math.floor((now - l.at) / 1000))} s</td><td class="num">${l.granted} s</td><td class="mono">${l.keys.join(', ')}</td></tr>`,
        )}
      </tbody>
    </table>
    ${leases.length === 0 && !error && html`<p class="muted">No leases.</p>`}
  </section>`
}

// ---- users and roles ----

function Auth({ onAuthError }: { onAuthError: (e: unknown) => void }) {
  const [enabled, setEnabled] = useState<boolean>()
  const [users, setUsers] = useState<{ name: string; roles: string[] }[]>([])
  const [roles, setRoles] = useState<{ name: string; perms: string[] }[]>([])
  const [error, setError] = useState<unknown>()
  useEffect(() => {
    void (async () => {
      try {
        const s = await call<{ enabled?: boolean }>('/v3/auth/status')
        setEnabled(!!s.enabled)
        const ul = await call<{ users?: string[] }>('/v3/auth/user/list')
        setUsers(
          await Promise.all(
            (ul.users ?? []).map(async (name) => ({
              name,
              roles: (await call<{ roles?: string[] }>('/v3/auth/user/get', { name })).roles ?? [],
            })),
          ),
        )
        const rl = await call<{ roles?: string[] }>('/v3/auth/role/list')
        setRoles(
          await Promise.all(
            (rl.roles ?? []).map(async (role) => {
              const r = await call<{ perm?: { permType?: string; key?: string; range_end?: string }[] }>(
                '/v3/auth/role/get',
                { role },
              )
              return {
                name: role,
                perms: (r.perm ?? []).map(
                  (p) =>
                    `${p.permType ?? 'READ'} ${printable(unb64(p.key))}${p.range_end ? ` .. ${printable(unb64(p.range_end))}` : ''}`,
                ),
              }
            }),
          ),
        )
      } catch (err) {
        setError(err)
        onAuthError(err)
      }
    })()
  }, [])
  return html`<section aria-labelledby="h-auth">
    <h2 id="h-auth">Users & roles</h2>
    <p>Auth is <strong data-testid="auth-enabled">${enabled === undefined ? '…' : enabled ? 'enabled' : 'disabled'}</strong>.</p>
    <${ErrorLine} error=${error} />
    <div class="split">
      <div>
        <h3>Users</h3>
        <table class="grid" data-testid="users">
          <thead><tr><th>User</th><th>Roles</th></tr></thead>
          <tbody>${users.map((u) => html`<tr><td>${u.name}</td><td>${u.roles.join(', ')}</td></tr>`)}</tbody>
        </table>
      </div>
      <div>
        <h3>Roles</h3>
        <table class="grid" data-testid="roles">
          <thead><tr><th>Role</th><th>Permissions</th></tr></thead>
          <tbody>${roles.map((r) => html`<tr><td>${r.name}</td><td class="mono">${r.perms.join('; ') || (r.name === 'root' ? 'all' : '')}</td></tr>`)}</tbody>
        </table>
      </div>
    </div>
  </section>`
}

// ---- login ----

function Login({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('')
  const [error, setError] = useState<unknown>()
  const password = useRef<HTMLInputElement>(null)
  const tokenInput = useRef<HTMLInputElement>(null)
  const submit = async (e: Event) => {
    e.preventDefault()
    try {
      const pw = password.current?.value ?? ''
      // The password goes to authenticate and nowhere else: the field is cleared, only the token is kept.
      if (password.current) password.current.value = ''
      setToken(undefined)
      const r = await call<{ token: string }>('/v3/auth/authenticate', { name, password: pw })
      setToken(r.token)
      onDone()
    } catch (err) {
      setError(err)
    }
  }
  const useToken = (e: Event) => {
    e.preventDefault()
    const t = tokenInput.current?.value.trim()
    if (t) {
      setToken(t)
      onDone()
    }
  }
  return html`<section class="login" aria-labelledby="h-login">
    <h2 id="h-login">Log in</h2>
    <p class="muted">Auth is on: log in with a user and password, or paste a token. Only the token is kept, for this tab.</p>
    <form onSubmit=${submit} class="stack">
      <label>User <input autocomplete="username" value=${name} onInput=${(e: any) => setName(e.currentTarget.value)} data-testid="login-user" /></label>
      <label>Password <input type="password" autocomplete="current-password" ref=${password} data-testid="login-password" /></label>
      <button type="submit">Log in</button>
    </form>
    <form onSubmit=${useToken} class="stack">
      <label>Token <input ref=${tokenInput} /></label>
      <button type="submit">Use token</button>
    </form>
    <${ErrorLine} error=${error} />
  </section>`
}

// ---- shell ----

function App() {
  const [view, setView] = useState<View>(currentView())
  const [needLogin, setNeedLogin] = useState(false)
  const [online, setOnline] = useState(navigator.onLine)
  const [epoch, setEpoch] = useState(0)
  useEffect(() => {
    const onHash = () => setView(currentView())
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement
      if (t.closest('input, textarea, select') || e.ctrlKey || e.metaKey || e.altKey) return
      const i = Number(e.key) - 1
      if (i >= 0 && i < views.length) location.hash = `#/${views[i]}`
    }
    const onNet = () => setOnline(navigator.onLine)
    addEventListener('hashchange', onHash)
    addEventListener('keydown', onKey)
    addEventListener('online', onNet)
    addEventListener('offline', onNet)
    return () => {
      removeEventListener('hashchange', onHash)
      removeEventListener('keydown', onKey)
      removeEventListener('online', onNet)
      removeEventListener('offline', onNet)
    }
  }, [])
  const onAuthError = (err: unknown) => {
    if (err instanceof ApiError && err.needsLogin && !(err.message.includes('permission denied') && getToken()))
      setNeedLogin(true)
  }
  const body = needLogin
    ? html`<${Login}
        onDone=${() => {
          setNeedLogin(false)
          setEpoch(epoch + 1)
        }}
      />`
    : view === 'cluster'
      ? html`<${Cluster} key=${epoch} onAuthError=${onAuthError} />`
      : view === 'keys'
        ? html`<${Keys} key=${epoch} onAuthError=${onAuthError} />`
        : view === 'watch'
          ? html`<${Watch} key=${epoch} />`
          : view === 'leases'
            ? html`<${Leases} key=${epoch} onAuthError=${onAuthError} />`
            : html`<${Auth} key=${epoch} onAuthError=${onAuthError} />`
  return html`<header>
      <h1><a href="#/cluster">edgecd</a> <span class="muted">${location.host}</span></h1>
      <nav aria-label="views">
        ${views.map(
          (v, i) =>
            html`<a href=${`#/${v}`} aria-current=${v === view ? 'page' : undefined} title=${`key ${i + 1}`}>${titles[v]}</a>`,
        )}
      </nav>
      <span class="session">
        ${!online && html`<span class="badge stale">offline</span>`}
        ${
          getToken()
            ? html`<button
                class="link"
                onClick=${() => {
                  setToken(undefined)
                  setEpoch(epoch + 1)
                }}
              >
                Log out
              </button>`
            : html`<button class="link" onClick=${() => setNeedLogin(true)}>Log in</button>`
        }
      </span>
    </header>
    <main id="main">${body}</main>`
}

async function start(): Promise<void> {
  try {
    // Loaded from the member at run time, not bundled: the page stays small and uses the member's own build.
    const url = '/ui/replica.js'
    keySource = replicaSource(await import(/* @vite-ignore */ url), location.origin)
  } catch {}
  const root = document.getElementById('app')!
  root.textContent = ''
  render(html`<${App} />`, root)
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/ui/sw.js', { scope: '/ui/' }).catch(() => {})
}

void start()
