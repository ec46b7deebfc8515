/**
 * What the client commands print, kept apart from main.ts and the commands so the quick path of `edgecd get`
 * (quick-get.ts, its own small bundle) shares it with the full CLI: stdout written with fs.writeSync, etcdctl's
 * key/value lines and its `Error: ...` line.
 */
import { createRequire } from 'node:module'

/**
 * Set once stdout has to go through process.stdout: after a write fs.writeSync could not finish (a non-blocking
 * stdout that is full, a closed pipe...), and always on Windows (its console wants process.stdout's wide writes).
 */
let stdoutStream = process.platform === 'win32'

/**
 * Writes to stdout with fs.writeSync on fd 1: a one-shot `edgecd get` then never builds process.stdout (for a pipe a
 * net.Socket on the descriptor, for a file a SyncWriteStream), which costs a call more than its own output
 * (docs/cli.md#start-up). The bytes and their order are what process.stdout writes on Linux, where it writes pipes,
 * files and terminals synchronously too; whatever writeSync could not write goes to process.stdout, as does everything
 * after it, so an error is process.stdout's as before.
 */
export function writeOut(text: string): void {
  if (stdoutStream) {
    process.stdout.write(text)
    return
  }
  const buf = Buffer.from(text)
  let off = 0
  try {
    const { writeSync } = nodeFs()
    while (off < buf.length) off += writeSync(1, buf, off)
  } catch (e) {
    if ((e as { code?: string }).code === 'EPIPE') brokenPipe()
    stdoutStream = true
    process.stdout.on('error', (err: { code?: string }) => {
      if (err.code === 'EPIPE') brokenPipe()
      throw err
    })
    process.stdout.write(buf.subarray(off))
  }
}

/**
 * The reader of stdout went away (`edgecd get --prefix a | head -1`): stop at once and quietly, as etcdctl does (Go's
 * runtime dies of the SIGPIPE; Node ignores the signal, so the same exit status a shell sees for it, 128 + 13).
 */
function brokenPipe(): never {
  process.exit(141)
}

/** node:fs without an ES module import of it (whose namespace would load fs/promises). */
function nodeFs(): typeof import('node:fs') {
  return (process.getBuiltinModule?.('node:fs') ??
    createRequire(import.meta.url)('node:fs')) as typeof import('node:fs')
}

/** etcdctl's printKV: key line, value line (or the value alone, or the key and an empty line). */
export function kvLines(
  kv: { key: string; value: string },
  opts: { valueOnly?: boolean; keysOnly?: boolean } = {},
): string[] {
  if (opts.valueOnly) return [kv.value]
  return [kv.key, opts.keysOnly ? '' : kv.value]
}

/** The line a failed client command prints on stderr (before exiting 1), as etcdctl's `Error: ...`. */
export function errorLine(err: unknown): string {
  return `Error: ${err instanceof Error ? err.message : String(err)}`
}
