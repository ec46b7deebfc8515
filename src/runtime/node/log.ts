import { createJsonLogger, type Logger, type LogLevel } from '../../server/log.js'

export type { Logger } from '../../server/log.js'

/** Structured logs on stderr: one JSON object per line, as etcd's zap logger writes them. */
export function createLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  return createJsonLogger(level, write)
}
