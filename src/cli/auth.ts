/**
 * `user`, `role` and `auth`: etcdctl's auth commands are accepted (so scripts get a clear answer) but fail until
 * edgecd's authentication lands in the client and CLI.
 */
import type { CliIo } from './main.js'

/** The error every auth command answers with. */
export function authUnavailable(group: string) {
  return (_args: string[], io: CliIo): number => {
    io.err(
      `Error: '${group}' commands are not available in edgecd yet: authentication arrives with auth support (see docs/cli.md)`,
    )
    return 1
  }
}
