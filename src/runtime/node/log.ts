import { createJsonLogger, type Logger, type LogLevel } from '../../etcdserver/log.js'

export type { Logger } from '../../etcdserver/log.js'

/** Structured logs on stderr: one JSON object per line, as etcd's zap logger writes them. */
export function createLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  return createJsonLogger(level, write)
}
