import { StorageError } from './errors.js'
import { lockFileName } from './file-names.js'

/**
 * The data directory's lock (docs/storage.md, "One process per data directory"): a lock file that names its holder.
 * Operating-system locks are not reachable from every runtime (Node has no flock), so the holder is checked instead:
 * a lock whose process is gone (kill -9, a crash, a reboot) is stale and is taken over, so it never blocks a restart;
 * a lock whose process runs, including this one, refuses the open at once with ErrLocked naming the directory and
 * the holder.
 *
 * The protocol, on plain file operations:
 * - take: write the holder to `edgecd.lock.<pid>.tmp`, then link() it to `edgecd.lock`. link fails if the name
 *   exists, so exactly one process wins, and the lock file is never seen half-written.
 * - stale: rename `edgecd.lock` to `edgecd.lock.<pid>.stale` (only one process can move it), read it back, and only
 *   if it is still the stale holder delete it and try again; if it is a new holder's (someone took the lock in
 *   between), link it back and report that holder.
 * - release: delete `edgecd.lock` if it still holds our token.
 */

/** Who holds a lock: enough to tell whether that process still runs. */
export interface LockHolder {
  pid: number
  /** The host name; a lock from another host (a shared file system) cannot be checked and counts as held. */
  host: string
  /** The process's start time as the OS reports it (Linux: /proc/<pid>/stat field 22), to catch a reused pid. */
  start?: string
  /** The OS boot id (Linux: /proc/sys/kernel/random/boot_id): a lock from before a reboot is stale. */
  boot?: string
  /** When the lock was taken (ISO 8601), for the operator. */
  since: string
  /** Random, so that a release deletes only its own lock file. */
  token: string
}

/** What a runtime provides: a few file operations in the data directory and a process probe. */
export interface LockFiles {
  /** The full path of `name`, for messages. */
  path(name: string): string
  list(): Promise<string[] | undefined>
  /** The file's text, or undefined if it does not exist. */
  readText(name: string): Promise<string | undefined>
  /** Creates or replaces `name` with `text` (no sync: a lock need not survive a power cut, its holder does not). */
  writeText(name: string, text: string): Promise<void>
  /** Hard-links `from` as `to`; false if `to` already exists. */
  link(from: string, to: string): Promise<boolean>
  /** Renames `from` to `to`; false if `from` does not exist. */
  rename(from: string, to: string): Promise<boolean>
  /** Deletes `name`; a missing file is not an error. */
  unlink(name: string): Promise<void>
  /** This process as a lock holder (without since and token). */
  self(): Promise<Omit<LockHolder, 'since' | 'token'>>
  /**
   * Whether `h`'s process still runs: false when no process has its pid, or the pid now belongs to a process with
   * another start time, or `h` is from before this machine's last boot. Only pid is set for leftover temp files.
   */
  alive(h: Pick<LockHolder, 'pid'> & Partial<LockHolder>): Promise<boolean>
}

const tempRe = /^edgecd\.lock\.([0-9]+)\.(?:tmp|stale)$/

/** Takes attempts at most this many times; each lost race means another process took or broke the lock meanwhile. */
const lockAttemptsMax = 5

/**
 * Takes the lock of the directory behind `f` (which must exist), or throws ErrLocked. Returns the release function.
 */
export async function acquireDirLock(f: LockFiles): Promise<() => Promise<void>> {
  const me: LockHolder = { ...(await f.self()), since: new Date().toISOString(), token: crypto.randomUUID() }
  const tmp = `${lockFileName}.${me.pid}.tmp`
  const stale = `${lockFileName}.${me.pid}.stale`
  await removeDeadTemps(f, me.pid)
  await f.writeText(tmp, JSON.stringify(me))
  try {
    for (let attempt = 0; attempt < lockAttemptsMax; attempt++) {
      if (await f.link(tmp, lockFileName)) return release(f, me.token)
      const text = await f.readText(lockFileName)
      if (text === undefined) continue
      const holder = parseHolder(text)
      if (holder && (holder.host !== me.host || (await f.alive(holder)))) throw holderError(f, holder, me)
      // Stale (its process is gone) or unreadable (a lock file is never half-written, so not one of ours): move it
      // aside, and delete it only if it is still the file judged stale.
      if (!(await f.rename(lockFileName, stale))) continue
      if ((await f.readText(stale)) !== text) {
        await f.link(stale, lockFileName)
        await f.unlink(stale)
        continue
      }
      await f.unlink(stale)
    }
    throw new StorageError(
      'ErrLocked',
      `${f.path('')}: gave up taking ${f.path(lockFileName)} after ${lockAttemptsMax} races`,
    )
  } finally {
    await f.unlink(tmp)
  }
}

function release(f: LockFiles, token: string): () => Promise<void> {
  let done = false
  return async () => {
    if (done) return
    done = true
    const text = await f.readText(lockFileName)
    if (text !== undefined && parseHolder(text)?.token === token) await f.unlink(lockFileName)
  }
}

function holderError(f: LockFiles, h: LockHolder, me: Omit<LockHolder, 'since' | 'token'>): StorageError {
  const who =
    h.host !== me.host
      ? `process ${h.pid} on host ${h.host} (cannot be checked from here)`
      : h.pid === me.pid
        ? `this process (pid ${h.pid}), which already has it open`
        : `process ${h.pid}`
  return lockedError(f.path(''), f.path(lockFileName), who, h.since)
}

/** ErrLocked: `dir` is locked by `who` (and since when, if known); the message every runtime's lock gives. */
export function lockedError(dir: string, lockPath: string, who: string, since?: string): StorageError {
  return new StorageError(
    'ErrLocked',
    `${dir} is locked by ${who}${since ? ` since ${since}` : ''} (lock file ${lockPath}); ` +
      'one member per data directory: stop that member first',
  )
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as LockHolder
    if (Number.isSafeInteger(v.pid) && typeof v.host === 'string' && typeof v.token === 'string') return v
  } catch {}
  return undefined
}

/** Deletes the lock temp files that processes killed while taking the lock left behind. */
async function removeDeadTemps(f: LockFiles, myPid: number): Promise<void> {
  for (const name of (await f.list()) ?? []) {
    const m = tempRe.exec(name)
    if (!m) continue
    const pid = Number(m[1])
    if (pid === myPid || !(await f.alive({ pid }))) await f.unlink(name)
  }
}
