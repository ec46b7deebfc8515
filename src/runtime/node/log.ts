/** Structured logs: one JSON object per line on stderr, as etcd's zap logger writes them. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

const order = { debug: 0, info: 1, warn: 2, error: 3 } as const

export function createLogger(
  level: keyof typeof order = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const emit =
    (lvl: keyof typeof order) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (order[lvl] < order[level]) return
      write(`${JSON.stringify({ level: lvl, ts: new Date().toISOString(), msg, ...fields })}\n`)
    }
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') }
}
