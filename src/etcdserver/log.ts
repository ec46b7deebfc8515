/** Structured logs: one JSON object per line, as etcd's zap logger writes them. Each runtime supplies the writer. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }

/** A logger writing one JSON line per message at `level` or above through `write` (stderr on every runtime). */
export function createJsonLogger(level: LogLevel, write: (line: string) => void): Logger {
  const emit =
    (lvl: LogLevel) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (order[lvl] < order[level]) return
      write(`${JSON.stringify({ level: lvl, ts: new Date().toISOString(), msg, ...fields })}\n`)
    }
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') }
}
