/**
 * Child processes that must not outlive their launcher: `edgecd serve --runtime workerd|deno` runs the member in a
 * child (workerd, deno), and a kill -9 of the launcher must stop the member too, or it would go on serving (and
 * holding its port and data dir) with nobody to stop it.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** The pids of this process's children whose command starts with `name` (Linux /proc; none elsewhere). */
export function childrenNamed(name: string): number[] {
  const out: number[] = []
  let entries: string[] = []
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      // pid (comm) state ppid ...
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat)
      if (m && Number(m[2]) === process.pid && m[1]!.startsWith(name)) out.push(Number(e))
    } catch {}
  }
  return out
}

/**
 * Kills `pids` when this process dies, however it dies: a detached shell polls this process and sends SIGKILL to
 * the children once it is gone (and exits by itself when they are gone).
 */
export function guardChildren(pids: number[]): void {
  if (pids.length === 0) return
  const list = pids.join(' ')
  const script = `while kill -0 ${process.pid} 2>/dev/null; do alive=0; for p in ${list}; do kill -0 $p 2>/dev/null && alive=1; done; [ $alive = 0 ] && exit 0; sleep 0.3; done; kill -9 ${list} 2>/dev/null; exit 0`
  const guard = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  guard.unref()
}
